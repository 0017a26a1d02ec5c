/**
 * Every timing behaviour of RPC, over inproc in virtual time: deadlines,
 * default timeouts, heartbeats and lost peers, reconnect backoff, the grace
 * period of a graceful close.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { VirtualLoop } from "../../adapters/virtual.js";
import type { Connection } from "../../core/Transport.js";
import { TimeoutError, isTilthError } from "../../core/errors.js";
import { sleep } from "../../core/time.js";
import { ConnectFailedError, ConnectionRefusedError } from "../../transports/errors.js";
import { registerTransports } from "../../transports/index.js";
import { ConnectionLostError, clientOf, close, connect, serve, withOptions, type Remote } from "../../rpc/index.js";
import { T, encode, decode } from "../../rpc/drpc/codec.js";
import { newCounters, testApi } from "./fixtures.js";

type API = ReturnType<typeof testApi>;

function setup(): VirtualLoop {
  return registerTransports(new VirtualLoop());
}

test("a handler that never returns: the caller gets ERR_TIMEOUT at its limit, the handler's signal aborts", async () => {
  const loop = setup();
  const counters = newCounters();
  await loop.run(async () => {
    const server = await serve(testApi(loop, counters), "drpc+inproc://t", { loop });
    const api = await connect<API>("drpc+inproc://t", { loop });
    const t0 = loop.now();
    await assert.rejects(withOptions(api, { timeout: 1500 }).hold(), (e) => e instanceof TimeoutError && e.limitMs === 1500);
    assert.equal(loop.now() - t0, 1500);
    await sleep(loop, 1); // let the server's own deadline land
    assert.equal(counters.cancelReasons.length, 1);
    assert.ok(isTilthError(counters.cancelReasons[0], "ERR_TIMEOUT"), "the server enforced the deadline too");
    await close(api);
    await server.close();
  });
  assert.equal(loop.pendingTimers, 0);
});

test("the server enforces the deadline on its own: the answer is ERR_TIMEOUT from the server", async () => {
  const loop = setup();
  const counters = newCounters();
  await loop.run(async () => {
    const server = await serve(testApi(loop, counters), "drpc+inproc://t", { loop });
    // A raw client that sends a deadline but keeps no timer of its own.
    const conn = await loop.connect("inproc://t");
    const got: unknown[] = [];
    conn.start({ message: (m) => got.push(decode(m[0]!)), end() {} });
    conn.send([encode([T.HELLO, "drpc", 1, { heartbeatMs: 0, maxMessageSize: 1 << 20 }])]);
    conn.send([encode([T.CALL, 1, "hold", [], null, 700, 0])]);
    await sleep(loop, 699);
    assert.equal(got.length, 1, "only the HELLO so far");
    await sleep(loop, 1);
    const answer = got[1] as [number, number, { code: string }];
    assert.equal(answer[0], T.ERROR);
    assert.equal(answer[2].code, "ERR_TIMEOUT");
    await conn.close();
    await server.close();
  });
  assert.equal(loop.pendingTimers, 0);
});

test("calls have a default time limit of 30 s", async () => {
  const loop = setup();
  await loop.run(async () => {
    const server = await serve(testApi(loop, newCounters()), "drpc+inproc://t", { loop });
    const api = await connect<API>("drpc+inproc://t", { loop });
    const t0 = loop.now();
    await assert.rejects(api.never(), (e) => isTilthError(e, "ERR_TIMEOUT"));
    assert.equal(loop.now() - t0, 30_000);
    await close(api);
    await server.close();
  });
});

test("a stream's time limit ends with its first item; the stream may run longer", async () => {
  const loop = setup();
  await loop.run(async () => {
    const api0 = {
      async *ticks(n: number) {
        for (let i = 0; i < n; i++) {
          await sleep(loop, 1000);
          yield i;
        }
      },
    };
    const server = await serve(api0, "drpc+inproc://t", { loop });
    const api = await connect<typeof api0>("drpc+inproc://t", { loop, timeout: 2500 });
    const got: number[] = [];
    for await (const x of api.ticks(5)) got.push(x);
    assert.deepEqual(got, [0, 1, 2, 3, 4]);
    assert.equal(loop.now(), 5000);
    await close(api);
    await server.close();
  });
});

test("heartbeats keep a slow call alive: 10 minutes on a 5 s heartbeat", async () => {
  const loop = setup();
  await loop.run(async () => {
    const server = await serve(testApi(loop, newCounters()), "drpc+inproc://t", { loop, heartbeatMs: 5000 });
    const api = await connect<API>("drpc+inproc://t", { loop, heartbeatMs: 5000, timeout: 3600_000 });
    assert.equal(await api.wait(600_000), "waited");
    await close(api);
    await server.close();
  });
  assert.equal(loop.pendingTimers, 0);
});

/** A fake server: answers HELLO, then never says anything again (a hung peer). */
async function silentServer(loop: VirtualLoop, url: string): Promise<{ conns: Connection[]; close(): Promise<void> }> {
  const listener = await loop.listen(url);
  const conns: Connection[] = [];
  listener.start((conn) => {
    conns.push(conn);
    let helloed = false;
    conn.start({
      message: () => {
        if (helloed) return;
        helloed = true;
        conn.send([encode([T.HELLO, "drpc", 1, { heartbeatMs: 5000, maxMessageSize: 1 << 20 }])]);
      },
      end() {},
    });
  });
  return {
    conns,
    async close() {
      await listener.close();
      for (const c of conns) await c.close();
    },
  };
}

