/**
 * A growable FIFO ring buffer: O(1) `push` and `shift` without `Array#shift`
 * (which is O(n) on large arrays), as in undici's `fixed-queue.js`. The
 * capacity is a power of two that doubles when full and never shrinks, so a
 * queue that reached its working size allocates nothing more. The loop's post
 * queue, channels, semaphores and the transports' send and accept queues are
 * Rings; use one for any queue on a hot path.
 *
 * It holds what it is given and no more: a bound on its length is the
 * owner's to keep (and to say, with ERR_BUSY, when it is reached).
 *
 * @example
 * ```ts
 * import { Ring } from "tilth/core";
 * const q = new Ring<string>(64);
 * q.push("a");
 * q.push("b");
 * q.shift(); // "a"
 * q.peek();  // "b"
 * q.length;  // 1
 * ```
 * @module
 */

/** A growable FIFO queue of `T` on a ring buffer; see the module doc. */
export class Ring<T> {
  #buf: (T | undefined)[];
  #head = 0;
  #len = 0;
  #mask: number;

  /** `initialCapacity` is rounded up to a power of two. */
  constructor(initialCapacity = 16) {
    let cap = 1;
    while (cap < initialCapacity) cap <<= 1;
    this.#buf = new Array<T | undefined>(cap);
    this.#mask = cap - 1;
  }

  /** Items held. */
  get length(): number {
    return this.#len;
  }

  /** Add `v` at the end. */
  push(v: T): void {
    if (this.#len === this.#buf.length) this.#grow();
    this.#buf[(this.#head + this.#len) & this.#mask] = v;
    this.#len++;
  }

  /** Remove and return the oldest item; undefined when empty. */
  shift(): T | undefined {
    if (this.#len === 0) return undefined;
    const v = this.#buf[this.#head];
    this.#buf[this.#head] = undefined;
    this.#head = (this.#head + 1) & this.#mask;
    this.#len--;
    return v;
  }

  /** The oldest item without removing it. */
  peek(): T | undefined {
    return this.#len === 0 ? undefined : this.#buf[this.#head];
  }

  /** Remove the first item for which `pred` holds; true if one was removed. O(n). */
  removeFirst(pred: (v: T) => boolean): boolean {
    for (let i = 0; i < this.#len; i++) {
      const idx = (this.#head + i) & this.#mask;
      if (pred(this.#buf[idx] as T)) {
        for (let j = i; j < this.#len - 1; j++) {
          this.#buf[(this.#head + j) & this.#mask] = this.#buf[(this.#head + j + 1) & this.#mask];
        }
        this.#buf[(this.#head + this.#len - 1) & this.#mask] = undefined;
        this.#len--;
        return true;
      }
    }
    return false;
  }

  /** Keep only the items for which `keep` holds, in order. O(n). */
  retain(keep: (v: T) => boolean): void {
    let n = 0;
    for (let i = 0; i < this.#len; i++) {
      const v = this.#buf[(this.#head + i) & this.#mask] as T;
      if (keep(v)) this.#buf[(this.#head + n++) & this.#mask] = v;
    }
    for (let i = n; i < this.#len; i++) this.#buf[(this.#head + i) & this.#mask] = undefined;
    this.#len = n;
  }

  /** Remove and return every item, oldest first. */
  drain(): T[] {
    const out: T[] = [];
    while (this.#len > 0) out.push(this.shift() as T);
    return out;
  }

  #grow(): void {
    const old = this.#buf;
    const cap = old.length * 2;
    const buf = new Array<T | undefined>(cap);
    for (let i = 0; i < this.#len; i++) buf[i] = old[(this.#head + i) & this.#mask];
    this.#buf = buf;
    this.#head = 0;
    this.#mask = cap - 1;
  }
}
