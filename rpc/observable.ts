/**
 * Observables as stream results, without importing rxjs: a handler may return
 * an RxJS Observable (or any object with the same `subscribe` shape) and it
 * streams like an async generator. rxjs stays an optional dependency of the
 * RPC layer: the object is recognised by its shape and subscribed through
 * that shape.
 * Internal module: not part of the public API.
 */
import { Channel } from "../core/Channel.js";
import type { Loop } from "../core/Loop.js";
import { TilthError, toError } from "../core/errors.js";

/** Items an Observable result may run ahead of the client's credit. */
export const OBSERVABLE_BUFFER = 1024;

/** The subscribe side of an Observable (RxJS, or the TC39 proposal's shape). */
interface ObservableShape {
  subscribe(observer: object): { unsubscribe(): void } | undefined;
}

const OBSERVABLE_KEY: symbol | string = (Symbol as { observable?: symbol }).observable ?? "@@observable";

/**
 * Whether `v` is an Observable: RxJS's own test (`lift` and `subscribe`), or
 * the interop key `Symbol.observable` / `"@@observable"`.
 */
export function isObservableLike(v: unknown): v is ObservableShape {
  if (typeof v !== "object" || v === null) return false;
  const o = v as Record<string | symbol, unknown>;
  if (typeof o.subscribe !== "function") return false;
  return typeof o.lift === "function" || typeof o[OBSERVABLE_KEY] === "function" || typeof o["@@observable"] === "function";
}

/** An Observable emitted more items than its stream's buffer holds while the consumer had no credit. */
export class StreamOverflowError extends TilthError {
  constructor(capacity: number) {
    super("ERR_OVERFLOW", `the Observable emitted more than ${capacity} items ahead of the client's credit; the stream was ended`, { context: { capacity } });
  }
}

/**
 * A subscriber with the shape RxJS takes as its own subscriber (observer and
 * subscription at once: `closed`, `add`, `remove`, `unsubscribe`). RxJS then
 * uses it directly instead of wrapping it, so a source still emitting inside
 * `subscribe()` (`range`, `from(array)`) sees `closed` at once when the buffer
 * overflows. Other Observables just call `next`/`error`/`complete`.
 */
class Subscriber<T> {
  closed = false;
  #teardowns: (() => void)[] | undefined;
  readonly #channel: Channel<T>;
  readonly #capacity: number;

  constructor(channel: Channel<T>, capacity: number) {
    this.#channel = channel;
    this.#capacity = capacity;
  }

  next(v: T): void {
    if (this.closed) return;
    if (!this.#channel.trySend(v)) this.#end(new StreamOverflowError(this.#capacity));
  }
  error(e: unknown): void {
    this.#end(toError(e));
  }
  complete(): void {
    this.#end(undefined);
  }

  add(teardown: unknown): void {
    if (teardown === undefined || teardown === null || teardown === this) return;
    const fn =
      typeof teardown === "function" ? (teardown as () => void)
      : typeof (teardown as { unsubscribe?: unknown }).unsubscribe === "function" ? () => (teardown as { unsubscribe(): void }).unsubscribe()
      : undefined;
    if (fn === undefined) return;
    if (this.closed) fn();
    else (this.#teardowns ??= []).push(fn);
  }
  remove(_teardown: unknown): void {
    // Teardowns run once, at unsubscribe; nothing to take back early.
  }

  unsubscribe(): void {
    if (this.closed) return;
    this.closed = true;
    const ts = this.#teardowns;
    this.#teardowns = undefined;
    if (ts) for (const t of ts) t();
  }

  #end(reason: unknown): void {
    if (this.closed) return;
    this.#channel.close(reason);
    this.unsubscribe();
  }
}

/**
 * The items of `observable` as an async iterable, bounded: at most `capacity`
 * items wait for the consumer; one more ends the stream with ERR_OVERFLOW
 * (after the buffered items) and unsubscribes. Leaving the iteration early
 * unsubscribes.
 */
export function observableItems<T>(loop: Loop, observable: ObservableShape, capacity = OBSERVABLE_BUFFER): AsyncIterable<T> {
  const channel = new Channel<T>(loop, capacity);
  const sub = new Subscriber<T>(channel, capacity);
  const returned = observable.subscribe(sub);
  if (returned !== undefined && returned !== (sub as unknown)) sub.add(returned);
  return {
    [Symbol.asyncIterator]: () => ({
      next: () => channel.next(),
      return: async () => {
        sub.unsubscribe();
        channel.close();
        return { value: undefined, done: true };
      },
    }),
  };
}
