/**
 * The client end of one drpc connection: the HELLO exchange and heartbeats
 * (in Peer), GOAWAY, and drpc's form of calls, credit and cancels. Pending
 * calls, time limits and middleware are the call engine's (rpc/ClientCalls).
 * Internal module: not part of the public API.
 */
import type { Loop } from "../../core/Loop.js";
import type { Connection } from "../../core/Transport.js";
import { ClientCalls, type CallSender } from "../ClientCalls.js";
import type { ClientSessionHooks, ClientSessionLike } from "../protocol.js";
import { ProtocolError, RemoteError } from "../errors.js";
import { STREAM_WINDOW, STREAM_WINDOW_BYTES, type CallOptions, type PendingCall } from "../PendingCall.js";
import { IdCounter } from "../internal/IdTable.js";
import { MAX_ID, T, type Msg } from "./codec.js";
import { Peer, type PeerOptions } from "./Peer.js";
import { clientSlots } from "../internal/clientSlots.js";

export interface ClientSessionOptions extends PeerOptions, ClientSessionHooks {}

export class ClientSession extends Peer implements CallSender, ClientSessionLike {
  readonly protocol = "drpc";
  readonly #calls: ClientCalls;
  readonly #ids = new IdCounter(MAX_ID);
  #draining = false;
  /** Calls with metadata made before the server's HELLO came. */
  #early: { call: PendingCall<any>; kwargs: Record<string, unknown> | null; timeoutMs: number | undefined; at: number }[] | undefined;
  readonly #opts: ClientSessionOptions;

  constructor(loop: Loop, conn: Connection, options: ClientSessionOptions) {
    super(loop, conn, options);
    this.#opts = options;
    this.#calls = new ClientCalls(loop, options.middleware, this, options.meta);
    this.startPeer();
    this.sendHello(STREAM_WINDOW_BYTES);
  }

  /** Whether new calls may go on this connection. */
  get usable(): boolean {
    return !this.ended && !this.#draining;
  }

  get inFlight(): number {
    return this.#calls.size;
  }

  idle(): Promise<void> {
    return this.#calls.idle();
  }

  call<R>(method: string, args: readonly unknown[], timeoutMs: number | undefined, options: CallOptions | undefined): PendingCall<R> {
    return this.#calls.start<R>(this.#ids.next(this.#calls.table), method, args, timeoutMs, options);
  }

  get peerUrl(): string {
    return this.conn.remoteUrl;
  }

  // ---- CallSender: drpc's form of calls ----

  sendCall(call: PendingCall<any>, kwargs: Record<string, unknown> | null, timeoutMs: number | undefined): void {
    let meta = call._wireMeta();
    if (meta !== undefined) {
      const hello = this.peerHello;
      if (hello === undefined) {
        // Whether the server reads metadata is known from its HELLO: a call with some waits for it (once per connection).
        (this.#early ??= []).push({ call, kwargs, timeoutMs, at: this.loop.now() });
        return;
      }
      // Metadata only to a server that reads it (its HELLO has `meta`): an older one gets the CALL of 7 items it knows.
      if (hello.meta !== true) meta = undefined;
    }
    // The time left in whole ms: an integer takes the CALL's fast paths both ends (a fraction would go as a float64).
    this.sendCallMessage(call.id, call.method, call.args, kwargs, timeoutMs === undefined ? null : Math.ceil(timeoutMs), STREAM_WINDOW, meta);
  }

  /** The server's HELLO came: calls with metadata held for it go out, their time limits less the wait. */
  #sendEarly(): void {
    const early = this.#early!;
    this.#early = undefined;
    const now = this.loop.now();
    for (const e of early) {
      if (this.#calls.get(e.call.id) !== e.call) continue; // cancelled or timed out meanwhile
      const left = e.timeoutMs === undefined ? undefined : Math.max(0, e.timeoutMs - (now - e.at));
      try {
        this.sendCall(e.call, e.kwargs, left);
      } catch (err) {
        this.#calls.lose(e.call, err);
      }
    }
  }

  grant(call: PendingCall<any>, n: number, bytes: number): void {
    // A server that did not announce `items` counts items only.
    this.trySend([T.CREDIT, call.id, n, this.peerHello?.items === true ? bytes : 0]);
  }

  cancelled(call: PendingCall<any>, reason: Error): void {
    this.trySend([T.CANCEL, call.id, reason.message]);
  }

  closed(): void {
    this.#closeIfDrained();
  }

  protected onMsg(m: Msg): void {
    if (this.peerHello === undefined) {
      if (m[0] === T.ERROR && m[1] === 0) {
        this.fail(new RemoteError(m[2]));
        return;
      }
      if (this.acceptHello(m) && this.#early !== undefined) this.#sendEarly();
      return;
    }
    switch (m[0]) {
      case T.RESULT:
        this.#calls.settle(m[1], true, m[2]);
        return;
      case T.ERROR: {
        if (m[1] === 0) {
          this.fail(new RemoteError(m[2]));
          return;
        }
        this.#calls.failRemote(m[1], m[2]);
        return;
      }
      case T.ITEM:
        this.#calls.item(m[1], m[2]);
        return;
      case T.ITEMS:
        this.#calls.items(m[1], m[2], m[3]);
        return;
      case T.END:
        this.#calls.end(m[1]);
        return;
      case T.GOAWAY:
        this.#draining = true;
        this.#opts.onGoaway(this);
        this.#closeIfDrained();
        return;
      case T.REFUSED:
        // An answer whose value is outside the value model: that call fails with why (a stream is cancelled on the server).
        if (m[1] === T.ITEM || m[1] === T.ITEMS) this.#calls.get(m[2])?.cancel(m[3]);
        else if (m[1] !== T.CALL) this.#calls.settle(m[2], false, m[3]);
        else this.fail(new ProtocolError(`unexpected message type ${T.CALL} from a server`));
        return;
      default:
        this.fail(new ProtocolError(`unexpected message type ${m[0]} from a server`));
    }
  }

  /** After a GOAWAY, the connection closes once its last call is over. */
  #closeIfDrained(): void {
    if (this.#draining && this.#calls.size === 0 && !this.ended) void this.conn.close();
  }

  protected onEnded(error: Error): void {
    // Before the server's HELLO, bytes that are not drpc frames come from some other kind of server: name it.
    if (this.peerHello === undefined) error = clientSlots.notDrpc?.(error, `drpc+${this.conn.remoteUrl}`) ?? error;
    this.#calls.endAll(error);
    this.#opts.onEnded(this, error);
  }

  close(): Promise<void> {
    return this.conn.close();
  }
}
