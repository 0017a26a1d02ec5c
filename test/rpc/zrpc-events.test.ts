/**
 * ZeroRPC one-way events through the loop's transports: PUB/SUB and PUSH/PULL
 * over inproc in virtual time (fan-out, one puller per event, backpressure,
 * a broken connection, a bounded close), the SUB filter by event name over
 * inproc and over zmq+tcp (tilth and zerorpc-python-shaped publishers), and
 * the name reader on the header shapes peers write.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { Packr } from "msgpackr";
import { NodeLoop } from "../../adapters/node.js";
import { VirtualLoop } from "../../adapters/virtual.js";
import { openZmqSockets, ZmqSocket } from "../../adapters/zeromq.js";
import { isTilthError } from "../../core/errors.js";
import type { Loop } from "../../core/Loop.js";
import { sleep } from "../../core/time.js";
import { registerTransports } from "../../transports/index.js";
import { zrpcEmitter, zrpcReceiver } from "../../rpc/index.js";
import { encodeEvent } from "../../rpc/zerorpc/codec.js";
import { eventName, eventsTransportUrl } from "../../rpc/zerorpc/events.js";
import { leakCheck } from "../helpers/leaks.js";

const virtual = (): VirtualLoop => registerTransports(new VirtualLoop({ stallWarningMs: 0 }));

/** Run `body` on a new virtual loop; no timer may outlive it. */
async function inVirtualTime(body: (loop: VirtualLoop) => Promise<void>): Promise<void> {
  const loop = virtual();
  await loop.run(() => body(loop));
  assert.equal(loop.pendingTimers, 0);
}

/** An API that records `[name, ...args]` per call. */
function recorder(): { got: unknown[][]; api: Record<string, (...a: unknown[]) => void> } {
  const got: unknown[][] = [];
  const rec = (name: string) => (...a: unknown[]) => void got.push([name, ...a]);
  return { got, api: { log: rec("log"), logout: rec("logout"), metric: rec("metric"), tick: rec("tick"), job: rec("job") } };
}

/** Wait (in the loop's time, 1 ms steps) until `cond` holds; fails after `limit` steps. */
async function until(loop: Loop, cond: () => boolean, limit = 2000): Promise<void> {
  for (let i = 0; i < limit && !cond(); i++) await sleep(loop, 1);
  assert.ok(cond(), "condition not reached");
}

const isCode = (code: string) => (e: unknown): true => {
  assert.ok(isTilthError(e, code), `expected ${code}, got ${String(e)}`);
  return true;
};

