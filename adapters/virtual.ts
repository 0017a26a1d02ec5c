/// <reference types="node" preserve="true" />
/**
 * Deterministic virtual time. The clock moves only when told (`advance`,
 * `advanceTo`, `runAll`) or, inside `run()`, by jumping straight to the next
 * timer whenever every task waits on time (Trio's autojump clock with a
 * threshold of 0). Posted callbacks and due timers still run on their own, on
 * real macrotask turns, so promise continuations settle between firings.
 *
 * Errors thrown by callbacks go to `onError` when given; otherwise they are
 * collected and rethrown by the next `advance`/`run`. If timers wait while nobody advances time for a while of
 * real time, a `TILTH_VIRTUAL_STALL` process warning says so: a test that
 * awaits a virtual sleep without advancing would otherwise hang silently.
 *
 * @example
 * ```ts
 * const loop = new VirtualLoop();
 * await loop.run(async () => {
 *   await sleep(loop, 60_000);      // one virtual minute, a few real µs
 *   assert.equal(loop.now(), 60_000);
 * });
 * ```
 * @module
 */
import { LoopBase, type LoopOptions } from "../core/LoopBase.js";
import { BusyError, ScopeError, TilthError, formatMs } from "../core/errors.js";

export interface VirtualLoopOptions extends LoopOptions {
  /** Virtual time at start, in ms. Default 0. */
  start?: number;
  // wallOrigin (LoopOptions): wallTime() at virtual time 0; default 2000-01-01T00:00:00Z, so log lines are stable.
  /** Real ms with timers waiting and time standing still before a stall warning. Default 2000; 0 turns it off. */
  stallWarningMs?: number;
}

export interface RunOptions {
  /** Real ms `run` waits while nothing is scheduled before it declares a deadlock. Default 1000. */
  deadlockMs?: number;
  /** Virtual ms `run` may advance before it gives up (a task that never ends on a periodic timer). Default 24 h. */
  timeLimit?: number;
}

/** `run()` found the body waiting on something that can never happen. */
export class DeadlockError extends TilthError {
  constructor(loopName: string, realMs: number) {
    super(
      "ERR_VIRTUAL_DEADLOCK",
      `virtual loop "${loopName}": the task waits but no timer, post or I/O happened for ${formatMs(realMs)} of real time`,
      { context: { loop: loopName, realMs } },
    );
  }
}

const realTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));
const realDelay = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

export class VirtualLoop extends LoopBase {
  #now: number;
  #errors: unknown[] = [];
  #driving = false;
  #advances = 0;
  readonly #stallMs: number;
  #watchdog: NodeJS.Timeout | undefined;
  readonly #runTurn = (): void => this.runTurn();
  readonly #onError: ((error: unknown) => void) | undefined;

  constructor(options: VirtualLoopOptions = {}) {
    super({ name: "virtual", wallOrigin: Date.UTC(2000, 0, 1), ...options });
    this.#onError = options.onError;
    this.#now = options.start ?? 0;
    this.#stallMs = options.stallWarningMs ?? 2000;
  }

  now(): number {
    return this.#now;
  }

