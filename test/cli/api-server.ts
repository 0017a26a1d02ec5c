/**
 * An API server in its own process for the CLI tests: serves on argv[2],
 * prints its bound URL, then "event: ..." lines when streams end.
 */
import { NodeLoop } from "../../adapters/node.js";
import { sleep } from "../../core/time.js";
import { registerTransports } from "../../transports/index.js";
import { z } from "zod";
import { RpcError, contextual, doc, serve, validated, type CallContext } from "../../rpc/index.js";

const loop = registerTransports(new NodeLoop());
const api = {
  // Declared with schemas: `tilth call calc add '"2"' 3` is ERR_BAD_ARGUMENTS, not "23".
  add: doc("Adds two numbers.", validated({ params: [z.number(), z.number()], result: z.number() }, (a, b) => a + b)),
  half: validated({ params: [z.number()], result: z.number().int() }, (n) => n / 2),
  echo: (x: unknown) => x,
  big: () => 2n ** 60n + 1n,
  bytes: (n: number) => Buffer.from(Array.from({ length: n }, (_, i) => i % 256)),
  async *chunks() {
    yield Buffer.from("ab");
    yield Buffer.from("cd");
  },
  kind: (x: unknown) => typeof x,
  async *count(n: number) {
    for (let i = 0; i < n; i++) yield { i };
  },
  ticks: contextual(async function* (ctx: CallContext) {
    try {
      for (let i = 0; ; i++) {
        yield i;
        await sleep(loop, 20, { signal: ctx.signal });
      }
    } finally {
      process.stdout.write("event: ticks finally\n");
    }
  }),
  fail: () => {
    throw new RpcError("ERR_OUT_OF_STOCK", "no more widgets");
  },
  slow: contextual((ctx: CallContext, ms: number) => sleep(loop, ms, { signal: ctx.signal }).then(() => "done")),
};
const server = await serve(api, process.argv.slice(2), { loop });
process.stdout.write(`${server.urls.join(" ")}\n`);
process.on("SIGTERM", () => void server.close({ graceMs: 0 }).then(() => process.exit(0)));
