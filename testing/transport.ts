/**
 * The transport conformance suite: every transport of tilth (tcp, ipc, tls,
 * inproc on the Node loop and on the virtual loop, zmq) runs these same
 * tests, and so can yours: `transportConformance(makeCase)` registers them
 * with `node:test`, a fresh {@link TransportCase} (and loop) for each. A
 * transport is done when it passes them.
 *
 * Each test proves a clean teardown: no socket, server or timer outlives it
 * ({@link leakCheck}) and the loop has no pending timer.
 *
 * @example
 * ```ts
 * // my-transport.test.ts, run with `node --test`
 * import { NodeLoop } from "tilth/adapters/node";
 * import { transportConformance } from "tilth/testing";
 * import { myTransport } from "./my-transport.js";
 *
 * transportConformance(() => ({
 *   name: "my+tcp",
 *   makeLoop: () => { const loop = new NodeLoop(); loop.transports.register(myTransport); return loop; },
 *   listenUrl: () => "my+tcp://127.0.0.1:0",
 *   refusedUrl: async () => `my+tcp://127.0.0.1:${await aFreePort()}`,
 *   listenOptions: {},
 *   connectOptions: {},
 *   run: (_loop, body) => body(),
 *   cleanup: () => {},
 * }));
 * ```
 * @module
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { isTilthError } from "../core/errors.js";
import type { Loop } from "../core/Loop.js";
import type { Connection, ConnectionEnd, Message } from "../core/Transport.js";
import { seededRandom } from "../core/random.js";
import { leakCheck } from "./leaks.js";
import {
  collect,
  connectPair,
  defer,
  echo,
  noUnhandledRejections,
  pattern,
  seqFrame,
  seqOf,
  settlesWithin,
  turn,
  type TransportCase,
} from "./helpers.js";

const MiB = 1024 * 1024;

function assertCode(e: unknown, code: string): true {
  assert.ok(isTilthError(e, code), `expected ${code}, got ${e instanceof Error ? `${e.name} ${(e as { code?: string }).code}: ${e.message}` : String(e)}`);
  return true;
}

/** A peer-side end: by the peer, cleanly or broken (ERR_BROKEN). */
function assertPeerEnd(e: ConnectionEnd, clean?: boolean): void {
  assert.equal(e.by, "peer", `expected an end by the peer, got ${JSON.stringify(e)}`);
  if (clean === true) assert.equal(e.error, undefined, `expected a clean end, got ${String(e.error)}`);
  else if (e.error !== undefined) assertCode(e.error, "ERR_BROKEN");
}

function frames(m: Message): Buffer[] {
  return m.map((f) => Buffer.from(f.buffer, f.byteOffset, f.byteLength));
}

/**
 * `n` messages of 1 to 12 frames each, the same on every run (a seeded
 * mulberry32): frames mostly of 0 to 40 random bytes, some up to 20 kB, a few
 * of 60 to 200 kB.
 */
function randomMessages(n: number, seed: number): Message[] {
  const next = seededRandom(seed);
  const int = (min: number, max: number): number => min + Math.floor(next() * (max - min + 1));
  const frame = (): Uint8Array => {
    const kind = int(1, 9);
    if (kind <= 6) return Uint8Array.from({ length: int(0, 40) }, () => int(0, 255));
    const size = kind <= 8 ? int(0, 20_000) : int(60_000, 200_000);
    return pattern(size, size);
  };
  return Array.from({ length: n }, () => Array.from({ length: int(1, 12) }, frame));
}

/**
 * A `test()` of a conformance suite: a fresh case and loop, run with the
 * case's `run`, then proof of a clean teardown (no timer pending on the
 * loop, no host resource left: {@link leakCheck}).
 */
export function caseTest(make: () => TransportCase): (title: string, fn: (c: TransportCase, loop: Loop) => Promise<void>, timeout?: number) => void {
  return (title, fn, timeout = 60_000) => {
    test(title, { timeout }, async () => {
      const done = leakCheck();
      const c = make();
      const loop = c.makeLoop();
      try {
        await c.run(loop, () => fn(c, loop));
      } finally {
        c.cleanup();
      }
      assert.equal(loop.pendingTimers, 0, "a timer was left pending");
      await done();
    });
  };
}