test("a silent peer is declared lost; pending calls fail with ERR_CONNECTION_LOST saying how long it was silent", async () => {
  const loop = setup();
  await loop.run(async () => {
    const fake = await silentServer(loop, "inproc://silent");
    const api = await connect<API>("drpc+inproc://silent", { loop, heartbeatMs: 5000, timeout: 3600_000 });
    const t0 = loop.now();
    await assert.rejects(api.ping(), (e) => {
      assert.ok(e instanceof ConnectionLostError, String(e));
      assert.equal(e.code, "ERR_CONNECTION_LOST");
      assert.ok(e.silentMs !== undefined && e.silentMs >= 12_500, `silentMs ${e.silentMs}`);
      assert.match(e.message, /silent for \d+ ms or more \(limit 15000 ms\)/);
      return true;
    });
    const took = loop.now() - t0;
    assert.ok(took >= 12_500 && took <= 15_000, `declared lost after ${took} ms`);
    await close(api);
    await fake.close();
  });
  assert.equal(loop.pendingTimers, 0);
});

test("the server drops a client that went silent", async () => {
  const loop = setup();
  await loop.run(async () => {
    const server = await serve(testApi(loop, newCounters()), "drpc+inproc://t", { loop, heartbeatMs: 1000 });
    const conn = await loop.connect("inproc://t");
    conn.start({ message() {}, end() {} });
    conn.send([encode([T.HELLO, "drpc", 1, { heartbeatMs: 1000, maxMessageSize: 1 << 20 }])]);
    await sleep(loop, 10);
    assert.equal(server.connections, 1);
    const end = await conn.closed;
    assert.equal(end.by, "peer");
    assert.equal(server.connections, 0);
    assert.ok(loop.now() >= 3000 && loop.now() <= 4100, `dropped at ${loop.now()}`);
    await server.close();
  });
  assert.equal(loop.pendingTimers, 0);
});

test("reconnect: refused attempts back off (100, 200, 400 ms...), then the same proxy works when the server is back", async () => {
  const loop = setup();
  await loop.run(async () => {
    let server = await serve(testApi(loop, newCounters()), "drpc+inproc://r", { loop });
    const api = await connect<API>("drpc+inproc://r", { loop });
    assert.equal(await api.ping(), "pong");
    await server.close();
    const attempts: number[] = [];
    for (let i = 0; i < 4; i++) {
      const before = loop.now();
      await assert.rejects(api.ping(), (e) => isTilthError(e) && ["ERR_CONNECTION_REFUSED", "ERR_CONNECTION_LOST"].includes((e as { code: string }).code));
      attempts.push(loop.now() - before);
    }
    // the first failure is immediate; each next attempt waits a doubled backoff
    assert.deepEqual(attempts, [0, 100, 200, 400]);
    server = await serve(testApi(loop, newCounters()), "drpc+inproc://r", { loop });
    const t = loop.now();
    assert.equal(await api.ping(), "pong");
    assert.equal(loop.now() - t, 800, "waited out the last backoff, then connected");
    assert.equal(await api.ping(), "pong");
    assert.equal(loop.now() - t, 800, "no backoff once connected");
    await close(api);
    await server.close();
  });
  assert.equal(loop.pendingTimers, 0);
});

test("graceful close: calls get the grace period, then are cancelled with ERR_UNAVAILABLE", async () => {
  const loop = setup();
  const counters = newCounters();
  await loop.run(async () => {
    const server = await serve(testApi(loop, counters), "drpc+inproc://g", { loop });
    const api = await connect<API>("drpc+inproc://g", { loop, timeout: 3600_000 });
    const short = api.wait(1000);
    const long = api.wait(60_000);
    await sleep(loop, 1);
    const t0 = loop.now();
    await server.close({ graceMs: 5000 });
    assert.equal(loop.now() - t0, 5000);
    assert.equal(await short, "waited");
    await assert.rejects(long, (e) => isTilthError(e, "ERR_UNAVAILABLE"));
    assert.equal(counters.cancelReasons.length, 1);
    await close(api);
  });
  assert.equal(loop.pendingTimers, 0);
});

