/**
 * RPC clients: `connect<T>(url)` gives a typed proxy of a remote API.
 *
 * One connection is shared by all calls. A call's time limit (default 30 s)
 * runs until its answer: the result, the error, or a stream's first item; a
 * stream that has started runs until it ends or is cancelled.
 * It is opened on demand, and opened
 * again after it is lost, with exponential backoff between failed attempts
 * (100 ms doubling to 5 s, reset by a success). Calls made while the
 * connection is down wait for it, within their own time limit.
 *
 * @example
 * ```ts
 * interface PingAPI { ping(): Promise<string>; count(n: number): AsyncGenerator<number> }
 * const ping = await connect<PingAPI>("drpc+tcp://127.0.0.1:9990", { loop });
 * console.log(await ping.ping());                          // "pong"
 * for await (const n of ping.count(3)) console.log(n);     // 0 1 2
 * await withOptions(ping, { timeout: 100 }).ping();        // per-call options, same types
 * await close(ping);
 * ```
 * @module
 */
import type { Loop } from "../core/Loop.js";
import type { ConnectOptions } from "../core/Transport.js";
import { onAbort } from "../core/abort.js";
import { ClosedError, TimeoutError, abortReason, isTilthError } from "../core/errors.js";
import { sleep } from "../core/time.js";
import type { MethodInfo } from "./api.js";
import { badTimeout } from "./ClientCalls.js";
import type { Middleware } from "./context.js";
import type { Metadata } from "./meta.js";
import { laterStream, type CallOptions, type CallPromise, type PendingCall } from "./PendingCall.js";
import { Scope } from "../core/Scope.js";
import { checkPeerOptions, type ClientSessionLike, type PeerOptions, type RpcProtocol } from "./protocol.js";
import { protocolFor } from "./protocols.js";
import { parseRpcUrl } from "./url.js";
import type { LocalCopy } from "./local.js";
import type { Balancer, EndpointStatus } from "./Balancer.js";
import { clientSlots } from "./internal/clientSlots.js";
import { TilthError } from "../core/errors.js";
import { parseUrl, schemeOf } from "../core/Transport.js";

export type { CallOptions, CallPromise, PendingCall } from "./PendingCall.js";

/** A remote call's result: a promise of the value, that can also be cancelled. */
export type RemoteCall<R> = Promise<R> & { cancel(reason?: unknown): void };
/** A remote stream: iterate it; breaking out of the loop cancels it on the server. */
export type RemoteStream<T> = AsyncIterable<T> & PromiseLike<AsyncIterable<T>> & { cancel(reason?: unknown): void };

/**
 * What the server streams when a handler returns it: an Observable (RxJS or
 * any with `subscribe(next)`), by its item type. Structural, so that
 * this type needs no rxjs.
 */
export interface ObservableLike<T> {
  subscribe(next: (value: T) => void): unknown;
}

type RemoteMethod<F> = F extends (...args: infer A) => infer R
  ? [R] extends [never]
    ? (...args: A) => RemoteCall<never>
    : [R] extends [AsyncIterable<infer I>]
      ? (...args: A) => RemoteStream<I>
      : [R] extends [Generator<infer I>]
        ? (...args: A) => RemoteStream<I>
      : [R] extends [ObservableLike<infer I>]
        ? (...args: A) => RemoteStream<I>
        : (...args: A) => RemoteCall<Awaited<R>>
  : never;

/**
 * The client-side type of an API: each method returns a promise, each async
 * generator and each method returning an Observable an async iterable.
 */
export type Remote<T> = {
  [K in keyof T as T[K] extends (...args: any[]) => any ? (K extends `_${string}` ? never : K) : never]: RemoteMethod<T[K]>;
};

