import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { NodeLoop } from "../../adapters/node.js";
import { VirtualLoop } from "../../adapters/virtual.js";
import { Channel } from "../../core/Channel.js";
import { CancelledError, isTilthError } from "../../core/errors.js";
import { scoped } from "../../core/Scope.js";
import { sleep } from "../../core/time.js";

test("items pass in order through a small buffer; the consumer sees the end", async () => {
  const loop = new VirtualLoop();
  const got: number[] = [];
  await loop.run(() =>
    scoped(loop, (s) => {
      const ch = new Channel<number>(loop, 4);
      s.spawn(async () => {
        for (let i = 0; i < 1000; i++) await ch.send(i);
        ch.close();
      });
      s.spawn(async () => {
        for await (const x of ch) got.push(x);
      });
    }),
  );
  assert.deepEqual(got, Array.from({ length: 1000 }, (_, i) => i));
});

test("backpressure: send waits while the buffer is full", async () => {
  const loop = new VirtualLoop();
  const ch = new Channel<string>(loop, 2);
  await loop.run(async () => {
    await ch.send("a");
    await ch.send("b");
    let third = false;
    const p = ch.send("c").then(() => (third = true));
    await sleep(loop, 1000);
    assert.equal(third, false, "send completed while the buffer was full");
    assert.equal(ch.size, 2);
    assert.equal(await ch.recv(), "a");
    await p;
    assert.equal(third, true);
    assert.equal(ch.size, 2);
  });
});

test("capacity 0 is a rendezvous", async () => {
  const loop = new VirtualLoop();
  const ch = new Channel<number>(loop, 0);
  assert.equal(ch.trySend(1), false);
  await loop.run(async () => {
    const sent = ch.send(7);
    assert.equal(await ch.recv(), 7);
    await sent;
  });
});

test("close() rejects waiting senders with ERR_CLOSED; receivers drain then end", async () => {
  const loop = new VirtualLoop();
  const ch = new Channel<number>(loop, 1);
  await loop.run(async () => {
    await ch.send(1);
    const blocked = ch.send(2);
    ch.close();
    await assert.rejects(blocked, (e) => isTilthError(e, "ERR_CLOSED"));
    await assert.rejects(ch.send(3), (e) => isTilthError(e, "ERR_CLOSED"));
    assert.equal(await ch.recv(), 1);
    await assert.rejects(ch.recv(), (e) => isTilthError(e, "ERR_CLOSED"));
    assert.deepEqual(await ch.next(), { value: undefined, done: true });
  });
});

test("close(error) makes the consumer throw it after draining", async () => {
  const loop = new VirtualLoop();
  const ch = new Channel<number>(loop, 8);
  const failure = new Error("producer failed");
  await loop.run(async () => {
    await ch.send(1);
    ch.close(failure);
    const got: number[] = [];
    await assert.rejects(
      (async () => {
        for await (const x of ch) got.push(x);
      })(),
      (e) => e === failure,
    );
    assert.deepEqual(got, [1]);
  });
});

test("a waiting receiver is woken by close", async () => {
  const loop = new VirtualLoop();
  const ch = new Channel<number>(loop, 1);
  await loop.run(async () => {
    const r = ch.next();
    loop.timer(10, () => ch.close());
    assert.deepEqual(await r, { value: undefined, done: true });
    assert.equal(loop.now(), 10);
  });
});

test("send and recv give up when their signal aborts, leaving the channel consistent", async () => {
  const loop = new VirtualLoop();
  const ch = new Channel<number>(loop, 1);
  await loop.run(async () => {
    const ac = new AbortController();
    await ch.send(1);
    const s = ch.send(2, { signal: ac.signal });
    ac.abort(new CancelledError("gave up"));
    await assert.rejects(s, /gave up/);
    assert.equal(await ch.recv(), 1);
    assert.equal(ch.tryRecv(), undefined, "the aborted send left no item");
    const ac2 = new AbortController();
    const r = ch.recv({ signal: ac2.signal });
    ac2.abort(new CancelledError("stop waiting"));
    await assert.rejects(r, /stop waiting/);
    await ch.send(3);
    assert.equal(await ch.recv(), 3, "the aborted receiver did not swallow an item");
  });
});

test("a producer/consumer pair that never blocks still yields to the host loop", async () => {
  const loop = new NodeLoop();
  const ch = new Channel<number>(loop, 1 << 20);
  const total = loop.budget * 10;
  let otherRanAt = -1;
  let received = 0;
  setImmediate(() => (otherRanAt = received));
  for (let i = 0; i < total; i++) ch.trySend(i);
  ch.close();
  for await (const _ of ch) received++;
  assert.equal(received, total);
  assert.ok(otherRanAt >= 0 && otherRanAt < total, `host callback ran at ${otherRanAt}`);
});

test("property: any interleaving of sends and receives preserves order and loses nothing", async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.integer({ min: 0, max: 8 }),
      fc.array(fc.integer({ min: 0, max: 3 }), { minLength: 1, maxLength: 60 }),
      fc.array(fc.integer({ min: 0, max: 3 }), { minLength: 1, maxLength: 60 }),
      async (capacity, producerDelays, consumerDelays) => {
        const loop = new VirtualLoop();
        const ch = new Channel<number>(loop, capacity);
        const got: number[] = [];
        await loop.run(() =>
          scoped(loop, (s) => {
            s.spawn(async () => {
              for (let i = 0; i < producerDelays.length; i++) {
                if (producerDelays[i]) await sleep(loop, producerDelays[i]!);
                await ch.send(i);
              }
              ch.close();
            });
            s.spawn(async () => {
              let k = 0;
              for await (const x of ch) {
                got.push(x);
                const d = consumerDelays[k++ % consumerDelays.length]!;
                if (d) await sleep(loop, d);
                assert.ok(ch.size <= capacity);
              }
            });
          }),
        );
        assert.deepEqual(got, producerDelays.map((_, i) => i));
        assert.equal(loop.pendingTimers, 0);
      },
    ),
    { numRuns: 100 },
  );
});
