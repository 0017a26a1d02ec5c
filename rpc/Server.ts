/**
 * RPC servers: expose an API object's methods on one or more URLs.
 *
 * @example
 * ```ts
 * const server = await serve({ ping: async () => "pong" }, ["drpc+tcp://127.0.0.1:9990", "drpc+inproc://ping"], { loop });
 * console.log(server.urls); // the bound URLs (port 0 resolved)
 * await server.close({ graceMs: 5_000 }); // let calls finish, then cancel them
 * ```
 * @module
 */
import type { Loop } from "../core/Loop.js";
import type { Connection, ListenOptions } from "../core/Transport.js";
import { timingSafeEqual } from "node:crypto";
import { ClosedError, TilthError } from "../core/errors.js";
import { Scope, stopWithin } from "../core/Scope.js";
import { ByteBudget } from "../core/Budget.js";
import { ConnectionLostError } from "./errors.js";
import { exposedMethods, type ExposeOptions, type ExposedMethod, type MethodInfo } from "./api.js";
import type { Middleware } from "./context.js";
import { checkPeerOptions, type PeerOptions, type RpcProtocol, type ServerCore, type ServerSessionLike } from "./protocol.js";
import { protocolFor } from "./protocols.js";
import { formatRpcUrl, parseRpcUrl } from "./url.js";
import { LOCAL_SCHEME, checkLocalProtocol, listenLocal } from "./local.js";
import type { ServerStats } from "./stats.js";

/** How long closing one connection (flush, the peer's end) may take before it is destroyed, ms. */
export const DEFAULT_CLOSE_TIMEOUT_MS = 2000;
/** Default of `inputBudget` and `outputBudget`: 256 MiB each. */
export const DEFAULT_SERVER_BUDGET = 256 * 1024 * 1024;

export interface ServerOptions extends PeerOptions, ExposeOptions {
  loop: Loop;
  /** Calls in flight per connection before new ones are refused with ERR_BUSY. Default 1024. */
  maxConcurrentCalls?: number;
  /** Send handlers' stack traces to callers. Default false. */
  exposeStack?: boolean;
  middleware?: Middleware[];
  /** Passed to the transport's listen (TLS keys, socket mode, backlog). */
  transport?: ListenOptions;
  /** Wire protocols this server can speak, by URL prefix. Default: every registered protocol (drpc and zrpc with `tilth/rpc`). */
  protocols?: readonly RpcProtocol[];
  /** How long closing a connection may wait for its peer before it is destroyed, ms. Default 2000. */
  closeTimeoutMs?: number;
  /**
   * Bytes of messages in assembly (received, not yet whole) that all the
   * server's stream connections (tcp, ipc, tls) may hold together; a
   * connection whose message would pass it is closed (ERR_BUSY on the server).
   * Default 256 MiB.
   */
  inputBudget?: number;
  /**
   * Bytes of results the server holds for clients that do not read them, all
   * connections together. A connection whose send buffer passes its
   * high-water mark is not read until it drains (no new calls from it); a
   * client whose held results would pass the budget is cut off (ERR_BUSY).
   * Default 256 MiB.
   */
  outputBudget?: number;
  /**
   * The scope the server lives in: it is closed (gracefully, with the default
   * grace period) when that scope closes, and cancelled with it.
   */
  scope?: Scope;
  /**
   * Serve the debug API (`.debug.status`, `.debug.settings`) beside `.ping`
   * and `.inspect`. Default true. On a listener that is not loopback (see
   * `debugRemote`) it answers `ERR_DEBUG_FORBIDDEN` unless enabled there.
   */
  debug?: boolean;
  /**
   * Serve the debug API on listeners that are not loopback too (tcp or tls
   * on an address other than 127.0.0.0/8 and ::1, NATS); each call there
   * must then pass `debugToken` as its argument
   * (`tilth call URL .debug.status TOKEN`). Default false: such listeners
   * answer `ERR_DEBUG_FORBIDDEN`.
   */
  debugRemote?: boolean;
  /** The token debug calls on non-loopback listeners must pass (an app's: its backdoor's). None: they are refused. */
  debugToken?: string | (() => string | undefined);
  /** Which listeners count as loopback, by bound URL (default {@link isLoopbackUrl}; a test may force the other rule). */
  isLoopback?: (url: string) => boolean;
  /** Serve the debug API over zrpc too (off by default: ZeroRPC peers see only the API's own methods). */
  zrpcDebug?: boolean;
  /**
   * Serve the debug API on ws:// and wss:// listeners too (off by default:
   * those face browsers, which see only the API's own methods, `.ping` and
   * `.inspect`).
   */
  wsDebug?: boolean;
  /** Extra facts for `.debug.settings` (the app's settings, with secrets masked by the server). */
  debugInfo?: () => Record<string, unknown>;
  /** Where the server's log lines go (a handler's result that cannot be sent, ...). Default: `console.warn`. */
  log?: (line: string) => void;
  /**
   * Per-call recording (duration by method and outcome, stream items), for
   * metrics. Default: none. `RpcServerTask` passes the service's metrics
   * unless its `stats` option is false.
   */
  stats?: ServerStats;
}