/** Register the transport conformance tests for the case that `make` builds, under `transport conformance: ${name}`. */
export function transportConformance(make: () => TransportCase): void {
  const c0 = make();
  const it = caseTest(make);

  describe(`transport conformance: ${c0.name}`, () => {
    it("listen reports its bound URL; connect reaches it; both ends report URLs", async (c, loop) => {
      const { listener, client, server } = await connectPair(c, loop);
      const scheme = listener.url.split(":")[0]!;
      assert.equal(listener.scheme, scheme);
      assert.equal(client.scheme, scheme);
      assert.equal(server.scheme, scheme);
      if (scheme === "tcp" || scheme === "tls") {
        assert.match(listener.url, /:[1-9][0-9]*$/, "port 0 is replaced by the real port");
        assert.equal(client.remoteUrl, listener.url);
        assert.equal(server.localUrl, listener.url);
        assert.equal(server.remoteUrl, client.localUrl);
      }
      const got = collect(client);
      void echo(server);
      client.send([Buffer.from("ping")]);
      await got.until(1);
      assert.equal(Buffer.from(got.msgs[0]![0]!).toString(), "ping");
      await client.close();
      await listener.close();
      assert.deepEqual(await server.closed, { by: "peer" });
    });

    it("messages arrive whole and in order, both ways", async (c, loop) => {
      const { listener, client, server } = await connectPair(c, loop);
      const atClient = collect(client);
      const atServer = collect(server);
      const N = 3000;
      for (let i = 0; i < N; i++) {
        client.send([seqFrame(i), pattern(i % 97, i)]);
        server.send([seqFrame(i), pattern(i % 89, i)]);
      }
      await atServer.until(N);
      await atClient.until(N);
      for (let i = 0; i < N; i++) {
        assert.equal(seqOf(atServer.msgs[i]!), i);
        assert.deepEqual(frames(atServer.msgs[i]!)[1], pattern(i % 97, i));
        assert.equal(seqOf(atClient.msgs[i]!), i);
        assert.deepEqual(frames(atClient.msgs[i]!)[1], pattern(i % 89, i));
      }
      await client.close();
      await listener.close();
      await server.closed;
    });

    it("empty frames and messages of empty frames; a message of no frames is refused", async (c, loop) => {
      const { listener, client, server } = await connectPair(c, loop);
      const got = collect(client);
      void echo(server);
      const e = Buffer.alloc(0);
      const sent: Message[] = [[e], [e, e, e], [Buffer.from("a"), e, Buffer.from("b")], [e, Buffer.from("z")]];
      assert.throws(() => client.send([]), (err) => assertCode(err, "ERR_INVALID_MESSAGE"));
      for (const m of sent) client.send(m);
      await got.until(sent.length);
      assert.deepEqual(got.msgs.map(frames), sent.map(frames));
      await client.close();
      await listener.close();
      await server.closed;
    });

    it("a 16 MiB message arrives intact, and back", async (c, loop) => {
      const { listener, client, server } = await connectPair(c, loop);
      const got = collect(client);
      void echo(server);
      const big = pattern(16 * MiB, 7);
      client.send([big]);
      client.send([Buffer.from("after")]);
      await got.until(2);
      const back = frames(got.msgs[0]!);
      assert.equal(back.length, 1);
      assert.equal(back[0]!.length, big.length);
      assert.ok(back[0]!.equals(big), "16 MiB payload differs");
      assert.equal(frames(got.msgs[1]!)[0]!.toString(), "after");
      await client.close();
      await listener.close();
      await server.closed;
    });

    it("multi-frame messages keep their frames (property, 300 random messages)", async (c, loop) => {
      const { listener, client, server } = await connectPair(c, loop);
      const got = collect(client);
      void echo(server);
      const sent = randomMessages(300, 20261122);
      for (const m of sent) if (!client.send(m)) await client.drain();
      await got.until(sent.length);
      for (let i = 0; i < sent.length; i++) {
        assert.deepEqual(frames(got.msgs[i]!), frames(sent[i]!), `message ${i}`);
      }
      await client.close();
      await listener.close();
      await server.closed;
    });

    it("100k small messages, in order, with backpressure honoured", async (c, loop) => {
      const { listener, client, server } = await connectPair(c, loop);
      const got = collect(server);
      const N = 100_000;
      for (let i = 0; i < N; i++) {
        if (!client.send([seqFrame(i), Buffer.from("0123456789ab")])) await client.drain();
      }
      await got.until(N);
      assert.equal(got.msgs.length, N);
      for (let i = 0; i < N; i++) if (seqOf(got.msgs[i]!) !== i) assert.fail(`message ${i} out of order`);
      await client.close();
      await listener.close();
      assertPeerEnd(await server.closed, true);
    });

    it("both sides closing at once: both end by local, cleanly, once", async (c, loop) => {
      const { listener, client, server } = await connectPair(c, loop);
      const a = collect(client);
      const b = collect(server);
      client.send([Buffer.from("x")]);
      server.send([Buffer.from("y")]);
      await Promise.all([client.close(), server.close()]);
      assert.deepEqual(await client.closed, { by: "local" });
      assert.deepEqual(await server.closed, { by: "local" });
      assert.deepEqual(await a.end, { by: "local" });
      assert.deepEqual(await b.end, { by: "local" });
      await client.close(); // idempotent
      client.destroy(); // harmless after the end
      assert.equal(a.endCalls(), 1);
      assert.equal(b.endCalls(), 1);
      await listener.close();
    });

    it("close reasons: graceful close flushes, the peer ends cleanly; sends after the end throw ERR_CLOSED / ERR_BROKEN", async (c, loop) => {
      const { listener, client, server } = await connectPair(c, loop);
      const b = collect(server);
      const a = collect(client);
      for (let i = 0; i < 1000; i++) client.send([seqFrame(i)]);
      const closing = client.close();
      assert.strictEqual(client.close(), closing, "close() is idempotent");
      assert.throws(() => client.send([Buffer.from("late")]), (e) => assertCode(e, "ERR_CLOSED"));
      const serverEnd = await b.end;
      assert.equal(b.msgs.length, 1000, "messages sent before close() are delivered");
      assert.deepEqual(serverEnd, { by: "peer" });
      assert.throws(() => server.send([Buffer.from("late")]), (e) => assertCode(e, "ERR_BROKEN"));
      await closing;
      assert.deepEqual(client.ended, { by: "local" });
      assert.deepEqual(await a.end, { by: "local" });
      await assert.rejects(client.drain(), (e) => assertCode(e, "ERR_CLOSED"));
      await assert.rejects(server.drain(), (e) => assertCode(e, "ERR_BROKEN"));
      await listener.close();
    });

    it("close reasons: destroy(reason) ends now with the reason; the peer sees it broken or ended", async (c, loop) => {
      const { listener, client, server } = await connectPair(c, loop);
      const b = collect(server);
      collect(client);
      client.send([Buffer.from("x")]);
      await b.until(1);
      const why = new Error("shutting down");
      client.destroy(why);
      client.destroy(new Error("second")); // idempotent: the first reason stays
      const end = await client.closed;
      assert.equal(end.by, "local");
      assert.strictEqual(end.error, why);
      assert.throws(() => client.send([Buffer.from("x")]), (e) => assertCode(e, "ERR_CLOSED"));
      assertPeerEnd(await b.end);
      await client.close(); // resolves after a destroy
      await listener.close();
    });

    it("Symbol.asyncDispose closes gracefully", async (c, loop) => {
      const { listener, client, server } = await connectPair(c, loop);
      const b = collect(server);
      collect(client);
      await client[Symbol.asyncDispose]();
      assert.deepEqual(client.ended, { by: "local" });
      assert.deepEqual(await b.end, { by: "peer" });
      await listener[Symbol.asyncDispose]();
    });

    it("backpressure: a paused reader holds the writer back at its high-water mark; resuming delivers everything in order", async (c, loop) => {
      const hwm = 64 * 1024;
      const { listener, client, server } = await connectPair(c, loop, { connect: { highWaterMark: hwm } });
      const got = collect(server);
      server.pause();
      collect(client);
      const msg = pattern(1024, 1);
      const LIMIT = 64 * 1024; // 64 MiB at most: far above any kernel buffering
      let sent = 0;
      let held = false;
      let maxBuffered = 0;
      while (sent < LIMIT) {
        const ok = client.send([seqFrame(sent), msg]);
        sent++;
        maxBuffered = Math.max(maxBuffered, client.bufferedAmount);
        if (!ok) {
          assert.ok(client.bufferedAmount >= hwm);
          const drained = client.drain();
          if (!(await settlesWithin(loop, drained, 40))) {
            // Held back, unless the layers below were merely slow to take the
            // buffer (a loaded machine, a library's I/O thread): held means
            // nothing moves for a while longer; if it moved, send on.
            // Checked twice, around a longer wait, so that a late move by the
            // layers below sends on instead of failing the case.
            const before = client.bufferedAmount;
            for (let i = 0; i < 10; i++) await turn(loop);
            if (client.bufferedAmount === before && !(await settlesWithin(loop, drained, 250))) {
              for (let i = 0; i < 10; i++) await turn(loop);
              if (client.bufferedAmount === before) {
                held = true;
                break;
              }
            }
            await drained;
          }
        }
      }
      assert.ok(held, `the writer was never held back (${sent} messages sent)`);
      // The writer's own buffer is bounded by its high-water mark plus one message.
      assert.ok(maxBuffered < hwm + 2048, `bufferedAmount reached ${maxBuffered}`);
      assert.equal(got.msgs.length, 0, "a paused reader gets no message");
      const drained = client.drain();
      server.resume();
      await drained;
      assert.ok(client.bufferedAmount <= hwm / 2);
      await got.until(sent);
      for (let i = 0; i < sent; i++) if (seqOf(got.msgs[i]!) !== i) assert.fail(`message ${i} out of order`);
      await client.close();
      await listener.close();
      await server.closed;
    });

    it("pause() inside a message handler stops delivery at once; resume() continues, never synchronously", async (c, loop) => {
      const { listener, client, server } = await connectPair(c, loop);
      collect(client);
      const seen: number[] = [];
      const paused = defer();
      const all = defer();
      server.start({
        message(m) {
          seen.push(seqOf(m));
          if (seen.length === 10) {
            server.pause();
            paused.resolve();
          }
          if (seen.length === 100) all.resolve();
        },
        end() {},
      });
      for (let i = 0; i < 100; i++) client.send([seqFrame(i)]);
      await paused.promise;
      for (let i = 0; i < 5; i++) await turn(loop);
      assert.equal(seen.length, 10);
      server.resume();
      assert.equal(seen.length, 10, "resume() does not deliver synchronously");
      await all.promise;
      assert.deepEqual(seen, Array.from({ length: 100 }, (_, i) => i));
      await client.close();
      await listener.close();
      await server.closed;
    });

    it("messages() iterates until the peer closes", async (c, loop) => {
      const { listener, client, server } = await connectPair(c, loop);
      collect(client);
      for (let i = 0; i < 5000; i++) client.send([seqFrame(i)]);
      const closing = client.close();
      let n = 0;
      for await (const m of server.messages()) {
        assert.equal(seqOf(m), n);
        n++;
      }
      assert.equal(n, 5000);
      await closing;
      assert.deepEqual(server.ended, { by: "peer" });
      await listener.close();
    });

    it("handlers are never called synchronously with start(), and end is called once even when the end came first", async (c, loop) => {
      const { listener, client, server } = await connectPair(c, loop);
      const b = collect(server);
      client.destroy();
      await client.closed;
      let calls = 0;
      const ended = defer<ConnectionEnd>();
      client.start({
        message: () => calls++,
        end: (e) => {
          calls++;
          ended.resolve(e);
        },
      });
      assert.equal(calls, 0);
      assert.deepEqual(await ended.promise, { by: "local" });
      for (let i = 0; i < 3; i++) await turn(loop);
      assert.equal(calls, 1);
      assert.throws(() => client.start({ message() {}, end() {} }), (e) => assertCode(e, "ERR_INVALID_STATE"));
      await b.end;
      await listener.close();
    });

    it("a drain() nobody awaits does not cause an unhandled rejection; an awaited one rejects with a coded error", async (c, loop) => {
      await noUnhandledRejections(loop, async () => {
        const { listener, client, server } = await connectPair(c, loop, { connect: { highWaterMark: 1024 } });
        server.pause();
        collect(server);
        collect(client);
        for (let i = 0; i < 64; i++) client.send([pattern(512)]);
        const unobserved = client.drain();
        const observed = client.drain();
        void unobserved;
        client.destroy(new Error("bye"));
        await assert.rejects(observed, (e) => assertCode(e, "ERR_CLOSED"));
        await client.closed;
        server.resume();
        await server.closed;
        await listener.close();
      });
    });

    it("a writer that ignores send() === false meets maxBuffered: ERR_BUSY, nothing lost, the connection stays usable", async (c, loop) => {
      const { listener, client, server } = await connectPair(c, loop, { connect: { highWaterMark: 1024, maxBuffered: 8192 } });
      const got = collect(server);
      collect(client);
      let accepted = 0;
      let busy: unknown;
      for (let i = 0; i < 100; i++) {
        try {
          client.send([seqFrame(i), pattern(1020)]);
          accepted++;
        } catch (e) {
          busy = e;
          break;
        }
      }
      assertCode(busy, "ERR_BUSY");
      assert.ok(accepted >= 7 && accepted <= 8, `${accepted} messages accepted before the limit`);
      assert.ok(client.bufferedAmount <= 8192);
      await client.drain();
      client.send([seqFrame(accepted), pattern(1020)]);
      await got.until(accepted + 1);
      for (let i = 0; i <= accepted; i++) assert.equal(seqOf(got.msgs[i]!), i);
      await client.close();
      await listener.close();
      await server.closed;
    });

    it("sendFrame (where a connection has it): frames written in place, small and large, in order with send(), to message() and to frame() handlers; one above maxMessageSize is refused before anything is written", async (c, loop) => {
      const { listener, client, server } = await connectPair(c, loop, { connect: { maxMessageSize: 200_000 }, listen: { maxMessageSize: 200_000 } });
      const seen: string[] = [];
      const all = defer<void>();
      const sizes = [0, 3, 1000, 9000, 70_000, 150_000];
      const expected = sizes.length * 2;
      const note = (bytes: Uint8Array): void => {
        const fill = bytes.length === 0 ? 0 : bytes[0]!;
        assert.ok(bytes.every((x) => x === fill), `a frame of ${bytes.length} bytes is intact`);
        seen.push(`${bytes.length}:${fill}`);
        if (seen.length === expected) all.resolve();
      };
      // Half the messages go to frame() (one-frame messages whole in what was received), the others to message().
      server.start({
        message: (m) => note(m[0]!),
        frame: (bytes, start, end) => note(bytes.subarray(start, end)),
        end: () => {},
      });
      if (client.sendFrame === undefined) {
        await client.close();
        await listener.close();
        await server.closed;
        return;
      }
      const writes: number[] = [];
      sizes.forEach((n, i) => {
        client.sendFrame!(n, { writeFrame: (dst, at) => void (writes.push(n), dst.fill(i + 1, at, at + n)) });
        client.send([new Uint8Array(n).fill(i + 101)]);
      });
      assert.deepEqual(writes, sizes, "each frame written once, when sent");
      assert.throws(
        () => client.sendFrame!(200_001, { writeFrame: () => assert.fail("a refused frame is not written") }),
        (e) => assertCode(e, "ERR_MESSAGE_TOO_LARGE"),
      );
      await all.promise;
      assert.deepEqual(
        seen,
        sizes.flatMap((n, i) => [`${n}:${n === 0 ? 0 : i + 1}`, `${n}:${n === 0 ? 0 : i + 101}`]),
      );
      await client.close();
      await listener.close();
      await server.closed;
    });

    it("send() refuses a message above maxMessageSize; the connection stays usable", async (c, loop) => {
      const { listener, client, server } = await connectPair(c, loop, { connect: { maxMessageSize: 1000 } });
      const got = collect(client);
      void echo(server);
      assert.throws(() => client.send([pattern(600), pattern(401)]), (e) => assertCode(e, "ERR_MESSAGE_TOO_LARGE"));
      client.send([pattern(1000)]);
      await got.until(1);
      assert.equal(got.msgs[0]![0]!.byteLength, 1000);
      await client.close();
      await listener.close();
      await server.closed;
    });

    it("a message above the receiver's maxMessageSize ends only that connection, with ERR_MESSAGE_TOO_LARGE", async (c, loop) => {
      const { listener, client, server, nextServer } = await connectPair(c, loop, { listen: { maxMessageSize: 4096 } });
      const b = collect(server);
      collect(client);
      client.send([pattern(4097)]);
      const end = await b.end;
      assert.equal(end.by, "peer");
      assertCode(end.error, "ERR_MESSAGE_TOO_LARGE");
      assertPeerEnd(await client.closed);
      // The listener still serves.
      const second = await loop.connect(listener.url, c.connectOptions);
      const got = collect(second);
      void echo(await nextServer());
      second.send([pattern(4096)]);
      await got.until(1);
      await second.close();
      await listener.close();
    });

    it("listener: close stops accepting (ERR_CONNECTION_REFUSED after) and keeps accepted connections open", async (c, loop) => {
      const { listener, client, server } = await connectPair(c, loop);
      const got = collect(client);
      void echo(server);
      const url = listener.url;
      await listener.close();
      await listener.close(); // idempotent
      await assert.rejects(loop.connect(url, c.connectOptions), (e) => assertCode(e, "ERR_CONNECTION_REFUSED"));
      client.send([Buffer.from("still here")]);
      await got.until(1);
      await client.close();
      await server.closed;
    });

    it("listener: async iteration yields connections and ends when the listener closes", async (c, loop) => {
      const listener = await loop.listen(c.listenUrl(), c.listenOptions);
      const accepted: Connection[] = [];
      const iterating = (async () => {
        for await (const conn of listener) {
          accepted.push(conn);
          if (accepted.length === 3) await listener.close();
        }
      })();
      const clients: Connection[] = [];
      for (let i = 0; i < 3; i++) clients.push(await loop.connect(listener.url, c.connectOptions));
      await iterating;
      assert.equal(accepted.length, 3);
      for (const s of accepted) collect(s);
      for (const cl of clients) {
        collect(cl);
        await cl.close();
      }
      for (const s of accepted) await s.closed;
    });

    it("connect to an address nobody listens on: ERR_CONNECTION_REFUSED", async (c, loop) => {
      await assert.rejects(loop.connect(await c.refusedUrl(), c.connectOptions), (e) => assertCode(e, "ERR_CONNECTION_REFUSED"));
    });

    it("listen on an address in use: ERR_ADDRESS_IN_USE", async (c, loop) => {
      const listener = await loop.listen(c.listenUrl(), c.listenOptions);
      await assert.rejects(loop.listen(listener.url, c.listenOptions), (e) => assertCode(e, "ERR_ADDRESS_IN_USE"));
      await listener.close();
    });

    it("an aborted signal stops connect and listen", async (c, loop) => {
      const listener = await loop.listen(c.listenUrl(), c.listenOptions);
      const ac = new AbortController();
      ac.abort(new Error("changed my mind"));
      await assert.rejects(loop.connect(listener.url, { ...c.connectOptions, signal: ac.signal }), /changed my mind/);
      await assert.rejects(loop.listen(c.listenUrl(), { ...c.listenOptions, signal: ac.signal }), /changed my mind/);
      await listener.close();
    });
  });
}
