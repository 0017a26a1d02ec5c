/**
 * The debug API on listeners that are not loopback: refused
 * (ERR_DEBUG_FORBIDDEN) unless `debugRemote`, and then only with the token.
 * "Not loopback" is a function of the bound URL, tested as such; the end to
 * end tests bind 127.0.0.1 only and force the other rule with `isLoopback`.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { NodeLoop } from "../../adapters/node.js";
import { isTilthError } from "../../core/errors.js";
import { registerTransports } from "../../transports/index.js";
import { RpcClient, checkDebugAccess, isLoopbackUrl, serve } from "../../rpc/index.js";
import { leakCheck } from "../helpers/leaks.js";

test("isLoopbackUrl: 127.0.0.0/8, ::1, localhost, unix sockets, inproc and local are loopback; any other address and NATS are not", () => {
  for (const u of ["drpc+tcp://127.0.0.1:9990", "drpc+tcp://127.3.2.1:1", "drpc+tls://[::1]:443", "drpc+tcp://localhost:1", "drpc+ipc:///tmp/a.sock", "drpc+inproc://x", "local://x", "zrpc+tcp://127.0.0.1:4242", "drpc+ws://127.0.0.1:8080/rpc"])
    assert.equal(isLoopbackUrl(u), true, u);
  for (const u of ["drpc+tcp://0.0.0.0:9990", "drpc+tcp://[::]:1", "drpc+tcp://10.0.0.5:1", "drpc+tls://example.com:443", "drpc+nats://127.0.0.1:4222/svc", "drpc+tcp://128.0.0.1:1", "drpc+wss://0.0.0.0:443/rpc", "not a url"])
    assert.equal(isLoopbackUrl(u), false, u);
});

test("checkDebugAccess: off unless enabled; then the token, compared whole", () => {
  const forbidden = (f: () => void, re: RegExp): void => assert.throws(f, (e) => isTilthError(e, "ERR_DEBUG_FORBIDDEN") && re.test((e as Error).message));
  forbidden(() => checkDebugAccess("drpc+tcp://10.0.0.5:1", false, "t0ken", "t0ken"), /is off on drpc\+tcp:\/\/10\.0\.0\.5:1, which is not loopback/);
  forbidden(() => checkDebugAccess("u", true, undefined, "x"), /none is set/);
  forbidden(() => checkDebugAccess("u", true, "t0ken", undefined), /none given/);
  forbidden(() => checkDebugAccess("u", true, "t0ken", "t0ke"), /wrong token/);
  forbidden(() => checkDebugAccess("u", true, "t0ken", 12345), /wrong token/);
  checkDebugAccess("u", true, "t0ken", "t0ken");
});

test("end to end on 127.0.0.1: loopback serves the debug API; the non-loopback rule refuses it, or asks for the token when enabled", async () => {
  const done = leakCheck();
  const loop = registerTransports(new NodeLoop());
  const api = { hi: () => "hi" };
  const loopback = await serve(api, "drpc+tcp://127.0.0.1:0", { loop });
  const off = await serve(api, "drpc+tcp://127.0.0.1:0", { loop, isLoopback: () => false, debugToken: "s3cret" });
  const on = await serve(api, "drpc+tcp://127.0.0.1:0", { loop, isLoopback: () => false, debugRemote: true, debugToken: () => "s3cret" });
  const clients: RpcClient[] = [];
  const client = (url: string): RpcClient => {
    const c = new RpcClient(url, { loop });
    clients.push(c);
    return c;
  };
  try {
    const a = client(loopback.urls[0]!);
    assert.equal(((await a.call(".debug.status")) as { connections: number }).connections, 1, "loopback: allowed, no token");
    const b = client(off.urls[0]!);
    await assert.rejects(b.call(".debug.status", ["s3cret"]), (e) => isTilthError(e, "ERR_DEBUG_FORBIDDEN") && /debugRemote/.test((e as Error).message));
    await assert.rejects(b.call(".debug.settings"), (e) => isTilthError(e, "ERR_DEBUG_FORBIDDEN"));
    assert.equal(await b.call("hi"), "hi", "the API itself is served");
    assert.equal(await b.call(".ping"), "pong");
    const c = client(on.urls[0]!);
    await assert.rejects(c.call(".debug.status"), (e) => isTilthError(e, "ERR_DEBUG_FORBIDDEN") && /none given/.test((e as Error).message));
    await assert.rejects(c.call(".debug.status", ["nope"]), (e) => isTilthError(e, "ERR_DEBUG_FORBIDDEN") && /wrong token/.test((e as Error).message));
    assert.equal(((await c.call(".debug.status", ["s3cret"])) as { connections: number }).connections, 1, "with the token");
  } finally {
    for (const c of clients) await c.close();
    await Promise.all([loopback.close(), off.close(), on.close()]);
  }
  await done();
});
