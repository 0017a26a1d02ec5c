/**
 * The server end of one drpc connection: dispatch, deadlines, streams with
 * credit, cancellation, and graceful drain.
 * @internal
 */
import { Deadlines, type Deadline } from "../../core/Deadlines.js";
import type { Connection } from "../../core/Transport.js";
import { BusyError, CancelledError, TimeoutError, TilthError } from "../../core/errors.js";
import { isObservable } from "rxjs";
import { fromObservable } from "../../adapters/rxjs.js";
import { bindArguments } from "../api.js";
import type { CallContext } from "../context.js";
import { ProtocolError, errorInfo } from "../errors.js";
import type { ServerCore, ServerSessionLike } from "../protocol.js";
import { IdTable } from "../internal/IdTable.js";
import { T, encodeValue, type Msg } from "./codec.js";
import { Peer, type PeerOptions } from "./Peer.js";


const NO_ARGS: readonly unknown[] = [];
/** Items an Observable result may run ahead of the client's credit. */
export const OBSERVABLE_BUFFER = 1024;

class ServerCall implements CallContext {
  readonly id: number;
  readonly method: string;
  readonly args: readonly unknown[];
  readonly peer: string;
  /** Loop time the call arrived (for status reports). */
  startedAt = 0;
  /** The deadline the client sent, ms. */
  limitMs = 0;
  #meta: Record<string, unknown> | undefined;
  #ac: AbortController | undefined;
  #reason: unknown;
  done = false;
  timer: Deadline | undefined = undefined;
  credit = 0;
  creditWaiter: (() => void) | undefined = undefined;

  constructor(id: number, method: string, args: readonly unknown[], peer: string) {
    this.id = id;
    this.method = method;
    this.args = args;
    this.peer = peer;
  }

  get meta(): Record<string, unknown> {
    return (this.#meta ??= {});
  }

  /** Loop time of the deadline, while it is pending. */
  get deadline(): number | undefined {
    return this.timer?.at;
  }

  get signal(): AbortSignal {
    if (this.#ac === undefined) {
      this.#ac = new AbortController();
      if (this.done && this.#reason !== undefined) this.#ac.abort(this.#reason);
    }
    return this.#ac.signal;
  }

  /** Mark finished (result sent, or given up); abort the signal when `reason` is given. */
  finish(reason?: unknown): void {
    if (this.done) return;
    this.done = true;
    this.timer?.cancel();
    this.timer = undefined;
    if (reason !== undefined) {
      this.#reason = reason;
      this.#ac?.abort(reason);
    }
    const w = this.creditWaiter;
    if (w) {
      this.creditWaiter = undefined;
      w();
    }
  }

  grant(n: number): void {
    this.credit += n;
    const w = this.creditWaiter;
    if (w) {
      this.creditWaiter = undefined;
      w();
    }
  }
}

function isAsyncIterable(v: unknown): v is AsyncIterable<unknown> {
  return typeof v === "object" && v !== null && typeof (v as AsyncIterable<unknown>)[Symbol.asyncIterator] === "function";
}

export class ServerSession extends Peer implements ServerSessionLike {
  readonly #server: ServerCore;
  readonly #calls = new IdTable<ServerCall>();
  /** Every call's deadline, on one timer (see core/Deadlines). */
  readonly #deadlines: Deadlines<ServerCall>;
  #helloed = false;
  #draining = false;
  #idle: (() => void) | undefined;

  constructor(server: ServerCore, conn: Connection, loop: import("../../core/Loop.js").Loop, options: PeerOptions) {
    super(loop, conn, options);
    this.#server = server;
    this.#deadlines = new Deadlines<ServerCall>(loop, (call) => {
      if (!call.done) this.#fail(call, new TimeoutError(call.limitMs, `call ${call.method}`));
    });
    this.startPeer();
  }

  /** Calls in flight. */
  get active(): number {
    return this.#calls.size;
  }

  /** The calls in flight: id, method, peer and loop time of arrival. */
  activeCalls(): { id: number; method: string; peer: string; startedAt: number }[] {
    return this.#calls.values().map((c) => ({ id: c.id, method: c.method, peer: c.peer, startedAt: c.startedAt }));
  }