export interface ClientOptions extends PeerOptions {
  loop: Loop;
  /** Default time limit of a call until its answer (a stream's first item), ms. Default 30 000. */
  timeout?: number;
  /** Backoff between failed connection attempts: first and largest, ms. Default 100 and 5000. */
  backoffMs?: number;
  maxBackoffMs?: number;
  /** Hooks around every call. */
  middleware?: Middleware[];
  /**
   * Metadata every call sends (string keys, string or byte values); a call's
   * own `meta` (see {@link withOptions}) adds to it and wins on a shared key.
   */
  meta?: Metadata;
  /** Passed to the transport (TLS options, ...). */
  transport?: ConnectOptions;
  /**
   * Calls wait for a server that is not up yet (connection refused, or reset
   * while it opened, as after a crash) and try again with backoff within
   * their time limit, instead of failing at once
   * (gRPC's waitForReady). Default false. Apps' clients of other apps use it,
   * since apps started together come up in any order.
   */
  waitForReady?: boolean;
  /** Wire protocols this client can speak, by URL prefix. Default: every registered protocol (drpc and zrpc with `tilth/rpc`). */
  protocols?: readonly RpcProtocol[];
  /** How long closing the connection may wait for the server before it is destroyed, ms. Default 2000. */
  closeTimeoutMs?: number;
  /** The scope the client lives in: it is closed when that scope closes. */
  scope?: Scope;
  /** @internal told when the connection opens or goes down (a balancer's member). */
  onSessionChange?: () => void;
  /**
   * In-process calls (`drpc+local://NAME`) only: how values cross between
   * caller and handler. `"reference"` (default): as they are, no copy;
   * `"structured"`: each argument, result, stream item and error's data is a
   * `structuredClone`.
   */
  copy?: LocalCopy;
  /**
   * The owner's stop: once it aborts, calls still waiting for a connection
   * (a `waitForReady` retry, the backoff before the next attempt) fail at
   * once with its reason instead of waiting out their time limit. Calls on an
   * open connection go on; `close()` ends those. An app's clients of other
   * apps get its scope's `closing` signal, so stopping the app never waits on
   * a server that is down.
   */
  signal?: AbortSignal;
}

export const DEFAULT_TIMEOUT_MS = 30_000;

/**
 * A client of one RPC URL, or of a service with many endpoints: a list of
 * URLs, or a URL that names a group (`drpc+nats://HOST:PORT/SERVICE`), over
 * which calls are balanced (rpc/Balancer). Proxies from `connect()` sit on
 * top of one of these.
 */
export class RpcClient implements AsyncDisposable {
  readonly url: string;
  readonly loop: Loop;
  readonly timeout: number;
  readonly #transportUrl: string;
  readonly #options: ClientOptions;
  readonly #middleware: Middleware[];
  readonly #protocol: RpcProtocol;
  #session: ClientSessionLike | undefined;
  #connecting: Promise<ClientSessionLike> | undefined;
  #closed = false;
  #failures = 0;
  #nextAttemptAt = 0;
  /** Owns the connections (closed with it, bounded by their close timeout), one task per open session; its signal ends a backoff wait. */
  readonly #scope: Scope;
  readonly #sessions = new Set<ClientSessionLike>();
  /** In-process (`drpc+local://NAME`): sessions paired with the server's, no connection. */
  readonly #local: boolean;
  readonly #balancer: Balancer | undefined;

