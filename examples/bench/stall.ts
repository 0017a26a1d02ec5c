/**
 * A server to point `tilth bench` at: `work()` answers at once, except that
 * the whole server stalls for 200 ms once per second (as a garbage
 * collection, a lock or a full disk would). A closed loop of clients hides
 * the stalls; an open loop at a fixed rate shows them (docs/bench-tool.md).
 *
 *     node dist/examples/bench/stall.js [URL]      (default drpc+tcp://127.0.0.1:9991)
 *     tilth bench drpc+tcp://127.0.0.1:9991 work -m 1 -d 10s
 *     tilth bench drpc+tcp://127.0.0.1:9991 work -m 1 --rate 500 -d 10s
 *
 * Ctrl-C stops it.
 */
import { NodeLoop } from "../../adapters/node.js";
import { sleep } from "../../core/time.js";
import { registerTransports } from "../../transports/index.js";
import { serve } from "../../rpc/index.js";

const loop = registerTransports(new NodeLoop({ name: "stall" }));
let stalledUntil = 0;
const every = (): void => {
  stalledUntil = loop.now() + 200;
  loop.timer(1000, every);
};
loop.timer(1000, every);

const api = {
  /** Answers 1, after the stall when one is on. */
  async work(): Promise<number> {
    const wait = stalledUntil - loop.now();
    if (wait > 0) await sleep(loop, wait);
    return 1;
  },
};

const server = await serve(api, process.argv[2] ?? "drpc+tcp://127.0.0.1:9991", { loop });
process.stdout.write(`${server.urls[0]}\n`);
process.once("SIGINT", () => void server.close().then(() => process.exit(0)));
process.once("SIGTERM", () => void server.close().then(() => process.exit(0)));