  /** Stop taking calls: tell the client to go elsewhere for new ones. */
  goaway(reason: string): void {
    if (this.#draining) return;
    this.#draining = true;
    if (this.#helloed) this.trySend([T.GOAWAY, reason]);
  }

  /** Resolves when no call is in flight. */
  idle(): Promise<void> {
    if (this.#calls.size === 0) return Promise.resolve();
    return new Promise((resolve) => (this.#idle = resolve));
  }

  /** Cancel what is still running (answering each with ERR_UNAVAILABLE), then close. */
  async shutdown(reason: string): Promise<void> {
    const err = new CancelledError(reason);
    for (const call of this.#calls.values()) {
      this.sendError(call.id, { name: "UnavailableError", message: reason, code: "ERR_UNAVAILABLE", retryable: true });
      this.#drop(call, err);
    }
    await this.conn.close();
  }

  protected onMsg(m: Msg): void {
    if (!this.#helloed) {
      if (!this.acceptHello(m)) return;
      this.#helloed = true;
      this.sendHello();
      if (this.#draining) this.trySend([T.GOAWAY, "server closing"]);
      return;
    }
    switch (m[0]) {
      case T.CALL:
        this.#onCall(m[1], m[2], m[3], m[4], m[5], m[6]);
        return;
      case T.CANCEL: {
        const call = this.#calls.get(m[1]);
        if (call) this.#drop(call, new CancelledError(`cancelled by the client: ${m[2]}`));
        return;
      }
      case T.CREDIT:
        this.#calls.get(m[1])?.grant(m[2]);
        return;
      default:
        this.fail(new ProtocolError(`unexpected message type ${m[0]} from a client`));
    }
  }

  protected onEnded(error: Error): void {
    this.#deadlines.clear();
    for (const call of this.#calls.values()) this.#drop(call, error);
    this.#server.sessionEnded(this);
  }

  #onCall(id: number, method: string, args: unknown[], kwargs: Record<string, unknown> | null, deadlineMs: number | null, credit: number): void {
    if (this.#calls.size > 0 && this.#calls.has(id)) {
      this.fail(new ProtocolError(`call id ${id} reused while in flight`));
      return;
    }
    if (this.#draining) {
      this.sendError(id, { name: "UnavailableError", message: "server is closing; call again elsewhere", code: "ERR_UNAVAILABLE", retryable: true });
      return;
    }
    const server = this.#server;
    if (this.#calls.size >= server.maxConcurrentCalls) {
      const e = new BusyError(`too many concurrent calls on this connection (limit ${server.maxConcurrentCalls})`);
      this.sendError(id, { name: e.name, message: e.message, code: e.code, retryable: true });
      return;
    }
    const m = server.methods.get(method);
    if (m === undefined) {
      this.sendError(id, { name: "UnknownMethodError", message: `unknown method "${method}"`, code: "ERR_UNKNOWN_METHOD" });
      return;
    }
    const bound = bindArguments(m, args, kwargs);
    if (typeof bound === "string") {
      this.sendError(id, { name: "BadArgumentsError", message: bound, code: "ERR_BAD_ARGUMENTS" });
      return;
    }
    const mw = server.middleware;
    let r: unknown;
    if (mw.length === 0 && !m.contextual) {
      // No hook and no context wanted: run the handler first. A plain value
      // answers at once; the call is only tracked (deadline, status, cancel)
      // when it goes on: a promise, a stream, or a throw to report.
      try {
        r = m.fn(...bound);
      } catch (e) {
        this.#fail(this.#track(id, method, bound, deadlineMs, credit), e);
        return;
      }
      if (typeof r !== "object" || r === null || ArrayBuffer.isView(r)) {
        this.#answer(id, r);
        return;
      }
      this.#settleLater(this.#track(id, method, bound, deadlineMs, credit), r);
      return;
    }
    const call = this.#track(id, method, bound, deadlineMs, credit);
    try {
      for (let i = 0; i < mw.length; i++) mw[i]!.before?.(call);
      r = m.contextual ? m.fn(call, ...bound) : m.fn(...bound);
    } catch (e) {
      this.#fail(call, e);
      return;
    }
    this.#settleLater(call, r);
  }

  /** A call in flight from now on: in the table, with its deadline. */
  #track(id: number, method: string, bound: unknown[], deadlineMs: number | null, credit: number): ServerCall {
    const call = new ServerCall(id, method, bound.length ? bound : NO_ARGS, this.conn.remoteUrl);
    const now = this.loop.now();
    call.startedAt = now;
    this.#calls.set(id, call);
    if (deadlineMs !== null) {
      call.limitMs = deadlineMs;
      call.timer = this.#deadlines.add(deadlineMs, call, now);
    }
    call.credit = credit;
    return call;
  }

  /** A plain value returned at once, with nobody to tell: the RESULT. */
  #answer(id: number, v: unknown): void {
    try {
      this.sendEncoded(encodeValue(T.RESULT, id, v));
    } catch (e) {
      // Unsendable result (too large, not encodable): answer with the error instead.
      if (!this.ended) this.sendError(id, errorInfo(e, this.#server.exposeStack));
    }
  }

  #settleLater(call: ServerCall, r: unknown): void {
    if (r instanceof Promise) {
      r.then(
        (v) => this.#result(call, v),
        (e: unknown) => this.#fail(call, e),
      );
    } else this.#result(call, r);
  }

  #result(call: ServerCall, v: unknown): void {
    if (call.done) return;
    // An Observable streams like a generator. It has no backpressure of its
    // own: items wait in a bounded buffer while the client has no credit, and
    // a stream that overflows it ends with ERR_OVERFLOW.
    if (typeof v === "object" && v !== null && !ArrayBuffer.isView(v)) {
      if (isObservable(v)) v = fromObservable(this.loop, v, { capacity: OBSERVABLE_BUFFER });
      if (isAsyncIterable(v)) {
        void this.#pump(call, v);
        return;
      }
    }
    this.#finishCall(call);
    const mw = this.#server.middleware;
    for (let i = 0; i < mw.length; i++) mw[i]!.after?.(call, v);
    this.#answer(call.id, v);
  }

  #fail(call: ServerCall, e: unknown): void {
    if (call.done) return;
    this.#finishCall(call, e instanceof TilthError && e.code === "ERR_TIMEOUT" ? e : undefined);
    const mw = this.#server.middleware;
    for (let i = 0; i < mw.length; i++) mw[i]!.error?.(call, e);
    const info = errorInfo(e, this.#server.exposeStack);
    try {
      this.send([T.ERROR, call.id, info]);
    } catch {
      // data that cannot be encoded: send the error without it
      delete info.data;
      this.sendError(call.id, info);
    }
  }

  async #pump(call: ServerCall, iterable: AsyncIterable<unknown>): Promise<void> {
    const it = iterable[Symbol.asyncIterator]();
    let complete = false;
    try {
      for (;;) {
        if (call.done) return;
        if (call.credit <= 0) {
          await new Promise<void>((resolve) => (call.creditWaiter = resolve));
          continue;
        }
        const r = await it.next();
        if (call.done) return;
        if (r.done) {
          complete = true;
          this.#finishCall(call);
          const mw = this.#server.middleware;
          for (let i = 0; i < mw.length; i++) mw[i]!.after?.(call, undefined);
          this.trySend([T.END, call.id]);
          return;
        }
        call.credit--;
        if (call.timer !== undefined) {
          // The first item answers the call: the deadline is met.
          call.timer.cancel();
          call.timer = undefined;
        }
        if (!this.sendEncoded(encodeValue(T.ITEM, call.id, r.value))) await this.conn.drain();
      }
    } catch (e) {
      complete = true; // the iterator threw: it has already finished
      this.#fail(call, e);
    } finally {
      if (!complete) {
        // Abandoned (cancelled, deadline, peer lost): let the generator's finally run.
        try {
          await it.return?.();
        } catch {
          // its cleanup failed; the caller is gone, nothing to tell
        }
      }
    }
  }

  #finishCall(call: ServerCall, reason?: unknown): void {
    call.finish(reason);
    this.#calls.delete(call.id);
    if (this.#calls.size === 0 && this.#idle) {
      const idle = this.#idle;
      this.#idle = undefined;
      idle();
    }
  }

  #drop(call: ServerCall, reason: unknown): void {
    this.#finishCall(call, reason);
  }
}