describe("zrpc events over the loop's transports (inproc, virtual time)", () => {
  test("a bound PUB reaches both subscribers; a bound PUSH gives each event to one of two pullers, and queues events until a puller comes; no ZeroMQ socket is opened", async () => {
    await inVirtualTime(async (loop) => {
      const pub = await zrpcEmitter(loop, "pub", "zrpc+inproc://news", { bind: true });
      assert.equal(pub.endpoint, "inproc://news");
      const a = recorder();
      const b = recorder();
      const subs = [await zrpcReceiver(loop, "sub", "zrpc+inproc://news", a.api), await zrpcReceiver(loop, "sub", "inproc://news", b.api)];
      assert.equal(openZmqSockets(), 0);
      // A subscriber misses what is published before the publisher has taken its connection (as with ZeroMQ): publish until both heard one.
      await until(loop, () => {
        pub.emit("tick");
        return a.got.length > 0 && b.got.length > 0;
      });
      a.got.length = 0;
      b.got.length = 0;
      for (let i = 0; i < 10; i++) assert.equal(pub.emit("log", "info", i), true);
      await until(loop, () => a.got.length === 10 && b.got.length === 10);
      const expected = Array.from({ length: 10 }, (_, i) => ["log", "info", i]);
      assert.deepEqual(a.got, expected);
      assert.deepEqual(b.got, expected);
      await pub.close();
      for (const s of subs) await s.close();

      const push = await zrpcEmitter(loop, "push", "inproc://jobs", { bind: true });
      for (let i = 0; i < 5; i++) push.emit("job", `early${i}`);
      const p = recorder();
      const q = recorder();
      const pullers = [await zrpcReceiver(loop, "pull", "inproc://jobs", p.api), await zrpcReceiver(loop, "pull", "inproc://jobs", q.api)];
      await until(loop, () => p.got.length + q.got.length === 5);
      // Both pullers take part once both are connected: send single "tick"s until each has had one.
      await until(loop, () => {
        push.emit("tick");
        return p.got.some((g) => g[0] === "tick") && q.got.some((g) => g[0] === "tick");
      });
      await until(loop, () => true, 5);
      p.got.length = 0;
      q.got.length = 0;
      for (let i = 0; i < 100; i++) push.emit("job", i);
      await until(loop, () => p.got.length + q.got.length === 100);
      const jobs = [...p.got, ...q.got].map((g) => g[1] as number).sort((x, y) => x - y);
      assert.deepEqual(jobs, Array.from({ length: 100 }, (_, i) => i), "each event reaches exactly one puller");
      assert.equal(p.got.length, 50, "round robin over the two pullers");
      assert.equal(q.got.length, 50);
      assert.equal(openZmqSockets(), 0);
      await push.close();
      for (const r of pullers) await r.close();
    });
  });

  test("a puller that leaves: the events after it left all reach the pullers still there", async () => {
    await inVirtualTime(async (loop) => {
      const push = await zrpcEmitter(loop, "push", "inproc://leave", { bind: true });
      const p = recorder();
      const q = recorder();
      const stays = await zrpcReceiver(loop, "pull", "inproc://leave", p.api);
      const leaves = await zrpcReceiver(loop, "pull", "inproc://leave", q.api);
      await until(loop, () => {
        push.emit("tick");
        return p.got.length > 0 && q.got.length > 0;
      });
      await leaves.close();
      p.got.length = 0;
      for (let i = 0; i < 20; i++) push.emit("job", i);
      await until(loop, () => p.got.length === 20);
      assert.deepEqual(p.got.map((g) => g[1]), Array.from({ length: 20 }, (_, i) => i));
      await push.close();
      await stays.close();
    });
  });

  test("PUSH backpressure: with no puller, emit returns false at the high-water mark and throws ERR_BUSY past maxQueuedBytes; drain resolves once a puller takes the queue", async () => {
    await inVirtualTime(async (loop) => {
      const push = await zrpcEmitter(loop, "push", "inproc://bp", { bind: true, highWaterMark: 1000, maxQueuedBytes: 3000 });
      const results: boolean[] = [];
      let busy: unknown;
      try {
        for (let i = 0; i < 100; i++) results.push(push.emit("job", "x".repeat(100)));
      } catch (e) {
        busy = e;
      }
      assert.ok(results.includes(false), "false past the high-water mark");
      assert.ok(results.indexOf(false) >= 5, "true until then");
      isCode("ERR_BUSY")(busy);
      const queued = results.length;
      let drained = false;
      void push.drain().then(() => (drained = true));
      await sleep(loop, 10);
      assert.equal(drained, false);
      const r = recorder();
      const puller = await zrpcReceiver(loop, "pull", "inproc://bp", r.api);
      await until(loop, () => r.got.length === queued);
      assert.equal(drained, true);
      await push.close();
      await assert.rejects(push.drain(), isCode("ERR_CLOSED"));
      assert.throws(() => push.emit("job", 1), isCode("ERR_CLOSED"));
      await puller.close();
    });
  });

  test("PUB drops events for a subscriber that holds its high-water mark (counted in `dropped`) and reaches it again once it drained", async () => {
    await inVirtualTime(async (loop) => {
      const pub = await zrpcEmitter(loop, "pub", "inproc://slow", { bind: true, highWaterMark: 1000 });
      // A subscriber that does not read yet: a raw connection, started later.
      const raw = await loop.connect("inproc://slow");
      const fast = recorder();
      const sub = await zrpcReceiver(loop, "sub", "inproc://slow", fast.api);
      await until(loop, () => {
        pub.emit("tick");
        return fast.got.length > 0;
      });
      let sent = 0;
      while (pub.emit("log", sent) && sent < 1000) sent++;
      assert.ok(sent < 1000, "emit returned false once a subscriber was full");
      // The reading subscriber catches up; the raw one stays full and misses what follows.
      await sleep(loop, 5);
      const dropped = pub.dropped;
      for (let i = 0; i < 5; i++) {
        assert.equal(pub.emit("log", "lost"), false);
        await sleep(loop, 1);
      }
      assert.equal(pub.dropped, dropped + 5);
      const rawGot: unknown[] = [];
      raw.start({ message: (m) => rawGot.push(m), end() {} });
      await pub.drain();
      const before = rawGot.length;
      pub.emit("log", "after");
      await until(loop, () => rawGot.length === before + 1);
      await until(loop, () => fast.got.some((g) => g[1] === "after"));
      assert.ok(fast.got.filter((g) => g[1] === "lost").length === 5, "the reading subscriber missed nothing");
      await raw.close();
      await pub.close();
      await sub.close();
    });
  });

  test("an emitter that connected breaks with its connection (emit throws ERR_BROKEN); a receiver that connected reports its connection's error", async () => {
    await inVirtualTime(async (loop) => {
      const r = recorder();
      const puller = await zrpcReceiver(loop, "pull", "inproc://gone", r.api, { bind: true });
      const push = await zrpcEmitter(loop, "push", "inproc://gone");
      push.emit("job", 1);
      await until(loop, () => r.got.length === 1);
      await puller.close();
      await until(loop, () => {
        try {
          push.emit("job", 2);
          return false;
        } catch (e) {
          return isCode("ERR_BROKEN")(e);
        }
      });
      await assert.rejects(push.drain(), isCode("ERR_BROKEN"));
      await push.close();

      const errors: unknown[] = [];
      const listener = await loop.listen("inproc://pub-raw");
      let accepted: import("../../core/Transport.js").Connection | undefined;
      listener.start((c) => (accepted = c));
      const sub = await zrpcReceiver(loop, "sub", "inproc://pub-raw", r.api, { onError: (e, name) => errors.push([e, name]) });
      await until(loop, () => accepted !== undefined);
      accepted!.destroy();
      await until(loop, () => errors.length === 1);
      const [e, name] = errors[0] as [unknown, unknown];
      isCode("ERR_BROKEN")(e);
      assert.equal(name, undefined);
      await sub.close();
      await listener.close();
    });
  });

  test("close is bounded: a subscriber that never reads is destroyed after closeGraceMs", async () => {
    await inVirtualTime(async (loop) => {
      const pub = await zrpcEmitter(loop, "pub", "inproc://stuck", { bind: true, closeGraceMs: 500 });
      const raw = await loop.connect("inproc://stuck");
      await sleep(loop, 1);
      pub.emit("log", "unread");
      const t0 = loop.now();
      await pub.close();
      assert.ok(loop.now() - t0 >= 500 && loop.now() - t0 < 1000, `closed after ${loop.now() - t0} ms`);
      const ended = await raw.closed;
      assert.equal(ended.by, "peer");
      await pub.close(); // idempotent
    });
  });
});

