/**
 * Channels and async iterables to Observables and back.
 * Internal module; its public surface is adapters/rxjs.ts, its semantics docs/rxjs.md.
 */
import type { Observable, Observer, Subscription } from "rxjs";
import { rx } from "./rx.js";
import { Channel } from "../../core/Channel.js";
import type { Loop } from "../../core/Loop.js";
import { TilthError, abortReason, toError } from "../../core/errors.js";
import { onAbort } from "../../core/abort.js";

/** What an Observable-turned-channel does with an item that finds its buffer full. */
export type OverflowPolicy = "error" | "drop-newest" | "drop-oldest";

/** An Observable emitted faster than its channel's consumer read, under the `"error"` policy. */
export class OverflowError extends TilthError {
  readonly capacity: number;
  constructor(capacity: number) {
    super("ERR_OVERFLOW", `observable emitted into a full channel (capacity ${capacity}, overflow "error")`, {
      context: { capacity },
    });
    this.capacity = capacity;
  }
}

export interface ToObservableOptions {
  /**
   * For a Channel source: close the channel when the last item was not wanted
   * (the subscriber unsubscribed), so its producer's `send` rejects with
   * ClosedError and the producer stops. Default true. With false the channel
   * stays open and no item is lost: a pending receive is withdrawn.
   */
  close?: boolean;
  /**
   * Take items from an async iterable under this loop's cooperative budget,
   * so an iterable whose items are always ready cannot starve I/O. (A Channel
   * source already does this on its own loop.)
   */
  loop?: Loop;
}

/** A source of items for {@link toObservable}. */
export type ObservableSource<T> = Channel<T> | AsyncIterable<T> | ((signal: AbortSignal) => AsyncIterable<T>);

/**
 * An Observable of the items of a Channel or an async iterable.
 *
 * - Pull, one item at a time: the next item is asked for once the subscriber's
 *   `next` handler returned, so a producer runs only as fast as it is consumed
 *   (its own backpressure: a channel's `send` waits while the channel is full).
 * - Completion and errors flow down: the end of the iterable completes the
 *   Observable, a throw (or `channel.close(error)`) errors it.
 * - Unsubscribing cancels the producer: an iterator's `return()` is called, so
 *   a generator's `finally` runs; a Channel is closed (see `close`); a source
 *   given as `(signal) => iterable` also sees `signal` abort. An async
 *   generator suspended at an `await` handles `return()` when that await
 *   settles (JavaScript queues it); a signal stops it sooner.
 * - Each subscription iterates anew: a function source is called per
 *   subscription; a generator object can be iterated by one subscription only;
 *   subscriptions to one Channel share its items between them.
 *
 * @example
 * ```ts
 * async function* ticks(signal: AbortSignal) {
 *   try { for (let i = 0; ; i++) { await sleep(loop, 1000, { signal }); yield i; } }
 *   finally { console.log("producer stopped"); }
 * }
 * toObservable(ticks).pipe(take(3)).subscribe(console.log); // 0 1 2 "producer stopped"
 * ```
 */
export function toObservable<T>(source: ObservableSource<T>, options: ToObservableOptions = {}): Observable<T> {
  return new rx.Observable<T>((subscriber) => {
    const ac = new AbortController();
    let iterator: AsyncIterator<T> | undefined;
    let finished = false;
    const isChannel = source instanceof Channel;

    const pump = async (): Promise<void> => {
      const cooperative = options.loop;
      try {
        if (isChannel) {
          const ch = source as Channel<T>;
          for (;;) {
            const r = await ch.next({ signal: ac.signal });
            if (subscriber.closed) return;
            if (r.done) break;
            subscriber.next(r.value);
            if (subscriber.closed) return;
          }
        } else {
          const it = (iterator =
            typeof source === "function" ? source(ac.signal)[Symbol.asyncIterator]() : (source as AsyncIterable<T>)[Symbol.asyncIterator]());
          for (;;) {
            const r = await it.next();
            if (subscriber.closed) return;
            if (r.done) break;
            subscriber.next(r.value);
            if (subscriber.closed) return;
            const y = cooperative?.cooperate();
            if (y !== undefined) await y;
            if (subscriber.closed) return;
          }
        }
        finished = true;
        subscriber.complete();
      } catch (e) {
        finished = true;
        if (!subscriber.closed) subscriber.error(e);
      }
    };
    void pump();

    return () => {
      if (finished) return;
      ac.abort(new TilthError("ERR_CANCELLED", "observable unsubscribed"));
      if (isChannel) {
        if (options.close ?? true) (source as Channel<T>).close();
      } else if (iterator?.return !== undefined) {
        // The producer's own cleanup failing is not the consumer's business:
        // it already left. Swallow, so no unhandled rejection.
        iterator.return().then(undefined, () => {});
      }
    };
  });
}

