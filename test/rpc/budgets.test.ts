/**
 * Memory a server holds stays bounded whatever clients do: results for a
 * client that does not read (it is not read until it drains; past the
 * server-wide output budget it is cut off with ERR_BUSY), and messages in
 * assembly (tcp, over the server-wide input budget), while everyone else is
 * served.
 */
import assert from "node:assert/strict";
import net from "node:net";
import { test } from "node:test";
import { NodeLoop } from "../../adapters/node.js";
import { VirtualLoop } from "../../adapters/virtual.js";
import type { Connection } from "../../core/Transport.js";
import { sleep } from "../../core/time.js";
import { registerTransports } from "../../transports/index.js";
import { close, connect, serve } from "../../rpc/index.js";
import { T, decode, encode } from "../../rpc/drpc/codec.js";
import { leakCheck } from "../helpers/leaks.js";

const hello = encode([T.HELLO, "drpc", 1, { heartbeatMs: 5000, maxMessageSize: 64 << 20 }]);

/** A raw client that sends HELLO and `calls` calls of big(size), and reads nothing. */
async function nonReader(loop: VirtualLoop, url: string, calls: number, size: number): Promise<{ conn: Connection; ended: () => Error | undefined | null }> {
  const conn = await loop.connect(url);
  let end: Error | undefined | null = null;
  conn.start({ message: () => {}, end: (e) => (end = e.error) });
  conn.pause();
  conn.send([hello]);
  for (let i = 1; i <= calls; i++) conn.send([encode([T.CALL, i, "big", [size], null, null, 0])]);
  return { conn, ended: () => end };
}

test("a client that does not read its results is not read either: the server stops taking its calls at the high-water mark", async () => {
  const loop = registerTransports(new VirtualLoop());
  let ran = 0;
  await loop.run(async () => {
    const server = await serve({ big: (n: number) => (ran++, new Uint8Array(n)), ping: () => "pong" }, "drpc+inproc://b", {
      loop,
      transport: { highWaterMark: 1 << 20 },
    });
    const bad = await nonReader(loop, "inproc://b", 1000, 100_000);
    await sleep(loop, 1000);
    // 1 MiB high-water mark / 100 kB results: it stops after about 11 calls, not 1000.
    assert.ok(ran >= 10 && ran <= 20, `${ran} calls ran for a client that reads nothing`);
    assert.ok(server.outputBudget.used > 0 && server.outputBudget.used <= 2_100_000, `holds ${server.outputBudget.used}`);
    const api = await connect<{ ping(): string }>("drpc+inproc://b", { loop });
    assert.equal(await api.ping(), "pong", "everyone else is served");
    await close(api);
    bad.conn.destroy();
    await sleep(loop, 10);
    assert.equal(server.outputBudget.used, 0, "an ended connection gives its bytes back");
    await server.close();
  });
  assert.equal(loop.pendingTimers, 0);
});

test("a client that reads late gets every answer: reading resumes once its buffer drains", async () => {
  const loop = registerTransports(new VirtualLoop());
  await loop.run(async () => {
    const server = await serve({ big: (n: number) => new Uint8Array(n) }, "drpc+inproc://b", { loop, transport: { highWaterMark: 1 << 20 } });
    const conn = await loop.connect("inproc://b");
    const got: number[] = [];
    conn.start({ message: (m) => got.push(decode(m[0]!)[0] as number), end: () => {} });
    conn.pause();
    conn.send([hello]);
    for (let i = 1; i <= 200; i++) conn.send([encode([T.CALL, i, "big", [100_000], null, null, 0])]);
    await sleep(loop, 1000);
    assert.ok(got.length === 0);
    conn.resume();
    await sleep(loop, 1000);
    assert.equal(got.filter((t) => t === T.RESULT).length, 200, "no answer lost");
    assert.equal(server.outputBudget.used, 0);
    await conn.close();
    await server.close();
  });
});

test("past the server-wide output budget the client holding results is cut off with ERR_BUSY; others are served", async () => {
  const loop = registerTransports(new VirtualLoop());
  await loop.run(async () => {
    const server = await serve({ big: (n: number) => new Uint8Array(n), ping: () => "pong" }, "drpc+inproc://b", {
      loop,
      transport: { highWaterMark: 1 << 20 },
      outputBudget: 3 << 20,
    });
    const bad = await Promise.all([1, 2, 3, 4].map(() => nonReader(loop, "inproc://b", 100, 200_000)));
    await sleep(loop, 1000);
    const cut = bad.filter((b) => b.ended() !== null);
    assert.ok(cut.length >= 1, "at least one non-reader was cut off");
    assert.ok(server.outputBudget.used <= 3 << 20, `holds ${server.outputBudget.used}`);
    assert.ok(server.outputBudget.refused >= 1);
    const api = await connect<{ ping(): string }>("drpc+inproc://b", { loop });
    assert.equal(await api.ping(), "pong");
    await close(api);
    for (const b of bad) b.conn.destroy();
    await sleep(loop, 10);
    assert.equal(server.outputBudget.used, 0);
    await server.close();
  });
});

test("tcp: messages in assembly past the server-wide input budget close that connection; the budget is given back; others are served", async () => {
  const done = leakCheck();
  const loop = registerTransports(new NodeLoop());
  const server = await serve({ ping: () => "pong" }, "drpc+tcp://127.0.0.1:0", { loop, inputBudget: 1 << 20 });
  const port = Number(new URL(server.urls[0]!.replace("drpc+", "")).port);
  const frame = (n: number): Buffer => {
    const h = Buffer.alloc(4);
    h.writeUInt32BE(n);
    return h;
  };
  const sockets: net.Socket[] = [];
  const closed: Promise<void>[] = [];
  try {
    for (let i = 0; i < 4; i++) {
      const s = net.connect(port, "127.0.0.1");
      sockets.push(s);
      s.on("error", () => {});
      closed.push(new Promise((r) => s.once("close", () => r())));
      await new Promise<void>((r) => s.once("connect", () => r()));
      // A frame of 8 MiB announced, 400 kB of it sent, then nothing.
      await new Promise<void>((r) => s.write(Buffer.concat([frame(8 << 20), Buffer.alloc(400_000)]), () => r()));
    }
    // The budget holds two such (2 x 400 kB, with growth up to 1 MiB); the others are refused and closed.
    const first = await Promise.race(closed.map((p, i) => p.then(() => i)));
    assert.ok(first >= 1, `connection ${first} was closed`);
    assert.ok(server.inputBudget.used <= 1 << 20, `holds ${server.inputBudget.used}`);
    assert.ok(server.inputBudget.refused >= 1);
    const api = await connect<{ ping(): string }>(server.urls[0]!, { loop });
    assert.equal(await api.ping(), "pong");
    await close(api);
  } finally {
    for (const s of sockets) s.destroy();
    await Promise.all(closed);
    await server.close();
  }
  assert.equal(server.inputBudget.used, 0);
  await done();
});