describe("the SUB filter takes events by name", () => {
  test("over inproc: subscribe: [\"log\"] takes only `log` (not `logout`, not `metric`, no report for names it does not take); a receiver without it takes all", async () => {
    await inVirtualTime(async (loop) => {
      const pub = await zrpcEmitter(loop, "pub", "inproc://filter", { bind: true });
      const only = recorder();
      const all = recorder();
      const onlyErrors: unknown[] = [];
      const allErrors: unknown[] = [];
      const s1 = await zrpcReceiver(loop, "sub", "inproc://filter", only.api, { subscribe: ["log"], onError: (e) => onlyErrors.push(e) });
      const s2 = await zrpcReceiver(loop, "sub", "inproc://filter", all.api, { onError: (e) => allErrors.push(e) });
      await until(loop, () => {
        pub.emit("log", "warm-up");
        return only.got.length > 0 && all.got.length > 0;
      });
      only.got.length = 0;
      all.got.length = 0;
      for (let i = 0; i < 5; i++) {
        pub.emit("metric", i);
        pub.emit("log", i);
        pub.emit("logout", i);
        pub.emit("nosuch", i);
      }
      await until(loop, () => all.got.length === 15 && allErrors.length === 5);
      await sleep(loop, 5);
      assert.deepEqual(only.got, [0, 1, 2, 3, 4].map((i) => ["log", i]));
      assert.deepEqual(onlyErrors, []);
      isCode("ERR_UNKNOWN_METHOD")(allErrors[0]);
      await pub.close();
      await s1.close();
      await s2.close();
    });
  });

  test("over zmq+tcp on 127.0.0.1: subscribe: [\"log\"] takes only `log`, from a tilth publisher and from a zerorpc-python-shaped one ([payload] alone, bin message id)", async () => {
    const done = leakCheck();
    const loop = registerTransports(new NodeLoop());
    // (The URL form the first version of events took, so this test also runs against it.)
    const pub = await zrpcEmitter(loop, "pub", "tcp://127.0.0.1:*", { bind: true });
    assert.match(pub.endpoint, /tcp:\/\/127\.0\.0\.1:\d+$/);
    const only = recorder();
    const sub = await zrpcReceiver(loop, "sub", pub.endpoint, only.api, { subscribe: ["log"] });
    for (let i = 0; i < 400 && only.got.length < 3; i++) {
      pub.emit("metric", i);
      pub.emit("logout", i);
      pub.emit("log", i);
      await sleep(loop, 5);
    }
    assert.ok(only.got.length >= 3);
    assert.ok(only.got.every((g) => g[0] === "log"), JSON.stringify(only.got));
    await pub.close();
    await sub.close();

    // zerorpc-python's Publisher: a PUB socket sending one frame, the header first with a bin message id.
    const raw = ZmqSocket.open(loop, "pub");
    const endpoint = await raw.bind("tcp://127.0.0.1:*");
    const py = recorder();
    const sub2 = await zrpcReceiver(loop, "sub", endpoint, py.api, { subscribe: ["log"] });
    const packr = new Packr({ useRecords: false });
    const pyEvent = (n: number, name: string): Buffer =>
      packr.pack([{ message_id: Buffer.from(`${n.toString(16).padStart(8, "0")}ef414e9ab81a86519b9d6c87`), v: 3 }, name, [n]]);
    for (let i = 0; i < 400 && py.got.length < 3; i++) {
      raw.send([pyEvent(i, "metric")]);
      raw.send([pyEvent(i, "log")]);
      await sleep(loop, 5);
    }
    assert.ok(py.got.length >= 3);
    assert.ok(py.got.every((g) => g[0] === "log"), JSON.stringify(py.got));
    await sub2.close();
    await raw.close();
    assert.equal(openZmqSockets(), 0);
    await done();
  });

  test("subscribe is refused on a puller (it would lose the events it drops)", async () => {
    const loop = virtual();
    await assert.rejects(zrpcReceiver(loop, "pull", "inproc://x", {}, { subscribe: ["log"] }), RangeError);
  });
});

