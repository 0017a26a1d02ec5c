/**
 * Bad input and faults, each its own test, with raw node:net peers writing
 * bytes: malformed and oversized frames, a peer stopping mid-frame, a peer
 * vanishing while we write, slow readers on either side (with the memory
 * bound shown), refused connects, addresses in use, ipc paths that exist.
 * Only the offending connection ends, with a coded error; the listener keeps
 * serving; nothing crashes or leaks.
 */
import assert from "node:assert/strict";
import { existsSync, writeFileSync, readFileSync } from "node:fs";
import net from "node:net";
import { join } from "node:path";
import { afterEach, describe, test } from "node:test";
import { NodeLoop } from "../../adapters/node.js";
import { isTilthError } from "../../core/errors.js";
import type { Loop } from "../../core/Loop.js";
import type { Connection, Listener } from "../../core/Transport.js";
import { encodeMessage, MORE_FLAG, RESERVED_FLAG, registerTransports, StreamConnection } from "../../transports/index.js";
import { leakCheck } from "../helpers/leaks.js";
import { staleSocket } from "../helpers/stale-socket.js";
import { cleanupTmp, collect, defer, echo, freePort, noUnhandledRejections, pattern, seqFrame, seqOf, settlesWithin, tlsCert, tlsKey, tmpDir, turn } from "./util.js";

const KiB = 1024;

function code(e: unknown, c: string): true {
  assert.ok(isTilthError(e, c), `expected ${c}, got ${e instanceof Error ? `${(e as { code?: string }).code}: ${e.message}` : String(e)}`);
  return true;
}

/** A test with a fresh Node loop, a leak check and a pending-timer check. */
function it(title: string, fn: (loop: Loop) => Promise<void>): void {
  test(title, { timeout: 60_000 }, async () => {
    const done = leakCheck();
    const loop = registerTransports(new NodeLoop());
    await fn(loop);
    assert.equal(loop.pendingTimers, 0, "a timer was left pending");
    await done();
  });
}

/** Listen on tcp with an echo handler for every connection; collect the server ends. */
async function echoListener(loop: Loop, url = "tcp://127.0.0.1:0", options = {}): Promise<{ listener: Listener; next: () => Promise<Connection> }> {
  const listener = await loop.listen(url, options);
  const waiting: ((c: Connection) => void)[] = [];
  const ready: Connection[] = [];
  listener.start((conn) => {
    const w = waiting.shift();
    if (w) w(conn);
    else ready.push(conn);
  });
  return {
    listener,
    next: () => {
      const r = ready.shift();
      return r ? Promise.resolve(r) : new Promise((resolve) => waiting.push(resolve));
    },
  };
}

/** A message sent to `url` comes back from the echo listener whose connections `next` gives. */
async function echoesOver(loop: Loop, url: string, next: () => Promise<Connection>): Promise<void> {
  const conn = await loop.connect(url);
  const served = echo(await next());
  const got = collect(conn);
  conn.send([Buffer.from("hello")]);
  await got.until(1);
  assert.equal(Buffer.from(got.msgs[0]![0]!).toString(), "hello");
  await conn.close();
  await served;
}

function portOf(url: string): number {
  return Number(new URL(url).port);
}

async function raw(port: number): Promise<net.Socket> {
  const s = net.connect({ host: "127.0.0.1", port });
  await new Promise<void>((resolve, reject) => {
    s.once("connect", resolve);
    s.once("error", reject);
  });
  return s;
}

function rawClosed(s: net.Socket): Promise<void> {
  return new Promise((resolve) => {
    if (s.destroyed) resolve();
    else s.once("close", () => resolve());
  });
}

function header(word: number): Buffer {
  const h = Buffer.alloc(4);
  h.writeUInt32BE(word >>> 0);
  return h;
}

/** The listener still serves: a fresh tilth client gets an echo. */
async function stillServes(loop: Loop, listener: Listener, next: () => Promise<Connection>): Promise<void> {
  const c = await loop.connect(listener.url);
  const got = collect(c);
  void echo(await next());
  c.send([Buffer.from("still serving")]);
  await got.until(1);
  assert.equal(Buffer.from(got.msgs[0]![0]!).toString(), "still serving");
  await c.close();
}

afterEach(() => cleanupTmp());

