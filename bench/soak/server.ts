/**
 * The soak run's server: the fuzz API (bench/fuzz/api.ts) over
 * drpc+tcp://127.0.0.1, in its own process. Prints its URL and pid on one
 * line (`url pid`), then serves until SIGTERM (a graceful close, bounded) or
 * until its stdin ends (the soak run is gone: nobody would stop it otherwise).
 */
import { NodeLoop } from "../../adapters/node.js";
import { registerTransports } from "../../transports/index.js";
import { serve } from "../../rpc/index.js";
import { fuzzApi } from "../fuzz/api.js";

const loop = registerTransports(new NodeLoop());
const server = await serve(fuzzApi(loop), process.argv[2] ?? "drpc+tcp://127.0.0.1:0", { loop });
process.stdout.write(`${server.urls[0]} ${process.pid}\n`);

let stopping = false;
function stop(): void {
  if (stopping) return;
  stopping = true;
  void server.close({ graceMs: 1000 }).finally(() => process.exit(0));
}
process.on("SIGTERM", stop);
process.stdin.on("end", stop);
process.stdin.on("error", stop);
process.stdin.resume();