describe("events: URLs and the name reader", () => {
  test("URLs: zrpc+ is optional, tcp and ipc are ZeroMQ's, other schemes as named, port * is 0", () => {
    assert.equal(eventsTransportUrl("zrpc+tcp://127.0.0.1:4242"), "zmq+tcp://127.0.0.1:4242");
    assert.equal(eventsTransportUrl("tcp://127.0.0.1:*"), "zmq+tcp://127.0.0.1:0");
    assert.equal(eventsTransportUrl("zrpc+ipc:///tmp/ev.sock"), "zmq+ipc:///tmp/ev.sock");
    assert.equal(eventsTransportUrl("zrpc+inproc://news"), "inproc://news");
    assert.equal(eventsTransportUrl("zmq+tcp://[::1]:5"), "zmq+tcp://[::1]:5");
    assert.equal(eventsTransportUrl("zrpc+zmq+tcp://127.0.0.1:5"), "zmq+tcp://127.0.0.1:5");
  });

  test("eventName reads the name past any header: tilth's, zerorpc-python's (recorded bytes), extra keys, nested values, array16; undefined for what is not an event", () => {
    const [, tilth] = encodeEvent({ message_id: "abc", v: 3 }, "log", ["x"]);
    assert.equal(eventName([new Uint8Array(0), tilth!]), "log");
    // hello("Wire") as zerorpc-python sent it (docs: the recorded wire format).
    const py = Buffer.from("9382aa6d6573736167655f6964c4203464373930656563656634313465396162383161383635313962396436633837a17603a568656c6c6f91a457697265", "hex");
    assert.equal(eventName([py]), "hello");
    const packr = new Packr({ useRecords: false });
    const odd = packr.pack([{ v: 3, message_id: Buffer.alloc(300, 1), trace: { a: [1, 2.5, null, { b: "x".repeat(40) }], n: 2 ** 40 } }, "métrique.name", { k: 1 }]);
    assert.equal(eventName([odd]), "métrique.name");
    const long = "n".repeat(300);
    assert.equal(eventName([packr.pack([{ message_id: "i", v: 3 }, long, []])]), long);
    const a16 = Buffer.concat([Buffer.from([0xdc, 0, 3]), packr.pack({ message_id: "i" }), packr.pack("log"), packr.pack([])]);
    assert.equal(eventName([a16]), "log");
    assert.equal(eventName([py.subarray(0, 40)]), undefined, "truncated in the header");
    assert.equal(eventName([packr.pack([{ message_id: "i" }, 7, []])]), undefined, "a name that is not a string");
    assert.equal(eventName([packr.pack(["a", "b"])]), undefined, "not an array of 3");
    assert.equal(eventName([Buffer.from([0x93, 0xc1])]), undefined, "a byte msgpack never uses");
    assert.equal(eventName([]), undefined);
  });
});
