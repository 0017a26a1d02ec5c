/**
 * The server end of one ZeroRPC connection (one DEALER peer on a ROUTER):
 * channels keyed by the opening request's message id, OK / ERR / STREAM /
 * STREAM_DONE replies, `_zpc_more` credit, per-channel heartbeats with
 * lost-remote detection, and the `_zerorpc_*` built-ins.
 * @internal
 */
import { Deadlines, type Deadline } from "../../core/Deadlines.js";
import type { Loop } from "../../core/Loop.js";
import type { Connection, Message } from "../../core/Transport.js";
import { CancelledError, TilthError } from "../../core/errors.js";
import { bindArguments, type ExposedMethod } from "../api.js";
import type { CallContext } from "../context.js";
import { ConnectionLostError } from "../errors.js";
import type { ServerCore, ServerSessionLike } from "../protocol.js";
import type { ServerOptions } from "../Server.js";
import { encodeWith, idRefKey, IdGenerator, readEvent, type IdRef } from "./codec.js";

export const DEFAULT_HEARTBEAT_MS = 5000;

class Channel implements CallContext {
  readonly id: number;
  readonly method: string;
  readonly args: readonly unknown[];
  readonly peer: string;
  /** The request's message id, where it lies in the request. */
  readonly msgId: IdRef;
  /** Its key in the session's open channels (set when the call stays open past its handler's return). */
  key: string | undefined = undefined;
  /** Replies the client can take (every event we send on the channel spends one). */
  credit = 1;
  creditWaiter: (() => void) | undefined;
  lastSeen: number;
  hb: Deadline | undefined;
  done = false;
  #ac: AbortController | undefined;
  #reason: unknown;
  #meta: Record<string, unknown> | undefined;

  constructor(id: number, msgId: IdRef, method: string, args: readonly unknown[], peer: string, now: number) {
    this.id = id;
    this.msgId = msgId;
    this.method = method;
    this.args = args;
    this.peer = peer;
    this.lastSeen = now;
  }

