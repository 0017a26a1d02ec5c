/**
 * The server end of one ZeroRPC connection (one DEALER peer on a ROUTER):
 * channels keyed by the opening request's message id, OK / ERR / STREAM /
 * STREAM_DONE replies, `_zpc_more` credit, per-channel heartbeats with
 * lost-remote detection, and the `_zerorpc_*` built-ins.
 * Internal module: not part of the public API.
 */
import { Deadlines, type Deadline } from "../../core/Deadlines.js";
import type { Loop } from "../../core/Loop.js";
import type { Connection, Message } from "../../core/Transport.js";
import { TilthError, excerpt, formatMs } from "../../core/errors.js";
import type { ExposedMethod } from "../api.js";
import { ConnectionLostError } from "../errors.js";
import type { ServerCore, ServerSessionLike } from "../protocol.js";
import type { ServerOptions } from "../Server.js";
import { ServerCalls, type CallWire, type ServerCall } from "../ServerCalls.js";
import type { Metadata } from "../meta.js";
import { encodeWith, encodeWithMeta, idRefKey, IdGenerator, readEvent, type IdRef } from "./codec.js";

export const DEFAULT_HEARTBEAT_MS = 5000;

/** A request's channel: where its replies go, and its heartbeats while it stays open. */
interface Chan {
  /** The request's message id, where it lies in the request. */
  readonly msgId: IdRef;
  /** Its key in the session's open channels (set while the call goes on past its handler's return). */
  key: string | undefined;
  lastSeen: number;
  hb: Deadline | undefined;
  call: ServerCall<Chan> | undefined;
}

/** The header key of an ERR event that carries the error's stable code (`ERR_DENIED`), for tilth clients. */
export const ERROR_CODE_KEY = "error_code";
/** What a code may look like on the wire, both ways. */
export const ERROR_CODE = /^[A-Za-z][\w.:-]{0,63}$/;

/** `[name, message, traceback]` of an ERR event. */
export function errArgs(e: unknown, exposeStack: boolean): [string, string, string] {
  // The engine's refusals, in the form ZeroRPC peers know (zerorpc-python's NameError and TypeError).
  if (e instanceof TilthError && e.code === "ERR_UNKNOWN_METHOD") return nameError(e.context?.method);
  if (e instanceof TilthError && e.code === "ERR_BAD_ARGUMENTS") return ["TypeError", e.message, `TypeError: ${e.message}`];
  if (e instanceof Error) return [e.name, e.message, exposeStack && e.stack ? e.stack : `${e.name}: ${e.message}`];
  const s = excerpt(e);
  return ["NonError", s, `non-Error thrown: ${s}`];
}

/** The ERR args of an unknown method, as zerorpc-python answers (a long or odd name as an excerpt). */
function nameError(method: unknown): [string, string, string] {
  const m = typeof method === "string" && method.length <= 64 ? method : excerpt(method);
  return ["NameError", m, `NameError: unknown method "${m}"`];
}

/** The `_zerorpc_inspect` form of one method: as zerorpc-python gives it, with the literal default values. */
function describeMethod(m: ExposedMethod): { args: { name: string; default?: unknown }[]; doc: string | null; schema?: unknown } {
  const args = m.params.map((name) => (m.defaults && name in m.defaults ? { name, default: m.defaults[name] } : { name }));
  // A validated method's JSON Schemas ride as an extra key (ZeroRPC clients ignore keys they do not know).
  return m.schema === undefined ? { args, doc: m.doc ?? null } : { args, doc: m.doc ?? null, schema: m.schema };
}

export class ZrpcServerSession implements ServerSessionLike, CallWire<Chan> {
  readonly protocol = "zrpc";
  readonly #server: ServerCore;
  readonly #conn: Connection;
  readonly #loop: Loop;
  readonly #hbMs: number;
  readonly #name: string;
  readonly #zrpcDebug: boolean;
  readonly #ids: IdGenerator;
  /** Open channels by their request's message id. */
  readonly #channels = new Map<string, Chan>();
  readonly #calls: ServerCalls<Chan>;
  #seq = 0;
  #ended = false;
  /** Every open channel's next heartbeat, on one timer (core/Deadlines). */
  readonly #beats: Deadlines<Chan>;