describe("bad input from a peer", () => {
  it("a malformed length prefix ends only that connection with ERR_MALFORMED_FRAME", async (loop) => {
    const { listener, next } = await echoListener(loop);
    const s = await raw(portOf(listener.url));
    const server = await next();
    const got = collect(server);
    s.on("error", () => {});
    s.write(Buffer.concat([encodeMessage([Buffer.from("fine")]), header(RESERVED_FLAG | 3), Buffer.from("abc")]));
    const end = await got.end;
    assert.equal(got.msgs.length, 1, "the valid message before it was delivered");
    assert.equal(end.by, "peer");
    code(end.error, "ERR_MALFORMED_FRAME");
    await rawClosed(s);
    await stillServes(loop, listener, next);
    await listener.close();
  });

  it("an oversized message ends only that connection with ERR_MESSAGE_TOO_LARGE, before its payload is buffered", async (loop) => {
    const { listener, next } = await echoListener(loop, "tcp://127.0.0.1:0", { maxMessageSize: 1024 * KiB });
    const s = await raw(portOf(listener.url));
    s.on("error", () => {});
    const server = await next();
    const got = collect(server);
    // Only the header: the connection must end without waiting for 1 MiB + 1 bytes.
    s.write(header(1024 * KiB + 1));
    const end = await got.end;
    assert.equal(end.by, "peer");
    code(end.error, "ERR_MESSAGE_TOO_LARGE");
    await rawClosed(s);
    await stillServes(loop, listener, next);
    await listener.close();
  });

  it("a frame header claiming 1 GiB is refused at the default 64 MiB limit", async (loop) => {
    const { listener, next } = await echoListener(loop);
    const s = await raw(portOf(listener.url));
    s.on("error", () => {});
    const got = collect(await next());
    s.write(Buffer.concat([header(MORE_FLAG | 10), Buffer.alloc(10), header(0x3fffffff)]));
    const end = await got.end;
    code(end.error, "ERR_MESSAGE_TOO_LARGE");
    await rawClosed(s);
    await listener.close();
  });

  it("a peer that stops mid-frame and closes ends only that connection with ERR_BROKEN (truncated)", async (loop) => {
    const { listener, next } = await echoListener(loop);
    const s = await raw(portOf(listener.url));
    s.on("error", () => {});
    const got = collect(await next());
    s.end(Buffer.concat([header(100), Buffer.alloc(10)]));
    const end = await got.end;
    assert.equal(end.by, "peer");
    code(end.error, "ERR_BROKEN");
    assert.equal((end.error as { context?: { truncated?: boolean } }).context?.truncated, true);
    await rawClosed(s);
    await stillServes(loop, listener, next);
    await listener.close();
  });

  it("a peer that closes between messages ends the connection cleanly", async (loop) => {
    const { listener, next } = await echoListener(loop);
    const s = await raw(portOf(listener.url));
    const got = collect(await next());
    s.end(encodeMessage([Buffer.from("last")]));
    assert.deepEqual(await got.end, { by: "peer" });
    assert.equal(got.msgs.length, 1);
    await rawClosed(s);
    await listener.close();
  });
});

