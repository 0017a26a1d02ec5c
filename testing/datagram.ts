/**
 * The datagram conformance suite: what every datagram transport of tilth
 * (udp over IPv4 and IPv6, the in-memory datagram network in virtual time)
 * passes, and so can yours: `datagramConformance(makeCase)` registers the
 * tests with `node:test`, a fresh {@link TransportCase} (and loop) for each.
 *
 * The stream suite's cases of order and delivery do not apply: a datagram
 * transport promises neither. These cases check what it does promise: a
 * conversation per remote endpoint, opened by its first datagram; one
 * datagram per message, whole or not at all; the size limit refused before
 * sending; queues, conversations and idle time bounded; the conversation's
 * scope; ends. Exchanges that need every datagram retransmit until answered,
 * so they pass over a network that loses, duplicates and reorders. Each test
 * proves a clean teardown ({@link leakCheck}, no pending timer).
 *
 * @example
 * ```ts
 * // my-datagram.test.ts, run with `node --test`
 * import { NodeLoop } from "tilth/adapters/node";
 * import { datagramConformance } from "tilth/testing";
 * import { registerTransports } from "tilth/transports";
 *
 * datagramConformance(() => ({
 *   name: "udp4",
 *   makeLoop: () => registerTransports(new NodeLoop()),
 *   listenUrl: () => "udp://127.0.0.1:0",
 *   refusedUrl: async () => "udp://127.0.0.1:9", // a port nobody listens on
 *   listenOptions: {},
 *   connectOptions: {},
 *   run: (_loop, body) => body(),
 *   cleanup: () => {},
 * }));
 * ```
 * @module
 */
import assert from "node:assert/strict";
import { describe } from "node:test";
import { CancelledError, isTilthError } from "../core/errors.js";
import type { Loop } from "../core/Loop.js";
import type { Connection, Listener, Message } from "../core/Transport.js";
import { sleep } from "../core/time.js";
import { DatagramConversation, type DatagramListener } from "../transports/index.js";
import { caseTest } from "./transport.js";
import { defer, pattern, seqFrame, seqOf, type TransportCase } from "./helpers.js";

function assertCode(e: unknown, code: string): true {
  assert.ok(isTilthError(e, code), `expected ${code}, got ${e instanceof Error ? `${e.name} ${(e as { code?: string }).code}: ${e.message}` : String(e)}`);
  return true;
}

/** A datagram of `size` bytes: a 4-byte sequence number, then a pattern seeded by it. */
function datagram(seq: number, size: number): Buffer {
  const b = pattern(Math.max(4, size), seq);
  seqFrame(seq).copy(b, 0);
  return b;
}

function intact(m: Message, size: number): boolean {
  if (m.length !== 1) return false;
  const seq = seqOf(m);
  return Buffer.compare(Buffer.from(m[0]!), datagram(seq, size)) === 0;
}

/** Wait (on the loop's clock) until `cond()` holds; fail after `ms`. */
async function until(loop: Loop, cond: () => boolean, ms: number, what: string): Promise<void> {
  const end = loop.now() + ms;
  while (!cond()) {
    if (loop.now() > end) assert.fail(`${what}: not within ${ms} ms`);
    await sleep(loop, 2);
  }
}

/**
 * Stop-and-wait: send each of `n` numbered datagrams until its echo comes
 * back (retransmitting every `rtoMs`), so the exchange completes over loss,
 * duplication and reordering. Returns the replies as received (duplicates too).
 */
async function reliableEcho(loop: Loop, conn: Connection, n: number, size: number, rtoMs = 20): Promise<Message[]> {
  const got: Message[] = [];
  let want = 0;
  let wake: (() => void) | undefined;
  conn.start({
    message: (m) => {
      got.push(m);
      if (seqOf(m) === want && wake) wake();
    },
    end: () => wake?.(),
  });
  for (; want < n; want++) {
    for (let tries = 0; ; tries++) {
      assert.ok(tries < 1000, `datagram ${want}: no echo after 1000 sends`);
      const answered = new Promise<void>((resolve) => (wake = resolve));
      conn.send([datagram(want, size)]);
      const timer = loop.timer(rtoMs, () => wake?.());
      await answered;
      timer.cancel();
      if (conn.ended) throw conn.ended.error ?? new Error("conversation ended");
      if (got.some((m) => seqOf(m) === want)) break;
    }
  }
  wake = undefined;
  return got;
}

