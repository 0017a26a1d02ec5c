/**
 * A bounded channel between tasks, with backpressure: `send` waits while the
 * buffer is full, `recv` waits while it is empty. Async-iterable.
 *
 * Closing: `close()` ends the channel cleanly: senders get ClosedError,
 * receivers drain what is buffered and then see the end (iteration stops,
 * `recv` rejects with ClosedError). `close(reason)` with an Error makes the
 * receivers throw `reason` after draining, which is how a producer's failure
 * reaches the consumer.
 *
 * Ready operations complete without a host turn, under the loop's cooperative
 * budget: after `loop.budget` of them in a row one waits for a turn, so a
 * producer/consumer pair that never blocks cannot starve I/O.
 *
 * @example
 * ```ts
 * const ch = new Channel<number>(loop, 16);
 * scope.spawn(async () => { for (let i = 0; i < 100; i++) await ch.send(i); ch.close(); });
 * for await (const n of ch) console.log(n);
 * ```
 * @module
 */
import type { Loop } from "./Loop.js";
import { ClosedError, abortReason } from "./errors.js";
import { onAbort } from "./abort.js";
import { Ring } from "./Ring.js";
import type { WaitOptions } from "./time.js";
import { RESOLVED } from "./resolved.js";

interface Sender<T> {
  value: T;
  resolve: () => void;
  reject: (e: unknown) => void;
  off: () => void;
}
interface Receiver<T> {
  resolve: (r: IteratorResult<T, undefined>) => void;
  reject: (e: unknown) => void;
  off: () => void;
}


export class Channel<T> implements AsyncIterable<T> {
  readonly loop: Loop;
  readonly capacity: number;
  readonly #buf = new Ring<T>(16);
  readonly #senders = new Ring<Sender<T>>(4);
  readonly #receivers = new Ring<Receiver<T>>(4);
  #closed = false;
  #reason: unknown;

  /** `capacity` is the number of items buffered; 0 makes every send wait for a receiver. */
  constructor(loop: Loop, capacity = 64) {
    if (!(capacity >= 0) || !Number.isInteger(capacity)) throw new RangeError(`channel capacity must be an integer >= 0, got ${capacity}`);
    this.loop = loop;
    this.capacity = capacity;
  }

  /** Items buffered now. */
  get size(): number {
    return this.#buf.length;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Send without waiting: true if taken (a receiver or buffer room), false if full. Throws once closed. */
  trySend(value: T): boolean {
    if (this.#closed) throw this.#closedError("send on a closed channel");
    const r = this.#receivers.shift();
    if (r !== undefined) {
      r.off();
      r.resolve({ value, done: false });
      return true;
    }
    if (this.#buf.length < this.capacity) {
      this.#buf.push(value);
      return true;
    }
    return false;
  }

  /** Send `value`, waiting while the channel is full. Rejects with ClosedError once closed. */
  send(value: T, options?: WaitOptions): Promise<void> {
    if (this.#closed) return Promise.reject(this.#closedError("send on a closed channel"));
    if (this.trySend(value)) return this.loop.cooperate() ?? RESOLVED;
    const signal = options?.signal;
    if (signal?.aborted) return Promise.reject(abortReason(signal));
    return new Promise<void>((resolve, reject) => {
      const s: Sender<T> = { value, resolve, reject, off: noop };
      if (signal !== undefined)
        s.off = onAbort(signal, () => {
          if (this.#senders.removeFirst((x) => x === s)) reject(abortReason(signal));
        });
      this.#senders.push(s);
    });
  }

  /** Receive without waiting: `{value}` if one is ready, undefined otherwise (also when closed and drained). */
  tryRecv(): { value: T } | undefined {
    if (this.#buf.length > 0) {
      const value = this.#buf.shift() as T;
      this.#refill();
      return { value };
    }
    const s = this.#senders.shift();
    if (s !== undefined) {
      s.off();
      s.resolve();
      return { value: s.value };
    }
    return undefined;
  }

  /** Receive the next item, waiting while empty. Rejects with ClosedError (or the close reason) once closed and drained. */
  async recv(options?: WaitOptions): Promise<T> {
    const r = await this.next(options);
    if (r.done) throw this.#endError();
    return r.value;
  }

  /** Iterator step: `{done: true}` after a clean close; rejects with the close reason after `close(error)`. */
  next(options?: WaitOptions): Promise<IteratorResult<T, undefined>> {
    const ready = this.tryRecv();
    if (ready !== undefined) {
      const y = this.loop.cooperate();
      const r: IteratorResult<T, undefined> = { value: ready.value, done: false };
      return y === undefined ? Promise.resolve(r) : y.then(() => r);
    }
    if (this.#closed) return this.#reason instanceof Error ? Promise.reject(this.#reason) : Promise.resolve(DONE);
    const signal = options?.signal;
    if (signal?.aborted) return Promise.reject(abortReason(signal));
    return new Promise<IteratorResult<T, undefined>>((resolve, reject) => {
      const r: Receiver<T> = { resolve, reject, off: noop };
      if (signal !== undefined)
        r.off = onAbort(signal, () => {
          if (this.#receivers.removeFirst((x) => x === r)) reject(abortReason(signal));
        });
      this.#receivers.push(r);
    });
  }

  /**
   * Close the channel. Pending and later sends reject with ClosedError;
   * receivers drain the buffer, then end (cleanly, or by throwing `reason` if
   * it is an Error). Idempotent: the first reason wins.
   */
  close(reason?: unknown): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#reason = reason;
    const err = this.#closedError("channel closed while sending");
    for (const s of this.#senders.drain()) {
      s.off();
      s.reject(err);
    }
    // Waiting receivers exist only when the buffer is empty.
    for (const r of this.#receivers.drain()) {
      r.off();
      if (reason instanceof Error) r.reject(reason);
      else r.resolve(DONE);
    }
  }

  [Symbol.asyncIterator](): AsyncIterator<T, undefined> {
    return {
      next: () => this.next(),
      return: async () => DONE,
    };
  }

  /** Move a waiting sender's value into the freed buffer slot. */
  #refill(): void {
    const s = this.#senders.shift();
    if (s === undefined) return;
    this.#buf.push(s.value);
    s.off();
    s.resolve();
  }

  #closedError(msg: string): ClosedError {
    return new ClosedError(msg, this.#reason === undefined ? {} : { cause: this.#reason });
  }

  #endError(): unknown {
    return this.#reason instanceof Error ? this.#reason : this.#closedError("channel closed");
  }
}

const DONE: IteratorResult<never, undefined> = Object.freeze({ value: undefined, done: true }) as IteratorResult<never, undefined>;

function noop(): void {}