test("a peer speaking another version is refused with a clear error, both ways", async () => {
  const loop = setup();
  await loop.run(async () => {
    const server = await serve(testApi(loop, newCounters()), "drpc+inproc://v", { loop });
    const conn = await loop.connect("inproc://v");
    const got: unknown[] = [];
    conn.start({ message: (m) => got.push(decode(m[0]!)), end() {} });
    conn.send([encode([T.HELLO, "drpc", 2, { heartbeatMs: 0, maxMessageSize: 1 << 20 }])]);
    const end = await conn.closed;
    assert.equal(end.by, "peer");
    const [type, id, info] = got[0] as [number, number, { code: string; message: string }];
    assert.equal(type, T.ERROR);
    assert.equal(id, 0);
    assert.equal(info.code, "ERR_INCOMPATIBLE_PEER");
    assert.match(info.message, /version 2.*version 1/);
    await server.close();

    // and a client meeting a server of another version
    const listener = await loop.listen("inproc://v2");
    listener.start((c) =>
      c.start({
        message: () => c.send([encode([T.HELLO, "drpc", 7, { heartbeatMs: 0, maxMessageSize: 1 << 20 }])]),
        end() {},
      }),
    );
    const client = clientOf(await connect<API>("drpc+inproc://v2", { loop }));
    await assert.rejects(client.call("ping"), (e) => isTilthError(e, "ERR_INCOMPATIBLE_PEER"));
    await client.close();
    await listener.close();
  });
});

test("waitForReady: a connection reset while it opened (a server that crashed mid-handshake) is tried again; any other connect failure fails the call at once", async () => {
  const loop = setup();
  await loop.run(async () => {
    const { RpcClient } = await import("../../rpc/index.js");
    // "flaky://name" is inproc://name, after the failures queued for it.
    const failures: Error[] = [];
    const inproc = loop.transports.get("inproc");
    const inprocUrl = (u: URL): URL => new URL(u.href.replace(/^flaky:/, "inproc:"));
    loop.transports.register({
      schemes: ["flaky"],
      connect: (l, u, o) => {
        const f = failures.shift();
        return f === undefined ? inproc.connect(l, inprocUrl(u), o) : Promise.reject(f);
      },
      listen: (l, u, o) => inproc.listen(l, inprocUrl(u), o),
    });
    const server = await serve(testApi(loop, newCounters()), "drpc+inproc://restarting", { loop });
    const reset = (): Error => new ConnectFailedError("flaky://restarting", "ZMTP handshake failed (handshake:error:other: Connection reset by peer)", { context: { errno: "ECONNRESET" } });
    failures.push(reset(), new ConnectionRefusedError("flaky://restarting"), reset());
    const c = new RpcClient("drpc+flaky://restarting", { loop, waitForReady: true, timeout: 5000 });
    assert.equal(await c.call("ping"), "pong");
    assert.equal(failures.length, 0, "every failed attempt was tried again");
    assert.ok(loop.now() >= 100 + 200 + 400 && loop.now() < 5000, `answered at ${loop.now()} after backoff`);
    await c.close();
    // A failure that is not the server coming back (here: a certificate refused) is not waited out.
    const t0 = loop.now();
    failures.push(new ConnectFailedError("flaky://restarting", "certificate has expired", { context: { errno: "CERT_HAS_EXPIRED" } }));
    const d = new RpcClient("drpc+flaky://restarting", { loop, waitForReady: true, timeout: 5000 });
    await assert.rejects(d.call("ping"), (e) => isTilthError(e, "ERR_CONNECT_FAILED") && /certificate/.test((e as Error).message));
    assert.equal(loop.now(), t0, "at once");
    await d.close();
    await server.close();
  });
  assert.equal(loop.pendingTimers, 0);
});

test("waitForReady: a call made before the server is up waits for it, with backoff, within its time limit", async () => {
  const loop2 = setup();
  await loop2.run(async () => {
    const { RpcClient } = await import("../../rpc/index.js");
    const c = new RpcClient("drpc+inproc://later", { loop: loop2, waitForReady: true, timeout: 5000 });
    const call = c.call("ping");
    let server: Awaited<ReturnType<typeof serve>> | undefined;
    loop2.timer(1000, () => void serve(testApi(loop2, newCounters()), "drpc+inproc://later", { loop: loop2 }).then((s) => (server = s)));
    assert.equal(await call, "pong");
    assert.ok(loop2.now() >= 1000 && loop2.now() <= 2700, `answered at ${loop2.now()}`);
    const late = new RpcClient("drpc+inproc://never", { loop: loop2, waitForReady: true, timeout: 3000 });
    await assert.rejects(late.call("ping"), (e) => isTilthError(e, "ERR_TIMEOUT") || isTilthError(e, "ERR_CONNECTION_REFUSED"));
    assert.ok(loop2.now() >= 3000);
    await late.close();
    await c.close();
    await server!.close();
  });
  assert.equal(loop2.pendingTimers, 0);
});
