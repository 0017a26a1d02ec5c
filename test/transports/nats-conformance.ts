/**
 * The shared transport conformance suite over nats:// (a child process of
 * nats.test.ts, which starts its nats-server and names it in
 * TILTH_NATS_SERVER, and leaves out the cases that cannot apply to NATS).
 */
import { NodeLoop } from "../../adapters/node.js";
import { registerTransports } from "../../transports/index.js";
import { transportConformance } from "../../testing/index.js";

const server = process.env.TILTH_NATS_SERVER;
let seq = 0;
const unique = (): string => `t${process.pid}-${++seq}`;

if (server !== undefined) {
  transportConformance(() => ({
    name: "nats",
    makeLoop: () => registerTransports(new NodeLoop()),
    listenUrl: () => `nats://${server}/${unique()}`,
    refusedUrl: async () => `nats://${server}/nobody-${unique()}`,
    listenOptions: {},
    connectOptions: {},
    run: (_loop, body) => body(),
    cleanup: () => {},
  }));
}
