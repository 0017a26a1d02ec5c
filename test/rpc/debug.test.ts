import assert from "node:assert/strict";
import { test } from "node:test";
import { VirtualLoop } from "../../adapters/virtual.js";
import { sleep } from "../../core/time.js";
import { registerTransports } from "../../transports/index.js";
import { clientOf, close, connect, maskSecrets, serve } from "../../rpc/index.js";
import { newCounters, testApi } from "./fixtures.js";

test("the debug API: status shows uptime, calls in flight with their age, loop lag and memory", async () => {
  const loop = registerTransports(new VirtualLoop());
  const counters = newCounters();
  await loop.run(async () => {
    const server = await serve(testApi(loop, counters), "drpc+inproc://dbg", {
      loop,
      debugInfo: () => ({ app: "ping", options: { db: { host: "db1", password: "hunter2" }, apiToken: "abc", retries: 3 } }),
    });
    await sleep(loop, 1000);
    const api = await connect<ReturnType<typeof testApi>>("drpc+inproc://dbg", { loop, timeout: 60_000 });
    const held = api.hold();
    await sleep(loop, 5000);
    const c = clientOf(api);
    const status = (await c.call(".debug.status")) as { uptimeMs: number; activeCalls: { method: string; ageMs: number }[]; loopLagMs: number; memory: { rss: number }; connections: number };
    assert.equal(status.uptimeMs, 6000);
    assert.equal(status.connections, 1);
    assert.deepEqual(status.activeCalls.map((x) => [x.method, x.ageMs]), [["hold", 5000]]);
    assert.equal(typeof status.loopLagMs, "number");
    assert.ok(status.memory.rss > 0);
    const settings = await c.call(".debug.settings");
    assert.deepEqual(settings, { app: "ping", options: { db: { host: "db1", password: "***" }, apiToken: "***", retries: 3 } });
    assert.equal(await c.call(".ping"), "pong");
    counters.gate.set();
    await held;
    await close(api);
    await server.close();
  });
  assert.equal(loop.pendingTimers, 0);
});

test("the debug API can be turned off", async () => {
  const loop = registerTransports(new VirtualLoop());
  await loop.run(async () => {
    const server = await serve({ x: () => 1 }, "drpc+inproc://nodbg", { loop, debug: false });
    const api = await connect("drpc+inproc://nodbg", { loop });
    await assert.rejects(clientOf(api).call(".debug.status"), /unknown method/);
    await close(api);
    await server.close();
  });
});

test("maskSecrets hides secret-looking keys at any depth and leaves the rest", () => {
  assert.deepEqual(maskSecrets({ a: 1, secretKey: "s", nested: [{ PASSWORD: "p", user: "u" }], auth: { token: "t" } }), {
    a: 1,
    secretKey: "***",
    nested: [{ PASSWORD: "***", user: "u" }],
    auth: { token: "***" },
  });
});