/** Serve an echo on every conversation of `listener`; returns the conversations seen. */
function echoAll(listener: Listener): Connection[] {
  const seen: Connection[] = [];
  listener.start((c) => {
    seen.push(c);
    c.start({
      message: (m) => {
        if (!c.ended) c.send(m);
      },
      end() {},
    });
  });
  return seen;
}

/** Register the datagram conformance tests for the case `make` builds, under `datagram conformance: ${name}`. */
export function datagramConformance(make: () => TransportCase): void {
  const c0 = make();
  const it = caseTest(make);

  describe(`datagram conformance: ${c0.name}`, () => {
    it("the first datagram opens a conversation; both ends report URLs; an echo comes back whole", async (c, loop) => {
      const listener = await loop.listen(c.listenUrl(), c.listenOptions);
      assert.match(listener.url, /:[1-9][0-9]*$/, "port 0 is replaced by the real port");
      const seen = echoAll(listener);
      const client = await loop.connect(listener.url, c.connectOptions);
      assert.equal(client.remoteUrl, listener.url);
      const got = await reliableEcho(loop, client, 5, 100);
      assert.ok(got.every((m) => intact(m, 100)), "every echo is one whole datagram");
      assert.equal(seen.length, 1, "one peer, one conversation");
      const server = seen[0]!;
      assert.equal(server.scheme, listener.scheme);
      assert.equal(server.localUrl, listener.url);
      assert.equal(server.remoteUrl, client.localUrl);
      assert.ok(server instanceof DatagramConversation);
      await client.close();
      assert.deepEqual(await client.closed, { by: "local" });
      await listener.close();
      assert.equal((await server.closed).by, "local", "a listener's conversations end with it");
    });

    it("one message is one datagram of one frame: other shapes are ERR_INVALID_MESSAGE, nothing is sent", async (c, loop) => {
      const listener = await loop.listen(c.listenUrl(), c.listenOptions);
      const client = (await loop.connect(listener.url, c.connectOptions)) as DatagramConversation;
      assert.throws(() => client.send([]), (e) => assertCode(e, "ERR_INVALID_MESSAGE"));
      assert.throws(() => client.send([Buffer.from("a"), Buffer.from("b")]), (e) => assertCode(e, "ERR_INVALID_MESSAGE"));
      assert.throws(() => client.send(["text" as unknown as Uint8Array]), (e) => assertCode(e, "ERR_INVALID_MESSAGE"));
      assert.equal(client.stats.sent, 0);
      assert.equal(client.ended, undefined, "a refused send leaves the conversation open");
      await client.close();
      await listener.close();
    });

    it("a datagram above the limit is refused by send with ERR_MESSAGE_TOO_LARGE before the system call; one at the limit goes", async (c, loop) => {
      const listener = await loop.listen(c.listenUrl(), c.listenOptions);
      const seen = echoAll(listener);
      const client = (await loop.connect(listener.url, c.connectOptions)) as DatagramConversation;
      const max = client.maxMessageSize;
      assert.ok(max === 65_507 || max === 65_527, `the default limit is the family's largest payload, got ${max}`);
      assert.throws(
        () => client.send([Buffer.alloc(max + 1)]),
        (e) => assertCode(e, "ERR_MESSAGE_TOO_LARGE") && (e as { limit?: number }).limit === max,
      );
      assert.equal(client.stats.sent, 0, "nothing reached the system");
      assert.equal(client.bufferedAmount, 0);
      // At the limit: the largest datagram crosses whole (retransmitted until echoed).
      const got = await reliableEcho(loop, client, 1, max, 50);
      assert.equal(got[0]![0]!.byteLength, max);
      assert.ok(intact(got[0]!, max));
      assert.equal(seen.length, 1);
      await client.close();
      await listener.close();
    });

    it("an empty datagram opens a conversation and arrives as one empty frame", async (c, loop) => {
      const listener = await loop.listen(c.listenUrl(), c.listenOptions);
      const first = defer<Message>();
      listener.start((conv) => conv.start({ message: (m) => first.resolve(m), end() {} }));
      const client = await loop.connect(listener.url, c.connectOptions);
      // Retransmit until it arrives (the network may lose it).
      let stop = false;
      void (async () => {
        for (let tries = 0; !stop && tries < 500; tries++) {
          if (!client.ended) client.send([new Uint8Array(0)]);
          await sleep(loop, 20);
        }
      })();
      const m = await first.promise;
      stop = true;
      assert.equal(m.length, 1);
      assert.equal(m[0]!.byteLength, 0);
      await sleep(loop, 25);
      await client.close();
      await listener.close();
    });

    it("conversations share one listener, each with its own state: a count per peer", async (c, loop) => {
      const listener = await loop.listen(c.listenUrl(), c.listenOptions);
      const convs: Connection[] = [];
      listener.start((conv) => {
        convs.push(conv);
        let count = 0; // the conversation's own state
        conv.start({
          message: (m) => {
            count++;
            const reply = Buffer.alloc(8);
            reply.writeUInt32BE(seqOf(m), 0);
            reply.writeUInt32BE(count, 4);
            if (!conv.ended) conv.send([reply]);
          },
          end() {},
        });
      });
      const PEERS = 8;
      const clients = await Promise.all(Array.from({ length: PEERS }, () => loop.connect(listener.url, c.connectOptions)));
      const counts = await Promise.all(
        clients.map(async (cl, i) => {
          const got = await reliableEcho(loop, cl, 3 + i, 8);
          return Math.max(...got.map((m) => Buffer.from(m[0]!).readUInt32BE(4)));
        }),
      );
      assert.equal(convs.length, PEERS, "one conversation per peer");
      counts.forEach((n, i) => assert.ok(n >= 3 + i, `peer ${i} saw its own count grow to at least ${3 + i}, got ${n}`));
      const stats = (listener as DatagramListener<DatagramConversation>).stats();
      assert.equal(stats.live, PEERS);
      assert.equal(stats.opened, PEERS);
      await Promise.all(clients.map((cl) => cl.close()));
      await listener.close();
      assert.equal((listener as DatagramListener<DatagramConversation>).stats().live, 0);
    });

    it("a conversation that ended is forgotten: the peer's next datagram opens a new one", async (c, loop) => {
      const listener = await loop.listen(c.listenUrl(), c.listenOptions);
      const seen = echoAll(listener);
      const client = await loop.connect(listener.url, c.connectOptions);
      await reliableEcho(loop, client, 1, 16);
      const first = seen[0]!;
      await first.close();
      assert.deepEqual(first.ended, { by: "local" });
      assert.throws(() => first.send([Buffer.from("x")]), (e) => assertCode(e, "ERR_CLOSED"));
      // The client's conversation does not hear of it (datagrams have no end of stream); it goes on.
      assert.equal(client.ended, undefined);
      const client2 = await loop.connect(listener.url, c.connectOptions);
      await reliableEcho(loop, client2, 1, 16);
      assert.equal(seen.length, 2);
      await client.close();
      await client2.close();
      await listener.close();
    });

    it("a conversation silent both ways for idleTimeoutMs ends with ERR_TIMEOUT; traffic keeps it open", async (c, loop) => {
      const idleTimeoutMs = 200;
      const listener = await loop.listen(c.listenUrl(), { ...c.listenOptions, idleTimeoutMs });
      const seen = echoAll(listener);
      const client = await loop.connect(listener.url, { ...c.connectOptions, idleTimeoutMs: 60_000 });
      const started = loop.now();
      await reliableEcho(loop, client, 1, 16);
      const server = seen[0]!;
      // Keep talking past the idle time: it stays open.
      for (let i = 0; i < 5; i++) {
        await sleep(loop, idleTimeoutMs / 4);
        client.send([datagram(100 + i, 16)]);
      }
      assert.equal(server.ended, undefined, "traffic keeps the conversation open");
      const lastTraffic = loop.now();
      const end = await server.closed;
      assert.equal(end.by, "peer");
      assertCode(end.error, "ERR_TIMEOUT");
      assert.ok(loop.now() - lastTraffic >= idleTimeoutMs - 1, `ended ${loop.now() - lastTraffic} ms after the last datagram`);
      assert.ok(loop.now() - started >= idleTimeoutMs);
      await client.close();
      await listener.close();
    });

    it("a conversation's scope: its tasks are cancelled when it ends, and a failing task ends it", async (c, loop) => {
      const listener = await loop.listen(c.listenUrl(), c.listenOptions);
      const convs: DatagramConversation[] = [];
      const cancelled = defer<unknown>();
      listener.start((conn) => {
        const conv = conn as DatagramConversation;
        convs.push(conv);
        conv.start({ message: (m) => !conv.ended && conv.send(m), end() {} });
        if (convs.length === 1) {
          conv.scope.spawn(async (t) => {
            try {
              await sleep(loop, 3_600_000, { signal: t.signal });
            } catch (e) {
              cancelled.resolve(e);
              throw e;
            }
          });
        } else {
          conv.scope.spawn(async () => {
            await sleep(loop, 1);
            throw new Error("task failed");
          });
        }
      });
      const a = await loop.connect(listener.url, c.connectOptions);
      await reliableEcho(loop, a, 1, 16);
      await convs[0]!.close();
      const why = await cancelled.promise;
      assert.ok(why instanceof Error && isTilthError(why), `the task was cancelled with a coded error, got ${String(why)}`);
      const b = await loop.connect(listener.url, c.connectOptions);
      b.send([datagram(0, 16)]);
      let tries = 0;
      while (convs.length < 2 && tries++ < 100) {
        await sleep(loop, 20);
        if (convs.length < 2) b.send([datagram(0, 16)]);
      }
      const end = await convs[1]!.closed;
      assert.equal(end.by, "local");
      assert.equal(end.error?.message, "task failed", "the task's failure ends the conversation with its error");
      assert.ok(!(end.error instanceof CancelledError));
      await a.close();
      await b.close();
      await listener.close();
    });

    it("a paused conversation queues at most maxQueued datagrams (tail drop, counted); resume delivers them", async (c, loop) => {
      const maxQueued = 5;
      const listener = await loop.listen(c.listenUrl(), { ...c.listenOptions, maxQueued });
      const got: Message[] = [];
      let opened: DatagramConversation | undefined;
      listener.start((conn) => {
        const conv = conn as DatagramConversation;
        conv.pause();
        conv.start({ message: (m) => got.push(m), end() {} });
        opened = conv;
      });
      const client = await loop.connect(listener.url, c.connectOptions);
      let i = 0;
      const sendSome = async (): Promise<void> => {
        for (let k = 0; k < 10; k++) client.send([datagram(i++, 32)]);
        await sleep(loop, 5);
      };
      // Flood until the conversation is open and its queue drops datagrams.
      while (opened === undefined || opened.stats.dropped === 0) {
        assert.ok(i < 100_000, "the queue never filled");
        await sendSome();
      }
      const conv = opened;
      await sleep(loop, 20);
      assert.equal(got.length, 0, "nothing delivered while paused");
      assert.ok(conv.stats.received <= maxQueued, `queued ${conv.stats.received}, limit ${maxQueued}`);
      const dropped = conv.stats.dropped;
      assert.ok(dropped > 0);
      conv.resume();
      await until(loop, () => got.length === conv.stats.received, 2_000, "queued datagrams delivered");
      assert.ok(got.length >= 1 && got.length <= maxQueued);
      assert.ok(got.every((m) => intact(m, 32)));
      assert.ok(((listener as DatagramListener<DatagramConversation>).stats().dropped) >= dropped);
      await client.close();
      await listener.close();
    });

    it("past maxConversations, datagrams from new peers are refused and counted; when one ends, a new peer gets in", async (c, loop) => {
      const listener = (await loop.listen(c.listenUrl(), { ...c.listenOptions, maxConversations: 3 })) as DatagramListener<DatagramConversation>;
      const seen = echoAll(listener);
      const clients = await Promise.all(Array.from({ length: 5 }, () => loop.connect(listener.url, c.connectOptions)));
      for (let round = 0; round < 20 && listener.stats().refused < 2; round++) {
        for (const cl of clients) cl.send([datagram(round, 16)]);
        await sleep(loop, 10);
      }
      assert.equal(listener.stats().live, 3);
      assert.equal(seen.length, 3);
      assert.ok(listener.stats().refused >= 2, `refused ${listener.stats().refused}`);
      await seen[0]!.close();
      assert.equal(listener.stats().live, 2);
      for (let round = 0; round < 50 && seen.length < 4; round++) {
        for (const cl of clients) cl.send([datagram(round, 16)]);
        await sleep(loop, 10);
      }
      assert.equal(seen.length, 4, "a place freed is taken by a new peer");
      assert.equal(listener.stats().live, 3);
      await Promise.all(clients.map((cl) => cl.close()));
      await listener.close();
    });

    it("a datagram above the listener's maxMessageSize is dropped and counted; it opens no conversation", async (c, loop) => {
      const listener = (await loop.listen(c.listenUrl(), { ...c.listenOptions, maxMessageSize: 100 })) as DatagramListener<DatagramConversation>;
      const seen = echoAll(listener);
      const client = await loop.connect(listener.url, c.connectOptions);
      for (let i = 0; i < 20 && listener.stats().oversized === 0; i++) {
        client.send([datagram(i, 101)]);
        await sleep(loop, 10);
      }
      assert.ok(listener.stats().oversized > 0);
      assert.equal(seen.length, 0, "no conversation for an oversized first datagram");
      await reliableEcho(loop, client, 1, 100);
      assert.equal(seen.length, 1);
      const conv = seen[0] as DatagramConversation;
      for (let i = 0; i < 20 && conv.stats.oversized === 0; i++) {
        client.send([datagram(i, 200)]);
        await sleep(loop, 10);
      }
      assert.ok(conv.stats.oversized > 0, "an oversized datagram on a conversation is counted");
      assert.equal(conv.ended, undefined, "and does not end it");
      await client.close();
      await listener.close();
    });

    it("a connected conversation sending where nobody listens ends with ERR_CONNECTION_REFUSED (port unreachable)", async (c, loop) => {
      const client = await loop.connect(await c.refusedUrl(), c.connectOptions);
      for (let i = 0; i < 50 && client.ended === undefined; i++) {
        try {
          client.send([datagram(i, 16)]);
        } catch {
          break;
        }
        await sleep(loop, 10);
      }
      const end = await client.closed;
      assert.equal(end.by, "peer");
      assertCode(end.error, "ERR_CONNECTION_REFUSED");
      assert.throws(() => client.send([Buffer.from("x")]), (e) => assertCode(e, "ERR_BROKEN"));
      await client.close(); // idempotent after the end
    });

    it("close and destroy are idempotent; after them send throws ERR_CLOSED; closing the listener ends its conversations", async (c, loop) => {
      const listener = await loop.listen(c.listenUrl(), c.listenOptions);
      const seen = echoAll(listener);
      const a = await loop.connect(listener.url, c.connectOptions);
      const b = await loop.connect(listener.url, c.connectOptions);
      await reliableEcho(loop, a, 1, 16);
      await reliableEcho(loop, b, 1, 16);
      const p1 = a.close();
      const p2 = a.close();
      assert.equal(p1, p2, "close() is idempotent: the same promise");
      await p1;
      a.destroy(new Error("late")); // after the end: nothing changes
      assert.deepEqual(a.ended, { by: "local" });
      assert.throws(() => a.send([Buffer.from("x")]), (e) => assertCode(e, "ERR_CLOSED"));
      const reason = new Error("gone");
      b.destroy(reason);
      b.destroy();
      assert.equal((await b.closed).error, reason);
      await listener.close();
      await listener.close();
      for (const s of seen) assert.equal((await s.closed).by, "local");
      assert.equal(seen.length, 2);
    });

    it("a stop-and-wait exchange of 200 datagrams of mixed sizes completes, every datagram whole", async (c, loop) => {
      const listener = await loop.listen(c.listenUrl(), c.listenOptions);
      echoAll(listener);
      const sizes = [4, 1, 300, 1400, 9000, 30_000, 65_000, 16, 0, 2000];
      for (const size of sizes) {
        const client = await loop.connect(listener.url, c.connectOptions);
        const got = await reliableEcho(loop, client, 200 / sizes.length, size);
        assert.ok(got.every((m) => intact(m, size)), `datagrams of ${size} B arrive whole or not at all`);
        await client.close();
      }
      await listener.close();
    });
  });
}
