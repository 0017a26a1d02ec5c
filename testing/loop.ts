/**
 * The Loop contract's conformance suite. Every Loop adapter of tilth runs it,
 * and so can yours: `loopConformance(name, makeHarness)` registers its tests
 * with `node:test`, a fresh harness (a new loop) for each. An adapter is done
 * when it passes. The suite checks the clock (`now` monotonic, `wallTime` an
 * epoch time moving with it), `post` order and asynchrony, timer order and
 * cancellation, the delays a timer takes (negative, infinite, beyond a host
 * timer's 2^31-1 ms; NaN refused), errors thrown by callbacks, the cooperative
 * budget (a long chain of posts lets host macrotasks run), coded errors for
 * bad URLs, and that no timer is left pending.
 *
 * @example
 * ```ts
 * // my-loop.test.ts, run with `node --test`
 * import { leakCheck, loopConformance } from "tilth/testing";
 * import { MyLoop } from "./MyLoop.js";
 *
 * loopConformance("MyLoop", () => {
 *   const errors: unknown[] = [];
 *   const loop = new MyLoop({ onError: (e) => errors.push(e) });
 *   return { loop, drive: (body) => body(), reported: () => errors, teardown: leakCheck() };
 * });
 * ```
 * @module
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { Loop } from "../core/Loop.js";
import { onAbort } from "../core/abort.js";
import { isTilthError } from "../core/errors.js";
import { defer } from "./helpers.js";

/** One loop under test, and how to drive it. */
export interface LoopHarness {
  /** A new loop, with `onError` collecting what `reported()` returns. */
  loop: Loop;
  /** Run `body` on the loop until it settles (real time, or auto-advanced virtual time). */
  drive<T>(body: () => Promise<T>): Promise<T>;
  /** Errors the loop reported from throwing callbacks. */
  reported(): unknown[];
  /** Called at the end of each test: asserts nothing is left behind (and stops whatever drives the loop). */
  teardown(): Promise<void>;
}

/** Makes a fresh {@link LoopHarness}; called once per test. */
export type HarnessFactory = () => LoopHarness;

/** Rejects with the signal's reason when it aborts (node:test aborts a test's signal at its timeout). */
function aborted(signal: AbortSignal): Promise<never> {
  return new Promise((_, reject) => {
    if (signal.aborted) reject(signal.reason);
    else onAbort(signal, reject);
  });
}

