/**
 * Streams: Channels and async iterables to Observables (pull, one item at a
 * time; unsubscribing cancels the producer) and Observables to Channels
 * (bounded buffer, overflow policy, cancellation flows up). Virtual time.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { Observable, Subject, interval, lastValueFrom, map, of, range, take, takeWhile, throwError, toArray, concat, timer } from "rxjs";
import { fromObservable, toObservable, toRxScheduler, OverflowError } from "../../adapters/rxjs.js";
import { VirtualLoop } from "../../adapters/virtual.js";
import { Channel } from "../../core/Channel.js";
import { isTilthError } from "../../core/errors.js";
import { scoped } from "../../core/Scope.js";
import { sleep } from "../../core/time.js";

// ---- toObservable ---------------------------------------------------------

test("toObservable(async generator): items, completion, and the producer is pulled one item at a time", async () => {
  const loop = new VirtualLoop();
  const log: string[] = [];
  async function* produce(): AsyncGenerator<number> {
    for (let i = 0; i < 3; i++) {
      await sleep(loop, 10);
      log.push(`produced ${i} at ${loop.now()}`);
      yield i;
    }
  }
  await loop.run(
    () =>
      new Promise<void>((resolve, reject) => {
        toObservable(produce()).subscribe({
          next: (v) => log.push(`consumed ${v} at ${loop.now()}`),
          error: reject,
          complete: () => {
            log.push(`complete at ${loop.now()}`);
            resolve();
          },
        });
      }),
  );
  assert.deepEqual(log, [
    "produced 0 at 10",
    "consumed 0 at 10",
    "produced 1 at 20",
    "consumed 1 at 20",
    "produced 2 at 30",
    "consumed 2 at 30",
    "complete at 30",
  ]);
  assert.equal(loop.pendingTimers, 0);
});

test("toObservable: take(3) unsubscribes and the generator's finally runs after the third item", async () => {
  const loop = new VirtualLoop();
  let produced = 0;
  let finallyAt = -1;
  async function* forever(): AsyncGenerator<number> {
    try {
      for (let i = 0; ; i++) {
        await sleep(loop, 100);
        produced++;
        yield i;
      }
    } finally {
      finallyAt = loop.now();
    }
  }
  const got = await loop.run(() => lastValueFrom(toObservable(forever()).pipe(take(3), toArray())));
  await loop.runUntilIdle();
  assert.deepEqual(got, [0, 1, 2]);
  assert.equal(produced, 3, "no item was produced past the third");
  assert.equal(finallyAt, 300);
  assert.equal(loop.pendingTimers, 0);
});

test("toObservable((signal) => iterable): unsubscribing while the producer waits aborts its signal, so its finally runs at once", async () => {
  const loop = new VirtualLoop();
  let finallyAt = -1;
  let stopReason: unknown;
  async function* ticks(signal: AbortSignal): AsyncGenerator<number> {
    try {
      for (let i = 0; ; i++) {
        await sleep(loop, 1000, { signal });
        yield i;
      }
    } catch (e) {
      stopReason = e;
    } finally {
      finallyAt = loop.now();
    }
  }
  const seen: number[] = [];
  await loop.run(async () => {
    const sub = toObservable(ticks).subscribe((n) => seen.push(n));
    await sleep(loop, 2500);
    sub.unsubscribe();
    await sleep(loop, 1);
  });
  assert.deepEqual(seen, [0, 1]);
  assert.equal(finallyAt, 2500, "stopped at the unsubscribe, not at the next tick");
  assert.ok(isTilthError(stopReason, "ERR_CANCELLED"));
  assert.equal(loop.pendingTimers, 0);
});

test("toObservable: a producer's error reaches the subscriber, at its time", async () => {
  const loop = new VirtualLoop();
  async function* failing(): AsyncGenerator<string> {
    yield "a";
    await sleep(loop, 50);
    throw new Error("producer broke");
  }
  const seen: string[] = [];
  const err = await loop.run(
    () =>
      new Promise<unknown>((resolve) => {
        toObservable(failing()).subscribe({ next: (v) => seen.push(v), error: resolve, complete: () => resolve("completed") });
      }),
  );
  assert.deepEqual(seen, ["a"]);
  assert.equal((err as Error).message, "producer broke");
  assert.equal(loop.now(), 50);
  assert.equal(loop.pendingTimers, 0);
});

test("toObservable(channel): items in order; close() completes, close(error) errors after the buffered items", async () => {
  const loop = new VirtualLoop();
  for (const reason of [undefined, new Error("channel failed")]) {
    const ch = new Channel<number>(loop, 4);
    const events: string[] = [];
    const ended = new Promise<void>((resolve) =>
      toObservable(ch).subscribe({
        next: (v) => events.push(`${v}`),
        error: (e: Error) => {
          events.push(`error ${e.message}`);
          resolve();
        },
        complete: () => {
          events.push("complete");
          resolve();
        },
      }),
    );
    await loop.run(async () => {
      for (let i = 0; i < 6; i++) await ch.send(i); // waits while 4 are buffered: backpressure
      ch.close(reason);
      await ended;
    });
    assert.deepEqual(events, ["0", "1", "2", "3", "4", "5", reason ? "error channel failed" : "complete"]);
  }
  assert.equal(loop.pendingTimers, 0);
});

test("toObservable(channel): unsubscribing closes the channel, so the producer's next send fails with ERR_CLOSED", async () => {
  const loop = new VirtualLoop();
  const ch = new Channel<number>(loop, 1);
  const got = await loop.run(() =>
    scoped(loop, async (scope) => {
      const producer = scope.spawn(async () => {
        try {
          for (let i = 0; ; i++) await ch.send(i);
        } catch (e) {
          return e;
        }
      });
      const items = await lastValueFrom(toObservable(ch).pipe(take(3), toArray()));
      const stop = await producer.join();
      assert.ok(isTilthError(stop, "ERR_CLOSED"), `producer stopped with ${String(stop)}`);
      return items;
    }),
  );
  assert.deepEqual(got, [0, 1, 2]);
  assert.ok(ch.closed);
  assert.equal(loop.pendingTimers, 0);
});

test("toObservable(channel, { close: false }): unsubscribing leaves the channel open and loses no item", async () => {
  const loop = new VirtualLoop();
  const ch = new Channel<string>(loop, 4);
  await loop.run(async () => {
    const seen: string[] = [];
    const sub = toObservable(ch, { close: false }).subscribe((v) => seen.push(v));
    await ch.send("a");
    await sleep(loop, 1);
    sub.unsubscribe(); // a receive is pending on the empty channel: withdrawn
    await ch.send("b");
    assert.deepEqual(seen, ["a"]);
    assert.equal(ch.closed, false);
    assert.equal(await ch.recv(), "b");
  });
  assert.equal(loop.pendingTimers, 0);
});

test("toObservable({ loop }): an iterable whose items are always ready yields to the loop every `budget` items", async () => {
  const loop = new VirtualLoop({ budget: 16 });
  async function* ready(): AsyncGenerator<number> {
    for (let i = 0; i < 100; i++) yield i;
  }
  let posted = -1;
  let count = 0;
  await loop.run(async () => {
    loop.post(() => (posted = count));
    await lastValueFrom(toObservable(ready(), { loop }).pipe(map(() => count++)));
  });
  assert.equal(count, 100);
  assert.ok(posted >= 0 && posted < 100, `a posted callback ran after ${posted} items`);
  assert.equal(loop.pendingTimers, 0);
});

// ---- fromObservable ------------------------------------------------------

test("fromObservable: items and completion; for-await ends after the buffer drains", async () => {
  const loop = new VirtualLoop();
  const s = toRxScheduler(loop);
  const got = await loop.run(async () => {
    const ch = fromObservable(loop, interval(10, s).pipe(take(5)), { capacity: 8 });
    const out: [number, number][] = [];
    for await (const n of ch) out.push([n, loop.now()]);
    return out;
  });
  assert.deepEqual(got, [
    [0, 10],
    [1, 20],
    [2, 30],
    [3, 40],
    [4, 50],
  ]);
  assert.equal(loop.pendingTimers, 0);
});

test("fromObservable: an error reaches the consumer after the items buffered before it", async () => {
  const loop = new VirtualLoop();
  const s = toRxScheduler(loop);
  const src = concat(
    of("a", "b"),
    timer(20, s).pipe(map(() => "c")),
    throwError(() => new Error("upstream failed")),
  );
  const seen: string[] = [];
  await loop.run(async () => {
    const ch = fromObservable(loop, src);
    await sleep(loop, 100); // everything, error included, is buffered by now
    await assert.rejects(
      (async () => {
        for await (const v of ch) seen.push(v);
      })(),
      /upstream failed/,
    );
  });
  assert.deepEqual(seen, ["a", "b", "c"]);
  assert.equal(loop.pendingTimers, 0);
});

test("fromObservable: a non-Error error value arrives as an Error carrying the value", async () => {
  const loop = new VirtualLoop();
  const ch = fromObservable(loop, throwError(() => "plain string"));
  await loop.run(async () => {
    await assert.rejects(ch.recv(), (e) => isTilthError(e, "ERR_NON_ERROR") && /plain string/.test((e as Error).message));
  });
  assert.equal(loop.pendingTimers, 0);
});

test('fromObservable overflow "error" (default): ERR_OVERFLOW after the buffered items, and the source is unsubscribed', async () => {
  const loop = new VirtualLoop();
  const s = toRxScheduler(loop);
  let unsubscribedAt = -1;
  const src = new Observable<number>((sub) => {
    const inner = interval(10, s).subscribe(sub);
    return () => {
      inner.unsubscribe();
      unsubscribedAt = loop.now();
    };
  });
  const seen: number[] = [];
  let error: unknown;
  await loop.run(async () => {
    const ch = fromObservable(loop, src, { capacity: 3 });
    await sleep(loop, 45); // 0..3 emitted at 10..40: the fourth overflows
    try {
      for await (const n of ch) seen.push(n);
    } catch (e) {
      error = e;
    }
  });
  assert.deepEqual(seen, [0, 1, 2]);
  assert.ok(error instanceof OverflowError);
  assert.ok(isTilthError(error, "ERR_OVERFLOW"));
  assert.equal((error as OverflowError).capacity, 3);
  assert.equal(unsubscribedAt, 40);
  assert.equal(loop.pendingTimers, 0, "the interval's timer was cancelled");
});

test('fromObservable overflow "error": a synchronous burst larger than the buffer overflows during subscribe', async () => {
  const loop = new VirtualLoop();
  let emitted = 0;
  const ch = fromObservable(loop, range(0, 1000).pipe(map((n) => (emitted++, n))), { capacity: 4 });
  await loop.run(async () => {
    const seen: number[] = [];
    await assert.rejects(
      (async () => {
        for await (const n of ch) seen.push(n);
      })(),
      (e) => isTilthError(e, "ERR_OVERFLOW"),
    );
    assert.deepEqual(seen, [0, 1, 2, 3]);
  });
  assert.equal(emitted, 5, "range stopped as soon as it was unsubscribed");
  assert.equal(loop.pendingTimers, 0);
});

test('fromObservable overflow "drop-newest" and "drop-oldest": a slow consumer keeps the first or the latest items', async () => {
  for (const [overflow, expected] of [
    ["drop-newest", [0, 1, 2, 6, 7]],
    ["drop-oldest", [3, 4, 5, 6, 7]],
  ] as const) {
    const loop = new VirtualLoop();
    const s = toRxScheduler(loop);
    const got = await loop.run(async () => {
      const ch = fromObservable(loop, interval(10, s).pipe(take(8)), { capacity: 3, overflow });
      await sleep(loop, 65); // 0..5 emitted: 3 fit, 3 overflow
      const out: number[] = [];
      for await (const n of ch) out.push(n);
      assert.equal(ch.dropped, 3);
      return out;
    });
    assert.deepEqual(got, expected, overflow);
    assert.equal(loop.pendingTimers, 0);
  }
});

test("fromObservable: leaving for-await early unsubscribes from the source (its timer is cancelled)", async () => {
  const loop = new VirtualLoop();
  const s = toRxScheduler(loop);
  let unsubscribed = false;
  const src = new Observable<number>((sub) => {
    const inner = interval(1000, s).subscribe(sub);
    return () => {
      inner.unsubscribe();
      unsubscribed = true;
    };
  });
  await loop.run(async () => {
    const ch = fromObservable(loop, src);
    for await (const n of ch) if (n === 2) break;
    assert.ok(ch.closed);
  });
  assert.ok(unsubscribed);
  assert.equal(loop.now(), 3000);
  assert.equal(loop.pendingTimers, 0);
});

test("fromObservable: close() and an aborted signal unsubscribe; a receiver sees the reason", async () => {
  const loop = new VirtualLoop();
  const s = toRxScheduler(loop);
  const subject = new Subject<number>();
  const a = fromObservable(loop, subject);
  assert.equal(subject.observed, true);
  a.close();
  assert.equal(subject.observed, false);
  a.close(); // idempotent

  const ac = new AbortController();
  const b = fromObservable(loop, interval(10, s), { signal: ac.signal });
  await loop.run(async () => {
    assert.equal(await b.recv(), 0);
    ac.abort(new Error("consumer gone"));
    await assert.rejects(b.recv(), /consumer gone/);
  });
  assert.equal(loop.pendingTimers, 0);
  const c = fromObservable(loop, interval(10, s), { signal: ac.signal }); // already aborted: never subscribes
  assert.ok(c.closed);
  assert.equal(loop.pendingTimers, 0);
});

test("fromObservable: options are checked", () => {
  const loop = new VirtualLoop();
  assert.throws(() => fromObservable(loop, of(1), { overflow: "block" as never }), RangeError);
  assert.throws(() => fromObservable(loop, of(1), { capacity: -1 }), RangeError);
});

test("round trip: Observable -> Channel -> Observable keeps values, completion and cancellation", async () => {
  const loop = new VirtualLoop();
  const s = toRxScheduler(loop);
  const got = await loop.run(() =>
    lastValueFrom(
      toObservable(fromObservable(loop, interval(5, s), { capacity: 2 })).pipe(
        takeWhile((n) => n < 4),
        toArray(),
      ),
    ),
  );
  assert.deepEqual(got, [0, 1, 2, 3]);
  await loop.runUntilIdle();
  assert.equal(loop.pendingTimers, 0, "unsubscribing the outer Observable reached the interval");
});
