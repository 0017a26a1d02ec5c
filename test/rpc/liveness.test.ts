/**
 * The server's liveness rules hold whatever a client does, in virtual time:
 * HELLO first and within the handshake timeout, a peer's heartbeat held to
 * the server's range, a silent peer found within the written bound, and a peer
 * that broke the protocol cut off after the close timeout.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { VirtualLoop } from "../../adapters/virtual.js";
import type { Connection } from "../../core/Transport.js";
import { sleep } from "../../core/time.js";
import { registerTransports } from "../../transports/index.js";
import { ConnectionLostError, close, connect, serve } from "../../rpc/index.js";
import { T, decode, encode, type Msg } from "../../rpc/drpc/codec.js";
import { newCounters, testApi } from "./fixtures.js";

type API = ReturnType<typeof testApi>;

function setup(): VirtualLoop {
  return registerTransports(new VirtualLoop());
}

/** A raw connection to `url` that records what it receives and when it ended. */
async function rawClient(loop: VirtualLoop, url: string): Promise<{ conn: Connection; got: Msg[]; endedAt: () => number | undefined }> {
  const conn = await loop.connect(url);
  const got: Msg[] = [];
  let endedAt: number | undefined;
  conn.start({ message: (m) => got.push(decode(m[0]!)), end: () => (endedAt = loop.now()) });
  return { conn, got, endedAt: () => endedAt };
}

const hello = (info: Record<string, unknown>): Uint8Array => encode([T.HELLO, "drpc", 1, info as never]);

test("a connection that never sends HELLO is ended with ERR_PROTOCOL at the handshake timeout", async () => {
  const loop = setup();
  await loop.run(async () => {
    const server = await serve(testApi(loop, newCounters()), "drpc+inproc://t", { loop });
    const t0 = loop.now();
    const c = await rawClient(loop, "inproc://t");
    await sleep(loop, 4999);
    assert.equal(server.connections, 1);
    assert.equal(c.endedAt(), undefined);
    await sleep(loop, 1);
    await sleep(loop, 0);
    assert.equal(c.endedAt(), t0 + 5000, "ended at the 5 s handshake timeout");
    const err = c.got[0] as [number, number, { code: string; message: string }];
    assert.equal(err[0], T.ERROR);
    assert.equal(err[2].code, "ERR_PROTOCOL");
    assert.match(err[2].message, /no HELLO within 5000 ms/);
    assert.equal(server.connections, 0);
    await server.close();
  });
  assert.equal(loop.pendingTimers, 0);
});

test("handshakeTimeoutMs is the server's to set; a valid HELLO in time keeps the connection", async () => {
  const loop = setup();
  await loop.run(async () => {
    const server = await serve(testApi(loop, newCounters()), "drpc+inproc://t", { loop, handshakeTimeoutMs: 200 });
    const late = await rawClient(loop, "inproc://t");
    await sleep(loop, 201);
    assert.equal(late.endedAt(), 200);
    const ok = await rawClient(loop, "inproc://t");
    await sleep(loop, 150);
    ok.conn.send([hello({ heartbeatMs: 5000, maxMessageSize: 1 << 20 })]);
    await sleep(loop, 1000);
    assert.equal(ok.endedAt(), undefined);
    assert.equal(ok.got[0]![0], T.HELLO);
    await ok.conn.close();
    await server.close();
  });
  await assert.rejects(serve({}, "drpc+inproc://u", { loop, handshakeTimeoutMs: -1 }), RangeError);
  await assert.rejects(connect("drpc+inproc://u", { loop, maxPeerHeartbeatMs: Number.NaN }), RangeError);
});

test("a PING before HELLO is a protocol error, not a way to stay connected", async () => {
  const loop = setup();
  await loop.run(async () => {
    const server = await serve(testApi(loop, newCounters()), "drpc+inproc://t", { loop });
    const c = await rawClient(loop, "inproc://t");
    c.conn.send([encode([T.PING])]);
    await sleep(loop, 10);
    const err = c.got[0] as [number, number, { code: string; message: string }];
    assert.equal(err[0], T.ERROR);
    assert.equal(err[2].code, "ERR_PROTOCOL");
    assert.match(err[2].message, /expected HELLO first, got PING/);
    assert.notEqual(c.endedAt(), undefined);
    assert.equal(server.connections, 0);
    await server.close();
  });
});

