/**
 * A call in flight on the client side, for every protocol: it is both a
 * promise-like (plain results) and an async iterable (streamed results); which
 * one the server answers with decides the rest. The protocol session that owns
 * it is told when the consumer takes items (to grant credit) and when the call
 * is cancelled.
 * @module
 */
import type { Deadline } from "../core/Deadlines.js";
import type { Timer } from "../core/Loop.js";
import { abortReason } from "../core/errors.js";
import { Ring } from "../core/Ring.js";
import type { CallContext } from "./context.js";
import { ProtocolError } from "./errors.js";
import { wireMeta, type Metadata } from "./meta.js";

/** What a PendingCall needs from the protocol session that owns it. */
export interface CallOwner {
  /** The consumer took items of a stream: grant the server `n` more items and `bytes` more bytes (0 where the protocol counts items only). */
  grantCredit(call: PendingCall<any>, n: number, bytes: number): void;
  /** The caller gave up: tell the server (if the protocol can) and forget the call. */
  cancelCall(call: PendingCall<any>, reason: Error): void;
  /** The remote end, as a URL. */
  readonly peerUrl: string;
  /** The protocol's name (`drpc`, `zrpc`). */
  readonly protocol?: string | undefined;
}

/** Per-call options. */
export interface CallOptions {
  /**
   * Time limit in ms until the answer (a result, an error, or a stream's first
   * item), carried to the server as the call's deadline. Default: the client's.
   * `Infinity` means no limit.
   */
  timeout?: number;
  /** Aborting it cancels the call (the server's handler signal aborts with the reason). */
  signal?: AbortSignal;
  /** @internal the limit to name in a TimeoutError, when the timer runs on what is left of it */
  limitMs?: number | undefined;
  /** Named arguments, bound to the handler's parameters by name. */
  kwargs?: Record<string, unknown>;
  /**
   * Metadata sent with the call (auth tokens, trace context): string keys,
   * string or byte values, over the client's own `meta` (see docs/drpc.md).
   */
  meta?: Metadata;
}

/** Stream credit a call starts with: items the server may send ahead of the consumer. */
export const STREAM_WINDOW = 64;
/** The most a stream's window grows to, in items. */
export const MAX_STREAM_WINDOW = 8192;
/** Stream credit a call starts with in bytes of stream messages, where the protocol counts bytes (drpc). */
export const STREAM_WINDOW_BYTES = 256 * 1024;
/** The most a stream's window grows to, in bytes. */
export const MAX_STREAM_WINDOW_BYTES = 4 * 1024 * 1024;

const enum Settled {
  No,
  Ok,
  Failed,
}

const enum Mode {
  Unset,
  Promise,
  Stream,
}

const CALL = Symbol("tilth.rpc.call");

/**
 * What a proxy method returns: a native promise of the result (so `await`
 * takes V8's fast path), that can also be cancelled and iterated for a stream.
 */
export type CallPromise<R> = Promise<R> & AsyncIterable<unknown> & { cancel(reason?: unknown): void };

function cancelThis(this: { [CALL]: PendingCall<unknown> }, reason?: unknown): void {
  this[CALL].cancel(reason);
}
function iterateThis(this: { [CALL]: PendingCall<unknown> }): AsyncIterator<unknown> {
  return this[CALL][Symbol.asyncIterator]();
}
const noop = (): void => {};

/** The resolving functions of the promise last made by {@link capture} (no closure per call). */
let capturedResolve: ((v: any) => void) | undefined;
let capturedReject: ((e: unknown) => void) | undefined;
function capture(resolve: (v: any) => void, reject: (e: unknown) => void): void {
  capturedResolve = resolve;
  capturedReject = reject;
}

/**
 * One call in flight. It is both a promise-like (for plain results) and an
 * async iterable (for streamed results): which one the server answers with
 * decides the rest.
 */