describe("faults", () => {
  for (const how of ["reset (RST)", "destroyed with unread data"] as const) {
    it(`a peer that vanishes (${how}) while we write: the writer gets ERR_BROKEN, no crash, no unhandled rejection`, async (loop) => {
      await noUnhandledRejections(loop, async () => {
        const { listener, next } = await echoListener(loop);
        const s = await raw(portOf(listener.url));
        s.on("error", () => {});
        const server = await next();
        const got = collect(server);
        const gotSome = defer();
        // Read one chunk, then stop reading: our writes pile up, then the peer vanishes.
        s.once("data", () => {
          s.pause();
          gotSome.resolve();
        });
        let error: unknown;
        const writing = (async () => {
          const msg = pattern(64 * KiB);
          for (let i = 0; i < 20_000; i++) {
            try {
              if (!server.send([msg])) await server.drain();
            } catch (e) {
              error = e;
              return;
            }
          }
        })();
        await gotSome.promise;
        if (how === "reset (RST)") s.resetAndDestroy();
        else s.destroy();
        await writing;
        const end = await got.end;
        assert.equal(end.by, "peer");
        code(end.error, "ERR_BROKEN");
        assert.ok(error !== undefined, "the writer learned of it");
        code(error, "ERR_BROKEN");
        assert.ok(["ECONNRESET", "EPIPE"].includes((end.error!.cause as { code?: string }).code ?? ""), "the errno is kept as cause");
        await listener.close();
      });
    });
  }

  it("a slow reader (raw peer not reading) holds the writer back; the writer's memory stays bounded", async (loop) => {
    const hwm = 256 * KiB;
    const msgSize = 16 * KiB;
    const { listener, next } = await echoListener(loop, "tcp://127.0.0.1:0", { highWaterMark: hwm });
    const s = await raw(portOf(listener.url));
    s.pause();
    const server = await next();
    collect(server);
    const LIMIT = 4096; // 64 MiB: far above what loopback kernel buffers take
    let sent = 0;
    let maxBuffered = 0;
    let held = false;
    while (sent < LIMIT) {
      const ok = server.send([seqFrame(sent), pattern(msgSize - 4)]);
      sent++;
      maxBuffered = Math.max(maxBuffered, server.bufferedAmount);
      if (!ok && !(await settlesWithin(loop, server.drain(), 40))) {
        held = true;
        break;
      }
    }
    assert.ok(held, `the writer was never held back: ${sent} messages went out`);
    // The bound: our buffer never passes the high-water mark plus one message …
    assert.ok(maxBuffered <= hwm + msgSize + 4, `bufferedAmount reached ${maxBuffered}`);
    // … and what left it sits in the kernel's socket buffers, which are bounded too.
    const inKernel = sent * (msgSize + 4) - server.bufferedAmount;
    assert.ok(inKernel < 32 * KiB * KiB, `${inKernel} bytes in flight`);
    // Nothing moves while the reader does not read.
    const before = server.bufferedAmount;
    for (let i = 0; i < 10; i++) await turn(loop);
    assert.equal(server.bufferedAmount, before);
    // The reader catches up and gets every message, in order.
    let buf: Buffer = Buffer.alloc(0);
    let count = 0;
    const all = defer();
    s.on("data", (chunk: Buffer) => {
      buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
      // Frames: [seq (MORE)] [payload]; count a message at its last frame.
      while (buf.length >= 4) {
        const word = buf.readUInt32BE(0);
        const len = word & 0x3fffffff;
        if (buf.length < 4 + len) break;
        if (word & MORE_FLAG) {
          if (buf.readUInt32BE(4) !== count) all.reject(new Error(`message ${count} out of order`));
        } else count++;
        buf = buf.subarray(4 + len);
      }
      if (count === sent) all.resolve();
    });
    s.resume();
    await all.promise;
    s.end();
    await server.closed;
    await rawClosed(s);
    await listener.close();
  });

  it("a slow tilth reader stops reading from the socket: the raw writer is held back, the reader's buffer stays bounded", async (loop) => {
    const server = net.createServer();
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const port = (server.address() as net.AddressInfo).port;
    const accepted = defer<net.Socket>();
    server.once("connection", (s) => accepted.resolve(s));
    const client = (await loop.connect(`tcp://127.0.0.1:${port}`)) as StreamConnection;
    const got = collect(client);
    client.pause();
    const w = await accepted.promise;
    const frame = encodeMessage([pattern(16 * KiB)]);
    let written = 0;
    // Write until the raw writer's own buffer passes 1 MiB (bounded: 64 MiB at most).
    while (w.writableLength < 1024 * KiB && written < 4096) {
      w.write(frame);
      written++;
      if (written % 64 === 0) await turn(loop);
    }
    for (let i = 0; i < 10; i++) await turn(loop);
    assert.ok(w.writableLength >= 1024 * KiB, "the raw writer is held back");
    assert.equal(got.msgs.length, 0);
    // The bound on the reading side: the socket's readable buffer stays near its
    // high-water mark (16 KiB) plus one read (at most 64 KiB).
    const readable = client.socket.readableLength;
    assert.ok(readable <= client.socket.readableHighWaterMark + 64 * KiB, `reader buffered ${readable} bytes`);
    client.resume();
    await got.until(written);
    assert.equal(got.msgs.length, written);
    w.end();
    await client.closed;
    await new Promise<void>((r) => server.close(() => r()));
  });

  it("connect to a port nobody listens on: ERR_CONNECTION_REFUSED with ECONNREFUSED as cause", async (loop) => {
    const port = await freePort();
    await assert.rejects(loop.connect(`tcp://127.0.0.1:${port}`), (e) => {
      code(e, "ERR_CONNECTION_REFUSED");
      assert.equal(((e as Error).cause as { code?: string }).code, "ECONNREFUSED");
      return true;
    });
  });

  it("listen on an address in use: ERR_ADDRESS_IN_USE with EADDRINUSE as cause", async (loop) => {
    const other = net.createServer();
    await new Promise<void>((r) => other.listen(0, "127.0.0.1", r));
    const port = (other.address() as net.AddressInfo).port;
    await assert.rejects(loop.listen(`tcp://127.0.0.1:${port}`), (e) => {
      code(e, "ERR_ADDRESS_IN_USE");
      assert.equal(((e as Error).cause as { code?: string }).code, "EADDRINUSE");
      return true;
    });
    await new Promise<void>((r) => other.close(() => r()));
  });

  it("ipc: a path that exists and is not a socket, or a live listener's socket, is ERR_ADDRESS_IN_USE and left alone", async (loop) => {
    const file = join(tmpDir(), "taken.sock");
    writeFileSync(file, "not a socket");
    await assert.rejects(loop.listen(`ipc://${file}`), (e) => code(e, "ERR_ADDRESS_IN_USE") && /is not a socket/.test((e as Error).message));
    assert.equal(readFileSync(file, "utf8"), "not a socket");
    const path = join(tmpDir(), "live.sock");
    const { listener, next } = await echoListener(loop, `ipc://${path}`);
    await assert.rejects(loop.listen(`ipc://${path}`), (e) => code(e, "ERR_ADDRESS_IN_USE") && /a live listener accepts connections/.test((e as Error).message));
    assert.ok(existsSync(path));
    await echo(await next()); // the probe's connection, which ends at once
    await echoesOver(loop, `ipc://${path}`, next); // the live listener still serves
    await listener.close();
  });

  it("ipc: a stale socket file (its listener's process was killed) is removed and bound again", async (loop) => {
    const path = join(tmpDir(), "stale.sock");
    staleSocket(path);
    await assert.rejects(new Promise((_, reject) => net.connect({ path }).once("error", reject)), (e) => (e as { code?: string }).code === "ECONNREFUSED");
    const { listener, next } = await echoListener(loop, `ipc://${path}`);
    await echoesOver(loop, `ipc://${path}`, next);
    await listener.close();
    assert.ok(!existsSync(path), "the socket file is removed when the listener closes");
  });

  it("ipc: the socket file is removed when the listener closes; connecting then is ERR_CONNECTION_REFUSED", async (loop) => {
    const path = join(tmpDir(), "gone.sock");
    const listener = await loop.listen(`ipc://${path}`);
    assert.ok(existsSync(path));
    await listener.close();
    assert.ok(!existsSync(path), "socket file removed");
    await assert.rejects(loop.connect(`ipc://${path}`), (e) => code(e, "ERR_CONNECTION_REFUSED"));
  });

  it("a message handler that throws destroys only its connection, with that error", async (loop) => {
    const { listener, next } = await echoListener(loop);
    const c = await loop.connect(listener.url);
    const ce = collect(c);
    const server = await next();
    const boom = new Error("handler bug");
    server.start({
      message() {
        throw boom;
      },
      end() {},
    });
    c.send([Buffer.from("x")]);
    const end = await server.closed;
    assert.equal(end.by, "local");
    assert.strictEqual(end.error, boom);
    assert.equal((await ce.end).by, "peer");
    await stillServes(loop, listener, next);
    await listener.close();
  });

  it("tls: an untrusted certificate is ERR_CONNECT_FAILED; plain bytes at a tls listener do not disturb it", async (loop) => {
    const listener = await loop.listen("tls://127.0.0.1:0", { key: tlsKey, cert: tlsCert });
    const accepted: Connection[] = [];
    listener.start((c) => {
      accepted.push(c);
      void echo(c);
    });
    await assert.rejects(loop.connect(listener.url), (e) => code(e, "ERR_CONNECT_FAILED"));
    const s = await raw(portOf(listener.url));
    s.on("error", () => {});
    s.write("GET / HTTP/1.0\r\n\r\n");
    await rawClosed(s);
    const c = await loop.connect(listener.url, { ca: tlsCert });
    const got = collect(c);
    c.send([Buffer.from("ok")]);
    await got.until(1);
    await c.close();
    await listener.close();
    assert.equal(accepted.length, 1);
  });

  it("a thousand sends in one turn cost one socket write", async (loop) => {
    const { listener, next } = await echoListener(loop);
    const c = (await loop.connect(listener.url)) as StreamConnection;
    const got = collect(c);
    void echo(await next());
    let writes = 0;
    const sock = c.socket;
    const original = sock.write.bind(sock) as (...a: unknown[]) => boolean;
    (sock as unknown as { write: (...a: unknown[]) => boolean }).write = (...a: unknown[]) => {
      writes++;
      return original(...a);
    };
    for (let i = 0; i < 1000; i++) c.send([seqFrame(i), Buffer.from("0123456789ab")]);
    assert.equal(writes, 0, "nothing is written synchronously");
    await got.until(1000);
    assert.equal(writes, 1);
    for (let i = 0; i < 1000; i++) assert.equal(seqOf(got.msgs[i]!), i);
    await c.close();
    await listener.close();
  });
});