  protected requestTurn(): void {
    setImmediate(this.#runTurn);
  }

  protected wakeAt(deadline: number | undefined): void {
    if (deadline === undefined) {
      this.#clearWatchdog();
      return;
    }
    if (deadline <= this.#now) {
      // Due without advancing time (a 0 ms timer): fire on a coming turn.
      setImmediate(() => this.wake());
      return;
    }
    this.#armWatchdog();
  }

  protected override reportError(error: unknown): void {
    if (this.#onError) this.#onError(error);
    else this.#errors.push(error);
  }

  /** Errors thrown by callbacks since the last call, removed from the loop. */
  takeErrors(): unknown[] {
    const e = this.#errors;
    this.#errors = [];
    return e;
  }

  /** Run posts and due timers until nothing is ready; time does not move. */
  async runUntilIdle(): Promise<void> {
    await this.#settle();
    this.#throwErrors();
  }

  /** Move time forward by `ms`, firing every timer due on the way, in order. */
  async advance(ms: number): Promise<void> {
    await this.advanceTo(this.#now + Math.max(0, ms));
  }

  /** Move time forward to `target`, firing every timer due on the way, in order. */
  async advanceTo(target: number): Promise<void> {
    this.#enter();
    try {
      await this.#advanceTo(target);
    } finally {
      this.#driving = false;
    }
    this.#throwErrors();
  }

  /**
   * Fire every pending timer, advancing time to each in turn, until none is
   * left. Throws after `limit` firings (a timer that re-arms itself forever).
   */
  async runAll(limit = 100_000): Promise<void> {
    this.#enter();
    try {
      for (let fired = 0; ; fired++) {
        await this.#settle();
        const next = this.nextDeadline();
        if (next === undefined) break;
        if (fired >= limit) throw new TilthError("ERR_VIRTUAL_LIMIT", `runAll fired ${limit} timers and timers remain`);
        this.#jump(next);
      }
    } finally {
      this.#driving = false;
    }
    this.#throwErrors();
  }

  /**
   * Run `body` with auto-advance: whenever everything waits on time, jump to
   * the next timer. Resolves with the body's result; rejects with its error,
   * with an error a callback threw, or with DeadlockError when the body waits
   * on nothing that can happen.
   */
  async run<T>(body: () => T | Promise<T>, options: RunOptions = {}): Promise<T> {
    const deadlockMs = options.deadlockMs ?? 1000;
    const until = this.#now + (options.timeLimit ?? 24 * 3600_000);
    this.#enter();
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
    try {
      while (!done) {
        await this.#settle();
        if (done) break;
        if (this.#errors.length > 0) break;
        const next = this.nextDeadline();
        if (next !== undefined) {
          if (next > until) throw new TilthError("ERR_VIRTUAL_LIMIT", `run() passed its time limit of ${formatMs(options.timeLimit ?? 24 * 3600_000)} of virtual time`);
          this.#jump(next);
          continue;
        }
        // Nothing scheduled: real I/O may still be on its way. Poll a while.
        const started = this.#advances;
        let waited = 0;
        while (!done && this.nextDeadline() === undefined && this.pendingPosts === 0 && waited < deadlockMs) {
          await realDelay(5);
          waited += 5;
        }
        if (!done && waited >= deadlockMs && started === this.#advances && this.nextDeadline() === undefined) {
          throw new DeadlockError(this.name, deadlockMs);
        }
      }
    } finally {
      this.#driving = false;
    }
    this.#throwErrors();
    if (failure) throw failure.error;
    return value as T;
  }

  #enter(): void {
    if (this.#driving) throw new BusyError("the virtual loop is already being advanced");
    this.#driving = true;
  }

  async #advanceTo(target: number): Promise<void> {
    for (;;) {
      await this.#settle();
      const next = this.nextDeadline();
      if (next === undefined || next > target) break;
      this.#jump(next);
    }
    if (target > this.#now) {
      this.#now = target;
      this.#advances++;
    }
    await this.#settle();
  }

  /**
   * Set the clock to `t` (never backwards) and run a turn there, as the host's
   * wake-up would: the wake-up asked for is used up, so the next timer asks
   * for a new one.
   */
  #jump(t: number): void {
    if (t > this.#now) {
      this.#now = t;
      this.#advances++;
    }
    this.wake();
  }

  /** Let real turns run until no post is queued and no timer is due. */
  async #settle(): Promise<void> {
    do {
      await realTurn();
    } while (this.pendingPosts > 0 || (this.nextDeadline() ?? Infinity) <= this.#now);
  }

  #throwErrors(): void {
    const errors = this.takeErrors();
    if (errors.length === 1) throw errors[0];
    if (errors.length > 1) throw new ScopeError(errors);
  }

  #armWatchdog(): void {
    if (this.#stallMs <= 0 || this.#watchdog !== undefined) return;
    const seen = this.#advances;
    this.#watchdog = setTimeout(() => {
      this.#watchdog = undefined;
      if (this.nextDeadline() === undefined) return;
      if (this.#advances === seen && !this.#driving) {
        process.emitWarning(
          `virtual loop "${this.name}": ${this.pendingTimers} timer(s) wait (next at ${formatMs(this.nextDeadline() ?? 0)}) ` +
            `but time has not advanced for ${formatMs(this.#stallMs)} of real time; call advance()/runAll() or use run()`,
          { code: "TILTH_VIRTUAL_STALL" },
        );
      }
      this.#armWatchdog();
    }, this.#stallMs);
    this.#watchdog.unref();
  }

  #clearWatchdog(): void {
    if (this.#watchdog !== undefined) {
      clearTimeout(this.#watchdog);
      this.#watchdog = undefined;
    }
  }
}
