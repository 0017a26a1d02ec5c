/**
 * One workload of `npm run bench -- icount`, run under callgrind: `node
 * icount-child.js MODE N` makes N calls (or streams N items) with client and
 * server in this process, so the count covers both sides of each call.
 * Modes: tcp-seq, tcp-pipe (100 in flight), local-seq, tcp-stream,
 * local-stream, ws-seq, ws-pipe (drpc+ws, 100 in flight).
 */
import { NodeLoop } from "../adapters/node.js";
import { registerTransports } from "../transports/index.js";
import { close, connect, serve } from "../rpc/index.js";
import { Metrics } from "../app/Metrics.js";
import { rpcServerStats } from "../app/tasks/RpcServerTask.js";

const [mode = "tcp-seq", nArg = "1000"] = process.argv.slice(2);
const n = Number(nArg);
const loop = registerTransports(new NodeLoop());
const api = {
  echo: (x: Uint8Array) => x,
  async *count(k: number) {
    for (let i = 0; i < k; i++) yield i;
  },
};
const local = mode.startsWith("local");
// Under callgrind a process runs some fifty times slower: no heartbeats, no handshake or call time limits.
const slow = { heartbeatMs: 0, handshakeTimeoutMs: Infinity };
// The server records every call, as an RpcServerTask does by default (TILTH_BENCH_STATS=0: off).
const stats = process.env.TILTH_BENCH_STATS === "0" ? {} : { stats: rpcServerStats(new Metrics(), "bench") };
const url = local ? "drpc+local://icount" : mode.startsWith("ws") ? "drpc+ws://127.0.0.1:0/icount" : "drpc+tcp://127.0.0.1:0";
const server = await serve(api, url, { loop, ...slow, ...stats });
const remote = await connect<typeof api>(server.urls[0]!, { loop, ...slow, timeout: Infinity });
const x = new Uint8Array(16);
// Warm the code paths up (the same for every N, so the difference of two runs holds only the calls).
for (let i = 0; i < 10_000; i++) await remote.echo(x);
for await (const _ of remote.count(50_000));
if (mode.endsWith("-seq")) {
  for (let i = 0; i < n; i++) await remote.echo(x);
} else if (mode.endsWith("-pipe")) {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < n) {
      next++;
      await remote.echo(x);
    }
  };
  await Promise.all(Array.from({ length: 100 }, worker));
} else {
  let got = 0;
  for await (const _ of remote.count(n)) got++;
  if (got !== n) throw new Error(`streamed ${got} of ${n}`);
}
await close(remote);
await server.close();
