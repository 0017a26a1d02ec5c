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
import type { Listener, ListenOptions } from "../core/Transport.js";
import { TilthError } from "../core/errors.js";
import { sleep } from "../core/time.js";
import { exposedMethods, type ExposeOptions, type ExposedMethod, type MethodInfo } from "./api.js";
import type { Middleware } from "./context.js";
import type { PeerOptions } from "./drpc/Peer.js";
import { drpc } from "./drpc/index.js";
import { zrpc } from "./zerorpc/index.js";
import type { RpcProtocol, ServerCore, ServerSessionLike } from "./protocol.js";
import { formatRpcUrl, parseRpcUrl } from "./url.js";

export interface ServerOptions extends PeerOptions, ExposeOptions {
  loop: Loop;
  /** Calls in flight per connection before new ones are refused with ERR_BUSY. Default 1024. */
  maxConcurrentCalls?: number;
  /** Send handlers' stack traces to callers. Default false. */
  exposeStack?: boolean;
  middleware?: Middleware[];
  /** Passed to the transport's listen (TLS keys, socket mode, backlog). */
  transport?: ListenOptions;
  /** Wire protocols this server can speak, by URL prefix. Default: drpc and zrpc. */
  protocols?: readonly RpcProtocol[];
  /**
   * Serve the debug API (`.debug.status`, `.debug.settings`) beside `.ping`
   * and `.inspect`. Default true.
   */
  debug?: boolean;
  /** Serve the debug API over zrpc too (off by default: ZeroRPC peers see only the API's own methods). */
  zrpcDebug?: boolean;
  /** Extra facts for `.debug.settings` (the app's settings, with secrets masked by the server). */
  debugInfo?: () => Record<string, unknown>;
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
  readonly #options: ServerOptions;
  readonly #listeners: { listener: Listener; url: string }[] = [];
  readonly #sessions = new Set<ServerSessionLike>();
  readonly #protocols: ReadonlyMap<string, RpcProtocol>;
  #closing: Promise<void> | undefined;

  constructor(api: object, options: ServerOptions) {
    this.loop = options.loop;
    this.#options = options;
    this.methods = exposedMethods(api, options);
    this.middleware = [...(options.middleware ?? [])];
    this.maxConcurrentCalls = options.maxConcurrentCalls ?? 1024;
    this.exposeStack = options.exposeStack ?? false;
    this.#protocols = new Map((options.protocols ?? [drpc, zrpc]).map((p) => [p.name, p]));
    const listing = (): MethodInfo[] => [...this.methods.values()].filter((m) => !m.name.startsWith(".")).map(({ fn: _fn, contextual: _c, ...info }) => info);
    this.#builtin(".inspect", "The methods of this server, with parameters and docs.", () => ({ methods: listing() }));
    this.#builtin(".ping", "Answers \"pong\".", () => "pong");
    this.#startedAt = this.loop.now();
    if (options.debug !== false) {
      this.#builtin(".debug.status", "Uptime, calls in flight with their age, loop lag and memory.", () => this.status());
      this.#builtin(".debug.settings", "The settings this server runs with, secrets masked.", () => maskSecrets(options.debugInfo?.() ?? {}));
    }
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
    const calls = [...this.#sessions].flatMap((s) => s.activeCalls?.() ?? []).map((c) => ({ method: c.method, peer: c.peer, ageMs: Math.round(now - c.startedAt) }));
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

  #builtin(name: string, doc: string, fn: () => unknown): void {
    this.methods.set(name, { name, params: [], rest: false, required: 0, stream: false, doc, fn, contextual: false });
  }

  /** The bound URLs, with their protocol (port 0 resolved to the real port). */
  get urls(): string[] {
    return this.#listeners.map((l) => l.url);
  }

  /** Connections open now. */
  get connections(): number {
    return this.#sessions.size;
  }

  use(mw: Middleware): this {
    this.middleware.push(mw);
    return this;
  }

  /** Listen on one more URL with the same handlers; returns the bound URL. */
  async listen(url: string): Promise<string> {
    if (this.#closing) throw new TilthError("ERR_CLOSED", "server is closed");
    const u = parseRpcUrl(url);
    const protocol = this.#protocols.get(u.protocol);
    if (protocol === undefined)
      throw new TilthError("ERR_UNKNOWN_PROTOCOL", `no RPC protocol "${u.protocol}" for ${url} (known: ${[...this.#protocols.keys()].join(", ")})`);
    const o = this.#options;
    const listener = await this.loop.listen(protocol.transportUrl ? protocol.transportUrl(u.transport) : u.transport, {
      ...o.transport,
      ...(o.maxMessageSize === undefined ? {} : { maxMessageSize: o.maxMessageSize }),
    });
    const bound = formatRpcUrl(u.protocol, protocol.publicUrl ? protocol.publicUrl(listener.url) : listener.url);
    this.#listeners.push({ listener, url: bound });
    listener.start((conn) => {
      if (this.#closing) {
        conn.destroy();
        return;
      }
      this.#sessions.add(protocol.accept(this, conn, o));
    });
    return bound;
  }

  /** ServerCore: a session ended (called by the protocol's session). */
  sessionEnded(s: ServerSessionLike): void {
    this.#sessions.delete(s);
  }

  /**
   * Graceful close: stop accepting, tell clients to go elsewhere, let calls in
   * flight finish for up to `graceMs`, then cancel the rest (callers get
   * ERR_UNAVAILABLE, handlers' signals abort) and close every connection.
   * Idempotent.
   */
  close(options: CloseOptions = {}): Promise<void> {
    return (this.#closing ??= this.#close(options.graceMs ?? 5000));
  }

  async #close(graceMs: number): Promise<void> {
    await Promise.all(this.#listeners.map((l) => l.listener.close()));
    const sessions = [...this.#sessions];
    for (const s of sessions) s.goaway("server closing");
    const stopGrace = new AbortController();
    await Promise.race([
      Promise.all(sessions.map((s) => s.idle())),
      sleep(this.loop, graceMs, { signal: stopGrace.signal }).catch(() => {}),
    ]);
    stopGrace.abort(); // the calls ended first: drop the grace timer
    await Promise.all(sessions.map((s) => s.shutdown("server closed before the call finished")));
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
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
