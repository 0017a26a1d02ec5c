/**
 * Many deadlines that mostly never fire, for the price of one timer.
 *
 * RPC gives every call a time limit, and almost every call ends long before
 * it. A loop timer per call costs a heap insert, a heap removal and a host
 * wake-up adjustment each time. When limits are equal (the usual case: one
 * default timeout), deadlines arrive in increasing order, so a FIFO queue
 * holds them sorted: adding is a push, finishing is a flag, and a single loop
 * timer is armed for the oldest entry. When it fires it expires the due
 * entries and re-arms for the next. An entry whose deadline is earlier than
 * the newest queued one gets its own loop timer.
 *
 * Finished entries leave the queue early: from its head as soon as they
 * finish, and by a compaction when more than three quarters of a large queue
 * has finished (one slow call at the head must not keep the entries of every
 * call behind it alive until its deadline: at many calls a second, those would
 * survive into the old generation and cost the garbage collector dearly).
 *
 * @example
 * ```ts
 * const deadlines = new Deadlines<Call>(loop, (call) => call.fail(new TimeoutError(30_000)));
 * const d = deadlines.add(30_000, call);
 * // ... the call ends in time:
 * d.cancel();
 * ```
 * @module
 */
import type { Loop, Timer } from "./Loop.js";
import { Ring } from "./Ring.js";

/** A pending deadline; cancel it when the work ends in time. */
export interface Deadline {
  /** Loop time at which it expires. */
  readonly at: number;
  /** Whether it is still pending. */
  readonly pending: boolean;
  /** It will not fire. Idempotent. */
  cancel(): void;
}

class Entry<T> implements Deadline {
  at: number;
  item: T | undefined;
  timer: Timer | undefined = undefined;
  /** For an entry with a timer of its own: the set that tracks it. */
  own: Set<Entry<T>> | undefined = undefined;
  /** For a queued entry: the Deadlines whose queue holds it. */
  readonly owner: Deadlines<T> | undefined;
  constructor(at: number, item: T, owner: Deadlines<T> | undefined) {
    this.at = at;
    this.item = item;
    this.owner = owner;
  }
  get pending(): boolean {
    return this.item !== undefined;
  }
  cancel(): void {
    if (this.item === undefined) return;
    this.item = undefined;
    if (this.owner !== undefined) this.owner._finished();
    else if (this.timer !== undefined) {
      this.timer.cancel();
      this.timer = undefined;
      this.own?.delete(this);
    }
  }
}

const isPending = (e: { readonly item: unknown }): boolean => e.item !== undefined;

/** Deadlines of items of one kind, all expiring through one callback (no closure per item). */
export class Deadlines<T> {
  readonly #loop: Loop;
  readonly #expire: (item: T) => void;
  readonly #queue = new Ring<Entry<T>>(16);
  readonly #own = new Set<Entry<T>>();
  #timer: Timer | undefined;
  #armedAt = Infinity;
  /** Inside #fire: an add() from an expiry callback must not arm a second timer. */
  #firing = false;
  #last = -Infinity;
  /** Queued entries still pending. */
  #live = 0;

  constructor(loop: Loop, expire: (item: T) => void) {
    this.#loop = loop;
    this.#expire = expire;
  }

  /** Entries queued (finished ones are dropped lazily). */
  get size(): number {
    return this.#queue.length;
  }

  /**
   * Expire `item` in `ms` of loop time unless cancelled first. `now` is the
   * loop's time, for a caller that has just read it. 0 or less: on a coming
   * turn; `Infinity`: never (the entry costs no timer and keeps no place in
   * the queue); NaN: a RangeError.
   */
  add(ms: number, item: T, now: number = this.#loop.now()): Deadline {
    if (ms !== ms) throw new RangeError("Deadlines.add: the time limit must be a number of ms, got NaN");
    if (ms === Infinity) return new Entry(Infinity, item, undefined);
    const at = now + (ms > 0 ? ms : 0);
    if (at < this.#last) {
      const e = new Entry(at, item, undefined);
      // Out of order: a timer of its own keeps the queue sorted.
      e.own = this.#own;
      this.#own.add(e);
      e.timer = this.#loop.timer(at - this.#loop.now(), () => {
        e.timer = undefined;
        this.#own.delete(e);
        const x = e.item;
        e.item = undefined;
        if (x !== undefined) this.#expire(x);
      });
      return e;
    }
    this.#last = at;
    const e = new Entry(at, item, this);
    this.#queue.push(e);
    this.#live++;
    if (!this.#firing) {
      if (this.#timer === undefined) this.#arm(at);
      else if (at < this.#armedAt) {
        // The queue had emptied while its timer stayed armed for a later deadline.
        this.#timer.cancel();
        this.#arm(at);
      }
    }
    return e;
  }

  /** @internal a queued entry finished before its deadline */
  _finished(): void {
    this.#live--;
    const q = this.#queue;
    while (q.length > 0 && q.peek()!.item === undefined) q.shift();
    // Empty: any deadline may queue next (the timer stays armed; add() re-arms it earlier if need be).
    if (q.length === 0) this.#last = -Infinity;
    else if (q.length > 64 && q.length > 4 * this.#live) q.retain(isPending);
  }

  /** Cancel every pending deadline and the timer. */
  clear(): void {
    for (const e of this.#queue.drain()) e.cancel();
    for (const e of [...this.#own]) e.cancel();
    this.#timer?.cancel();
    this.#timer = undefined;
    this.#armedAt = Infinity;
    this.#last = -Infinity;
    this.#live = 0;
  }

  #arm(at: number): void {
    this.#armedAt = at;
    this.#timer = this.#loop.timer(at - this.#loop.now(), this.#fire);
  }

  readonly #fire = (): void => {
    this.#firing = true;
    try {
      this.#drainDue();
    } finally {
      this.#firing = false;
    }
  };

  #drainDue(): void {
    this.#timer = undefined;
    this.#armedAt = Infinity;
    const now = this.#loop.now();
    const q = this.#queue;
    for (;;) {
      const e = q.peek();
      if (e === undefined) {
        this.#last = -Infinity;
        return;
      }
      if (e.item === undefined) {
        q.shift();
        continue;
      }
      if (e.at > now) {
        this.#arm(e.at);
        return;
      }
      q.shift();
      const x = e.item;
      e.item = undefined;
      this.#live--;
      this.#expire(x);
    }
  }
}
