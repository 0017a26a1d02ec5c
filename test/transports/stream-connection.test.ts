/**
 * StreamConnection over a socket that reads through a SocketReader's
 * `onread` (what tcp:// and ipc:// clients use): bytes read before the
 * connection object exists are kept and delivered first once it starts.
 */
import assert from "node:assert/strict";
import net from "node:net";
import { Duplex } from "node:stream";
import { test } from "node:test";
import { NodeLoop } from "../../adapters/node.js";
import { encodeMessage, registerTransports, SocketReader, StreamConnection } from "../../transports/index.js";
import { connectionParams } from "../../transports/internal/socket.js";
import { leakCheck } from "../helpers/leaks.js";
import { cases, collect, connectPair, defer } from "./util.js";
import type { FrameWriter } from "../../core/Transport.js";

test("bytes a SocketReader read before its StreamConnection was built are delivered first, in order, once started", { timeout: 60_000 }, async () => {
  const done = leakCheck();
  const loop = registerTransports(new NodeLoop());
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as net.AddressInfo).port;
  const accepted = defer<net.Socket>();
  server.once("connection", (s) => accepted.resolve(s));

  const reader = new SocketReader();
  // Know when the early bytes have been read (both messages come in one write).
  const read = defer<void>();
  const callback = reader.onread.callback;
  reader.onread.callback = (n, buf) => {
    const r = callback(n, buf);
    read.resolve();
    return r;
  };
  const socket = net.connect({ host: "127.0.0.1", port, onread: reader.onread, allowHalfOpen: true });
  await new Promise<void>((r) => socket.once("connect", () => r()));
  const w = await accepted.promise;
  w.write(Buffer.concat([encodeMessage([Buffer.from("one")]), encodeMessage([Buffer.from("two")])]));
  await read.promise;
  assert.equal(reader.early?.length, 1, "the bytes were read before the connection was built");

  const conn = new StreamConnection(loop, socket, connectionParams("tcp", "tcp://127.0.0.1:0", `tcp://127.0.0.1:${port}`, {}), reader);
  assert.equal(reader.early, undefined);
  const got = collect(conn);
  await got.until(2);
  w.write(encodeMessage([Buffer.from("three")]));
  await got.until(3);
  assert.deepEqual(
    got.msgs.map((m) => Buffer.from(m[0]!).toString()),
    ["one", "two", "three"],
  );
  w.end();
  await conn.closed;
  await new Promise<void>((r) => server.close(() => r()));
  assert.equal(loop.pendingTimers, 0, "a timer was left pending");
  await done();
});

test("drain() resolves whatever the mix of writes made before and while someone waited (no write is left without a callback to follow it)", { timeout: 30_000 }, async () => {
  // A socket whose writes complete only when the test says so, in order.
  const pending: { n: number; cb: () => void }[] = [];
  const sock = new Duplex({
    highWaterMark: 1 << 30,
    allowHalfOpen: true,
    read() {},
    write(chunk: Buffer, _enc, cb) {
      pending.push({ n: chunk.length, cb: () => cb() });
    },
  });
  const completeOne = (): void => pending.shift()!.cb();
  const loop = new NodeLoop();
  const turn = (): Promise<void> => new Promise((r) => loop.post(r));
  const conn = new StreamConnection(loop, sock as unknown as net.Socket, connectionParams("tcp", "tcp://a:1", "tcp://b:1", { highWaterMark: 64 * 1024, maxBuffered: 1 << 28 }));
  conn.start({ message() {}, end() {} });
  const big = (): Buffer[] => [Buffer.alloc(64 * 1024 - 4)];
  const flag = (p: Promise<void>): { done: boolean } => {
    const f = { done: false };
    void p.then(() => (f.done = true));
    return f;
  };

  // Written while nobody waits (no callbacks), then a writer waits, then more is written while it waits.
  for (let i = 0; i < 4; i++) conn.send(big());
  await turn();
  const d1 = flag(conn.drain());
  for (let i = 0; i < 2; i++) conn.send(big());
  await turn();
  // The first writes go out, up to the empty write queued to call back after them; the later ones are still held.
  for (;;) {
    const n = pending[0]!.n;
    completeOne();
    if (n === 0) break;
  }
  await turn();
  assert.equal(d1.done, false, "still above the low-water mark");
  // A second writer waits in the same cycle; then the data writes go out (an
  // empty write queued only to call back may stay behind them).
  const d2 = flag(conn.drain());
  while (pending.length > 0 && pending[0]!.n > 0) completeOne();
  await turn();
  assert.ok(d1.done && d2.done);
  // Writers go on without waiting, then wait again: the bytes Node holds must be followed by a callback.
  for (let i = 0; i < 4; i++) conn.send(big());
  await turn();
  const d3 = flag(conn.drain());
  while (pending.length > 0) {
    completeOne();
    await turn();
  }
  await turn();
  assert.equal(conn.bufferedAmount, 0);
  assert.ok(d3.done, "the third drain() resolved");
  conn.destroy();
  await conn.closed;
});

