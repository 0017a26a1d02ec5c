/**
 * A udp echo that keeps state per conversation: each peer gets its own
 * count, held in the conversation's handler (no table of peers to look up),
 * and a task in the conversation's scope that ends with it.
 *
 *     node dist/examples/udp/echo.js [udp://127.0.0.1:9995]
 *
 * then, from a shell: `echo -n hi | nc -u -w1 127.0.0.1 9995` answers `1 hi`,
 * `2 hi`… (a count per source port).
 */
import { fileURLToPath } from "node:url";
// Code outside this repository imports these from "tilth/adapters/node" and "tilth/transports".
import { NodeLoop } from "../../adapters/node.js";
import type { Loop } from "../../core/Loop.js";
import type { Listener } from "../../core/Transport.js";
import { registerTransports, type DatagramConversation, type DatagramOptions } from "../../transports/index.js";

/** Listen on `url` and answer each datagram with `<count of this peer> <datagram>`. Returns the listener. */
export async function udpEcho(loop: Loop, url: string, options: DatagramOptions = {}, log: (line: string) => void = () => {}): Promise<Listener> {
  const listener = await loop.listen(url, options);
  listener.start((conn) => {
    const conv = conn as DatagramConversation;
    let count = 0; // this conversation's state
    log(`conversation with ${conv.remoteUrl} opened`);
    conv.start({
      message: (m) => {
        count++;
        if (!conv.ended) conv.send([Buffer.concat([Buffer.from(`${count} `), m[0]!])]);
      },
      end: (e) => log(`conversation with ${conv.remoteUrl} ended after ${count} datagrams${e.error ? ` (${e.error.message})` : ""}`),
    });
  });
  return listener;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const loop = registerTransports(new NodeLoop());
  const listener = await udpEcho(loop, process.argv[2] ?? "udp://127.0.0.1:9995", { idleTimeoutMs: 30_000 }, console.log);
  console.log(`udp echo on ${listener.url}`);
  process.once("SIGINT", () => void listener.close());
}
