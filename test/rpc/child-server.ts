/**
 * A drpc server in its own process, for tests that kill it: serves on the URL
 * given as argv[2], prints the bound URL on one line, runs until killed.
 */
import { NodeLoop } from "../../adapters/node.js";
import { registerTransports } from "../../transports/index.js";
import { serve } from "../../rpc/index.js";

const loop = registerTransports(new NodeLoop());
const server = await serve(
  {
    ping: () => "pong",
    pid: () => process.pid,
    hang: () => new Promise(() => {}),
  },
  process.argv[2]!,
  { loop },
);
process.stdout.write(`${server.urls[0]}\n`);
process.on("SIGTERM", () => void server.close({ graceMs: 0 }).then(() => process.exit(0)));