test("sendFrame writes a frame in place: in order with send, small and large, and a frame above the limit is refused before anything is written", { timeout: 30_000 }, async () => {
  const done = leakCheck();
  const loop = registerTransports(new NodeLoop());
  const { listener, client, server } = await connectPair(cases.tcp(), loop, { listen: { maxMessageSize: 20_000 }, connect: { maxMessageSize: 20_000 } });
  const got = collect(server);
  const writer = (fill: number): FrameWriter => ({
    writeFrame(dst, at) {
      dst.fill(fill, at, at + sizes.get(fill)!);
    },
  });
  const sizes = new Map([
    [1, 3],
    [2, 0],
    [3, 12_000],
  ]);
  assert.ok(client.sendFrame, "tcp connections write frames in place");
  client.send([Buffer.from("a")]);
  client.sendFrame(3, writer(1));
  client.sendFrame(0, writer(2));
  client.send([Buffer.from("b"), Buffer.from("c")]);
  client.sendFrame(12_000, writer(3)); // larger than the batch copies: a buffer of its own
  const calls: number[] = [];
  assert.throws(
    () => client.sendFrame!(20_001, { writeFrame: () => void calls.push(1) }),
    (e: Error & { code?: string }) => e.code === "ERR_MESSAGE_TOO_LARGE",
  );
  assert.deepEqual(calls, [], "nothing is written for a refused frame");
  await got.until(5);
  const shown = got.msgs.map((m) => m.map((f) => (f.length > 0 && f.every((b) => b === f[0]) && f[0]! < 4 ? `${f[0]}x${f.length}` : Buffer.from(f).toString())).join("+"));
  assert.deepEqual(shown, ["a", "1x3", "", "b+c", "3x12000"]);
  await client.close();
  await server.closed;
  await listener.close();
  await done();
});

test("a handler with frame() gets each message of one frame as its bounds in the received bytes, split frames and messages of several frames through message(), in order", { timeout: 30_000 }, async () => {
  const done = leakCheck();
  const loop = registerTransports(new NodeLoop());
  const { listener, client, server } = await connectPair(cases.tcp(), loop);
  const seen: string[] = [];
  const ended = defer<void>();
  server.start({
    message: (m) => seen.push(`message ${m.map((f) => Buffer.from(f).toString()).join("+")}`),
    frame: (bytes, start, end) => {
      assert.ok(start >= 0 && end <= bytes.length && start <= end);
      seen.push(`frame ${Buffer.from(bytes.subarray(start, end)).toString()}`);
    },
    end: () => ended.resolve(),
  });
  client.send([Buffer.from("one")]);
  client.send([Buffer.from("two"), Buffer.from("parts")]);
  client.send([Buffer.alloc(0)]);
  client.send([Buffer.from("three")]);
  // A frame larger than one read arrives split: it is assembled and comes through message().
  client.send([Buffer.alloc(300_000, 0x61)]);
  client.send([Buffer.from("four")]);
  await client.close();
  await ended.promise;
  assert.deepEqual(
    seen.map((s) => (s.length > 40 ? `${s.slice(0, 8)}…${s.length}` : s)),
    ["frame one", "message two+parts", "frame ", "frame three", "message …300008", "frame four"],
  );
  await listener.close();
  await done();
});

test("large frames written in place to a peer that reads late arrive intact (the batch memory is reused only when the socket took every byte at once)", { timeout: 60_000 }, async () => {
  const done = leakCheck();
  const loop = registerTransports(new NodeLoop());
  const { listener, client, server } = await connectPair(cases.tcp(), loop, { connect: { highWaterMark: 64 << 20 } });
  server.pause(); // nothing read yet: the kernel's buffers fill and Node holds the rest of the writes
  const got = collect(server);
  const size = 70_000;
  const count = 120;
  const fill = (i: number): FrameWriter => ({ writeFrame: (dst, at) => void dst.fill(i, at, at + size) });
  // Several turns of writes, each flushed on its own: some taken at once by the kernel, the later ones held by Node.
  for (let turn = 0; turn < count / 10; turn++) {
    for (let i = turn * 10; i < turn * 10 + 10; i++) client.sendFrame!(size, fill(i));
    await new Promise<void>((r) => loop.post(r));
  }
  server.resume();
  await got.until(count);
  got.msgs.forEach((m, i) => {
    assert.equal(m[0]!.byteLength, size);
    assert.ok(m[0]!.every((x) => x === i), `message ${i} is intact`);
  });
  await client.close();
  await server.closed;
  await listener.close();
  await done();
});