  get signal(): AbortSignal {
    if (this.#ac === undefined) {
      this.#ac = new AbortController();
      if (this.done && this.#reason !== undefined) this.#ac.abort(this.#reason);
    }
    return this.#ac.signal;
  }
  get deadline(): number | undefined {
    return undefined;
  }
  get meta(): Record<string, unknown> {
    return (this.#meta ??= {});
  }

  finish(reason?: unknown): void {
    if (this.done) return;
    this.done = true;
    this.hb?.cancel();
    this.hb = undefined;
    if (reason !== undefined) {
      this.#reason = reason;
      this.#ac?.abort(reason);
    }
    this.wake();
  }

  wake(): void {
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

/** `[name, message, traceback]` of an ERR event. */
export function errArgs(e: unknown, exposeStack: boolean): [string, string, string] {
  if (e instanceof Error) return [e.name, e.message, exposeStack && e.stack ? e.stack : `${e.name}: ${e.message}`];
  const s = typeof e === "string" ? e : (() => {
    try {
      return JSON.stringify(e);
    } catch {
      return String(e);
    }
  })();
  return ["NonError", s, `non-Error thrown: ${s}`];
}

/** The `_zerorpc_inspect` form of one method. */
function describeMethod(m: ExposedMethod): { args: { name: string }[]; doc: string | null } {
  return { args: m.params.map((name) => ({ name })), doc: m.doc ?? null };
}

export class ZrpcServerSession implements ServerSessionLike {
  readonly #server: ServerCore;
  readonly #conn: Connection;
  readonly #loop: Loop;
  readonly #hbMs: number;
  readonly #name: string;
  readonly #zrpcDebug: boolean;
  readonly #ids = new IdGenerator();
  readonly #channels = new Map<string, Channel>();
  #seq = 0;
  #draining = false;
  #ended = false;
  /** Every open channel's next heartbeat, on one timer (core/Deadlines). */
  readonly #beats: Deadlines<Channel>;
  #idle: (() => void) | undefined;

  constructor(server: ServerCore, conn: Connection, options: ServerOptions) {
    this.#server = server;
    this.#conn = conn;
    this.#loop = server.loop;
    this.#hbMs = options.heartbeatMs ?? DEFAULT_HEARTBEAT_MS;
    this.#name = options.name ?? "tilth";
    this.#zrpcDebug = options.zrpcDebug === true;
    this.#beats = new Deadlines(this.#loop, this.#beat);
    conn.start({ message: (m) => this.#onMessage(m), end: () => this.#onEnd() });
  }

  get active(): number {
    return this.#channels.size;
  }

  goaway(_reason: string): void {
    // ZeroRPC cannot tell a client to go elsewhere: new calls are answered as unavailable.
    this.#draining = true;
  }

  idle(): Promise<void> {
    if (this.#channels.size === 0) return Promise.resolve();
    return new Promise((resolve) => (this.#idle = resolve));
  }

  async shutdown(reason: string): Promise<void> {
    const err = new CancelledError(reason);
    for (const ch of [...this.#channels.values()]) {
      this.#send(ch, "ERR", ["UnavailableError", reason, ""], true);
      this.#finish(ch, err);
    }
    await this.#conn.close();
  }

  #send(ch: Channel, name: string, args: unknown, force = false): boolean {
    if (this.#ended) return false;
    if (!force) ch.credit--;
    try {
      return this.#conn.send(encodeWith(this.#ids, this.#ids.advance(), ch.msgId, name, args));
    } catch {
      return false;
    }
  }

  #onMessage(frames: Message): void {
    let ev;
    try {
      ev = readEvent(frames);
    } catch {
      return; // as zerorpc-python: undecodable events get no reply
    }
    const { name, args, rt } = ev;
    if (rt !== undefined) {
      if (this.#channels.size === 0) return;
      const ch = this.#channels.get(idRefKey(rt));
      if (ch === undefined) return; // unroutable: the channel is closed
      ch.lastSeen = this.#loop.now();
      if (name === "_zpc_more") {
        const n = Array.isArray(args) ? args[0] : undefined;
        if (typeof n === "number" && n > 0) {
          ch.credit += n;
          ch.wake();
        }
      }
      // _zpc_hb (and anything else on a channel) only counts as a sign of life.
      return;
    }
    if (name.startsWith("_zpc_")) return;
    this.#onRequest(ev.id, name, args);
  }

  #onRequest(msgId: IdRef, method: string, rawArgs: unknown): void {
    // A reused id while its channel is open: drop it, as an unroutable event.
    if (this.#channels.size > 0 && this.#channels.has(idRefKey(msgId))) return;
    const args = Array.isArray(rawArgs) ? rawArgs : rawArgs === undefined || rawArgs === null ? [] : [rawArgs];
    const ch = new Channel(++this.#seq, msgId, method, args, this.#conn.remoteUrl, this.#loop.now());
    const server = this.#server;
    if (this.#draining) {
      this.#send(ch, "ERR", ["UnavailableError", "server is closing; call again elsewhere", ""]);
      return;
    }
    if (this.#channels.size >= server.maxConcurrentCalls) {
      this.#send(ch, "ERR", ["BusyError", `too many concurrent calls on this connection (limit ${server.maxConcurrentCalls})`, ""]);
      return;
    }
    const builtin = this.#builtin(method, args);
    if (builtin !== undefined) {
      if (builtin.ok) this.#send(ch, "OK", [builtin.v]);
      else this.#send(ch, "ERR", builtin.v as [string, string, string]);
      return;
    }
    // tilth's own built-ins (".inspect", ".debug.status", ...) are drpc's; over zrpc the
    // debug API is off unless the server asks for it (`zrpcDebug`).
    const hidden = method.startsWith(".") && !(method.startsWith(".debug.") && this.#zrpcDebug);
    const m = hidden ? undefined : server.methods.get(method);
    if (m === undefined) {
      this.#send(ch, "ERR", ["NameError", method, `NameError: unknown method "${method}"`]);
      return;
    }
    const bound = bindArguments(m, args as unknown[], null);
    if (typeof bound === "string") {
      this.#send(ch, "ERR", ["TypeError", bound, `TypeError: ${bound}`]);
      return;
    }
    const mw = server.middleware;
    let r: unknown;
    try {
      for (let i = 0; i < mw.length; i++) mw[i]!.before?.(ch);
      r = m.contextual ? m.fn(ch, ...bound) : m.fn(...bound);
    } catch (e) {
      this.#fail(ch, e);
      return;
    }
    // A call answered at once needs no channel; one that goes on (a promise, a
    // stream) is tracked for credit and heartbeats until it ends.
    if (r instanceof Promise || isAsyncIterable(r)) this.#open(ch);
    if (r instanceof Promise) {
      r.then(
        (v) => this.#result(ch, v),
        (e: unknown) => this.#fail(ch, e),
      );
    } else this.#result(ch, r);
  }

  #open(ch: Channel): void {
    if (ch.done) return;
    const key = idRefKey(ch.msgId);
    ch.key = key;
    this.#channels.set(key, ch);
    if (this.#hbMs > 0) ch.hb = this.#beats.add(this.#hbMs, ch, ch.lastSeen);
  }

  #builtin(method: string, args: unknown[]): { ok: boolean; v: unknown } | undefined {
    if (!method.startsWith("_zerorpc_")) return undefined;
    const methods = [...this.#server.methods.values()].filter((m) => !m.name.startsWith("."));
    const one = (): ExposedMethod | [string, string, string] => {
      const name = args[0];
      const m = typeof name === "string" ? this.#server.methods.get(name) : undefined;
      return m ?? ["NameError", String(name), `NameError: unknown method "${String(name)}"`];
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
  readonly #beat = (ch: Channel): void => {
    if (ch.done) return;
    const ms = this.#hbMs;
    const now = this.#loop.now();
    const silent = now - ch.lastSeen;
    if (silent > 2.5 * ms) {
      // zerorpc-python: the method is killed and nothing more is sent.
      this.#finish(ch, new ConnectionLostError(`lost remote after ${silent} ms without an event (heartbeat ${ms} ms)`, { silentMs: silent }));
      return;
    }
    this.#send(ch, "_zpc_hb", [0], true);
    // Re-armed from a later turn: Deadlines does not expect add() from inside its expiry callback.
    this.#loop.post(() => {
      if (!ch.done && !this.#ended) ch.hb = this.#beats.add(ms, ch, now);
    });
  };

  #result(ch: Channel, v: unknown): void {
    if (ch.done) return;
    if (isAsyncIterable(v)) {
      void this.#pump(ch, v);
      return;
    }
    const mw = this.#server.middleware;
    for (let i = 0; i < mw.length; i++) mw[i]!.after?.(ch, v);
    this.#finish(ch);
    try {
      this.#conn.send(encodeWith(this.#ids, this.#ids.advance(), ch.msgId, "OK", [v === undefined ? null : v]));
    } catch (e) {
      if (!this.#ended) this.#send(ch, "ERR", errArgs(e, this.#server.exposeStack), true);
    }
  }

  #fail(ch: Channel, e: unknown): void {
    if (ch.done) return;
    const mw = this.#server.middleware;
    for (let i = 0; i < mw.length; i++) mw[i]!.error?.(ch, e);
    this.#finish(ch, e instanceof TilthError && e.code === "ERR_TIMEOUT" ? e : undefined);
    this.#send(ch, "ERR", errArgs(e, this.#server.exposeStack), true);
  }

  async #pump(ch: Channel, iterable: AsyncIterable<unknown>): Promise<void> {
    const it = iterable[Symbol.asyncIterator]();
    let complete = false;
    try {
      for (;;) {
        if (ch.done) return;
        if (ch.credit <= 0) {
          await new Promise<void>((resolve) => (ch.creditWaiter = resolve));
          continue;
        }
        const r = await it.next();
        if (ch.done) return;
        if (r.done) {
          complete = true;
          const mw = this.#server.middleware;
          for (let i = 0; i < mw.length; i++) mw[i]!.after?.(ch, undefined);
          this.#finish(ch);
          this.#send(ch, "STREAM_DONE", null, true);
          return;
        }
        if (!this.#send(ch, "STREAM", r.value === undefined ? null : r.value) && !this.#ended) {
          try {
            await this.#conn.drain();
          } catch {
            // the connection ended; the end handler drops the channel
          }
        }
      }
    } catch (e) {
      complete = true;
      this.#fail(ch, e);
    } finally {
      if (!complete) {
        try {
          await it.return?.();
        } catch {
          // the caller is gone; nothing to tell
        }
      }
    }
  }

  #finish(ch: Channel, reason?: unknown): void {
    ch.finish(reason);
    if (ch.key !== undefined && this.#channels.get(ch.key) === ch) this.#channels.delete(ch.key);
    if (this.#channels.size === 0 && this.#idle) {
      const idle = this.#idle;
      this.#idle = undefined;
      idle();
    }
  }

  #onEnd(): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#beats.clear();
    const err = new ConnectionLostError("the client's connection ended");
    for (const ch of [...this.#channels.values()]) this.#finish(ch, err);
    this.#server.sessionEnded(this);
  }
}
