/**
 * The server side of the call engine, shared by every protocol: dispatch,
 * argument binding, middleware (sync or async), deadlines, cancellation, the
 * credit-based stream pump (async iterables and Observables alike), errors,
 * and draining. A protocol's server session keeps one {@link ServerCalls} per
 * connection and supplies a {@link CallWire}: how an answer looks on its wire.
 *
 * The order of a call, the same for every protocol:
 * 1. refusals, answered at once without hooks: the server is closing
 *    (ERR_UNAVAILABLE), too many calls on the connection (ERR_BUSY), unknown
 *    method (ERR_UNKNOWN_METHOD), arguments that do not bind (ERR_BAD_ARGUMENTS);
 * 2. `before` hooks, in registration order (each may return a promise, which
 *    is awaited; a throw or rejection refuses the call with that error);
 * 3. the handler;
 * 4. on success `after` hooks in order (for a stream: once it has ended), on
 *    failure `error` hooks in order; a hook that throws or rejects turns the
 *    call into that error (and its `error` hooks run);
 * 5. the call leaves the connection's table (its signal aborts if it failed by
 *    its deadline), then the answer is sent.
 * A call's first outcome wins: a cancel, deadline or lost connection that
 * comes while hooks run ends the call, and nothing more is sent for it.
 * @module
 */
import { Deadlines, type Deadline } from "../core/Deadlines.js";
import type { Loop } from "../core/Loop.js";
import type { PeerIdentity } from "../core/Transport.js";
import { checkMeta, MetadataError } from "./meta.js";
import { BusyError, CancelledError, TilthError, TimeoutError, excerpt, type TilthErrorOptions } from "../core/errors.js";
import { bindArguments, type ExposedMethod } from "./api.js";
import type { CallContext, Middleware } from "./context.js";
import { IdTable } from "./internal/IdTable.js";
import { isObservableLike, observableItems } from "./observable.js";
import type { ServerCore } from "./protocol.js";
import { outcomeCode, type MethodStats } from "./stats.js";
import { BadArgumentsIssues } from "./validate.js";

/** The method is not served here. `context.method` names it. */
export class UnknownMethodError extends TilthError {
  constructor(method: string) {
    super("ERR_UNKNOWN_METHOD", `unknown method ${excerpt(method)}`, { context: { method } });
  }
}

/** The arguments do not fit the method's parameters (or its declared schemas: `data.issues` then lists each problem's path and message). */
export class BadArgumentsError extends TilthError {
  readonly data: unknown;
  constructor(message: string, data?: unknown) {
    super("ERR_BAD_ARGUMENTS", message);
    this.data = data;
  }
}

/** The server is closing or shutting this call down: call again elsewhere. */
export class UnavailableError extends TilthError {
  /** `{ started: false }` when the call was refused before it ran (a client may make it again elsewhere). */
  readonly data: unknown;
  constructor(message: string, options: TilthErrorOptions & { data?: unknown } = {}) {
    super("ERR_UNAVAILABLE", message, { retryable: true, ...options });
    this.data = options.data;
  }
}

const RUNNING = 0;
const SETTLING = 1;
const DONE = 2;

const NO_ARGS: readonly unknown[] = [];

/** One call in flight on the server. `ref` is the protocol's handle of the call (drpc: its id; zrpc: its channel). */
export class ServerCall<R = unknown> implements CallContext {
  readonly ref: R;
  readonly id: number;
  readonly method: string;
  readonly args: readonly unknown[];
  readonly peer: string;
  readonly peerIdentity: PeerIdentity | undefined;
  /** Loop time the call arrived (for status reports). */
  startedAt = 0;
  /** The time limit the client sent, ms. */
  limitMs = 0;
  /** Items the client can take now. */
  credit = 0;
  /** Bytes of stream messages the client can take now (Infinity where the protocol counts items only). */
  creditBytes = Infinity;
  /** @internal the protocol's output waiting for the end of the turn (drpc: a batch of items) */
  out: unknown = undefined;
  /** @internal */
  state: 0 | 1 | 2 = RUNNING;
  /** @internal */
  timer: Deadline | undefined = undefined;
  /** @internal */
  creditWaiter: (() => void) | undefined = undefined;
  /** The protocol, from its session. */
  protocol: string | undefined = undefined;
  /** @internal where the call's end is recorded (the server's `stats`) */
  stats: MethodStats | undefined = undefined;
  /** Stream items sent so far. */
  items = 0;
  #meta: Record<string, unknown> | undefined;
  #ac: AbortController | undefined;
  #reason: unknown;