export interface CloseOptions {
  /** How long calls in flight may go on before they are cancelled, ms. Default 5000. */
  graceMs?: number;
}

export class RpcServer implements ServerCore, AsyncDisposable {
  readonly loop: Loop;
  readonly methods: Map<string, ExposedMethod>;
  readonly middleware: Middleware[];
  readonly maxConcurrentCalls: number;
  readonly exposeStack: boolean;
  readonly outputBudget: ByteBudget;
  readonly inputBudget: ByteBudget;
  readonly log: (line: string) => void;
  readonly #options: ServerOptions;
  readonly #urls: string[] = [];
  /** Each open session, with what ends its connection task. */
  readonly #sessions = new Map<ServerSessionLike, () => void>();
  /** Owns the listeners and one task per connection; closing it is closing the server. */
  readonly #scope: Scope;
  readonly #closeTimeoutMs: number;
  /** Open connections whose transport counts bytes, for {@link bytes}. */
  readonly #counted = new Set<Connection>();
  /** Bytes of the connections that have ended. */
  #doneIn = 0;
  #doneOut = 0;
  #heartbeatsLost = 0;

  constructor(api: object, options: ServerOptions) {
    checkPeerOptions(options);
    this.loop = options.loop;
    this.#options = options;
    this.methods = exposedMethods(api, options);
    this.middleware = [...(options.middleware ?? [])];
    this.maxConcurrentCalls = options.maxConcurrentCalls ?? 1024;
    this.exposeStack = options.exposeStack ?? false;
    this.inputBudget = new ByteBudget(options.inputBudget ?? DEFAULT_SERVER_BUDGET);
    this.outputBudget = new ByteBudget(options.outputBudget ?? DEFAULT_SERVER_BUDGET);
    this.log = options.log ?? ((line) => console.warn(line));
    this.#closeTimeoutMs = options.closeTimeoutMs ?? DEFAULT_CLOSE_TIMEOUT_MS;
    const own = { name: "rpc server", graceMs: 5000, cancelMs: this.#closeTimeoutMs + 1000 };
    const scope = (this.#scope = options.scope ? options.scope.child(own) : new Scope(this.loop, own));
    // Graceful step: tell every client to go elsewhere; each connection closes once its calls are done.
    scope.closing.addEventListener("abort", () => {
      for (const s of this.#sessions.keys()) {
        s.goaway("server closing");
        void s.idle().then(() => this.#shutdown(s, "server closed"));
      }
    }, { once: true });
    // Grace period over: cancel what still runs.
    scope.signal.addEventListener("abort", () => {
      for (const s of this.#sessions.keys()) void this.#shutdown(s, "server closed before the call finished");
    }, { once: true });
    const listing = (): MethodInfo[] => [...this.methods.values()].filter((m) => !m.name.startsWith(".")).map(({ fn: _fn, contextual: _c, stats: _s, validate: _v, ...info }) => info);
    this.#builtin(".inspect", "The methods of this server, with parameters and docs.", () => ({ methods: listing() }));
    this.#builtin(".ping", "Answers \"pong\".", () => "pong");
    this.#startedAt = this.loop.now();
    if (options.debug !== false) {
      // The optional `token` is checked only on listeners that are not loopback (#coreFor).
      this.#builtin(".debug.status", "Uptime, calls in flight with their age, loop lag and memory.", () => this.status(), ["token"]);
      this.#builtin(".debug.settings", "The settings this server runs with, secrets masked.", () => maskSecrets(options.debugInfo?.() ?? {}), ["token"]);
    }
    const stats = options.stats;
    if (stats !== undefined) for (const m of this.methods.values()) m.stats = stats.method(m.name);
  }

  readonly #startedAt: number;

  /**
   * What `.debug.status` answers: uptime, connections, calls in flight with
   * their age, how long a posted callback waits on the loop (lag), memory.
   */
  async status(): Promise<Record<string, unknown>> {
    const loop = this.loop;
    const t0 = loop.now();
    await new Promise<void>((r) => loop.post(r));
    const lagMs = loop.now() - t0;
    const now = loop.now();
    const calls = [...this.#sessions.keys()].flatMap((s) => s.activeCalls?.() ?? []).map((c) => ({ method: c.method, peer: c.peer, ageMs: Math.round(now - c.startedAt) }));
    const mem = process.memoryUsage();
    return {
      uptimeMs: Math.round(now - this.#startedAt),
      urls: this.urls,
      connections: this.#sessions.size,
      activeCalls: calls.filter((c) => !c.method.startsWith(".")),
      loopLagMs: Math.round(lagMs * 1000) / 1000,
      memory: { rss: mem.rss, heapUsed: mem.heapUsed, heapTotal: mem.heapTotal, external: mem.external },
      pid: process.pid,
    };
  }

  #builtin(name: string, doc: string, fn: () => unknown, params: string[] = []): void {
    this.methods.set(name, { name, params, rest: false, required: 0, stream: false, doc, fn, contextual: false });
  }

  /**
   * The server as a listener at `url` shows it to its connections: itself on
   * loopback; elsewhere the same but with the debug API refused
   * (ERR_DEBUG_FORBIDDEN) unless `debugRemote`, and then behind the token.
   */
  #coreFor(url: string): ServerCore {
    const o = this.#options;
    if (o.debug === false || (o.isLoopback ?? isLoopbackUrl)(url)) return this;
    const methods = new Map(this.methods);
    for (const [name, m] of methods) {
      if (!name.startsWith(".debug.")) continue;
      const inner = m.fn;
      methods.set(name, {
        ...m,
        fn: (token?: unknown) => {
          checkDebugAccess(url, o.debugRemote === true, typeof o.debugToken === "function" ? o.debugToken() : o.debugToken, token);
          return inner();
        },
      });
    }
    return {
      loop: this.loop,
      methods,
      middleware: this.middleware,
      maxConcurrentCalls: this.maxConcurrentCalls,
      exposeStack: this.exposeStack,
      outputBudget: this.outputBudget,
      log: (line) => this.log(line),
      sessionEnded: (s) => this.sessionEnded(s),
      heartbeatLost: () => this.heartbeatLost(),
    };
  }

  /** The bound URLs, with their protocol (port 0 resolved to the real port). */
  get urls(): string[] {
    return [...this.#urls];
  }

  /** Connections open now. */
  get connections(): number {
    return this.#sessions.size;
  }

  /** Calls in flight now, all connections together. */
  get inFlight(): number {
    let n = 0;
    for (const s of this.#sessions.keys()) n += s.active;
    return n;
  }

  /**
   * Bytes received and sent on the server's connections so far, ended ones
   * included, where their transport counts them (tcp, ipc, tls, ws, wss, the
   * accepting end of zmq; not inproc, local or nats). Read for metrics.
   */
  get bytes(): { received: number; sent: number } {
    let received = this.#doneIn;
    let sent = this.#doneOut;
    for (const c of this.#counted) {
      received += c.bytesIn!;
      sent += c.bytesOut ?? 0;
    }
    return { received, sent };
  }

  /**
   * Peers declared lost because their heartbeats stopped, so far: a drpc
   * connection silent past its limit, a zrpc channel silent past 2.5
   * heartbeat intervals. Read for metrics.
   */
  get heartbeatsLost(): number {
    return this.#heartbeatsLost;
  }

  /** ServerCore: a protocol's session declared its peer (a zrpc channel) lost for want of heartbeats. */
  heartbeatLost(): void {
    this.#heartbeatsLost++;
  }

  use(mw: Middleware): this {
    this.middleware.push(mw);
    return this;
  }

  /**
   * Listen on one more URL with the same handlers; returns the bound URL. A
   * listener that finishes binding after `close()` began is closed at once
   * and this rejects with ERR_CLOSED.
   */
  async listen(url: string): Promise<string> {
    const scope = this.#scope;
    if (scope.isClosing) throw new ClosedError("server is closed");
    const u = parseRpcUrl(url);
    if (u.transport.startsWith(LOCAL_SCHEME)) return this.#listenLocal(url, u.protocol, u.transport);
    const protocol = protocolFor(u.protocol, url, this.#options.protocols);
    const o = this.#options;
    const listener = await this.loop.listen(protocol.transportUrl ? protocol.transportUrl(u.transport) : u.transport, {
      ...o.transport,
      ...(o.maxMessageSize === undefined ? {} : { maxMessageSize: o.maxMessageSize }),
      closeTimeoutMs: this.#closeTimeoutMs,
      inputBudget: this.inputBudget,
      instanceInfo: () => ({ callsInFlight: this.inFlight }),
    });
    try {
      scope.use(listener);
    } catch {
      throw new ClosedError(`server closed while binding ${url}; the listener was closed`);
    }
    // Stop accepting as soon as the server begins to close.
    scope.closing.addEventListener("abort", () => void listener.close(), { once: true });
    const bound = formatRpcUrl(u.protocol, protocol.publicUrl ? protocol.publicUrl(listener.url) : listener.url);
    this.#urls.push(bound);
    const core = this.#coreFor(bound);
    listener.start((conn) => {
      if (scope.isClosing) {
        conn.destroy();
        return;
      }
      this.#watch(conn);
      let ended!: () => void;
      const done = new Promise<void>((resolve) => (ended = resolve));
      const s = protocol.accept(core, conn, o);
      this.#sessions.set(s, ended);
      scope.spawn(() => done, { name: `connection ${conn.remoteUrl}` });
    });
    return bound;
  }

  /** Count a connection's bytes (once it ends, into the totals) and whether it ended for want of heartbeats (drpc). */
  #watch(conn: Connection): void {
    if (conn.bytesIn !== undefined) this.#counted.add(conn);
    void conn.closed.then((end) => {
      if (this.#counted.delete(conn)) {
        this.#doneIn += conn.bytesIn!;
        this.#doneOut += conn.bytesOut ?? 0;
      }
      // A drpc peer silent past its limit: the connection is destroyed with a ConnectionLostError that says how long.
      if (end.error instanceof ConnectionLostError && end.error.silentMs !== undefined) this.#heartbeatsLost++;
    });
  }

  /** In-process at `local://NAME`: each client's session is tracked as a connection. */
  #listenLocal(url: string, protocol: string, transport: string): string {
    checkLocalProtocol(protocol, url);
    const scope = this.#scope;
    const stop = listenLocal(this, transport, (s) => {
      let ended!: () => void;
      const done = new Promise<void>((resolve) => (ended = resolve));
      this.#sessions.set(s, ended);
      scope.spawn(() => done, { name: `in-process connection ${transport}` });
      if (scope.isClosing) s.goaway("server closing");
    });
    scope.defer(stop);
    scope.closing.addEventListener("abort", stop, { once: true });
    this.#urls.push(url);
    return url;
  }

  /** ServerCore: a session ended (called by the protocol's session). */
  sessionEnded(s: ServerSessionLike): void {
    const ended = this.#sessions.get(s);
    if (ended === undefined) return;
    this.#sessions.delete(s);
    ended();
  }

  /** Cancel a session's calls (answered ERR_UNAVAILABLE) and close it, destroying it past the close timeout. */
  #shutdown(s: ServerSessionLike, reason: string): Promise<unknown> {
    return stopWithin(this.loop, {
      what: "connection",
      ended: s.shutdown(reason),
      graceMs: this.#closeTimeoutMs,
      cancel: () => s.destroy(new ClosedError(reason)),
      cancelMs: 0,
    });
  }

  /**
   * Graceful close: stop accepting, tell clients to go elsewhere, let calls in
   * flight finish for up to `graceMs`, then cancel the rest (callers get
   * ERR_UNAVAILABLE, handlers' signals abort) and close every connection
   * (each destroyed past `closeTimeoutMs`). Idempotent; concurrent callers
   * share the outcome.
   */
  close(options: CloseOptions = {}): Promise<void> {
    return this.#scope.close({ graceMs: options.graceMs ?? 5000, cancelMs: this.#closeTimeoutMs + 1000 });
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/** The debug API was called where it is off, or without the right token. */
export class DebugForbiddenError extends TilthError {
  constructor(message: string) {
    super("ERR_DEBUG_FORBIDDEN", message);
  }
}

/**
 * Whether a bound RPC URL listens on loopback only: tcp, tls, ws or wss on
 * 127.0.0.0/8, ::1 or localhost; unix sockets (ipc), inproc and local://
 * (the same machine or process). Anything else, NATS included, is not.
 * (ws and wss hide the debug API from browsers anyway, unless `wsDebug`.)
 */
export function isLoopbackUrl(url: string): boolean {
  let u: URL;
  try {
    u = new URL(url.replace(/^[a-z0-9]+\+/i, ""));
  } catch {
    return false;
  }
  const scheme = u.protocol.slice(0, -1);
  if (scheme === "ipc" || scheme === "unix" || scheme === "inproc" || scheme === "local") return true;
  if (scheme !== "tcp" && scheme !== "tls" && scheme !== "ws" && scheme !== "wss") return false;
  const host = u.hostname.replace(/^\[|\]$/g, "").toLowerCase();
  return host === "localhost" || host === "::1" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

/** Throws ERR_DEBUG_FORBIDDEN unless a debug call on the non-loopback listener `url` may go on. */
export function checkDebugAccess(url: string, enabled: boolean, expected: string | undefined, given: unknown): void {
  if (!enabled) throw new DebugForbiddenError(`the debug API is off on ${url}, which is not loopback (server option debugRemote enables it, behind the backdoor's token)`);
  if (expected === undefined || expected === "") throw new DebugForbiddenError(`the debug API on ${url} needs a token and none is set (give the app a backdoor, or the server a debugToken)`);
  const a = Buffer.from(typeof given === "string" ? given : "");
  const b = Buffer.from(expected);
  if (a.length !== b.length || !timingSafeEqual(a, b)) throw new DebugForbiddenError(`the debug API on ${url} needs the backdoor's token as its argument: ${given === undefined ? "none given" : "wrong token"}`);
}

const SECRET = /pass(word)?|secret|token|key|credential|auth/i;

/** A deep copy of `v` with the values of secret-looking keys replaced by "***". */
export function maskSecrets(v: unknown): Record<string, unknown> {
  const walk = (x: unknown, depth: number): unknown => {
    if (depth > 20 || x === null || typeof x !== "object") return typeof x === "function" ? `[${(x as Function).name || "function"}]` : x;
    if (Array.isArray(x)) return x.map((y) => walk(y, depth + 1));
    return Object.fromEntries(Object.entries(x).map(([k, y]) => [k, SECRET.test(k) && y !== null && typeof y !== "object" ? "***" : walk(y, depth + 1)]));
  };
  return walk(v, 0) as Record<string, unknown>;
}

/** Create a server for `api` and listen on every URL given. */
export async function serve(api: object, urls: string | string[], options: ServerOptions): Promise<RpcServer> {
  const server = new RpcServer(api, options);
  try {
    for (const url of Array.isArray(urls) ? urls : [urls]) await server.listen(url);
  } catch (e) {
    await server.close({ graceMs: 0 });
    throw e;
  }
  return server;
}