export class PendingCall<R = unknown> implements PromiseLike<R>, AsyncIterable<unknown>, CallContext {
  readonly id: number;
  readonly method: string;
  readonly args: readonly unknown[];
  /** The time limit the caller set, ms (for error messages). */
  limitMs: number | undefined = undefined;
  #session: CallOwner | undefined;
  #promise: Promise<R> | undefined;
  #resolve: ((v: R) => void) | undefined;
  #reject: ((e: unknown) => void) | undefined;
  /** Settled: with a value, or failed; the value or error is in #value. */
  #settled = Settled.No;
  #value: unknown = undefined;
  #mode = Mode.Unset;
  /** The call's time limit: a loop timer or an entry of a session's Deadlines. */
  timer: Timer | Deadline | undefined;
  #offAbort: (() => void) | undefined;
  #signal: AbortSignal | undefined;
  #meta: Record<string, unknown> | undefined;
  // stream state
  #items: Ring<unknown> | undefined;
  #streamEnd: { error?: unknown } | undefined;
  #wake: (() => void) | undefined;
  #isStream = false;
  /** A stream's credit, from its first item (a plain call never needs it). */
  #credit: StreamCredit | undefined;

  /** @internal */
  constructor(session: CallOwner, id: number, method: string, args: readonly unknown[], signal: AbortSignal | undefined) {
    this.#session = session;
    this.id = id;
    this.method = method;
    this.args = args;
    this.#signal = signal;
  }

  /** Loop time of the call's deadline (while its timer runs). */
  get deadline(): number | undefined {
    const t = this.timer;
    return t === undefined ? undefined : "at" in t ? t.at : t.deadline;
  }

