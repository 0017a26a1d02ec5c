/**
 * `toRxScheduler(loop)`: an RxJS SchedulerLike whose clock is `loop.now()` and
 * whose actions run as loop posts (delay <= 0) or loop timers (delay > 0).
 * Internal module; its public surface is adapters/rxjs.ts.
 */
import type { SchedulerAction, SchedulerLike, Subscription } from "rxjs";
import { rx } from "./rx.js";
import type { Loop, Timer } from "../../core/Loop.js";
import { Ring } from "../../core/Ring.js";

type Work<T> = (this: SchedulerAction<T>, state?: T) => void;

/**
 * An RxJS scheduler running on a tilth {@link Loop}. Get one with
 * {@link toRxScheduler}; pass it wherever an RxJS operator takes a scheduler.
 *
 * A delay of 0 (or less, or NaN) runs the action on a coming loop turn through
 * `loop.post`, so bursts of actions are batched under the loop's budget and a
 * reschedule chain never touches a host timer. A positive delay uses one loop
 * timer, which unsubscribing cancels. An Infinity delay never runs.
 */
export class LoopScheduler implements SchedulerLike {
  readonly loop: Loop;
  /**
   * Actions posted to the loop, one entry per `loop.post(this.#runNext)`, in
   * the same FIFO order: a post needs no closure per action, so a delay-0
   * schedule allocates only the action itself, and a reschedule nothing.
   */
  readonly #ready = new Ring<LoopAction<any>>(64);
  readonly #runNext = (): void => LoopAction.runPosted(this.#ready.shift()!);

  constructor(loop: Loop) {
    this.loop = loop;
  }

  now(): number {
    return this.loop.now();
  }

  schedule<T>(work: Work<T>, delay: number = 0, state?: T): Subscription {
    return new LoopAction<T>(this, work).schedule(state, delay);
  }

  /** @internal Queue `action` for a coming turn. */
  _post(action: LoopAction<any>): void {
    this.#ready.push(action);
    this.loop.post(this.#runNext);
  }
}

/**
 * One scheduled unit of work. Like every RxJS action it is its own
 * Subscription and may reschedule itself from its work (`this.schedule(s, d)`),
 * reusing the same object: a delay-0 reschedule costs two ring pushes.
 */
class LoopAction<T> extends rx.Subscription implements SchedulerAction<T> {
  readonly #scheduler: LoopScheduler;
  #work: Work<T> | undefined;
  #state: T | undefined;
  #timer: Timer | undefined;
  #onTimer: (() => void) | undefined;
  /** Entries of this action in the scheduler's ready ring (stale ones are skipped). */
  #queued = 0;
  /** The latest schedule() asked for a post (as opposed to a timer, or nothing). */
  #posted = false;

  constructor(scheduler: LoopScheduler, work: Work<T>) {
    super();
    this.#scheduler = scheduler;
    this.#work = work;
  }

  schedule(state?: T, delay: number = 0): Subscription {
    if (this.closed) return this;
    this.#state = state;
    if (this.#timer !== undefined) {
      this.#timer.cancel();
      this.#timer = undefined;
    }
    if (delay > 0) {
      this.#posted = false;
      if (delay !== Infinity) this.#timer = this.#scheduler.loop.timer(delay, (this.#onTimer ??= this.#fireTimer.bind(this)));
    } else {
      // Rescheduled while still queued: the older entry becomes stale, so the
      // action runs once, at its newer place in the queue (as a fresh action would).
      this.#posted = true;
      this.#queued++;
      this.#scheduler._post(this);
    }
    return this;
  }

  /** @internal The loop reached one of `action`'s ready-ring entries. */
  static runPosted(action: LoopAction<any>): void {
    if (--action.#queued > 0 || !action.#posted) return;
    action.#run();
  }

  #fireTimer(): void {
    this.#timer = undefined;
    this.#run();
  }

  #run(): void {
    const work = this.#work;
    if (work === undefined) return;
    this.#posted = false;
    try {
      work.call(this, this.#state);
    } catch (e) {
      // As RxJS's own actions do: a throwing action is disposed of, and the
      // error goes to the loop's error reporting.
      this.unsubscribe();
      throw e;
    }
  }

  override unsubscribe(): void {
    if (this.closed) return;
    if (this.#timer !== undefined) {
      this.#timer.cancel();
      this.#timer = undefined;
    }
    this.#posted = false;
    this.#work = undefined;
    this.#state = undefined;
    this.#onTimer = undefined;
    super.unsubscribe();
  }
}

const schedulers = new WeakMap<Loop, LoopScheduler>();

/**
 * The RxJS scheduler of `loop` (one per loop, created on first use).
 *
 * @example
 * ```ts
 * import { interval, take } from "rxjs";
 * import { VirtualLoop } from "tilth/adapters/virtual";
 * import { toRxScheduler } from "tilth/adapters/rxjs";
 *
 * const loop = new VirtualLoop();
 * const rx = toRxScheduler(loop);
 * interval(1000, rx).pipe(take(3)).subscribe((n) => console.log(n, loop.now()));
 * await loop.runAll(); // 0 1000, 1 2000, 2 3000: in microseconds of real time
 * ```
 */
export function toRxScheduler(loop: Loop): LoopScheduler {
  let s = schedulers.get(loop);
  if (s === undefined) {
    s = new LoopScheduler(loop);
    schedulers.set(loop, s);
  }
  return s;
}