export interface FromObservableOptions {
  /** Items buffered while the consumer is slower than the Observable. Default 64. */
  capacity?: number;
  /** What happens to an item that finds the buffer full. Default `"error"`. */
  overflow?: OverflowPolicy;
  /** Aborting unsubscribes and closes the channel with the abort reason. */
  signal?: AbortSignal;
}

/**
 * The channel returned by {@link fromObservable}: a tilth Channel fed by a
 * subscription, which closing the channel (or leaving a `for await` loop early)
 * unsubscribes.
 */
export class ObservableChannel<T> extends Channel<T> {
  readonly overflow: OverflowPolicy;
  #sub: Subscription | undefined;
  #ended = false;
  #dropped = 0;
  #offAbort: () => void = noop;

  constructor(loop: Loop, observable: Observable<T>, options: FromObservableOptions = {}) {
    super(loop, options.capacity ?? 64);
    this.overflow = options.overflow ?? "error";
    if (this.overflow !== "error" && this.overflow !== "drop-newest" && this.overflow !== "drop-oldest") {
      throw new RangeError(`unknown overflow policy ${JSON.stringify(this.overflow)}`);
    }
    const signal = options.signal;
    if (signal?.aborted) {
      this.close(abortReason(signal));
      return;
    }
    // The sink is its own subscription, so an item that overflows can stop a
    // source that is still emitting synchronously inside subscribe() (range,
    // from(array)): RxJS sources check their subscriber's `closed`.
    const sink = (this.#sub = new Sink<T>(
      (v) => this.#push(v),
      (e) => this.#end(toError(e)),
      () => this.#end(undefined),
    ));
    if (signal !== undefined) this.#offAbort = onAbort(signal, () => this.close(abortReason(signal)));
    observable.subscribe(sink);
  }

  /** Items dropped by the `"drop-newest"`/`"drop-oldest"` policies so far. */
  get dropped(): number {
    return this.#dropped;
  }

  /** Close the channel and unsubscribe from the Observable. Idempotent. */
  override close(reason?: unknown): void {
    this.#end(reason);
  }

  override [Symbol.asyncIterator](): AsyncIterator<T, undefined> {
    return {
      next: () => this.next(),
      // Leaving a for-await loop early: the consumer wants no more.
      return: async () => {
        this.close();
        return { value: undefined, done: true };
      },
    };
  }

  #push(value: T): void {
    if (this.#ended) return;
    if (this.trySend(value)) return;
    switch (this.overflow) {
      case "drop-newest":
        this.#dropped++;
        return;
      case "drop-oldest":
        this.#dropped++;
        // With capacity 0 nothing older is buffered: the new item goes.
        if (this.tryRecv() !== undefined) this.trySend(value);
        return;
      default:
        this.#end(new OverflowError(this.capacity));
    }
  }

  #end(reason: unknown): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#offAbort();
    super.close(reason);
    const sub = this.#sub;
    this.#sub = undefined;
    sub?.unsubscribe();
  }
}

/**
 * A Channel of the items an Observable emits. The subscription starts at once.
 *
 * - Bounded: at most `capacity` items wait for the consumer; an item that finds
 *   the buffer full follows `overflow`: `"error"` (default) ends the stream with
 *   an OverflowError (`ERR_OVERFLOW`) after the buffered items, and
 *   unsubscribes; `"drop-newest"` drops the new item; `"drop-oldest"` drops the
 *   oldest buffered one to make room. `channel.dropped` counts drops.
 * - Completion closes the channel cleanly (iteration ends after the buffer
 *   drains); an error closes it with that error (the consumer throws it after
 *   draining).
 * - Cancellation flows up: `channel.close()`, leaving a `for await` loop early,
 *   or aborting `signal` unsubscribes from the Observable.
 *
 * @example
 * ```ts
 * const ch = fromObservable(loop, interval(100, toRxScheduler(loop)), { capacity: 8, overflow: "drop-oldest" });
 * for await (const n of ch) { if (n === 5) break; } // break unsubscribes
 * ```
 */
export function fromObservable<T>(loop: Loop, observable: Observable<T>, options: FromObservableOptions = {}): ObservableChannel<T> {
  return new ObservableChannel(loop, observable, options);
}

/**
 * An observer that is also a Subscription: RxJS then uses it as the
 * subscriber itself instead of wrapping it, so unsubscribing it is seen at
 * once by the source.
 */
class Sink<T> extends rx.Subscription implements Observer<T> {
  constructor(
    readonly next: (value: T) => void,
    readonly error: (error: unknown) => void,
    readonly complete: () => void,
  ) {
    super();
  }
}

function noop(): void {}