  constructor(ref: R, id: number, method: string, args: readonly unknown[], peer: string, peerIdentity: PeerIdentity | undefined) {
    this.ref = ref;
    this.id = id;
    this.method = method;
    this.args = args;
    this.peer = peer;
    this.peerIdentity = peerIdentity;
  }

  /** Whether the call has ended (answered, failed, cancelled or dropped). */
  get done(): boolean {
    return this.state === DONE;
  }

  /** The metadata the client sent (string or byte values), and what middleware adds. */
  get meta(): Record<string, unknown> {
    return (this.#meta ??= {});
  }

  /** @internal the metadata from the wire */
  _initMeta(meta: Record<string, unknown>): void {
    this.#meta = meta;
  }

  /** Loop time of the deadline, while it is pending. */
  get deadline(): number | undefined {
    return this.timer?.at;
  }

  get signal(): AbortSignal {
    if (this.#ac === undefined) {
      this.#ac = new AbortController();
      if (this.#reason !== undefined) this.#ac.abort(this.#reason);
    }
    return this.#ac.signal;
  }

  /** @internal abort the handler's signal (once) */
  abort(reason: unknown): void {
    if (this.#reason !== undefined) return;
    this.#reason = reason;
    this.#ac?.abort(reason);
  }

  /** @internal */
  wake(): void {
    const w = this.creditWaiter;
    if (w !== undefined) {
      this.creditWaiter = undefined;
      w();
    }
  }
}

/** How a protocol puts answers on its wire. */
export interface CallWire<R> {
  /** The protocol's name, for call contexts (`drpc`, `zrpc`). */
  readonly protocol?: string;
  /** Answer with a plain value. Throws when it cannot be sent (too large, not encodable): the engine answers with that error instead. */
  answer(ref: R, id: number, value: unknown): void;
  /**
   * Send one stream item (a protocol may hold it to the end of the turn, to
   * send several at once, and charge its bytes to `call.creditBytes`); false
   * when the writer should wait for `drain()`. Throws when it cannot be encoded.
   */
  item(call: ServerCall<R>, value: unknown): boolean;
  /** The stream has ended. */
  end(call: ServerCall<R>): void;
  /** Answer with an error, in the protocol's form. Never throws. */
  answerError(ref: R, id: number, error: unknown): void;
  /** Resolves when the connection takes writes again, or has ended. Never rejects. */
  drain(): Promise<void>;
  /** The call goes on past its handler's return (zrpc starts its channel's heartbeats). */
  opened?(call: ServerCall<R>): void;
  /** The call has ended. */
  closed?(call: ServerCall<R>): void;
  /** Whether this protocol serves `method` of the server (default: every method). */
  serves?(method: string): boolean;
}

function isAsyncIterable(v: object): v is AsyncIterable<unknown> {
  return typeof (v as AsyncIterable<unknown>)[Symbol.asyncIterator] === "function";
}

/** A generator object (what a `function*` returns): a stream whose items are ready without a promise each. Arrays and other iterables are values. */
function isGenerator(v: object): v is Generator<unknown> {
  return typeof (v as Generator).next === "function" && Object.prototype.toString.call(v) === "[object Generator]";
}

/** Items a generator's stream sends in one turn before it lets other work run. */
const TURN_ITEMS = 4096;

function isThenable(v: unknown): v is PromiseLike<unknown> {
  return typeof v === "object" && v !== null && typeof (v as PromiseLike<unknown>).then === "function";
}

function isTimeout(e: unknown): boolean {
  return e instanceof TilthError && e.code === "ERR_TIMEOUT";
}

/**
 * `after` hooks from `from` on. Returns undefined when all ran synchronously,
 * or a promise when one returned a promise (the rest run after it). Throws or
 * rejects with a hook's error.
 */
function afterHooks(call: CallContext, mw: readonly Middleware[], v: unknown, from: number): Promise<void> | undefined {
  for (let i = from; i < mw.length; i++) {
    const h = mw[i]!.after;
    if (h === undefined) continue;
    const p = h(call, v);
    if (isThenable(p)) {
      const next = i + 1;
      return Promise.resolve(p).then(() => afterHooks(call, mw, v, next));
    }
  }
  return undefined;
}

/** `error` hooks from `from` on; a hook's own error replaces the call's (in `box.error`). Never rejects. */
function errorHooks(call: CallContext, mw: readonly Middleware[], box: { error: unknown }, from: number): Promise<void> | undefined {
  for (let i = from; i < mw.length; i++) {
    const h = mw[i]!.error;
    if (h === undefined) continue;
    let p: unknown;
    try {
      p = h(call, box.error);
    } catch (e) {
      box.error = e;
      continue;
    }
    if (isThenable(p)) {
      const next = i + 1;
      return Promise.resolve(p).then(
        () => errorHooks(call, mw, box, next),
        (e: unknown) => {
          box.error = e;
          return errorHooks(call, mw, box, next);
        },
      );
    }
  }
  return undefined;
}

/** The calls of one connection, server side. */
export class ServerCalls<R> {
  readonly #server: ServerCore;
  readonly #loop: Loop;
  readonly #wire: CallWire<R>;
  readonly #peer: string;
  readonly #peerIdentity: PeerIdentity | undefined;
  readonly #calls = new IdTable<ServerCall<R>>();
  /** Every call's deadline, on one timer (core/Deadlines). */
  readonly #deadlines: Deadlines<ServerCall<R>>;
  #draining = false;
  #idle: Promise<void> | undefined;
  #resolveIdle: (() => void) | undefined;

  /** Bytes of stream messages each new call's client takes before it grants more (set by a protocol that counts them). */
  windowBytes = Infinity;

  /** `peer`: the connection's remote URL; `peerIdentity`: who the peer is, if its transport verified it. */
  constructor(server: ServerCore, loop: Loop, wire: CallWire<R>, peer: string, peerIdentity?: PeerIdentity) {
    this.#server = server;
    this.#loop = loop;
    this.#wire = wire;
    this.#peer = peer;
    this.#peerIdentity = peerIdentity;
    this.#deadlines = new Deadlines<ServerCall<R>>(loop, (call) => {
      if (call.state === RUNNING) this.#fail(call, new TimeoutError(call.limitMs, `call ${call.method}`));
    });
  }

  /** Calls in flight. */
  get size(): number {
    return this.#calls.size;
  }

  /** Whether new calls are refused (the server is closing). */
  get draining(): boolean {
    return this.#draining;
  }

  has(id: number): boolean {
    return this.#calls.size > 0 && this.#calls.has(id);
  }

  get(id: number): ServerCall<R> | undefined {
    return this.#calls.get(id);
  }

  /** The calls in flight: id, method, peer and loop time of arrival. */
  list(): { id: number; method: string; peer: string; startedAt: number }[] {
    return this.#calls.values().map((c) => ({ id: c.id, method: c.method, peer: c.peer, startedAt: c.startedAt }));
  }

  /** Refuse new calls from now on (ERR_UNAVAILABLE); calls in flight go on. */
  drain(): void {
    this.#draining = true;
  }

  /** Resolves when no call is in flight. */
  idle(): Promise<void> {
    if (this.#calls.size === 0) return Promise.resolve();
    return (this.#idle ??= new Promise<void>((resolve) => (this.#resolveIdle = resolve)));
  }

  /**
   * A call arrived. `deadlineMs` is its time limit (null, Infinity or NaN:
   * none; any finite number of ms works, also beyond a host timer's range);
   * `credit` the stream items the client takes before it grants more.
   */
  dispatch(ref: R, id: number, method: string, args: unknown[], kwargs: Record<string, unknown> | null, deadlineMs: number | null, credit: number, meta?: Record<string, unknown>): void {
    const server = this.#server;
    const wire = this.#wire;
    if (meta !== undefined) {
      const bad = checkMeta(meta);
      if (bad !== undefined) {
        wire.answerError(ref, id, new MetadataError(bad));
        return;
      }
    }
    if (this.#draining) {
      wire.answerError(ref, id, new UnavailableError("server is closing; call again elsewhere", { data: { started: false } }));
      return;
    }
    if (this.#calls.size >= server.maxConcurrentCalls) {
      wire.answerError(ref, id, new BusyError(`too many concurrent calls on this connection (limit ${server.maxConcurrentCalls})`));
      return;
    }
    const m = wire.serves === undefined || wire.serves(method) ? server.methods.get(method) : undefined;
    if (m === undefined) {
      wire.answerError(ref, id, new UnknownMethodError(method));
      return;
    }
    let bound = bindArguments(m, args, kwargs);
    if (typeof bound === "string") {
      m.stats?.end("ERR_BAD_ARGUMENTS", 0, 0);
      wire.answerError(ref, id, new BadArgumentsError(bound));
      return;
    }
    if (m.validate !== undefined) {
      const v = m.validate.args(bound);
      if (v instanceof BadArgumentsIssues) {
        m.stats?.end("ERR_BAD_ARGUMENTS", 0, 0);
        wire.answerError(ref, id, new BadArgumentsError(`${m.name}(): ${v.message}`, v.issues.length ? { issues: v.issues } : undefined));
        return;
      }
      bound = v;
    }
    const mw = server.middleware;
    if (meta !== undefined) {
      const call = this.#track(ref, id, method, bound, deadlineMs, credit, m.stats, -1);
      call._initMeta(meta);
      this.#before(call, m, mw, 0);
      return;
    }
    if (mw.length === 0 && !m.contextual) {
      // No hook and no context wanted: run the handler first. A plain value
      // answers at once; the call is only tracked (deadline, status, cancel)
      // when it goes on: a promise, a stream, or a throw to report.
      const st = m.stats;
      const t0 = st === undefined ? 0 : this.#loop.now();
      let r: unknown;
      try {
        r = m.fn(...bound);
      } catch (e) {
        this.#fail(this.#track(ref, id, method, bound, deadlineMs, credit, st, t0), e);
        return;
      }
      if (typeof r !== "object" || r === null || ArrayBuffer.isView(r)) {
        const code = this.#answer(ref, id, r, method);
        if (st !== undefined) st.end(code, this.#loop.now() - t0, 0);
        return;
      }
      this.#settleLater(this.#track(ref, id, method, bound, deadlineMs, credit, st, t0), r);
      return;
    }
    this.#before(this.#track(ref, id, method, bound, deadlineMs, credit, m.stats, -1), m, mw, 0);
  }

  /** The client cancelled the call: its signal aborts; nothing more is sent for it. */
  cancel(id: number, reason: unknown): void {
    const call = this.#calls.get(id);
    if (call !== undefined) this.#finish(call, reason);
  }

  /** The client took `n` more stream items (and `bytes` more bytes of them, where the protocol counts bytes). */
  grant(id: number, n: number, bytes = 0): void {
    const call = this.#calls.get(id);
    if (call === undefined) return;
    call.credit += n;
    call.creditBytes += bytes;
    call.wake();
  }

  /** End a call without answering it (zrpc: its remote went silent). */
  drop(call: ServerCall<R>, reason: unknown): void {
    this.#finish(call, reason);
  }

  /** Shut down: every call in flight is answered ERR_UNAVAILABLE (retryable) and its signal aborts. */
  cancelAll(reason: string): void {
    const err = new CancelledError(reason);
    for (const call of this.#calls.values()) {
      this.#wire.answerError(call.ref, call.id, new UnavailableError(reason));
      this.#finish(call, err, "ERR_UNAVAILABLE");
    }
  }

  /** The connection ended: every call's signal aborts with `error`; nothing can be sent. */
  ended(error: unknown): void {
    this.#deadlines.clear();
    for (const call of this.#calls.values()) this.#finish(call, error);
  }

  /** A call in flight from now on: in the table, with its deadline. `t0`: when its handler was called (negative: now). */
  #track(ref: R, id: number, method: string, bound: unknown[], deadlineMs: number | null, credit: number, stats: MethodStats | undefined, t0: number): ServerCall<R> {
    const call = new ServerCall<R>(ref, id, method, bound.length ? bound : NO_ARGS, this.#peer, this.#peerIdentity);
    const now = this.#loop.now();
    call.startedAt = t0 < 0 ? now : t0;
    call.stats = stats;
    this.#calls.set(id, call);
    // A limit the wire may carry but that is none (Infinity; NaN from a foreign
    // codec) leaves the call without a deadline rather than with a broken timer.
    if (deadlineMs !== null && deadlineMs < Infinity) {
      call.limitMs = deadlineMs;
      call.timer = this.#deadlines.add(deadlineMs, call, now);
    }
    call.credit = credit;
    call.creditBytes = this.windowBytes;
    call.protocol = this.#wire.protocol;
    this.#wire.opened?.(call);
    return call;
  }

  /** `before` hooks from `i` on, then the handler. A hook that returns a promise resumes the rest when it settles. */
  #before(call: ServerCall<R>, m: ExposedMethod, mw: readonly Middleware[], i: number): void {
    let r: unknown;
    try {
      for (; i < mw.length; i++) {
        const h = mw[i]!.before;
        if (h === undefined) continue;
        const p = h(call);
        if (isThenable(p)) {
          const next = i + 1;
          p.then(
            () => {
              if (call.state === RUNNING) this.#before(call, m, mw, next);
            },
            (e: unknown) => this.#fail(call, e),
          );
          return;
        }
      }
      r = invoke(call, m, mw);
    } catch (e) {
      this.#fail(call, e);
      return;
    }
    this.#settleLater(call, r);
  }

  #settleLater(call: ServerCall<R>, r: unknown): void {
    if (r instanceof Promise) {
      r.then(
        (v) => this.#result(call, v),
        (e: unknown) => this.#fail(call, e),
      );
    } else this.#result(call, r);
  }

  /** A plain value returned at once, with nobody to tell: the answer. Returns the error code when it could not be sent. */
  #answer(ref: R, id: number, v: unknown, method: string): string | undefined {
    try {
      this.#wire.answer(ref, id, v);
      return undefined;
    } catch (e) {
      // Unsendable result (too large, not encodable): answer with the error instead.
      this.#unsendable(method, "result", e);
      this.#wire.answerError(ref, id, e);
      return outcomeCode(e);
    }
  }

  /** A handler's result or stream item that cannot be sent is its bug: the caller gets the error, the server's log a line. */
  #unsendable(method: string, what: string, e: unknown): void {
    const code = (e as { code?: unknown } | null)?.code;
    if (code === "ERR_BAD_VALUE" || code === "ERR_VALUE_LIMIT" || code === "ERR_MESSAGE_TOO_LARGE")
      this.#server.log(`call ${excerpt(method)} from ${this.#peer}: its ${what} cannot be sent, the caller gets ${code}: ${(e as Error).message}`);
  }

  #result(call: ServerCall<R>, v: unknown): void {
    if (call.state !== RUNNING) return;
    // An Observable streams like a generator. It has no backpressure of its
    // own: items wait in a bounded buffer while the client has no credit, and
    // a stream that overflows it ends with ERR_OVERFLOW.
    if (typeof v === "object" && v !== null && !ArrayBuffer.isView(v)) {
      if (isObservableLike(v)) v = observableItems(this.#loop, v);
      if (isAsyncIterable(v as object)) {
        void this.#pump(call, (v as AsyncIterable<unknown>)[Symbol.asyncIterator](), false);
        return;
      }
      if (isGenerator(v as object)) {
        void this.#pump(call, v as Generator<unknown>, true);
        return;
      }
    }
    this.#succeed(call, v, false);
  }

  /** Success: `after` hooks, then the answer (or, for a stream, its end). */
  #succeed(call: ServerCall<R>, v: unknown, stream: boolean): void {
    call.state = SETTLING;
    const mw = this.#server.middleware;
    let p: Promise<void> | undefined;
    if (mw.length > 0) {
      try {
        p = afterHooks(call, mw, stream ? undefined : v, 0);
      } catch (e) {
        this.#failSettling(call, e);
        return;
      }
    }
    if (p === undefined) this.#sendResult(call, v, stream);
    else
      p.then(
        () => this.#sendResult(call, v, stream),
        (e: unknown) => this.#failSettling(call, e),
      );
  }

