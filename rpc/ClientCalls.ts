/**
 * The client side of the call engine, shared by every protocol: one pending
 * call path. A protocol's client session keeps one {@link ClientCalls} per
 * connection, puts calls on its wire through a {@link CallSender}, and hands
 * the answers it reads back here.
 *
 * The order of a call, as on the server: `before` hooks in registration order
 * (each may return a promise, awaited before the call is sent; a throw or
 * rejection fails the call with that error, through the `error` hooks); the call is sent; on its answer
 * `after` hooks (for a stream, once it has ended) or `error` hooks run in
 * order (a hook that throws or rejects turns or replaces the call's error);
 * then the caller gets the answer. A call's time limit and signal run from
 * the moment it is made, hooks included. A call that ends without an answer
 * (cancelled, timed out, connection lost) runs its `error` hooks too.
 * @module
 */
import { Deadlines } from "../core/Deadlines.js";
import type { Loop } from "../core/Loop.js";
import { TimeoutError, abortReason } from "../core/errors.js";
import type { Middleware } from "./context.js";
import type { Metadata } from "./meta.js";
import { RemoteError, type RemoteErrorInfo } from "./errors.js";
import { IdTable } from "./internal/IdTable.js";
import { PendingCall, type CallOptions, type CallOwner } from "./PendingCall.js";

/** How a protocol puts calls on its wire. */
export interface CallSender {
  /** Send the call. Throws when it cannot be sent (not encodable, named arguments the protocol lacks). */
  sendCall(call: PendingCall<any>, kwargs: Record<string, unknown> | null, timeoutMs: number | undefined): void;
  /** The caller gave up on the call: tell the server if the protocol can. */
  cancelled(call: PendingCall<any>, reason: Error): void;
  /** The consumer took items of a stream: `n` more items, `bytes` more bytes (0 where the protocol counts items only). */
  grant(call: PendingCall<any>, n: number, bytes: number): void;
  /** The call is over, answered or not (drop protocol state such as heartbeats). */
  closed?(call: PendingCall<any>): void;
  /** The remote end, as a URL. */
  readonly peerUrl: string;
  /** The protocol's name (`drpc`, `zrpc`). */
  readonly protocol?: string;
  /**
   * The server keeps every call's deadline on this same loop and answers
   * ERR_TIMEOUT when it passes (in-process calls): the client needs no timer
   * of its own for a call it has handed over.
   */
  readonly serverKeepsDeadlines?: boolean;
}

/**
 * Why `ms` cannot be a call's time limit (undefined when it can): a limit is
 * a number of ms, `Infinity` for none. NaN or anything else is refused
 * before it reaches a timer or the wire.
 */
export function badTimeout(ms: unknown): RangeError | undefined {
  if (ms === undefined || (typeof ms === "number" && ms === ms)) return undefined;
  return new RangeError(`a call's timeout must be a number of ms (Infinity: no limit), got ${String(ms)}`);
}

function isThenable(v: unknown): v is PromiseLike<unknown> {
  return typeof v === "object" && v !== null && typeof (v as PromiseLike<unknown>).then === "function";
}

/** The calls in flight on one connection, client side. */
export class ClientCalls implements CallOwner {
  readonly #pending = new IdTable<PendingCall<any>>();
  /** Every call's time limit, on one timer (core/Deadlines). */
  readonly #deadlines: Deadlines<PendingCall<any>>;
  readonly #middleware: readonly Middleware[];
  readonly #sender: CallSender;
  #idle: Promise<void> | undefined;
  #resolveIdle: (() => void) | undefined;

  /** Metadata every call on this connection sends (the client's `meta`). */
  readonly #meta: Metadata | undefined;

