/**
 * A counting semaphore: at most `permits` holders at once; others wait in FIFO
 * order. Acquiring a free permit completes without a host turn, under the
 * loop's cooperative budget.
 *
 * @example
 * ```ts
 * const sem = new Semaphore(loop, 4);
 * await sem.use(() => fetchOne(url)); // at most 4 fetches at a time
 * ```
 * @module
 */
import type { Loop } from "./Loop.js";
import { abortReason } from "./errors.js";
import { onAbort } from "./abort.js";
import { Ring } from "./Ring.js";
import type { WaitOptions } from "./time.js";

interface Waiter {
  resolve: () => void;
  off: () => void;
}

export class Semaphore {
  readonly loop: Loop;
  readonly permits: number;
  #free: number;
  readonly #waiters = new Ring<Waiter>(4);

  constructor(loop: Loop, permits: number) {
    if (!(permits >= 1) || !Number.isInteger(permits)) throw new RangeError(`permits must be an integer >= 1, got ${permits}`);
    this.loop = loop;
    this.permits = permits;
    this.#free = permits;
  }

  /** Permits free now. */
  get available(): number {
    return this.#free;
  }

  /** Tasks waiting for a permit. */
  get waiting(): number {
    return this.#waiters.length;
  }

  /** Take a permit if one is free, without waiting. */
  tryAcquire(): boolean {
    if (this.#free > 0 && this.#waiters.length === 0) {
      this.#free--;
      return true;
    }
    return false;
  }

  /** Take a permit, waiting in FIFO order; reject with the abort reason if `signal` aborts first. */
  acquire(options: WaitOptions = {}): Promise<void> {
    if (this.tryAcquire()) return this.loop.cooperate() ?? Promise.resolve();
    const signal = options.signal;
    if (signal?.aborted) return Promise.reject(abortReason(signal));
    return new Promise<void>((resolve, reject) => {
      const w: Waiter = { resolve, off: () => {} };
      if (signal !== undefined)
        w.off = onAbort(signal, () => {
          if (this.#waiters.removeFirst((x) => x === w)) reject(abortReason(signal));
        });
      this.#waiters.push(w);
    });
  }

  /** Give a permit back; wakes the longest waiter. */
  release(): void {
    const w = this.#waiters.shift();
    if (w !== undefined) {
      w.off();
      w.resolve(); // the permit passes straight to the waiter
      return;
    }
    if (this.#free >= this.permits) throw new RangeError("semaphore released more times than acquired");
    this.#free++;
  }

  /** Run `fn` holding a permit; the permit is released however `fn` ends. */
  async use<T>(fn: () => T | Promise<T>, options?: WaitOptions): Promise<T> {
    await this.acquire(options);
    try {
      return await fn();
    } finally {
      this.release();
    }
  }
}