  #sendResult(call: ServerCall<R>, v: unknown, stream: boolean): void {
    if (call.state === DONE) return;
    if (stream) {
      this.#finish(call, undefined, undefined);
      this.#wire.end(call);
      return;
    }
    // Recorded after the answer: a result that cannot be sent counts as its error.
    const st = call.stats;
    call.stats = undefined;
    this.#finish(call);
    const code = this.#answer(call.ref, call.id, v, call.method);
    if (st !== undefined) st.end(code, this.#loop.now() - call.startedAt, 0);
  }

  #fail(call: ServerCall<R>, e: unknown): void {
    if (call.state !== RUNNING) return;
    call.state = SETTLING;
    // A deadline stops the handler now, before the hooks run.
    if (isTimeout(e)) call.abort(e);
    const mw = this.#server.middleware;
    if (mw.length === 0) {
      this.#sendError(call, e);
      return;
    }
    const box = { error: e };
    const p = errorHooks(call, mw, box, 0);
    if (p === undefined) this.#sendError(call, box.error);
    else void p.then(() => this.#sendError(call, box.error));
  }

  /** An `after` hook threw: the call fails with that error. */
  #failSettling(call: ServerCall<R>, e: unknown): void {
    if (call.state === DONE) return;
    call.state = RUNNING;
    this.#fail(call, e);
  }

  #sendError(call: ServerCall<R>, e: unknown): void {
    if (call.state === DONE) return;
    this.#finish(call, isTimeout(e) ? e : undefined, outcomeCode(e));
    this.#wire.answerError(call.ref, call.id, e);
  }

  /**
   * Send a stream's items while the client has credit (items and bytes),
   * then wait for more. A generator's items are ready: they are taken without
   * a promise each, a turn's worth at a time. An async iterator costs a
   * promise per item (its own `next()`).
   */
  async #pump(call: ServerCall<R>, it: AsyncIterator<unknown> | Iterator<unknown>, sync: boolean): Promise<void> {
    const wire = this.#wire;
    let complete = false;
    try {
      for (;;) {
        if (call.state !== RUNNING) return;
        if (call.credit <= 0 || call.creditBytes <= 0) {
          await new Promise<void>((resolve) => (call.creditWaiter = resolve));
          continue;
        }
        let sent = true;
        let r: IteratorResult<unknown>;
        if (sync) {
          // Ready items, up to the credit and a turn's worth, without a promise each.
          let n = 0;
          for (;;) {
            r = (it as Iterator<unknown>).next();
            if (r.done) break;
            if (!this.#send(call, r.value)) return;
            sent = this.#lastSent;
            if (!sent || ++n >= TURN_ITEMS || call.credit <= 0 || call.creditBytes <= 0) break;
          }
          if (!r.done) {
            if (!sent) await wire.drain();
            else if (n >= TURN_ITEMS) await new Promise<void>((resolve) => this.#loop.post(resolve));
            continue;
          }
        } else {
          r = await (it as AsyncIterator<unknown>).next();
          if (call.state !== RUNNING) return;
          if (!r.done) {
            if (!this.#send(call, r.value)) return;
            if (!this.#lastSent) await wire.drain();
            continue;
          }
        }
        complete = true;
        this.#succeed(call, undefined, true);
        return;
      }
    } catch (e) {
      complete = true; // the iterator threw: it has already finished
      this.#fail(call, e);
    } finally {
      if (!complete) {
        // Abandoned (cancelled, deadline, peer lost, an item that cannot be sent): let the generator's finally run.
        try {
          await it.return?.();
        } catch {
          // its cleanup failed; the caller is gone, nothing to tell
        }
      }
    }
  }

  /** What the last `#send` got from the wire: false when it should wait for drain. */
  #lastSent = true;

  /** One stream item to the wire; false when it cannot be sent (the call has failed with why). */
  #send(call: ServerCall<R>, value: unknown): boolean {
    call.credit--;
    call.items++;
    if (call.timer !== undefined) {
      // The first item answers the call: the deadline is met.
      call.timer.cancel();
      call.timer = undefined;
    }
    try {
      this.#lastSent = this.#wire.item(call, value);
      return true;
    } catch (e) {
      // An item that cannot be sent ends the stream with its error; the generator is told (finally in #pump).
      this.#unsendable(call.method, "stream item", e);
      this.#fail(call, e);
      return false;
    }
  }

  /**
   * The call ends: out of the table, deadline off, signal aborted when
   * `reason` is given, pump woken, its end recorded with `code` (default:
   * the code of `reason`; success when neither is given).
   */
  #finish(call: ServerCall<R>, reason?: unknown, code: string | undefined = reason === undefined ? undefined : outcomeCode(reason)): void {
    if (call.state === DONE) return;
    call.state = DONE;
    if (call.stats !== undefined) call.stats.end(code, this.#loop.now() - call.startedAt, call.items);
    call.timer?.cancel();
    call.timer = undefined;
    if (reason !== undefined) call.abort(reason);
    call.wake();
    if (this.#calls.get(call.id) === call) this.#calls.delete(call.id);
    this.#wire.closed?.(call);
    if (this.#calls.size === 0 && this.#resolveIdle !== undefined) {
      const idle = this.#resolveIdle;
      this.#resolveIdle = undefined;
      this.#idle = undefined;
      idle();
    }
  }
}

/** Run the handler of `call`, inside the `around` hooks of `mw` (the first outermost). */
function invoke(call: ServerCall<any>, m: ExposedMethod, mw: readonly Middleware[]): unknown {
  const args = call.args as unknown[];
  let run = (): unknown => (m.contextual ? m.fn(call, ...args) : m.fn(...args));
  for (let i = mw.length - 1; i >= 0; i--) {
    const hook = mw[i]!;
    if (hook.around === undefined) continue;
    const next = run;
    run = () => hook.around!(call, next);
  }
  return run();
}
