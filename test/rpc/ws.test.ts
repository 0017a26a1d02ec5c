import assert from "node:assert/strict";
import http from "node:http";
import { test } from "node:test";
import { NodeLoop } from "../../adapters/node.js";
import { isTilthError } from "../../core/errors.js";
import { leakCheck } from "../../testing/leaks.js";
import { registerTransports } from "../../transports/index.js";
import { clientOf, close, connect, serve } from "../../rpc/index.js";

const api = {
  add: async (a: number, b: number) => a + b,
  async *count(n: number) {
    for (let i = 0; i < n; i++) yield i;
  },
};

test("one server serves drpc+tcp and drpc+ws at once; calls and streams work over both", async () => {
  const done = leakCheck();
  const loop = registerTransports(new NodeLoop());
  const server = await serve(api, ["drpc+tcp://127.0.0.1:0", "drpc+ws://127.0.0.1:0/rpc"], { loop });
  const [tcpUrl, wsUrl] = server.urls;
  assert.match(wsUrl!, /^drpc\+ws:\/\/127\.0\.0\.1:[1-9][0-9]*\/rpc$/);
  for (const url of [tcpUrl!, wsUrl!]) {
    const c = await connect<typeof api>(url, { loop });
    assert.equal(await c.add(2, 3), 5);
    const got: number[] = [];
    for await (const x of c.count(5)) got.push(x);
    assert.deepEqual(got, [0, 1, 2, 3, 4]);
    await close(c);
  }
  await server.close();
  await done();
});

test("the debug API is off on ws listeners (on tcp of the same server it answers); wsDebug turns it on", async () => {
  const done = leakCheck();
  const loop = registerTransports(new NodeLoop());
  const server = await serve(api, ["drpc+tcp://127.0.0.1:0", "drpc+ws://127.0.0.1:0/rpc"], { loop });
  const overTcp = await connect(server.urls[0]!, { loop });
  const overWs = await connect(server.urls[1]!, { loop });
  assert.equal(typeof ((await clientOf(overTcp).call(".debug.status")) as { uptimeMs: number }).uptimeMs, "number");
  await assert.rejects(clientOf(overWs).call(".debug.status"), (e) => isTilthError(e, "ERR_UNKNOWN_METHOD"));
  await assert.rejects(clientOf(overWs).call(".debug.settings"), (e) => isTilthError(e, "ERR_UNKNOWN_METHOD"));
  assert.equal(await clientOf(overWs).call(".ping"), "pong");
  await close(overTcp);
  await close(overWs);
  await server.close();

  const open = await serve(api, "drpc+ws://127.0.0.1:0/rpc", { loop, wsDebug: true });
  const c = await connect(open.urls[0]!, { loop });
  assert.equal(typeof ((await clientOf(c).call(".debug.status")) as { uptimeMs: number }).uptimeMs, "number");
  await close(c);
  await open.close();
  await done();
});

test("a ws listener attached to an existing http.Server takes its path only, and checks origins", async () => {
  const done = leakCheck();
  const loop = registerTransports(new NodeLoop());
  const web = http.createServer((_req, res) => res.end("page"));
  await new Promise<void>((r) => web.listen(0, "127.0.0.1", r));
  const port = (web.address() as { port: number }).port;
  const server = await serve(api, `drpc+ws://127.0.0.1:${port}/rpc`, { loop, transport: { server: web, origins: ["http://app.example"] } });
  assert.equal(server.urls[0], `drpc+ws://127.0.0.1:${port}/rpc`);
  // The http server still serves its pages.
  const page = await fetch(`http://127.0.0.1:${port}/`, { headers: { connection: "close" } });
  assert.equal(await page.text(), "page");
  // No Origin (a program): allowed. An allowed origin: allowed. Another: refused with 403.
  const c1 = await connect<typeof api>(server.urls[0]!, { loop });
  assert.equal(await c1.add(1, 1), 2);
  const c2 = await connect<typeof api>(server.urls[0]!, { loop, transport: { origin: "http://app.example" } });
  assert.equal(await c2.add(2, 2), 4);
  await assert.rejects(
    loop.connect(`ws://127.0.0.1:${port}/rpc`, { origin: "http://evil.example" }),
    (e) => isTilthError(e, "ERR_CONNECT_FAILED") && /403/.test((e as Error).message),
  );
  await assert.rejects(loop.connect(`ws://127.0.0.1:${port}/elsewhere`), (e) => isTilthError(e, "ERR_CONNECT_FAILED") && /404/.test((e as Error).message));
  await close(c1);
  await close(c2);
  await server.close();
  web.closeAllConnections();
  await new Promise<void>((r) => web.close(() => r()));
  await done();
});
