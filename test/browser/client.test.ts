/**
 * The browser client (tilth/browser: the browser loop, the browser's
 * WebSocket transport, the client-only drpc) against a drpc+ws server on
 * Node. Node 20 has no global WebSocket: the ws library's class stands in for
 * the browser's (same interface).
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { WebSocket } from "ws";
import { NodeLoop } from "../../adapters/node.js";
import { isTilthError } from "../../core/errors.js";
import { registerTransports } from "../../transports/index.js";
import { serve } from "../../rpc/index.js";
import { BrowserLoop, clientOf, close, connect, type WebSocketConstructor } from "../../rpc/browser.js";

const WS = WebSocket as unknown as WebSocketConstructor;

test("the browser client calls, streams, cancels and times out against a drpc+ws server", async () => {
  const loop = registerTransports(new NodeLoop());
  let stopped = 0;
  const api = {
    add: async (a: number, b: number) => a + b,
    bytes: async (b: Uint8Array) => b.length,
    slow: () => new Promise<number>(() => {}),
    async *ticks(n: number) {
      try {
        for (let i = 0; i < n; i++) {
          yield i;
          await new Promise((r) => setImmediate(r));
        }
      } finally {
        stopped++;
      }
    },
  };
  const server = await serve(api, "drpc+ws://127.0.0.1:0/rpc", { loop });
  const bloop = new BrowserLoop();
  const c = await connect<typeof api>(server.urls[0]!, { loop: bloop, WebSocket: WS, heartbeatMs: 1000 });
  assert.equal(await c.add(20, 22), 42);
  assert.equal(await c.bytes(new Uint8Array([1, 2, 3])), 3);
  assert.equal(await c.add(0.5, "x" as unknown as number), "0.5x");
  const got: number[] = [];
  for await (const x of c.ticks(5)) got.push(x);
  assert.deepEqual(got, [0, 1, 2, 3, 4]);
  // Cancelling a stream from the client stops the server's generator.
  const before = stopped;
  const s = c.ticks(1_000_000);
  for await (const x of s) if (x === 3) break;
  for (let i = 0; i < 200 && stopped === before; i++) await new Promise((r) => setTimeout(r, 5));
  assert.equal(stopped, before + 1, "the server's generator ran its finally");
  // A deadline.
  await assert.rejects(clientOf(c).call("slow", [], { timeout: 50 }), (e) => isTilthError(e, "ERR_TIMEOUT") || isTilthError(e, "ERR_DEADLINE_EXCEEDED"));
  await close(c);
  await assert.rejects(connect(["drpc+ws://127.0.0.1:1/a", "drpc+ws://127.0.0.1:2/b"] as unknown as string, { loop: bloop, WebSocket: WS }), (e) => isTilthError(e, "ERR_NO_BALANCER"));
  await server.close({ graceMs: 0 });
  bloop.dispose();
});
