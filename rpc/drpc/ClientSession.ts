/**
 * The client end of one drpc connection: call ids, pending calls, streams
 * with credit, cancellation, deadlines.
 * @internal
 */
import type { Loop, Timer } from "../../core/Loop.js";
import type { Connection } from "../../core/Transport.js";
import { ClosedError, TimeoutError, abortReason } from "../../core/errors.js";
import { Ring } from "../../core/internal/Ring.js";
import type { CallContext, Middleware } from "../context.js";
import { ProtocolError, RemoteError } from "../errors.js";
import { T, type Msg } from "./codec.js";
import { Peer, type PeerOptions } from "./Peer.js";

/** Per-call options. */
export interface CallOptions {
  /**
   * Time limit in ms until the answer (a result, an error, or a stream's first
   * item), carried to the server as the call's deadline. Default: the client's.
   */
  timeout?: number;
  /** Aborting it cancels the call (the server's handler signal aborts with the reason). */
  signal?: AbortSignal;
  /** Named arguments, bound to the handler's parameters by name. */
  kwargs?: Record<string, unknown>;
}

/** Stream credit: items the server may send ahead of the consumer. */
export const STREAM_WINDOW = 64;

const enum Mode {
  Unset,
  Promise,
  Stream,
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
  #session: ClientSession | undefined;
  #promise: Promise<R> | undefined;
  #resolve: ((v: R) => void) | undefined;
  #reject: ((e: unknown) => void) | undefined;
  #settled: { ok: boolean; v: unknown } | undefined;
  #mode = Mode.Unset;
  timer: Timer | undefined;
  #offAbort: (() => void) | undefined;
  #signal: AbortSignal | undefined;
  #meta: Record<string, unknown> | undefined;
  // stream state
  #items: Ring<unknown> | undefined;
  #streamEnd: { error?: unknown } | undefined;
  #wake: (() => void) | undefined;
  #consumedSinceGrant = 0;
  #isStream = false;

  /** @internal */
  constructor(session: ClientSession, id: number, method: string, args: readonly unknown[], signal: AbortSignal | undefined) {
    this.#session = session;
    this.id = id;
    this.method = method;
    this.args = args;
    this.#signal = signal;
  }

  /** Loop time of the call's deadline (while its timer runs). */
  get deadline(): number | undefined {
    return this.timer?.deadline;
  }

  get signal(): AbortSignal {
    return (this.#signal ??= new AbortController().signal);
  }
  get peer(): string {
    return this.#session?.conn.remoteUrl ?? "";
  }
  get meta(): Record<string, unknown> {
    return (this.#meta ??= {});
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

  #getPromise(): Promise<R> {
    if (this.#promise) return this.#promise;
    if (this.#mode === Mode.Unset) this.#mode = Mode.Promise;
    const s = this.#settled;
    if (s !== undefined) this.#promise = s.ok ? Promise.resolve(s.v as R) : Promise.reject(s.v);
    else
      this.#promise = new Promise<R>((resolve, reject) => {
        this.#resolve = resolve;
        this.#reject = reject;
      });
    return this.#promise;
  }

  // ---- stream side ----

  [Symbol.asyncIterator](): AsyncIterator<unknown> {
    if (this.#mode === Mode.Promise && !this.#isStream) throw new ClosedError(`the result of ${this.method}() is already being awaited`);
    this.#mode = Mode.Stream;
    return {
      next: () => this.#next(),
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
      if (s !== undefined) {
        // A plain result (or an error before any item).
        if (!s.ok) throw s.v;
        throw new ProtocolError(`${this.method}() returned a single result, not a stream; await it instead`);
      }
      await new Promise<void>((resolve) => (this.#wake = resolve));
    }
  }

  #consumed(): void {
    const half = STREAM_WINDOW >> 1;
    if (++this.#consumedSinceGrant >= half && this.#streamEnd === undefined) {
      this.#consumedSinceGrant = 0;
      this.#session?.trySend([T.CREDIT, this.id, half]);
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
    if (!this.#isStream) {
      // The stream has answered: its time limit is over.
      this.timer?.cancel();
      this.timer = undefined;
      this.#becomeStream();
    }
    (this.#items ??= new Ring(16)).push(v);
    this.#wakeUp();
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
    if (this.#settled !== undefined) return;
    this.#settled = { ok, v };
    if (this.#resolve !== undefined) {
      if (ok) this.#resolve(v as R);
      else this.#reject!(v);
      this.#resolve = this.#reject = undefined;
    } else if (!ok && final && this.#mode === Mode.Unset) {
      // Nobody has looked at this call yet; keep the failure from being an
      // unhandled rejection until they do.
      this.#promise = Promise.reject(v);
      this.#promise.catch(() => {});
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
    s.trySend([T.CANCEL, this.id, error.message]);
    s._forget(this.id);
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

function abortReasonOf(reason: unknown): Error {
  const ac = new AbortController();
  ac.abort(reason);
  return abortReason(ac.signal);
}

export interface ClientSessionOptions extends PeerOptions {
  middleware: readonly Middleware[];
  onGoaway(s: ClientSession): void;
  onEnded(s: ClientSession, error: Error): void;
}

export class ClientSession extends Peer {
  readonly #pending = new Map<number, PendingCall<any>>();
  #nextId = 1;
  #draining = false;
  readonly #opts: ClientSessionOptions;

  constructor(loop: Loop, conn: Connection, options: ClientSessionOptions) {
    super(loop, conn, options);
    this.#opts = options;
    this.startPeer();
    this.sendHello();
  }

  /** Whether new calls may go on this connection. */
  get usable(): boolean {
    return !this.ended && !this.#draining;
  }

  get inFlight(): number {
    return this.#pending.size;
  }

  call<R>(method: string, args: readonly unknown[], timeoutMs: number | undefined, options: CallOptions | undefined): PendingCall<R> {
    const id = this.#nextId++;
    if (this.#nextId > 0x7fffffff) this.#nextId = 1;
    const signal = options?.signal;
    const call = new PendingCall<R>(this, id, method, args, signal);
    const mw = this.#opts.middleware;
    try {
      for (let i = 0; i < mw.length; i++) mw[i]!.before?.(call);
    } catch (e) {
      call._settle(false, e);
      return call;
    }
    if (signal?.aborted) {
      call._settle(false, abortReason(signal));
      return call;
    }
    this.#pending.set(id, call);
    const kwargs = options?.kwargs ?? null;
    try {
      this.send([T.CALL, id, method, args as unknown[], kwargs, timeoutMs === undefined ? { c: STREAM_WINDOW } : { t: timeoutMs, c: STREAM_WINDOW }]);
    } catch (e) {
      this.#pending.delete(id);
      call._settle(false, e);
      return call;
    }
    if (timeoutMs !== undefined) {
      call.timer = this.loop.timer(timeoutMs, () => {
        if (!this.#pending.has(id)) return;
        call.cancel(new TimeoutError(timeoutMs, `call ${method}`));
      });
    }
    if (signal !== undefined) call._watchSignal(signal);
    return call;
  }

  /** @internal a call gave up locally */
  _forget(id: number): void {
    this.#pending.delete(id);
  }

  protected onMsg(m: Msg): void {
    if (this.peerHello === undefined) {
      if (m[0] === T.ERROR && m[1] === 0) {
        const e = new RemoteError(m[2]);
        this.fail(e);
        return;
      }
      this.acceptHello(m);
      return;
    }
    switch (m[0]) {
      case T.RESULT: {
        const call = this.#pending.get(m[1]);
        if (call === undefined) return; // cancelled or timed out meanwhile
        this.#pending.delete(m[1]);
        this.#after(call, true, m[2]);
        call._settle(true, m[2]);
        return;
      }
      case T.ERROR: {
        if (m[1] === 0) {
          this.fail(new RemoteError(m[2]));
          return;
        }
        const call = this.#pending.get(m[1]);
        if (call === undefined) return;
        this.#pending.delete(m[1]);
        const e = new RemoteError(m[2], call.method);
        this.#after(call, false, e);
        call._settle(false, e);
        return;
      }
      case T.ITEM:
        this.#pending.get(m[1])?._item(m[2]);
        return;
      case T.END: {
        const call = this.#pending.get(m[1]);
        if (call === undefined) return;
        this.#pending.delete(m[1]);
        this.#after(call, true, undefined);
        call._end();
        return;
      }
      case T.GOAWAY:
        this.#draining = true;
        this.#opts.onGoaway(this);
        if (this.#pending.size === 0) void this.conn.close();
        return;
      default:
        this.fail(new ProtocolError(`unexpected message type ${m[0]} from a server`));
    }
  }

  #after(call: PendingCall<any>, ok: boolean, v: unknown): void {
    const mw = this.#opts.middleware;
    for (let i = 0; i < mw.length; i++) {
      if (ok) mw[i]!.after?.(call, v);
      else mw[i]!.error?.(call, v);
    }
    if (this.#draining && this.#pending.size === 0) void this.conn.close();
  }

  protected onEnded(error: Error): void {
    const calls = [...this.#pending.values()];
    this.#pending.clear();
    for (const c of calls) {
      const mw = this.#opts.middleware;
      for (let i = 0; i < mw.length; i++) mw[i]!.error?.(c, error);
      c._settle(false, error);
    }
    this.#opts.onEnded(this, error);
  }

  close(): Promise<void> {
    return this.conn.close();
  }
}
