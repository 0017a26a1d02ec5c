/**
 * `loopFromRx(scheduler)`: a tilth Loop whose clock and wake-ups are an RxJS
 * scheduler, and `runVirtual` to drive one on a VirtualTimeScheduler.
 * @internal Public surface: adapters/rxjs.ts.
 */
import { performance } from "node:perf_hooks";
import type { SchedulerLike, Subscription, VirtualTimeScheduler } from "rxjs";
import { rx } from "./rx.js";
import type { Timer } from "../../core/Loop.js";
import { LoopBase, type LoopOptions } from "../../core/LoopBase.js";
import { TilthError, formatMs } from "../../core/errors.js";

export interface RxLoopOptions extends LoopOptions {
  /**
   * Delay, in scheduler milliseconds, of a turn that continues busy work: one
   * requested while a turn runs (the budget ran out, or a timer re-armed itself
   * at 0 ms), and every `budget`-th turn requested from outside a turn (a
   * promise chain that posts from microtasks). On a microtask scheduler
   * (`asapScheduler`) a delay-0 turn runs before any I/O, so without this a
   * long chain of posts would starve the host; a delay of 1 puts such a turn
   * behind the host's macrotasks. Default: 1 for `asapScheduler`, 0 for every
   * other scheduler (asyncScheduler's delay 0 is already a macrotask, and a
   * virtual scheduler must not gain time from it).
   */
  yieldDelay?: number;
  /**
   * The loop's clock, in the scheduler's milliseconds. Default: the
   * scheduler's `now()`; for `asyncScheduler` and `asapScheduler`, whose clock
   * is the wall clock at 1 ms resolution, the same wall clock read at
   * sub-millisecond resolution (`performance.timeOrigin + performance.now()`),
   * so that timers set in one burst keep their order when a millisecond
   * boundary passes between them.
   */
  clock?: () => number;
}

/** The default clock of a loop on `scheduler` (see RxLoopOptions.clock). */
function defaultClock(scheduler: SchedulerLike): () => number {
  if (scheduler === rx.asyncScheduler || scheduler === rx.asapScheduler) {
    const origin = performance.timeOrigin;
    // Inside TestScheduler.run() these schedulers tell virtual time: keep it.
    if (Math.abs(origin + performance.now() - scheduler.now()) < 1000) return () => origin + performance.now();
  }
  return () => scheduler.now();
}

/**
 * A tilth Loop on an RxJS scheduler: `now()` is the scheduler's clock (never
 * going backwards; see RxLoopOptions.clock), a turn is a scheduled action at
 * delay 0, and all timers share one scheduled action at the earliest
 * deadline, moved or cancelled as the timer heap changes. RxJS schedulers cannot unref: a pending timer that
 * was `unref()`'d still holds the scheduler's host timer (a cancelled one
 * does not: with no timer pending, the wake-up is cancelled).
 *
 * `wallTime()` is the loop's clock plus `wallOrigin`: 0 by default (RxJS's
 * real schedulers tell epoch time), 2000-01-01T00:00:00Z for a
 * VirtualTimeScheduler (whose frames start at 0). A host scheduler with a
 * clock of its own should pass `wallOrigin`.
 */