  constructor(loop: Loop, middleware: readonly Middleware[], sender: CallSender, meta?: Metadata) {
    this.#middleware = middleware;
    this.#meta = meta;
    this.#sender = sender;
    this.#deadlines = new Deadlines(loop, (call) => {
      if (this.#pending.get(call.id) === call) call.cancel(new TimeoutError(call.limitMs!, `call ${call.method}`));
    });
  }

  /** Calls in flight. */
  get size(): number {
    return this.#pending.size;
  }

  /** Resolves when no call is in flight. */
  idle(): Promise<void> {
    if (this.#pending.size === 0) return Promise.resolve();
    return (this.#idle ??= new Promise<void>((resolve) => (this.#resolveIdle = resolve)));
  }

  /** A call left the table: wake `idle()` waiters when it was the last. */
  #left(call: PendingCall<any>): void {
    this.#sender.closed?.(call);
    if (this.#pending.size === 0 && this.#resolveIdle !== undefined) {
      const r = this.#resolveIdle;
      this.#resolveIdle = this.#idle = undefined;
      r();
    }
  }

  /** The table of calls in flight, by id (for a protocol's id allocator). */
  get table(): IdTable<unknown> {
    return this.#pending;
  }

  get(id: number): PendingCall<any> | undefined {
    return this.#pending.get(id);
  }

  get peerUrl(): string {
    return this.#sender.peerUrl;
  }

  get protocol(): string | undefined {
    return this.#sender.protocol;
  }

  /**
   * Make a call with id `id`. `timeoutMs` is what is left of its time limit
   * (`options.limitMs`, when given, is the limit the caller set: errors name it).
   */
  start<R>(id: number, method: string, args: readonly unknown[], timeoutMs: number | undefined, options: CallOptions | undefined): PendingCall<R> {
    if (timeoutMs === Infinity) timeoutMs = undefined; // no limit
    else if (timeoutMs !== undefined && timeoutMs < 0) timeoutMs = 0; // past already: the wire carries no negative limit
    const signal = options?.signal;
    const call = new PendingCall<R>(this, id, method, args, signal);
    const refused = signal?.aborted ? abortReason(signal) : badTimeout(timeoutMs);
    if (refused !== undefined) {
      call._settle(false, refused);
      return call;
    }
    if (timeoutMs !== undefined) call.limitMs = options?.limitMs ?? timeoutMs;
    const meta = options?.meta;
    if (meta !== undefined || this.#meta !== undefined) call._initMeta({ ...this.#meta, ...meta });
    const kwargs = options?.kwargs ?? null;
    const mw = this.#middleware;
    if (mw.length === 0) {
      this.#send(call, kwargs, timeoutMs, signal);
      return call;
    }
    // Hooks may await: the call is in flight (its limit and signal run) from now on.
    this.#pending.set(id, call);
    if (timeoutMs !== undefined) call.timer = this.#deadlines.add(timeoutMs, call);
    if (signal !== undefined) call._watchSignal(signal);
    this.#before(call, mw, 0, kwargs, timeoutMs);
    return call;
  }

  #before(call: PendingCall<any>, mw: readonly Middleware[], i: number, kwargs: Record<string, unknown> | null, timeoutMs: number | undefined): void {
    try {
      for (; i < mw.length; i++) {
        const p = mw[i]!.before?.(call);
        if (isThenable(p)) {
          const next = i + 1;
          p.then(
            () => {
              if (this.#pending.get(call.id) === call) this.#before(call, mw, next, kwargs, timeoutMs);
            },
            (e: unknown) => this.#refuse(call, e),
          );
          return;
        }
      }
    } catch (e) {
      this.#refuse(call, e);
      return;
    }
    try {
      this.#sender.sendCall(call, kwargs, timeoutMs);
    } catch (e) {
      // Every `before` hook ran: the call's outcome goes through the `error` hooks, as any failure after them does.
      if (this.#pending.get(call.id) === call) this.#done(call, false, e, false);
    }
  }

  /** A `before` hook failed: the call never reached the server; its `error` hooks run, as on a server. */
  #refuse(call: PendingCall<any>, e: unknown): void {
    if (this.#pending.get(call.id) !== call) return;
    this.#done(call, false, e, false);
  }

  /** No hooks: register and send at once. */
  #send(call: PendingCall<any>, kwargs: Record<string, unknown> | null, timeoutMs: number | undefined, signal: AbortSignal | undefined): void {
    const id = call.id;
    this.#pending.set(id, call);
    try {
      this.#sender.sendCall(call, kwargs, timeoutMs);
    } catch (e) {
      this.#pending.delete(id);
      this.#left(call);
      call._settle(false, e);
      return;
    }
    if (timeoutMs !== undefined && this.#sender.serverKeepsDeadlines !== true) call.timer = this.#deadlines.add(timeoutMs, call);
    if (signal !== undefined) call._watchSignal(signal);
  }

  /** The answer of call `id` arrived: a value (`ok`) or an error. Ignored when the call is no longer in flight. */
  settle(id: number, ok: boolean, v: unknown): void {
    const call = this.#pending.get(id);
    if (call === undefined) return; // cancelled or timed out meanwhile
    this.#done(call, ok, v, false);
  }

  /**
   * Call `id` failed on the server with `info`. A server that enforced the
   * deadline the client sent answers ERR_TIMEOUT: the caller gets its own
   * TimeoutError, naming the limit it set.
   */
  failRemote(id: number, info: RemoteErrorInfo): void {
    const call = this.#pending.get(id);
    if (call === undefined) return; // cancelled or timed out meanwhile
    const e = info.code === "ERR_TIMEOUT" && call.limitMs !== undefined ? new TimeoutError(call.limitMs, `call ${call.method}`, { cause: new RemoteError(info, call.method) }) : new RemoteError(info, call.method);
    this.#done(call, false, e, false);
  }

  /** One stream item of call `id`. */
  item(id: number, v: unknown): PendingCall<any> | undefined {
    const call = this.#pending.get(id);
    call?._item(v); // the stream has answered: its time limit is over
    return call;
  }

  /** Several stream items of call `id`, in one message of `bytes` bytes. */
  items(id: number, vs: readonly unknown[], bytes: number): void {
    this.#pending.get(id)?._items(vs, bytes);
  }

  /** The stream of call `id` ended. */
  end(id: number): void {
    const call = this.#pending.get(id);
    if (call !== undefined) this.#done(call, true, undefined, true);
  }

  /** End a call that is in flight with `error` (zrpc: its channel went silent). */
  lose(call: PendingCall<any>, error: unknown): void {
    if (this.#pending.get(call.id) === call) this.#done(call, false, error, false);
  }

  /** The connection ended: every call in flight fails with `error`. */
  endAll(error: unknown): void {
    this.#deadlines.clear();
    const calls = this.#pending.values();
    for (const c of calls) this.#done(c, false, error, false);
  }

  #done(call: PendingCall<any>, ok: boolean, v: unknown, stream: boolean): void {
    this.#pending.delete(call.id);
    this.#left(call);
    const mw = this.#middleware;
    if (mw.length === 0) {
      finish(call, ok, v, stream);
      return;
    }
    if (!ok) {
      failWithHooks(call, mw, v);
      return;
    }
    const p = runHooks(call, mw, "after", stream ? undefined : v);
    if (p === undefined) finish(call, ok, v, stream);
    else
      p.then(
        // An `after` hook that throws turns the call into its error, and the `error` hooks run.
        (r) => (r.ok ? finish(call, ok, v, stream) : failWithHooks(call, mw, r.error)),
        () => {},
      );
  }

  // ---- CallOwner (driven by PendingCall) ----

  grantCredit(call: PendingCall<any>, n: number, bytes: number): void {
    if (this.#pending.get(call.id) === call) this.#sender.grant(call, n, bytes);
  }

  cancelCall(call: PendingCall<any>, reason: Error): void {
    if (this.#pending.get(call.id) !== call) return;
    this.#pending.delete(call.id);
    this.#sender.cancelled(call, reason);
    this.#left(call);
    const mw = this.#middleware;
    if (mw.length > 0) void runHooks(call, mw, "error", reason);
  }
}

/** Fail the call with `e` after its `error` hooks (one that throws replaces the error). */
function failWithHooks(call: PendingCall<any>, mw: readonly Middleware[], e: unknown): void {
  const p = runHooks(call, mw, "error", e);
  if (p === undefined) finish(call, false, e, false);
  else
    p.then(
      (r) => finish(call, false, r.ok ? e : r.error, false),
      () => {},
    );
}

function finish(call: PendingCall<any>, ok: boolean, v: unknown, stream: boolean): void {
  if (stream && ok) call._end();
  else call._settle(ok, v);
}

type HookOutcome = { ok: true } | { ok: false; error: unknown };

/**
 * Run `after` or `error` hooks in order. Returns undefined when they all ran
 * synchronously without a throw, else a promise of the outcome: an `after`
 * hook's throw fails the call; an `error` hook's throw replaces the error.
 */
function runHooks(call: PendingCall<any>, mw: readonly Middleware[], kind: "after" | "error", v: unknown, from = 0, error?: unknown): Promise<HookOutcome> | undefined {
  for (let i = from; i < mw.length; i++) {
    const h = mw[i]![kind];
    if (h === undefined) continue;
    let p: unknown;
    try {
      p = h(call, kind === "error" && error !== undefined ? error : v);
    } catch (e) {
      if (kind === "after") return Promise.resolve({ ok: false, error: e });
      error = e;
      continue;
    }
    if (isThenable(p)) {
      const next = i + 1;
      return Promise.resolve(p).then(
        () => runHooks(call, mw, kind, v, next, error) ?? outcome(kind, error),
        (e: unknown) => (kind === "after" ? { ok: false, error: e } : runHooks(call, mw, kind, v, next, e) ?? outcome(kind, e)),
      );
    }
  }
  return error === undefined ? undefined : Promise.resolve(outcome(kind, error));
}

function outcome(kind: "after" | "error", error: unknown): HookOutcome {
  return kind === "error" && error !== undefined ? { ok: false, error } : { ok: true };
}