  constructor(url: string | readonly string[], options: ClientOptions) {
    checkPeerOptions(options);
    const urls = typeof url === "string" ? [url] : [...url];
    if (urls.length === 0) throw new RangeError("connect() needs at least one URL");
    url = urls.join(",");
    const u = parseRpcUrl(urls[0]!);
    const slot = clientSlots.local;
    const local = slot !== undefined && u.transport.startsWith(slot.scheme);
    if (local) slot.check(u.protocol, urls[0]!);
    const protocol = protocolFor(u.protocol, urls[0]!, options.protocols);
    this.#protocol = protocol;
    this.url = url;
    this.#transportUrl = protocol.transportUrl && !local ? protocol.transportUrl(u.transport) : u.transport;
    this.#local = local;
    this.loop = options.loop;
    const bad = badTimeout(options.timeout);
    if (bad !== undefined) throw bad;
    this.timeout = options.timeout ?? DEFAULT_TIMEOUT_MS;
    this.#options = options;
    this.#middleware = [...(options.middleware ?? [])];
    const own = { name: `rpc client of ${url}`, graceMs: 5000, cancelMs: (options.closeTimeoutMs ?? 2000) + 1000 };
    const scope = (this.#scope = options.scope ? options.scope.child(own) : new Scope(this.loop, own));
    // Graceful step: no new calls; each connection closes once its calls are over.
    scope.closing.addEventListener("abort", () => {
      this.#closed = true;
      for (const s of this.#sessions) void s.idle().then(() => s.close());
    }, { once: true });
    // Grace period over: close every connection now (calls in flight fail).
    scope.signal.addEventListener("abort", () => {
      for (const s of this.#sessions) void s.close();
    }, { once: true });
    if (urls.length > 1 || isGroupUrl(this.loop, this.#transportUrl)) {
      const memberOptions: ClientOptions = { ...options, waitForReady: false, scope };
      const B = clientSlots.Balancer;
      if (B === undefined) throw new TilthError("ERR_NO_BALANCER", `${url}: this build of the client has no balancer (the browser client connects to one URL); on Node, import tilth/rpc`);
      this.#balancer = new B(urls, urls.length === 1, {
        loop: this.loop,
        scope,
        name: url,
        timeout: this.timeout,
        waitForReady: options.waitForReady ?? false,
        signal: options.signal,
        makeClient: (member, changed) => new RpcClient(member, { ...memberOptions, onSessionChange: changed }),
      });
    }
  }

  /** Whether a connection is open and takes new calls. */
  get ready(): boolean {
    const s = this.#session;
    return s !== undefined && s.usable;
  }

  /** Calls in flight on the open connection (on every endpoint, for a balanced client). */
  get inFlight(): number {
    if (this.#balancer !== undefined) return this.#balancer.endpoints().reduce((n, e) => n + e.inFlight, 0);
    return this.#session?.inFlight ?? 0;
  }

  /** The endpoints of a balanced client (a list of URLs or a service's instances), with their state; empty otherwise. */
  endpoints(): EndpointStatus[] {
    return this.#balancer?.endpoints() ?? [];
  }

  /** Add a middleware for every later call. */
  use(mw: Middleware): this {
    this.#middleware.push(mw);
    return this;
  }

  /** Open the connection now (calls open it on demand anyway). */
  async connect(): Promise<void> {
    if (this.#balancer !== undefined) return this.#balancer.connect();
    await this.#ready(undefined, undefined);
  }

  /**
   * Call `method`. The result is awaitable for plain results and iterable for
   * streamed ones. `timeout` defaults to the client's; `signal` cancels.
   */
  call<R = unknown>(method: string, args: readonly unknown[] = [], options?: CallOptions): CallPromise<R> {
    const s = this.#session;
    const timeout = options?.timeout ?? this.timeout;
    if (s !== undefined && s.usable) return s.call<R>(method, args, timeout, options).asPromise();
    if (this.#balancer !== undefined) return this.#balancer.call<R>(method, args, options);
    return this.#callLater<R>(method, args, timeout, options);
  }

  /** The server's methods, with parameters and docs (in the protocol's own way: `.inspect` on drpc, `_zerorpc_inspect` on zrpc). */
  async inspect(): Promise<{ methods: MethodInfo[] }> {
    const call = (method: string, args: readonly unknown[]): Promise<unknown> => this.call(method, args);
    if (this.#protocol.inspect) return this.#protocol.inspect(call);
    return (await call(".inspect", [])) as { methods: MethodInfo[] };
  }

  /**
   * Stop new calls (they fail with ERR_CLOSED), give calls in flight up to
   * `graceMs` (default 0) to end, then close the connection: calls still in
   * flight fail with ERR_CONNECTION_LOST. Bounded: a server that does not
   * finish the close is cut off after `closeTimeoutMs` (default 2000).
   * Idempotent; concurrent callers share the outcome.
   */
  close(options: { graceMs?: number } = {}): Promise<void> {
    this.#closed = true;
    return this.#scope.close({ graceMs: options.graceMs ?? 0, reason: new ClosedError(`client of ${this.url} is closed`) });
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  /**
   * The connection is not up: wait for it (within the call's time limit),
   * then make the call. Returns a PendingCall-shaped object right away.
   */
  #callLater<R>(method: string, args: readonly unknown[], timeout: number | undefined, options: CallOptions | undefined): CallPromise<R> {
    const bad = badTimeout(timeout);
    if (bad !== undefined) return deferredCall(Promise.reject(bad)) as CallPromise<R>;
    const deadline = timeout === undefined ? undefined : this.loop.now() + timeout;
    // Boxed: a PendingCall is thenable, and a promise would adopt it.
    const ready = this.#options.waitForReady ? this.#readyWaiting(deadline, timeout, options?.signal) : this.#ready(deadline, timeout, options?.signal);
    const started = ready.then((s) => {
      const left = deadline === undefined ? undefined : Math.max(0, deadline - this.loop.now());
      // The time left runs the timer; errors still name the limit the caller set.
      return { call: s.call<R>(method, args, left, { ...options, limitMs: timeout }) as PendingCall<unknown> };
    });
    return deferredCall(started) as CallPromise<R>;
  }

  /** `waitForReady`: a connection refused, or reset while it opened, is tried again (with backoff) until the call's time runs out. */
  async #readyWaiting(deadline: number | undefined, limitMs: number | undefined, signal?: AbortSignal): Promise<ClientSessionLike> {
    const stop = this.#options.signal;
    for (;;) {
      try {
        return await this.#ready(deadline, limitMs, signal);
      } catch (e) {
        const retry = notUpYet(e) && !this.#closed && !signal?.aborted && !stop?.aborted && (deadline === undefined || deadline > this.loop.now());
        if (!retry) throw e;
      }
    }
  }

  /** The open session, once there is one; `deadline` (loop time) bounds the wait, `limitMs` is the caller's limit that errors name. */
  #ready(deadline: number | undefined, limitMs: number | undefined, signal?: AbortSignal): Promise<ClientSessionLike> {
    if (this.#closed) return Promise.reject(new ClosedError(`client of ${this.url} is closed`));
    const s = this.#session;
    if (s !== undefined && s.usable) return Promise.resolve(s);
    const stop = this.#options.signal;
    for (const sig of [signal, stop]) if (sig?.aborted) return Promise.reject(abortReason(sig));
    this.#connecting ??= this.#open().finally(() => (this.#connecting = undefined));
    if (deadline === undefined && signal === undefined && stop === undefined) return this.#connecting;
    const limit = deadline === undefined ? Infinity : Math.max(0, deadline - this.loop.now());
    return new Promise<ClientSessionLike>((resolve, reject) => {
      // Whichever way the wait ends (connected, timed out, aborted), its timer
      // and listeners go at once: a connect that hangs past the client's close
      // must not keep the call's deadline timer (and so the process) alive.
      const settle = <A>(f: (a: A) => void) => (a: A): void => {
        t?.cancel();
        offCall();
        offStop();
        f(a);
      };
      const t =
        limit === Infinity
          ? undefined
          : this.loop.timer(limit, () => settle(reject)(new TimeoutError(limitMs ?? limit, `connecting to ${this.url}`)));
      const offCall = onAbort(signal, () => settle(reject)(abortReason(signal!)));
      const offStop = onAbort(stop, () => settle(reject)(abortReason(stop!)));
      this.#connecting!.then(settle(resolve), settle(reject));
    });
  }

  /** Pair with the in-process server of the URL's name; as a connection, the session lives in the client's scope. */
  #openLocal(): ClientSessionLike {
    let ended!: () => void;
    const done = new Promise<void>((resolve) => (ended = resolve));
    const session = clientSlots.local!.connect(this.loop, this.#transportUrl, {
      middleware: this.#middleware,
      meta: this.#options.meta,
      copy: this.#options.copy,
      onGoaway: (s) => {
        if (this.#session === s) this.#session = undefined;
      },
      onEnded: (s) => {
        this.#sessions.delete(s);
        if (this.#session === s) this.#session = undefined;
        ended();
      },
    });
    this.#sessions.add(session);
    this.#scope.spawn(() => done, { name: `in-process connection to ${this.url}` });
    this.#failures = 0;
    this.#nextAttemptAt = 0;
    this.#session = session;
    return session;
  }

  async #open(): Promise<ClientSessionLike> {
    const wait = this.#nextAttemptAt - this.loop.now();
    if (wait > 0) await sleep(this.loop, wait, { signal: this.#scope.closing });
    if (this.#closed) throw new ClosedError(`client of ${this.url} is closed`);
    try {
      const o = this.#options;
      if (this.#local) return this.#openLocal();
      // Closing the client aborts a connect in flight (one to a host that does not answer can take minutes).
      const closing = this.#scope.closing;
      const own = o.transport?.signal;
      const conn = await this.loop.connect(this.#transportUrl, {
        ...o.transport,
        signal: own instanceof AbortSignal ? AbortSignal.any([own, closing]) : closing,
        ...(o.maxMessageSize === undefined ? {} : { maxMessageSize: o.maxMessageSize }),
        ...(o.closeTimeoutMs === undefined ? {} : { closeTimeoutMs: o.closeTimeoutMs }),
      });
      // A connection that opened after close() began is closed at once.
      try {
        this.#scope.use(conn);
      } catch {
        throw new ClosedError(`client of ${this.url} is closed`);
      }
      let ended!: () => void;
      const done = new Promise<void>((resolve) => (ended = resolve));
      const session = this.#protocol.open(this.loop, conn, {
        ...o,
        middleware: this.#middleware,
        onGoaway: (s) => {
          if (this.#session === s) this.#session = undefined;
          o.onSessionChange?.();
        },
        onEnded: (s) => {
          this.#scope.release(conn);
          this.#sessions.delete(s);
          if (this.#session === s) this.#session = undefined;
          ended();
          o.onSessionChange?.();
        },
      });
      this.#sessions.add(session);
      this.#scope.spawn(() => done, { name: `connection to ${this.url}` });
      this.#failures = 0;
      this.#nextAttemptAt = 0;
      this.#session = session;
      o.onSessionChange?.();
      return session;
    } catch (e) {
      const base = this.#options.backoffMs ?? 100;
      const max = this.#options.maxBackoffMs ?? 5000;
      const backoff = Math.min(max, base * 2 ** this.#failures++);
      this.#nextAttemptAt = this.loop.now() + backoff;
      throw e;
    }
  }
}

/** Whether a transport URL names a group of endpoints (a NATS service) rather than one. */
function isGroupUrl(loop: Loop, transportUrl: string): boolean {
  try {
    const u = parseUrl(transportUrl);
    const r = loop.transports;
    const scheme = schemeOf(u);
    return r.has(scheme) && r.get(scheme).isGroup?.(u) === true;
  } catch {
    return false; // a bad URL fails where it always did: at connect
  }
}

/** errnos of a connection attempt that the server cut while it opened: it crashed, or is starting again. */
const CUT_WHILE_OPENING: ReadonlySet<unknown> = new Set(["ECONNRESET", "ECONNABORTED", "EPIPE"]);

/**
 * Whether a failed connection attempt says the server is not up (yet): refused,
 * or cut while it opened (a server that crashed resets the handshakes in
 * progress: ERR_CONNECT_FAILED with errno ECONNRESET). Any other failure
 * (a TLS certificate refused, an unreachable host) is not waited out.
 */
function notUpYet(e: unknown): boolean {
  return isTilthError(e, "ERR_CONNECTION_REFUSED") || (isTilthError(e, "ERR_CONNECT_FAILED") && CUT_WHILE_OPENING.has(e.context?.errno));
}

/** A CallPromise for a call that waits for the connection first. */
function deferredCall(started: Promise<{ call: PendingCall<unknown> }>): CallPromise<unknown> {
  let cancelled: unknown;
  const box = started.then((b) => {
    if (cancelled !== undefined) b.call.cancel(cancelled);
    return b;
  });
  const value = box.then((b) => b.call.asPromise()) as CallPromise<unknown>; // adopts the call's value or error
  value.catch(() => {});
  const cancel = (reason: unknown): void => {
    cancelled = reason;
    void box.then(
      (b) => b.call.cancel(reason),
      () => {},
    );
  };
  value.cancel = (reason: unknown = "cancelled") => cancel(reason);
  value[Symbol.asyncIterator] = laterStream(box, cancel);
  return value;
}


const CLIENT = Symbol("tilth.rpc.client");
const OPTIONS = Symbol("tilth.rpc.options");

/** Never forwarded as remote method names: promise machinery and inspection probes. */
const NOT_METHODS = new Set(["then", "catch", "finally", "toJSON", "constructor", "inspect", "valueOf", "toString"]);

/**
 * A proxy's methods are made on first use and then kept as own properties of
 * the object the caller holds, so later calls read a plain property; only
 * the first lookup of a name reaches the Proxy behind it (its prototype).
 */
function makeProxy<T>(client: RpcClient, callOptions: CallOptions | undefined): Remote<T> {
  const methods: Record<string | symbol, unknown> = Object.create(
    new Proxy(Object.create(null) as object, {
      get(_t, prop, receiver: object) {
        if (prop === CLIENT) return client;
        if (prop === OPTIONS) return callOptions;
        if (typeof prop !== "string" || NOT_METHODS.has(prop)) return undefined;
        const f = callOptions === undefined ? (...args: unknown[]) => client.call(prop, args) : (...args: unknown[]) => client.call(prop, args, callOptions);
        // Kept (not enumerable, so the proxy still lists no keys); a frozen proxy just makes a new one each time.
        if (receiver === methods) Reflect.defineProperty(methods, prop, { value: f });
        return f;
      },
      has: () => false,
      set: () => false,
    }),
  ) as Record<string | symbol, unknown>;
  return methods as Remote<T>;
}

/**
 * Connect to an RPC URL and return a typed proxy. The connection is opened
 * before this resolves, so a wrong address fails here.
 */
export async function connect<T>(url: string | readonly string[], options: ClientOptions): Promise<Remote<T>> {
  const client = new RpcClient(url, options);
  try {
    await client.connect();
  } catch (e) {
    await client.close(); // what it opened meanwhile (a discovery, connections to other endpoints)
    throw e;
  }
  return makeProxy<T>(client, undefined);
}

/** A typed proxy over an existing client (which opens its connection on first use). */
export function remoteOf<T>(client: RpcClient): Remote<T> {
  return makeProxy<T>(client, undefined);
}

/**
 * The same proxy with per-call options (timeout, signal, kwargs, meta) for
 * every call made through it. Metadata adds to the proxy's own.
 */
export function withOptions<P extends object>(proxy: P, options: CallOptions): P {
  const client = clientOf(proxy);
  const base = (proxy as Record<symbol, CallOptions | undefined>)[OPTIONS];
  const merged = { ...base, ...options };
  if (base?.meta !== undefined && options.meta !== undefined) merged.meta = { ...base.meta, ...options.meta };
  return makeProxy<unknown>(client, merged) as P;
}

/** The RpcClient behind a proxy. */
export function clientOf(proxy: object): RpcClient {
  const c = (proxy as Record<symbol, RpcClient | undefined>)[CLIENT];
  if (c === undefined) throw new TypeError("not an RPC proxy");
  return c;
}

/** Close the client behind a proxy. */
export function close(proxy: object): Promise<void> {
  return clientOf(proxy).close();
}
