/**
 * A one-shot event: tasks `wait()` until some task calls `set()`. Once set it
 * stays set (waits return at once) until `clear()`.
 *
 * @example
 * ```ts
 * const ready = new Event();
 * scope.spawn(async (t) => { await ready.wait({ signal: t.signal }); serve(); });
 * ready.set();
 * ```
 * @module
 */
import { abortReason } from "./errors.js";
import { onAbort } from "./abort.js";
import type { WaitOptions } from "./time.js";

export class Event {
  #set = false;
  #waiters = new Set<() => void>();

  get isSet(): boolean {
    return this.#set;
  }

  /** Wake every waiter; later waits return at once. Idempotent. */
  set(): void {
    if (this.#set) return;
    this.#set = true;
    const w = this.#waiters;
    this.#waiters = new Set();
    for (const wake of w) wake();
  }

  /** Make later waits block again. */
  clear(): void {
    this.#set = false;
  }

  /** Resolve when set; reject with the abort reason if `signal` aborts first. */
  wait(options: WaitOptions = {}): Promise<void> {
    if (this.#set) return Promise.resolve();
    const signal = options.signal;
    if (signal?.aborted) return Promise.reject(abortReason(signal));
    return new Promise<void>((resolve, reject) => {
      const wake = (): void => {
        off();
        resolve();
      };
      const off = onAbort(signal, () => {
        this.#waiters.delete(wake);
        reject(abortReason(signal!));
      });
      this.#waiters.add(wake);
    });
  }
}
