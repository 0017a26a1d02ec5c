/**
 * Bad input on the ws transport: text messages, messages above the limit,
 * malformed contents, a client that never reads. Each ends that connection
 * with a coded error (or holds the writer back), in bounded memory, and the
 * listener goes on serving.
 */
import assert from "node:assert/strict";
import net from "node:net";
import { test } from "node:test";
import { WebSocket } from "ws";
import { NodeLoop } from "../../adapters/node.js";
import { isTilthError } from "../../core/errors.js";
import type { Connection, Listener } from "../../core/Transport.js";
import { leakCheck } from "../../testing/leaks.js";
import { registerTransports } from "../../transports/index.js";

async function rawClient(url: string): Promise<WebSocket> {
  const ws = new WebSocket(url, { perMessageDeflate: false });
  await new Promise<void>((resolve, reject) => {
    ws.once("open", resolve);
    ws.once("error", reject);
  });
  return ws;
}

const closeCode = (ws: WebSocket): Promise<number> => new Promise((r) => ws.once("close", (code: number) => r(code)));

async function accepted(listener: Listener): Promise<Connection> {
  return await new Promise((resolve) => listener.start(resolve));
}

/** The listener still serves: a fresh client gets an echo. */
async function stillServes(loop: NodeLoop, listener: Listener, next: () => Promise<Connection>): Promise<void> {
  const c = await loop.connect(listener.url);
  const s = await next();
  s.start({ message: (m) => s.send(m), end() {} });
  const got = new Promise<Uint8Array[]>((r) => c.start({ message: r, end() {} }));
  c.send([Buffer.from("again")]);
  assert.equal(Buffer.from((await got)[0]!).toString(), "again");
  await c.close();
  await s.closed;
}

function acceptQueue(listener: Listener): () => Promise<Connection> {
  const q: Connection[] = [];
  const waiting: ((c: Connection) => void)[] = [];
  listener.start((c) => (waiting.length > 0 ? waiting.shift()!(c) : q.push(c)));
  return () => (q.length > 0 ? Promise.resolve(q.shift()!) : new Promise((r) => waiting.push(r)));
}

test("a text message ends that connection with ERR_TEXT_MESSAGE (close code 1003); the listener goes on", async () => {
  const done = leakCheck();
  const loop = registerTransports(new NodeLoop());
  const listener = await loop.listen("ws://127.0.0.1:0/t");
  const next = acceptQueue(listener);
  const raw = await rawClient(listener.url);
  const server = await next();
  server.start({ message() {}, end() {} });
  const code = closeCode(raw);
  raw.send("hello as text");
  const end = await server.closed;
  assert.equal(end.by, "peer");
  assert.ok(isTilthError(end.error, "ERR_TEXT_MESSAGE"), String(end.error));
  assert.equal(await code, 1003);
  await stillServes(loop, listener, next);
  await listener.close();
  await done();
});

test("a message above maxMessageSize is refused from its header (close code 1009, ERR_MESSAGE_TOO_LARGE), malformed contents give ERR_MALFORMED_FRAME", async () => {
  const done = leakCheck();
  const loop = registerTransports(new NodeLoop());
  const listener = await loop.listen("ws://127.0.0.1:0/t", { maxMessageSize: 64 * 1024 });
  const next = acceptQueue(listener);
  // 8 MiB announced to a listener that takes 64 KiB (+ headers).
  const raw = await rawClient(listener.url);
  const server = await next();
  server.start({ message() {}, end() {} });
  const code = closeCode(raw);
  raw.send(Buffer.alloc(8 * 1024 * 1024));
  const end = await server.closed;
  assert.ok(isTilthError(end.error, "ERR_MESSAGE_TOO_LARGE"), String(end.error));
  assert.equal(await code, 1009);
  // A frame header that announces more bytes than the message holds.
  const raw2 = await rawClient(listener.url);
  const server2 = await next();
  server2.start({ message() {}, end() {} });
  const code2 = closeCode(raw2);
  raw2.send(Buffer.from([0, 0, 0, 100, 1, 2, 3]));
  const end2 = await server2.closed;
  assert.ok(isTilthError(end2.error, "ERR_MALFORMED_FRAME"), String(end2.error));
  assert.equal(await code2, 1002);
  await stillServes(loop, listener, next);
  await listener.close();
  await done();
});

test("a client that never reads: the server's send buffer stays bounded (send false at the high-water mark, ERR_BUSY at maxBuffered)", async () => {
  const done = leakCheck();
  const loop = registerTransports(new NodeLoop());
  const listener = await loop.listen("ws://127.0.0.1:0/t", { highWaterMark: 256 * 1024, maxBuffered: 1024 * 1024 });
  const next = acceptQueue(listener);
  // A raw TCP client that does the upgrade, then never reads a byte.
  const port = Number(new URL(listener.url).port);
  const sock = net.connect(port, "127.0.0.1");
  await new Promise<void>((r) => sock.once("connect", r));
  sock.write("GET /t HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n");
  sock.pause();
  const server = await next();
  server.start({ message() {}, end() {} });
  const chunk = Buffer.alloc(64 * 1024, 7);
  let sent = 0;
  let sawFalse = false;
  let busy: unknown;
  // At most 100 MiB offered: far beyond what socket buffers hold.
  for (let i = 0; i < 1600 && busy === undefined; i++) {
    try {
      if (!server.send([chunk])) sawFalse = true;
      sent++;
    } catch (e) {
      busy = e;
    }
    if (i % 16 === 15) await new Promise((r) => setImmediate(r));
  }
  assert.ok(sawFalse, "send returned false at the high-water mark");
  assert.ok(isTilthError(busy, "ERR_BUSY"), `expected ERR_BUSY, got ${String(busy)}`);
  assert.ok(server.bufferedAmount <= 1024 * 1024 + 64 * 1024, `buffered ${server.bufferedAmount}`);
  assert.ok(sent < 1600);
  sock.destroy();
  const end = await server.closed;
  assert.equal(end.by, "peer");
  await listener.close();
  await done();
});