for (const [what, announced] of [
  ["heartbeatMs: 0", 0],
  ["heartbeatMs not a number", "soon"],
  ["no heartbeatMs at all", undefined],
  ["heartbeatMs of a day", 86_400_000],
] as const) {
  test(`a client announcing ${what} cannot turn off the server's idle detection: silent, it is dropped at 3 x maxPeerHeartbeatMs`, async () => {
    const loop = setup();
    await loop.run(async () => {
      const server = await serve(testApi(loop, newCounters()), "drpc+inproc://t", { loop, maxPeerHeartbeatMs: 10_000 });
      const c = await rawClient(loop, "inproc://t");
      const t0 = loop.now();
      c.conn.send([hello(announced === undefined ? { maxMessageSize: 1 << 20 } : { heartbeatMs: announced, maxMessageSize: 1 << 20 })]);
      await sleep(loop, 60_000);
      const ended = c.endedAt();
      assert.notEqual(ended, undefined, "the silent client was dropped");
      assert.ok(ended! - t0 <= 30_000 && ended! - t0 >= 27_500, `dropped after ${ended! - t0} ms`);
      assert.equal(server.connections, 0);
      await server.close();
    });
    assert.equal(loop.pendingTimers, 0);
  });
}

test("the default: a client that announces no heartbeat and goes silent is dropped within 90 s", async () => {
  const loop = setup();
  await loop.run(async () => {
    const server = await serve(testApi(loop, newCounters()), "drpc+inproc://t", { loop });
    const c = await rawClient(loop, "inproc://t");
    c.conn.send([hello({ heartbeatMs: 0, maxMessageSize: 1 << 20 })]);
    await sleep(loop, 90_000);
    assert.notEqual(c.endedAt(), undefined);
    assert.ok(c.endedAt()! <= 90_000);
    await server.close();
  });
});

test("a silent peer is found within peerTimeoutMs of its last message, whenever that came, and never before the limit less half a heartbeat", async () => {
  const loop = setup();
  await loop.run(async () => {
    // A server that answers HELLO, sends one PING `offset` ms later, then stops (SIGSTOP).
    for (let offset = 0; offset <= 5000; offset += 625) {
      const name = `inproc://stop${offset}`;
      const listener = await loop.listen(name);
      let lastSent = 0;
      let helloed = false;
      const conns: Connection[] = [];
      listener.start((conn) => {
        conns.push(conn);
        conn.start({
          message: () => {
            if (helloed) return;
            helloed = true;
            conn.send([hello({ heartbeatMs: 5000, maxMessageSize: 1 << 20 })]);
            lastSent = loop.now();
            void sleep(loop, offset).then(() => {
              if (conn.ended) return;
              conn.send([encode([T.PING])]);
              lastSent = loop.now();
            });
          },
          end() {},
        });
      });
      const api = await connect<API>(`drpc+${name}`, { loop, heartbeatMs: 5000, timeout: 3600_000 });
      const err = await api.ping().then(() => undefined, (e: unknown) => e);
      assert.ok(err instanceof ConnectionLostError, String(err));
      const silence = loop.now() - lastSent;
      assert.ok(silence <= 15_000 && silence >= 12_500, `offset ${offset}: found after ${silence} ms of silence`);
      await close(api);
      await listener.close();
      for (const c of conns) c.destroy();
    }
  });
  assert.equal(loop.pendingTimers, 0);
});

test("a healthy idle connection lives on: pings keep both sides within the bound for an hour", async () => {
  const loop = setup();
  await loop.run(async () => {
    const server = await serve(testApi(loop, newCounters()), "drpc+inproc://t", { loop, heartbeatMs: 5000 });
    const api = await connect<API>("drpc+inproc://t", { loop, heartbeatMs: 7000 });
    assert.equal(await api.ping(), "pong");
    await sleep(loop, 3_600_000);
    assert.equal(server.connections, 1);
    assert.equal(await api.ping(), "pong");
    await close(api);
    await server.close();
  });
});

test("a peer that broke the protocol and does not read is cut off at the close timeout, not kept half-open", async () => {
  const loop = setup();
  await loop.run(async () => {
    const server = await serve(testApi(loop, newCounters()), "drpc+inproc://t", { loop, closeTimeoutMs: 2000, transport: { highWaterMark: 1024 } });
    const c = await rawClient(loop, "inproc://t");
    c.conn.pause(); // reads nothing: the server's error and end cannot be delivered
    c.conn.send([new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8])]);
    await sleep(loop, 1999);
    assert.equal(server.connections, 1, "the close waits for its grace");
    await sleep(loop, 2);
    assert.equal(server.connections, 0, "then the connection is destroyed");
    c.conn.destroy();
    await server.close();
  });
  assert.equal(loop.pendingTimers, 0);
});
