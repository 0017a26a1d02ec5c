/**
 * The client end of one ZeroRPC connection: a channel per call (keyed by the
 * request's message id), results, errors and streams, `_zpc_more` credit sent
 * only after the first reply, per-channel `_zpc_hb` heartbeats with
 * lost-remote detection, and time limits.
 * Internal module: not part of the public API.
 */
import { Deadlines, type Deadline } from "../../core/Deadlines.js";
import type { Loop } from "../../core/Loop.js";
import type { Connection, Message } from "../../core/Transport.js";
import { formatMs } from "../../core/errors.js";
import type { ClientOptions } from "../Client.js";
import { ClientCalls, type CallSender } from "../ClientCalls.js";
import { ConnectionLostError, ProtocolError, RemoteError } from "../errors.js";
import { STREAM_WINDOW, type CallOptions, type PendingCall } from "../PendingCall.js";
import type { ClientSessionHooks, ClientSessionLike } from "../protocol.js";
import { IdTable } from "../internal/IdTable.js";
import { encodeWith, encodeWithMeta, IdGenerator, readEvent } from "./codec.js";
import { DEFAULT_HEARTBEAT_MS, ERROR_CODE, ERROR_CODE_KEY } from "./ServerSession.js";

/** The stable code of every error a ZeroRPC server answers with (the kind is in `remoteName`). */
export const ZRPC_REMOTE_CODE = "ERR_REMOTE";

/** A call's channel: its heartbeats, and whether credit may be sent yet. */
interface Chan {
  call: PendingCall<any>;
  /** The counter of the request's message id (also the call's id). */
  n: number;
  lastSeen: number;
  hb: Deadline | undefined;
  /** A reply arrived: `_zpc_more` may be sent from now on. */
  answered: boolean;
}

/** Codes of the errors a tilth server answers by name (ZeroRPC carries no code): the value model's refusals. */
const CODE_OF_NAME: Readonly<Record<string, string>> = { BadValueError: "ERR_BAD_VALUE", ValueLimitError: "ERR_VALUE_LIMIT" };

/**
 * A RemoteError from an ERR event's args `[name, message, traceback]`, with
 * `code`, the header's `error_code` a tilth server adds, when it looks like one.
 */
export function remoteErrorOf(args: unknown, method: string, sent?: unknown): RemoteError {
  const a = Array.isArray(args) ? args : [args];
  const str = (x: unknown): string => (typeof x === "string" ? x : x instanceof Uint8Array ? Buffer.from(x).toString() : x === undefined || x === null ? "" : String(x));
  // A v1 server sends one arg: the repr of the exception.
  const name = a.length >= 2 ? str(a[0]) || "RemoteError" : "RemoteError";
  const message = a.length >= 2 ? str(a[1]) : str(a[0]);
  const tb = a.length >= 3 ? str(a[2]) : undefined;
  const code = typeof sent === "string" && ERROR_CODE.test(sent) ? sent : Object.prototype.hasOwnProperty.call(CODE_OF_NAME, name) ? CODE_OF_NAME[name]! : ZRPC_REMOTE_CODE;
  return new RemoteError({ name, message, code, ...(tb ? { stack: tb } : {}) }, method);
}

export class ZrpcClientSession implements CallSender, ClientSessionLike {
  readonly protocol = "zrpc";
  readonly #loop: Loop;
  readonly #conn: Connection;
  readonly #hbMs: number;
  readonly #onEnded: ClientSessionHooks["onEnded"];
  readonly #ids: IdGenerator;
  readonly #calls: ClientCalls;
  /** Open channels by the counter of their request's message id. */
  readonly #chans = new IdTable<Chan>();
  #ended = false;
  /** Every channel's next heartbeat, on one timer (core/Deadlines). */
  readonly #beats: Deadlines<Chan>;