  constructor(server: ServerCore, conn: Connection, options: ServerOptions) {
    this.#server = server;
    this.#conn = conn;
    this.#loop = server.loop;
    this.#ids = new IdGenerator(undefined, () => server.loop.random());
    this.#hbMs = options.heartbeatMs ?? DEFAULT_HEARTBEAT_MS;
    this.#name = options.name ?? "tilth";
    this.#zrpcDebug = options.zrpcDebug === true;
    this.#beats = new Deadlines(this.#loop, this.#beat);
    this.#calls = new ServerCalls<Chan>(server, this.#loop, this, conn.remoteUrl, conn.peerIdentity);
    conn.start({ message: (m) => this.#onMessage(m), end: () => this.#onEnd() });
  }

  get active(): number {
    return this.#calls.size;
  }

  activeCalls(): { id: number; method: string; peer: string; startedAt: number }[] {
    return this.#calls.list();
  }

  goaway(_reason: string): void {
    // ZeroRPC cannot tell a client to go elsewhere: new calls are answered as unavailable.
    this.#calls.drain();
  }

  idle(): Promise<void> {
    return this.#calls.idle();
  }

  async shutdown(reason: string): Promise<void> {
    this.#calls.cancelAll(reason);
    await this.#conn.close();
  }

  destroy(reason: Error): void {
    this.#conn.destroy(reason);
  }

  /** Send an event on a channel; false when the writer should wait (or the connection ended). Throws when `args` cannot be encoded. */
  #send(ch: Chan, name: string, args: unknown): boolean {
    if (this.#ended) return false;
    return this.#conn.send(encodeWith(this.#ids, this.#ids.advance(), ch.msgId, name, args));
  }

  #trySend(ch: Chan, name: string, args: unknown): void {
    try {
      this.#send(ch, name, args);
    } catch {
      // the connection ended meanwhile
    }
  }

  #onMessage(frames: Message): void {
    let ev;
    try {
      ev = readEvent(frames);
    } catch {
      return; // as zerorpc-python: undecodable events get no reply
    }
    const { name, args, rt, refused } = ev;
    if (rt !== undefined) {
      if (this.#channels.size === 0) return;
      const ch = this.#channels.get(idRefKey(rt));
      if (ch === undefined) return; // unroutable: the channel is closed
      ch.lastSeen = this.#loop.now();
      if (name === "_zpc_more") {
        const n = Array.isArray(args) ? args[0] : undefined;
        if (typeof n === "number" && n > 0 && ch.call !== undefined) this.#calls.grant(ch.call.id, n);
      }
      // _zpc_hb (and anything else on a channel) only counts as a sign of life.
      return;
    }
    if (name.startsWith("_zpc_")) return;
    this.#onRequest(ev.id, name, args, refused, ev.meta);
  }

  #onRequest(msgId: IdRef, method: string, rawArgs: unknown, refused: Error | undefined, meta: Metadata | undefined): void {
    // A reused id while its channel is open: drop it, as an unroutable event.
    if (this.#channels.size > 0 && this.#channels.has(idRefKey(msgId))) return;
    const ch: Chan = { msgId, key: undefined, lastSeen: this.#loop.now(), hb: undefined, call: undefined };
    if (refused !== undefined) {
      // Arguments outside the value model: this call is answered with why.
      this.answerError(ch, 0, refused);
      return;
    }
    const args = Array.isArray(rawArgs) ? rawArgs : rawArgs === undefined || rawArgs === null ? [] : [rawArgs];
    const builtin = this.#calls.draining ? undefined : this.#builtin(method, args);
    if (builtin !== undefined) {
      this.#trySend(ch, builtin.ok ? "OK" : "ERR", builtin.ok ? [builtin.v] : builtin.v);
      return;
    }
    // ZeroRPC allows no deadline on the wire; a stream starts with credit for one reply.
    this.#calls.dispatch(ch, ++this.#seq, method, args as unknown[], null, null, 1, meta);
  }

  // ---- CallWire: ZeroRPC's form of answers ----

  /** tilth's own built-ins (".inspect", ".debug.status", ...) are drpc's; over zrpc the debug API is off unless the server asks for it. */
  serves(method: string): boolean {
    return !method.startsWith(".") || (method.startsWith(".debug.") && this.#zrpcDebug);
  }

  answer(ch: Chan, _id: number, value: unknown): void {
    this.#send(ch, "OK", [value === undefined ? null : value]);
  }

  item(call: ServerCall<Chan>, value: unknown): boolean {
    return this.#send(call.ref, "STREAM", value === undefined ? null : value) || this.#ended;
  }

  end(call: ServerCall<Chan>): void {
    this.#trySend(call.ref, "STREAM_DONE", null);
  }

  answerError(ch: Chan, _id: number, error: unknown): void {
    const args = errArgs(error, this.#server.exposeStack);
    const code = (error as { code?: unknown } | null | undefined)?.code;
    if (typeof code !== "string" || !ERROR_CODE.test(code)) {
      this.#trySend(ch, "ERR", args);
      return;
    }
    // The error's code rides as an extra header key, which ZeroRPC peers ignore and a tilth client reads.
    if (this.#ended) return;
    try {
      this.#conn.send(encodeWithMeta(this.#ids, this.#ids.advance(), "ERR", args, { [ERROR_CODE_KEY]: code }, ch.msgId));
    } catch {
      // the connection ended meanwhile
    }
  }

  drain(): Promise<void> {
    return this.#conn.drain().catch(() => {});
  }

  /** A call that goes on past its handler's return is tracked for credit and heartbeats until it ends. */
  opened(call: ServerCall<Chan>): void {
    const ch = call.ref;
    ch.call = call;
    const key = idRefKey(ch.msgId);
    ch.key = key;
    this.#channels.set(key, ch);
    if (this.#hbMs > 0) ch.hb = this.#beats.add(this.#hbMs, ch, ch.lastSeen);
  }

  closed(call: ServerCall<Chan>): void {
    const ch = call.ref;
    ch.hb?.cancel();
    ch.hb = undefined;
    if (ch.key !== undefined && this.#channels.get(ch.key) === ch) this.#channels.delete(ch.key);
  }

  #builtin(method: string, args: unknown[]): { ok: boolean; v: unknown } | undefined {
    if (!method.startsWith("_zerorpc_")) return undefined;
    const methods = [...this.#server.methods.values()].filter((m) => !m.name.startsWith("."));
    const one = (): ExposedMethod | [string, string, string] => {
      const name = args[0];
      const m = typeof name === "string" ? this.#server.methods.get(name) : undefined;
      return m ?? nameError(name);
    };
    switch (method) {
      case "_zerorpc_ping":
        return { ok: true, v: ["pong", this.#name] };
      case "_zerorpc_name":
        return { ok: true, v: this.#name };
      case "_zerorpc_list":
        return { ok: true, v: methods.map((m) => m.name) };
      case "_zerorpc_inspect":
        return { ok: true, v: { name: this.#name, methods: Object.fromEntries(methods.map((m) => [m.name, describeMethod(m)])) } };
      case "_zerorpc_help": {
        const m = one();
        return Array.isArray(m) ? { ok: false, v: m } : { ok: true, v: m.doc ?? null };
      }
      case "_zerorpc_args": {
        const m = one();
        return Array.isArray(m) ? { ok: false, v: m } : { ok: true, v: describeMethod(m).args };
      }
      default:
        return undefined;
    }
  }

  /**
   * Per-channel heartbeat: `_zpc_hb` every interval. A tick that finds the channel
   * silent for more than 2.5 intervals declares the remote lost: the third tick
   * of silence (15 s at 5 s, as zerorpc-python), with room for timer jitter.
   */
  readonly #beat = (ch: Chan): void => {
    const call = ch.call;
    if (call === undefined || call.done) return;
    const ms = this.#hbMs;
    const now = this.#loop.now();
    const silent = now - ch.lastSeen;
    if (silent > 2.5 * ms) {
      // zerorpc-python: the method is killed and nothing more is sent.
      this.#server.heartbeatLost?.();
      this.#calls.drop(call, new ConnectionLostError(`lost remote after ${formatMs(silent)} without an event (heartbeat ${formatMs(ms)})`, { silentMs: silent }));
      return;
    }
    this.#trySend(ch, "_zpc_hb", [0]);
    // Re-armed from a later turn: Deadlines does not expect add() from inside its expiry callback.
    this.#loop.post(() => {
      if (!call.done && !this.#ended) ch.hb = this.#beats.add(ms, ch, now);
    });
  };

  #onEnd(): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#beats.clear();
    this.#calls.ended(new ConnectionLostError("the client's connection ended"));
    this.#server.sessionEnded(this);
  }
}
