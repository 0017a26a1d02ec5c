/**
 * The datagram transport cases of tilth's own tests: udp over 127.0.0.1 and
 * ::1 on the Node loop, and the in-memory datagram network (seeded loss,
 * duplication and reordering) on the virtual loop.
 */
import dgram from "node:dgram";
import { NodeLoop } from "../../adapters/node.js";
import { VirtualLoop } from "../../adapters/virtual.js";
import { DatagramNetwork, registerTransports, type DatagramNetworkOptions } from "../../transports/index.js";
import type { TransportCase } from "../../testing/helpers.js";

/** A udp port that was free a moment ago (bind to 0, close). */
export async function freeUdpPort(host = "127.0.0.1"): Promise<number> {
  const s = dgram.createSocket(host.includes(":") ? "udp6" : "udp4");
  await new Promise<void>((r) => s.bind(0, host, r));
  const port = s.address().port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

function udpCase(name: string, host: string): TransportCase {
  const h = host.includes(":") ? `[${host}]` : host;
  return {
    name,
    makeLoop: () => registerTransports(new NodeLoop()),
    listenUrl: () => `udp://${h}:0`,
    refusedUrl: async () => `udp://${h}:${await freeUdpPort(host)}`,
    listenOptions: {},
    connectOptions: {},
    run: (_loop, body) => body(),
    cleanup: () => {},
  };
}

/** A virtual loop whose udp:// is the in-memory network with these faults. */
export function networkLoop(options: DatagramNetworkOptions): { loop: VirtualLoop; network: DatagramNetwork } {
  const loop = new VirtualLoop({ stallWarningMs: 0 });
  const network = new DatagramNetwork(options);
  loop.transports.register(network);
  registerTransports(loop);
  return { loop, network };
}

let seed = 1;

export const datagramCases = {
  udp4: (): TransportCase => udpCase("udp4 (127.0.0.1)", "127.0.0.1"),
  udp6: (): TransportCase => udpCase("udp6 (::1)", "::1"),
  network: (): TransportCase => ({
    name: "in-memory datagram network (virtual time; seeded loss 10%, duplication 10%, reordering 20%)",
    makeLoop: () => networkLoop({ seed: seed++, loss: 0.1, duplicate: 0.1, reorder: 0.2, latencyMs: 1, reorderMs: 8 }).loop,
    listenUrl: () => "udp://10.0.0.1:0",
    refusedUrl: async () => "udp://10.0.0.1:9",
    listenOptions: {},
    connectOptions: {},
    run: (loop, body) => (loop as VirtualLoop).run(body, { deadlockMs: 5000 }),
    cleanup: () => {},
  }),
};