  constructor(loop: Loop, conn: Connection, options: ClientOptions & ClientSessionHooks) {
    this.#loop = loop;
    this.#ids = new IdGenerator(undefined, () => loop.random());
    this.#conn = conn;
    this.#hbMs = options.heartbeatMs ?? DEFAULT_HEARTBEAT_MS;
    this.#onEnded = options.onEnded;
    this.#calls = new ClientCalls(loop, options.middleware, this, options.meta);
    this.#beats = new Deadlines(loop, this.#beat);
    conn.start({ message: (m) => this.#onMessage(m), end: (e) => this.#onEnd(e.error) });
  }

  get usable(): boolean {
    return !this.#ended;
  }

  get inFlight(): number {
    return this.#calls.size;
  }

  idle(): Promise<void> {
    return this.#calls.idle();
  }

  get peerUrl(): string {
    return this.#conn.remoteUrl;
  }

  call<R>(method: string, args: readonly unknown[], timeoutMs: number | undefined, options: CallOptions | undefined): PendingCall<R> {
    return this.#calls.start<R>(this.#ids.advanceFree(this.#calls.table), method, args, timeoutMs, options);
  }

  // ---- CallSender: ZeroRPC's form of calls ----

  sendCall(call: PendingCall<any>, kwargs: Record<string, unknown> | null, _timeoutMs: number | undefined): void {
    if (kwargs !== null && Object.keys(kwargs).length > 0) throw new ProtocolError("ZeroRPC has no named arguments; pass them by position");
    const n = call.id;
    const now = this.#loop.now();
    const meta = call._wireMeta();
    this.#conn.send(meta === undefined ? encodeWith(this.#ids, n, undefined, call.method, call.args) : encodeWithMeta(this.#ids, n, call.method, call.args, meta));
    const ch: Chan = { call, n, lastSeen: now, hb: undefined, answered: false };
    this.#chans.set(n, ch);
    if (this.#hbMs > 0) ch.hb = this.#beats.add(this.#hbMs, ch, now);
  }

  /** The consumer took items: grant the server as many more (only once it has answered). */
  grant(call: PendingCall<any>, n: number): void {
    const ch = this.#chans.get(call.id);
    if (ch === undefined || ch.call !== call || !ch.answered) return;
    this.#sendOn(ch, "_zpc_more", [n]);
  }

  /**
   * ZeroRPC has no cancel event: the channel is forgotten here (later events on
   * it are dropped, and it gets no more heartbeats or credit), so the server
   * stalls on credit and drops the call when its heartbeats go unanswered.
   */
  cancelled(_call: PendingCall<any>, _reason: Error): void {}

  closed(call: PendingCall<any>): void {
    const ch = this.#chans.get(call.id);
    if (ch === undefined || ch.call !== call) return;
    ch.hb?.cancel();
    ch.hb = undefined;
    this.#chans.delete(ch.n);
  }

  #sendOn(ch: Chan, name: string, args: unknown): void {
    if (this.#ended) return;
    try {
      this.#conn.send(encodeWith(this.#ids, this.#ids.advance(), ch.n, name, args));
    } catch {
      // the connection ended; its end fails the calls
    }
  }

  /** A channel's heartbeat tick: lost after more than 2.5 silent intervals, else `_zpc_hb` and the next tick. */
  readonly #beat = (ch: Chan): void => {
    if (this.#chans.get(ch.n) !== ch) return;
    const ms = this.#hbMs;
    const now = this.#loop.now();
    const silent = now - ch.lastSeen;
    if (silent > 2.5 * ms) {
      this.#calls.lose(ch.call, new ConnectionLostError(`lost remote: no event on the call's channel for ${formatMs(silent)} (heartbeat ${formatMs(ms)})`, { silentMs: silent }));
      return;
    }
    this.#sendOn(ch, "_zpc_hb", [0]);
    // Re-armed from a later turn: Deadlines does not expect add() from inside its expiry callback.
    this.#loop.post(() => {
      if (this.#chans.get(ch.n) === ch && !this.#ended) ch.hb = this.#beats.add(ms, ch, now);
    });
  };

  #onMessage(frames: Message): void {
    let ev;
    try {
      ev = readEvent(frames);
    } catch {
      return; // not an event: dropped, as the reference implementations do
    }
    const rt = ev.rt;
    if (rt === undefined) return;
    const n = this.#ids.counterOf(rt.buf, rt.start, rt.end);
    const ch = n < 0 ? undefined : this.#chans.get(n);
    if (ch === undefined) return; // a channel we no longer track (or never opened)
    ch.lastSeen = this.#loop.now();
    if (ev.refused !== undefined && (ev.name === "OK" || ev.name === "ERR" || ev.name === "STREAM")) {
      // An answer outside the value model: the call fails with why (a stream is given up).
      ch.call.cancel(ev.refused);
      return;
    }
    switch (ev.name) {
      case "OK": {
        const v = Array.isArray(ev.args) ? ev.args[0] : ev.args;
        this.#calls.settle(n, true, v === null ? undefined : v);
        return;
      }
      case "ERR":
        this.#calls.settle(n, false, remoteErrorOf(ev.args, ch.call.method, ev.meta?.[ERROR_CODE_KEY]));
        return;
      case "STREAM":
        this.#calls.item(n, ev.args);
        if (!ch.answered) {
          ch.answered = true;
          // Credit only after the first reply (zerorpc-python drops an earlier one).
          this.#sendOn(ch, "_zpc_more", [STREAM_WINDOW]);
        }
        return;
      case "STREAM_DONE":
        this.#calls.end(n);
        return;
      default:
        // _zpc_hb and anything unknown: a sign of life only.
        return;
    }
  }

  #onEnd(cause: Error | undefined): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#beats.clear();
    const error = new ConnectionLostError(cause ? `connection lost: ${cause.message}` : "connection closed", { cause });
    this.#calls.endAll(error);
    this.#onEnded(this, error);
  }

  close(): Promise<void> {
    return this.#conn.close();
  }
}