  get signal(): AbortSignal {
    return (this.#signal ??= new AbortController().signal);
  }
  get peer(): string {
    return this.#session?.peerUrl ?? "";
  }
  get meta(): Record<string, unknown> {
    return (this.#meta ??= {});
  }

  get protocol(): string | undefined {
    return this.#session?.protocol;
  }

  /** Stream items received. */
  items = 0;

  /** @internal the metadata given, before any middleware read `meta` */
  _initMeta(meta: Record<string, unknown>): void {
    this.#meta = meta;
  }

  /** @internal what of `meta` goes on the wire (undefined: nothing); throws a MetadataError over the limits */
  _wireMeta(): Metadata | undefined {
    return this.#meta === undefined ? undefined : wireMeta(this.#meta);
  }

  // ---- promise side ----

  then<A = R, B = never>(onF?: ((v: R) => A | PromiseLike<A>) | null, onR?: ((e: unknown) => B | PromiseLike<B>) | null): Promise<A | B> {
    return this.#getPromise().then(onF, onR);
  }
  catch<B = never>(onR?: ((e: unknown) => B | PromiseLike<B>) | null): Promise<R | B> {
    return this.#getPromise().catch(onR);
  }
  finally(f?: (() => void) | null): Promise<R> {
    return this.#getPromise().finally(f);
  }
  get [Symbol.toStringTag](): string {
    return "PendingCall";
  }

  /** The call as a native promise that is also cancellable and iterable. */
  asPromise(): CallPromise<R> {
    const p = this.#getPromise() as CallPromise<R> & { [CALL]: PendingCall<R> };
    p[CALL] = this;
    p.cancel = cancelThis;
    p[Symbol.asyncIterator] = iterateThis;
    return p;
  }

  #getPromise(): Promise<R> {
    if (this.#promise) return this.#promise;
    if (this.#mode === Mode.Unset) this.#mode = Mode.Promise;
    const s = this.#settled;
    if (s !== Settled.No) {
      this.#promise = s === Settled.Ok ? Promise.resolve(this.#value as R) : Promise.reject(this.#value);
      this.#promise.catch(noop);
    } else {
      this.#promise = new Promise<R>(capture);
      this.#resolve = capturedResolve;
      this.#reject = capturedReject;
      capturedResolve = capturedReject = undefined;
    }
    return this.#promise;
  }

  // ---- stream side ----

  [Symbol.asyncIterator](): AsyncIterator<unknown> {
    this.#mode = Mode.Stream;
    // Iterated rather than awaited: a failure is the iterator's to report.
    this.#promise?.catch(noop);
    return {
      next: () => {
        // An item that is there already: a settled promise, without an async function's machinery.
        const items = this.#items;
        if (items !== undefined && items.length > 0) {
          const value = items.shift();
          this.#consumed();
          return Promise.resolve({ value, done: false });
        }
        return this.#next();
      },
      return: async () => {
        this.cancel("stream abandoned by the consumer");
        return { value: undefined, done: true };
      },
    };
  }

  async #next(): Promise<IteratorResult<unknown>> {
    for (;;) {
      const items = this.#items;
      if (items !== undefined && items.length > 0) {
        const value = items.shift();
        this.#consumed();
        return { value, done: false };
      }
      const end = this.#streamEnd;
      if (end !== undefined) {
        if ("error" in end) throw end.error;
        return { value: undefined, done: true };
      }
      const s = this.#settled;
      if (s !== Settled.No && !this.#isStream) {
        // A plain result (or an error before any item).
        if (s === Settled.Failed) throw this.#value;
        throw new ProtocolError(`${this.method}() returned a single result, not a stream; await it instead`);
      }
      if (this.#credit !== undefined) this.#credit.starved = true;
      await new Promise<void>((resolve) => (this.#wake = resolve));
    }
  }

  /**
   * The consumer took an item. Credit goes back to the server in halves of
   * the window; a consumer that found the buffer empty since the last grant
   * doubles the window (up to MAX_STREAM_WINDOW items and
   * MAX_STREAM_WINDOW_BYTES), so a fast consumer gets items ahead and a slow
   * one holds at most a small window.
   */
  #consumed(): void {
    const c = this.#credit!;
    if (c.msgs !== undefined && --c.headLeft === 0) {
      c.bytesSinceGrant += c.headBytes;
      const msgs = c.msgs;
      if (msgs.length > 0) {
        c.headLeft = msgs.shift()!;
        c.headBytes = msgs.shift()!;
      } else c.headBytes = 0;
    }
    const items = ++c.consumedSinceGrant;
    if ((items >= c.window >> 1 || c.bytesSinceGrant >= c.windowBytes >> 1) && this.#streamEnd === undefined) {
      let n = items;
      let bytes = c.bytesSinceGrant;
      if (c.starved) {
        c.starved = false;
        if (c.window < MAX_STREAM_WINDOW) {
          n += c.window;
          c.window *= 2;
        }
        if (c.windowBytes < MAX_STREAM_WINDOW_BYTES) {
          bytes += c.windowBytes;
          c.windowBytes *= 2;
        }
      }
      c.consumedSinceGrant = 0;
      c.bytesSinceGrant = 0;
      this.#session?.grantCredit(this, n, bytes);
    }
  }

  #wakeUp(): void {
    const w = this.#wake;
    if (w) {
      this.#wake = undefined;
      w();
    }
  }

  /** The stream as a plain async iterable (what awaiting a streamed call gives). */
  #asIterable(): AsyncIterable<unknown> {
    this.#mode = Mode.Stream;
    return { [Symbol.asyncIterator]: () => this[Symbol.asyncIterator]() };
  }

  // ---- driven by the session ----

  /** @internal */
  _item(v: unknown): void {
    this.items++;
    if (!this.#isStream) this.#answered();
    (this.#items ??= new Ring(16)).push(v);
    this.#wakeUp();
  }

  /** @internal several items in one message of `bytes` bytes (credit is given back by the message, once all its items are taken) */
  _items(vs: readonly unknown[], bytes: number): void {
    this.items += vs.length;
    if (!this.#isStream) this.#answered();
    const items = (this.#items ??= new Ring(vs.length < 16 ? 16 : vs.length));
    for (let i = 0; i < vs.length; i++) items.push(vs[i]);
    const c = this.#credit!;
    const msgs = (c.msgs ??= new Ring(8));
    if (c.headLeft === 0) {
      c.headLeft = vs.length;
      c.headBytes = bytes;
    } else {
      msgs.push(vs.length);
      msgs.push(bytes);
    }
    this.#wakeUp();
  }

  /** The first item: the stream has answered, its time limit is over. */
  #answered(): void {
    this.timer?.cancel();
    this.timer = undefined;
    this.#becomeStream();
  }

  /** @internal */
  _end(error?: unknown): void {
    if (!this.#isStream) this.#becomeStream();
    this.#streamEnd = error === undefined ? {} : { error };
    this.#cleanup();
    this.#wakeUp();
  }

  #becomeStream(): void {
    this.#isStream = true;
    this.#credit = new StreamCredit();
    // Someone awaiting the call gets the stream to iterate.
    if (this.#mode !== Mode.Stream) this.#settle(true, this.#asIterable(), false);
  }

  /** @internal settle a plain result or an error */
  _settle(ok: boolean, v: unknown): void {
    if (this.#isStream) {
      this._end(ok ? undefined : v);
      return;
    }
    this.#cleanup();
    this.#settle(ok, v, true);
    this.#wakeUp();
  }

  #settle(ok: boolean, v: unknown, final: boolean): void {
    if (this.#settled !== Settled.No) return;
    this.#settled = ok ? Settled.Ok : Settled.Failed;
    this.#value = v;
    if (this.#resolve !== undefined) {
      if (ok) this.#resolve(v as R);
      else {
        // A call made and never awaited (fire and forget) must not turn a
        // remote failure into an unhandled rejection that ends the process.
        this.#promise!.catch(noop);
        this.#reject!(v);
      }
      this.#resolve = this.#reject = undefined;
    } else if (!ok && final && this.#mode === Mode.Unset) {
      this.#promise = Promise.reject(v);
      this.#promise.catch(noop);
    }
  }

  /** @internal */
  _watchSignal(signal: AbortSignal): void {
    const listener = (): void => this.cancel(abortReason(signal));
    signal.addEventListener("abort", listener, { once: true });
    this.#offAbort = () => signal.removeEventListener("abort", listener);
  }

  /** Cancel the call: the server's handler signal aborts; this call rejects with `reason`. */
  cancel(reason: unknown = "cancelled"): void {
    const s = this.#session;
    if (s === undefined) return;
    const error = reason instanceof Error ? reason : abortReasonOf(reason);
    s.cancelCall(this, error);
    this._settle(false, error);
  }

  #cleanup(): void {
    this.timer?.cancel();
    this.timer = undefined;
    this.#offAbort?.();
    this.#offAbort = undefined;
    this.#session = undefined;
  }
}

/** A stream's credit: the window (items, bytes) grows while the consumer waits on an empty buffer. */
class StreamCredit {
  window = STREAM_WINDOW;
  windowBytes = STREAM_WINDOW_BYTES;
  consumedSinceGrant = 0;
  bytesSinceGrant = 0;
  starved = false;
  /** Messages of items not yet all consumed, as pairs (items, bytes), where the protocol counts bytes. */
  msgs: Ring<number> | undefined = undefined;
  /** Items of the oldest such message still to consume, and its bytes. */
  headLeft = 0;
  headBytes = 0;
}

function abortReasonOf(reason: unknown): Error {
  const ac = new AbortController();
  ac.abort(reason);
  return abortReason(ac.signal);
}

/**
 * The async iterator of a call that is made later (`box` resolves to it): its
 * items once it is made; abandoned before that, it is cancelled with `cancel`.
 * Internal: shared by the client's deferred calls and the Balancer's.
 */
export function laterStream(box: Promise<{ call: AsyncIterable<unknown> }>, cancel: (reason: unknown) => void): () => AsyncIterator<unknown> {
  return () => {
    let it: AsyncIterator<unknown> | undefined;
    const get = async (): Promise<AsyncIterator<unknown>> => (it ??= (await box).call[Symbol.asyncIterator]());
    return {
      next: async () => (await get()).next(),
      return: async () => {
        if (it) return it.return!();
        cancel("stream abandoned by the consumer");
        return { value: undefined, done: true as const };
      },
    };
  };
}