/** Register the Loop conformance tests for the loop that `make` builds, under `Loop conformance: ${name}`. */
export function loopConformance(name: string, make: HarnessFactory): void {
  const it = (title: string, fn: (h: LoopHarness) => Promise<void>): void => {
    test(title, { timeout: 30_000 }, async (t) => {
      const h = make();
      try {
        // A loop that never runs what it owes hangs `fn`: at the timeout, stop waiting,
        // so that teardown still stops whatever drives the loop and the process can end.
        await Promise.race([fn(h), aborted(t.signal)]);
      } finally {
        await h.teardown();
      }
      assert.equal(h.loop.pendingTimers, 0, "a timer was left pending");
    });
  };

  describe(`Loop conformance: ${name}`, () => {
    it("now() is monotonic", async (h) => {
      let last = h.loop.now();
      for (let i = 0; i < 1000; i++) {
        const t = h.loop.now();
        assert.ok(t >= last);
        last = t;
      }
      await h.drive(async () => {
        const before = h.loop.now();
        const fired = defer<number>();
        const t = h.loop.timer(2, () => fired.resolve(h.loop.now()));
        assert.ok(t.deadline >= before + 2);
        assert.ok((await fired.promise) >= t.deadline);
      });
    });

    it("wallTime() is an epoch time that moves with the loop clock", async (h) => {
      const w0 = h.loop.wallTime();
      assert.ok(w0 > Date.UTC(1999, 0, 1) && w0 < Date.UTC(2200, 0, 1), `wallTime ${w0}`);
      await h.drive(async () => {
        const done = defer();
        h.loop.timer(3, () => done.resolve());
        await done.promise;
      });
      assert.ok(h.loop.wallTime() >= w0 + 2, "wall time did not move with the loop");
    });

    it("random() gives numbers in [0, 1) that vary", async (h) => {
      const xs = Array.from({ length: 1000 }, () => h.loop.random());
      for (const x of xs) assert.ok(typeof x === "number" && x >= 0 && x < 1, `random() gave ${x}`);
      assert.ok(new Set(xs).size > 990, "random() repeats itself");
    });

    it("post never runs synchronously and runs in FIFO order", async (h) => {
      await h.drive(async () => {
        const seen: number[] = [];
        const done = defer();
        for (let i = 0; i < 5000; i++) h.loop.post(() => seen.push(i));
        h.loop.post(() => done.resolve());
        assert.equal(seen.length, 0);
        await done.promise;
        assert.deepEqual(seen, Array.from({ length: 5000 }, (_, i) => i));
      });
    });

    it("timers fire in deadline order, FIFO for equal deadlines", async (h) => {
      await h.drive(async () => {
        const seen: string[] = [];
        const scheduled: { name: string; deadline: number; seq: number }[] = [];
        const done = defer();
        const add = (name: string, ms: number): void => {
          const t = h.loop.timer(ms, () => seen.push(name));
          scheduled.push({ name, deadline: t.deadline, seq: scheduled.length });
        };
        add("c", 3);
        for (let i = 0; i < 50; i++) add(`a${i}`, 1);
        add("b", 2);
        h.loop.timer(10, () => done.resolve());
        await done.promise;
        // On a real clock a busy machine may take a while between the calls: the
        // order owed is that of the deadlines the timers got, ties by scheduling order.
        const expected = [...scheduled].sort((x, y) => x.deadline - y.deadline || x.seq - y.seq).map((x) => x.name);
        assert.deepEqual(seen, expected);
      });
    });

    it("a timer set after the last one fired still fires: each wake-up is asked for anew", async (h) => {
      await h.drive(async () => {
        const fired: number[] = [];
        for (let i = 0; i < 3; i++) {
          const done = defer();
          // Set from a promise continuation, with no turn pending: only the host's wake-up can fire it.
          const t = h.loop.timer(30, () => done.resolve());
          await done.promise;
          fired.push(t.deadline);
        }
        assert.equal(fired.length, 3);
        assert.ok(h.loop.now() >= fired[2]!);
      });
    });

    it("a cancelled timer never fires; cancel is idempotent and harmless after firing", async (h) => {
      await h.drive(async () => {
        let fired = 0;
        const a = h.loop.timer(1, () => fired++);
        assert.equal(a.pending, true);
        a.cancel();
        a.cancel();
        assert.equal(a.pending, false);
        const done = defer();
        const b = h.loop.timer(2, () => done.resolve());
        await done.promise;
        assert.equal(b.pending, false);
        b.cancel();
        assert.equal(fired, 0);
      });
    });

    it("a 0 ms timer set from a timer callback runs on a later turn", async (h) => {
      await h.drive(async () => {
        const seen: string[] = [];
        const done = defer();
        h.loop.timer(0, () => {
          seen.push("first");
          h.loop.timer(0, () => {
            seen.push("second");
            done.resolve();
          });
          h.loop.post(() => seen.push("post"));
        });
        await done.promise;
        assert.deepEqual(seen, ["first", "post", "second"]);
      });
    });

    it("a throwing callback is reported and the others still run", async (h) => {
      await h.drive(async () => {
        const seen: number[] = [];
        const done = defer();
        h.loop.post(() => seen.push(1));
        h.loop.post(() => {
          throw new Error("boom");
        });
        h.loop.post(() => seen.push(2));
        h.loop.timer(0, () => {
          throw new Error("tick");
        });
        h.loop.timer(1, () => done.resolve());
        await done.promise;
        assert.deepEqual(seen, [1, 2]);
      });
      const errs = h.reported().map((e) => (e as Error).message).sort();
      assert.deepEqual(errs, ["boom", "tick"]);
    });

    it("a long chain of posts yields to other macrotasks (the budget)", async (h) => {
      await h.drive(async () => {
        const total = h.loop.budget * 20;
        let steps = 0;
        let stepsWhenOtherRan = -1;
        let stepsWhenTimerRan = -1;
        const done = defer();
        const step = (): void => {
          // Asked for once the chain runs, so that it cannot have run before the chain began.
          if (steps === 0) setImmediate(() => (stepsWhenOtherRan = steps));
          if (++steps < total) h.loop.post(step);
          else done.resolve();
        };
        h.loop.post(step);
        h.loop.timer(0, () => (stepsWhenTimerRan = steps));
        await done.promise;
        assert.ok(stepsWhenOtherRan >= 0 && stepsWhenOtherRan < total, `host macrotask ran at step ${stepsWhenOtherRan}`);
        assert.ok(stepsWhenTimerRan >= 0 && stepsWhenTimerRan < total, `due timer ran at step ${stepsWhenTimerRan}`);
      });
    });

    it("promise continuations of one turn run before the next turn", async (h) => {
      await h.drive(async () => {
        const seen: string[] = [];
        const settled = defer();
        const next = defer();
        void settled.promise.then(() => seen.push("continuation"));
        // The first `budget` posts make one turn; the last post is the next turn's.
        h.loop.post(() => settled.resolve());
        for (let i = 1; i < h.loop.budget; i++) h.loop.post(() => {});
        h.loop.post(() => {
          seen.push("next turn");
          next.resolve();
        });
        await next.promise;
        assert.deepEqual(seen, ["continuation", "next turn"], "the host ran two turns without letting microtasks run between them");
      });
    });

    it("cooperate() lets `budget` ready steps pass, then yields a turn", async (h) => {
      await h.drive(async () => {
        let n = 0;
        let y: Promise<void> | undefined;
        while ((y = h.loop.cooperate()) === undefined) n++;
        assert.ok(n <= h.loop.budget && n > 0, `yielded after ${n} steps`);
        let posted = false;
        h.loop.post(() => (posted = true));
        await y;
        assert.equal(posted, true, "the yield waited for a loop turn");
      });
    });

    it("unknown schemes and bad URLs fail with coded errors", async (h) => {
      await assert.rejects(h.loop.connect("nope://x"), (e) => isTilthError(e, "ERR_UNKNOWN_SCHEME"));
      await assert.rejects(h.loop.listen("not a url"), (e) => isTilthError(e, "ERR_INVALID_URL"));
    });

    it("delays: 0 or less runs on a coming turn, Infinity never fires, NaN and non-numbers are refused", async (h) => {
      await h.drive(async () => {
        const seen: string[] = [];
        const done = defer();
        const before = h.loop.now();
        const neg = h.loop.timer(-50, () => seen.push("negative"));
        assert.ok(neg.deadline >= before && neg.deadline <= h.loop.now(), "a negative delay is due now, not in the past");
        h.loop.timer(-Infinity, () => seen.push("-Infinity"));
        const never = h.loop.timer(Infinity, () => seen.push("Infinity"));
        assert.equal(never.pending, false, "an infinite timer is inert");
        assert.equal(never.deadline, Infinity);
        never.cancel();
        for (const bad of [NaN, "10", undefined, 10n]) {
          assert.throws(() => h.loop.timer(bad as number, () => seen.push(`bad ${String(bad)}`)), RangeError, `timer(${String(bad)})`);
        }
        h.loop.timer(5, () => done.resolve());
        await done.promise;
        assert.deepEqual(seen, ["negative", "-Infinity"]);
      });
    });

    it("a timer beyond 2^31-1 ms stays pending until its deadline, and does not wake the host every millisecond", async (h) => {
      let overflows = 0;
      const onWarning = (w: Error): void => {
        if (w.name === "TimeoutOverflowWarning") overflows++;
      };
      process.on("warning", onWarning);
      try {
        await h.drive(async () => {
          let fired = 0;
          const before = h.loop.now();
          const far = h.loop.timer(3e9, () => fired++);
          assert.ok(far.deadline >= before + 3e9, "the deadline is the one asked for, not a clamped one");
          const done = defer();
          h.loop.timer(40, () => done.resolve());
          await done.promise;
          assert.equal(fired, 0);
          assert.equal(far.pending, true);
          far.cancel();
        });
        await new Promise<void>((r) => setImmediate(r)); // warnings are emitted on a later tick
      } finally {
        process.off("warning", onWarning);
      }
      assert.equal(overflows, 0, "a host timer got a delay it cannot take (TimeoutOverflowWarning)");
    });

    it("many pending timers fire in order and leave the heap empty", async (h) => {
      await h.drive(async () => {
        const n = 20_000;
        const fired: number[] = [];
        const done = defer();
        let left = n / 2;
        const timers = [];
        for (let i = 0; i < n; i++) {
          const ms = (i * 7919) % 5; // 0..4 ms, interleaved
          const t = h.loop.timer(ms, () => {
            fired.push(t.deadline);
            if (--left === 0) done.resolve();
          });
          timers.push(t);
        }
        for (let i = 0; i < n; i += 2) timers[i]!.cancel();
        await done.promise;
        assert.equal(fired.length, n / 2);
        for (let i = 1; i < fired.length; i++) assert.ok(fired[i - 1]! <= fired[i]!, "fired out of deadline order");
      });
    });
  });
}