describe("write batching", () => {
  it("replies sent from a message handler go out in one write per received chunk", async (loop) => {
    const listener = await loop.listen("tcp://127.0.0.1:0");
    const accepted = defer<StreamConnection>();
    listener.start((c) => accepted.resolve(c as StreamConnection));
    const c = await loop.connect(listener.url);
    const got = collect(c);
    const server = await accepted.promise;
    let writes = 0;
    let chunks = 0;
    const sock = server.socket;
    sock.on("data", () => chunks++);
    const original = sock.write.bind(sock) as (...a: unknown[]) => boolean;
    (sock as unknown as { write: (...a: unknown[]) => boolean }).write = (...a: unknown[]) => {
      writes++;
      return original(...a);
    };
    void echo(server);
    for (let i = 0; i < 5000; i++) c.send([seqFrame(i)]);
    await got.until(5000);
    assert.ok(chunks >= 1 && writes <= chunks, `${writes} writes for ${chunks} received chunks`);
    await c.close();
    await listener.close();
  });
});

describe("URLs and registration", () => {
  it("registerTransports is idempotent and keeps schemes registered before", async (loop) => {
    const before = loop.transports.schemes();
    for (const s of ["inproc", "ipc", "tcp", "tls"]) assert.ok(before.includes(s), `${s} registered`);
    const tcp = loop.transports.get("tcp");
    const inproc = loop.transports.get("inproc");
    registerTransports(loop);
    assert.deepEqual(loop.transports.schemes(), before);
    assert.strictEqual(loop.transports.get("tcp"), tcp);
    assert.strictEqual(loop.transports.get("inproc"), inproc);
  });

  it("inproc names belong to one loop: another loop neither sees nor clashes with them", async (loop) => {
    const other = registerTransports(new NodeLoop());
    const a = await loop.listen("inproc://shared");
    const b = await other.listen("inproc://shared");
    const conn = await other.connect("inproc://shared");
    const accepted = defer<Connection>();
    b.start((c) => accepted.resolve(c));
    const sc = await accepted.promise;
    collect(sc);
    collect(conn);
    await conn.close();
    await a.close();
    await assert.rejects(loop.connect("inproc://shared"), (e) => code(e, "ERR_CONNECTION_REFUSED"));
    await b.close();
  });

  it("bad URLs are ERR_INVALID_URL; unknown schemes ERR_UNKNOWN_SCHEME", async (loop) => {
    await assert.rejects(loop.connect("tcp://127.0.0.1"), (e) => code(e, "ERR_INVALID_URL"));
    await assert.rejects(loop.listen("tcp://:80"), (e) => code(e, "ERR_INVALID_URL"));
    await assert.rejects(loop.connect("ipc://"), (e) => code(e, "ERR_INVALID_URL"));
    await assert.rejects(loop.connect("inproc://"), (e) => code(e, "ERR_INVALID_URL"));
    await assert.rejects(loop.connect("sctp://127.0.0.1:1"), (e) => code(e, "ERR_UNKNOWN_SCHEME"));
    await assert.rejects(loop.connect("tcp://127.0.0.1:1", { highWaterMark: -1 }), RangeError);
  });
});
