/**
 * The client end of one drpc connection: call ids, pending calls, streams
 * with credit, cancellation, deadlines.
 * @internal
 */
import { Deadlines } from "../../core/Deadlines.js";
import type { Loop } from "../../core/Loop.js";
import type { Connection } from "../../core/Transport.js";
import { TimeoutError, abortReason } from "../../core/errors.js";
import type { ClientSessionHooks, ClientSessionLike } from "../protocol.js";
import { ProtocolError, RemoteError } from "../errors.js";
import { PendingCall, STREAM_WINDOW, type CallOptions, type CallOwner } from "../PendingCall.js";
import { IdCounter, IdTable } from "../internal/IdTable.js";
import { MAX_ID, T, encodeCall, type Msg } from "./codec.js";
import { Peer, type PeerOptions } from "./Peer.js";

export interface ClientSessionOptions extends PeerOptions, ClientSessionHooks {}

export class ClientSession extends Peer implements CallOwner, ClientSessionLike {
  readonly #pending = new IdTable<PendingCall<any>>();
  /** Every call's time limit, on one timer (see core/Deadlines). */
  readonly #deadlines: Deadlines<PendingCall<any>>;
  readonly #ids = new IdCounter(MAX_ID);
  #draining = false;
  readonly #opts: ClientSessionOptions;

  constructor(loop: Loop, conn: Connection, options: ClientSessionOptions) {
    super(loop, conn, options);
    this.#opts = options;
    this.#deadlines = new Deadlines(loop, (call) => {
      if (this.#pending.get(call.id) === call) call.cancel(new TimeoutError(call.limitMs!, `call ${call.method}`));
    });
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
    if (timeoutMs === Infinity) timeoutMs = undefined; // no limit
    const id = this.#ids.next(this.#pending);
    const signal = options?.signal;
    const call = new PendingCall<R>(this, id, method, args, signal);
    if (timeoutMs !== undefined) call.limitMs = options?.limitMs ?? timeoutMs;
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
      this.sendEncoded(encodeCall(id, method, args, kwargs, timeoutMs ?? null, STREAM_WINDOW));
    } catch (e) {
      this.#pending.delete(id);
      call._settle(false, e);
      return call;
    }
    if (timeoutMs !== undefined) {
      call.timer = this.#deadlines.add(timeoutMs, call);
    }
    if (signal !== undefined) call._watchSignal(signal);
    return call;
  }

  get peerUrl(): string {
    return this.conn.remoteUrl;
  }

  grantCredit(call: PendingCall<any>, n: number): void {
    this.trySend([T.CREDIT, call.id, n]);
  }

  cancelCall(call: PendingCall<any>, reason: Error): void {
    if (!this.#pending.delete(call.id)) return;
    this.trySend([T.CANCEL, call.id, reason.message]);
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
        // The server enforced the deadline we sent: report it as our own
        // timeout, naming the limit the caller set.
        const e = m[2].code === "ERR_TIMEOUT" && call.limitMs !== undefined ? new TimeoutError(call.limitMs, `call ${call.method}`, { cause: new RemoteError(m[2], call.method) }) : new RemoteError(m[2], call.method);
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
    this.#deadlines.clear();
    const calls = this.#pending.values();
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