export class RxLoop extends LoopBase {
  readonly scheduler: SchedulerLike;
  readonly #yieldDelay: number;
  readonly #clock: () => number;
  #last = -Infinity;
  #wakeup: Subscription | undefined;
  /** The deadline of the scheduled wake-up. */
  #wakeDeadline: number | undefined;
  /** The deadline LoopBase last asked for (it counts on it until the wake-up fires). */
  #asked: number | undefined;
  #inTurn = false;
  /** Turns requested from outside a turn since the last delayed one. */
  #hot = 0;
  readonly #turn = (): void => {
    this.#inTurn = true;
    try {
      this.runTurn();
    } finally {
      this.#inTurn = false;
    }
  };
  readonly #wake = (): void => {
    this.#wakeup = undefined;
    this.#wakeDeadline = undefined;
    this.#asked = undefined;
    this.#inTurn = true;
    try {
      this.wake();
    } finally {
      this.#inTurn = false;
    }
  };

  constructor(scheduler: SchedulerLike, options: RxLoopOptions = {}) {
    // wallTime(): RxJS's real schedulers tell epoch time (Date.now()) already; a
    // VirtualTimeScheduler counts frames from 0, so it gets VirtualLoop's origin.
    super({ name: "rxjs", wallOrigin: scheduler instanceof rx.VirtualTimeScheduler ? Date.UTC(2000, 0, 1) : 0, ...options });
    this.scheduler = scheduler;
    this.#clock = options.clock ?? defaultClock(scheduler);
    this.#yieldDelay = options.yieldDelay ?? (scheduler === rx.asapScheduler ? 1 : 0);
  }

  now(): number {
    // A scheduler's clock may step back (Date.now() does); a Loop's may not.
    const t = this.#clock();
    if (t > this.#last) this.#last = t;
    return this.#last;
  }

  protected requestTurn(): void {
    let delay = 0;
    if (this.#yieldDelay > 0 && (this.#inTurn || ++this.#hot >= this.budget)) {
      delay = this.#yieldDelay;
      this.#hot = 0;
    }
    this.scheduler.schedule(this.#turn, delay);
  }

  protected wakeAt(deadline: number | undefined): void {
    this.#asked = deadline;
    // LoopBase keeps an early wake-up armed, only unref'd, once no timer is
    // left. An RxJS scheduler cannot unref: a kept wake-up would hold the host
    // (asyncScheduler) or move virtual time for nothing (VirtualTimeScheduler).
    // So with no timer pending the wake-up goes, and the next timer brings it
    // back (see timer()).
    this.#arm(this.pendingTimers === 0 ? undefined : deadline);
  }

  override timer(ms: number, fn: () => void): Timer {
    const t = super.timer(ms, fn);
    // LoopBase still counts on the wake-up dropped above: restore it. (When
    // this timer is earlier, LoopBase moves it in its next sync.)
    if (this.#wakeDeadline === undefined && this.#asked !== undefined && this.pendingTimers > 0) this.#arm(this.#asked);
    return t;
  }

  #arm(deadline: number | undefined): void {
    if (deadline === this.#wakeDeadline) return; // the same wake-up (only its ref changed), or none again
    if (this.#wakeup !== undefined) {
      this.#wakeup.unsubscribe();
      this.#wakeup = undefined;
    }
    this.#wakeDeadline = deadline;
    if (deadline === undefined) return;
    const ms = deadline - this.now();
    this.#wakeup = this.scheduler.schedule(this.#wake, ms > 0 ? ms : 0);
  }
}

/**
 * A tilth Loop whose clock and timers are `scheduler`: RxJS's
 * `VirtualTimeScheduler` (drive it with {@link runVirtual}), `asyncScheduler`,
 * `asapScheduler`, or a host application's own scheduler.
 *
 * @example
 * ```ts
 * import { VirtualTimeScheduler } from "rxjs";
 * import { sleep } from "tilth/core";
 * import { loopFromRx, runVirtual } from "tilth/adapters/rxjs";
 *
 * const rx = new VirtualTimeScheduler();
 * const loop = loopFromRx(rx);
 * await runVirtual(rx, async () => {
 *   await sleep(loop, 60_000);
 *   console.log(rx.now()); // 60000, at once
 * });
 * ```
 */
export function loopFromRx(scheduler: SchedulerLike, options: RxLoopOptions = {}): RxLoop {
  return new RxLoop(scheduler, options);
}

export interface RunVirtualOptions {
  /** Real ms to wait, with nothing scheduled, before declaring a deadlock. Default 1000. */
  deadlockMs?: number;
  /** Virtual ms `runVirtual` may advance before it gives up. Default 24 h. */
  timeLimit?: number;
}

const realTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));
const realDelay = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Run `body` while stepping `scheduler` one action at a time, jumping its clock
 * to the next action whenever nothing else is ready (auto-advance), with a real
 * macrotask turn between two actions so promise continuations settle and host
 * I/O gets its turn. `scheduler.flush()` instead runs every action in one
 * synchronous call: an awaiting tilth task would not resume until it returned.
 *
 * Once the body settled, the actions due at the current frame still run (time
 * does not move for them). Resolves with the body's result; rejects with its error, with
 * `ERR_VIRTUAL_DEADLOCK` when the body waits on nothing that can happen, or
 * `ERR_VIRTUAL_LIMIT` past `timeLimit`. An action that throws is disposed of
 * and its error rethrown, as `flush()` does.
 */
export async function runVirtual<T>(
  scheduler: VirtualTimeScheduler,
  body: () => T | Promise<T>,
  options: RunVirtualOptions = {},
): Promise<T> {
  const deadlockMs = options.deadlockMs ?? 1000;
  const timeLimit = options.timeLimit ?? 24 * 3600_000;
  const until = scheduler.now() + timeLimit;
  let done = false;
  let value: T | undefined;
  let failure: { error: unknown } | undefined;
  void Promise.resolve()
    .then(body)
    .then(
      (v) => {
        done = true;
        value = v;
      },
      (e: unknown) => {
        done = true;
        failure = { error: e };
      },
    );
  const actions = scheduler.actions;
  for (;;) {
    await realTurn();
    const next = actions[0];
    if (done) {
      // Settle what is due now (a loop turn requested on the way), without
      // moving time, so nothing ready is left for a later flush.
      if (next === undefined || next.delay > scheduler.frame) break;
      step(scheduler);
      continue;
    }
    if (next !== undefined) {
      if (next.delay > until) throw new TilthError("ERR_VIRTUAL_LIMIT", `runVirtual passed its time limit of ${formatMs(timeLimit)} of virtual time`);
      step(scheduler);
      continue;
    }
    // Nothing scheduled: real I/O may still be on its way. Poll a while.
    let waited = 0;
    while (!done && actions.length === 0 && waited < deadlockMs) {
      await realDelay(5);
      waited += 5;
    }
    if (!done && actions.length === 0) {
      throw new TilthError(
        "ERR_VIRTUAL_DEADLOCK",
        `runVirtual: the body waits but nothing was scheduled for ${formatMs(deadlockMs)} of real time`,
        { context: { realMs: deadlockMs } },
      );
    }
  }
  if (failure) throw failure.error;
  return value as T;
}

/** Run the first action: one step of VirtualTimeScheduler.flush(). */
function step(scheduler: VirtualTimeScheduler): void {
  // Actions are kept sorted by (due frame, scheduling order); `delay` holds the due frame.
  const action = scheduler.actions.shift()!;
  if (action.delay > scheduler.frame) scheduler.frame = action.delay;
  const error: unknown = action.execute(action.state, action.delay);
  if (error) throw error;
}
