/**
 * The shared conformance suite on one zmq case, run by zmq.test.ts in a child
 * process (TILTH_ZMQ_CONFORMANCE=tcp|tcp6|ipc) with a test-name pattern that
 * leaves out the cases that cannot apply to ZeroMQ. Registers nothing when run
 * by itself.
 */
import { join } from "node:path";
import { NodeLoop } from "../../adapters/node.js";
import { registerTransports } from "../../transports/index.js";
import { transportConformance } from "../../testing/index.js";
import { cleanupTmp, freePort, tmpDir, type TransportCase } from "./util.js";

let seq = 0;
const zcase = (name: string, listenUrl: () => string, refusedUrl: () => Promise<string>, cleanup: () => void = () => {}): TransportCase => ({
  name,
  makeLoop: () => registerTransports(new NodeLoop()),
  listenUrl,
  refusedUrl,
  listenOptions: {},
  connectOptions: {},
  run: (_loop, body) => body(),
  cleanup,
});

export const zmqCases: Record<string, () => TransportCase> = {
  tcp: () => zcase("zmq+tcp", () => "zmq+tcp://127.0.0.1:0", async () => `zmq+tcp://127.0.0.1:${await freePort()}`),
  tcp6: () => zcase("zmq+tcp over ::1", () => "zmq+tcp://[::1]:0", async () => `zmq+tcp://[::1]:${await freePort()}`),
  ipc: () =>
    zcase(
      "zmq+ipc",
      () => `zmq+ipc://${join(tmpDir(), `z-${process.pid}-${++seq}.sock`)}`,
      async () => `zmq+ipc://${join(tmpDir(), `missing-${process.pid}-${++seq}.sock`)}`,
      cleanupTmp,
    ),
};

const which = process.env.TILTH_ZMQ_CONFORMANCE;
if (which !== undefined) {
  const make = zmqCases[which];
  if (make === undefined) throw new Error(`TILTH_ZMQ_CONFORMANCE=${which}: expected one of ${Object.keys(zmqCases).join(", ")}`);
  transportConformance(make);
}
