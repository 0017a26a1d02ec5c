/**
 * The seam between the RPC machinery (servers, clients, proxies) and a wire
 * protocol. A protocol turns a transport connection into a server session or
 * a client session; `drpc` is built in, others (zrpc) plug in the same way.
 * @module
 */
import type { ByteBudget } from "../core/Budget.js";
import type { Loop } from "../core/Loop.js";
import type { Connection } from "../core/Transport.js";
import type { ExposedMethod, MethodInfo } from "./api.js";
import type { ClientOptions } from "./Client.js";
import type { Middleware } from "./context.js";
import type { Metadata } from "./meta.js";
import type { CallOptions, PendingCall } from "./PendingCall.js";
import type { ServerOptions } from "./Server.js";

/** Connection options every protocol's sessions take. */
export interface PeerOptions {
  /** Interval of heartbeats, ms; 0 turns them off. Default 5000. */
  heartbeatMs?: number;
  /**
   * Silence after which the peer is declared lost, ms: detected within it, and
   * never before it less half a heartbeat. Default 3 heartbeat intervals of the
   * slower side.
   */
  peerTimeoutMs?: number;
  /**
   * Longest heartbeat interval a peer may announce in its HELLO, ms: a longer
   * one, or none (0), counts as this, so a peer cannot turn off this side's
   * liveness checks. Default 30000 (such a peer is lost after 90 s of silence).
   */
  maxPeerHeartbeatMs?: number;
  /**
   * Time the peer's HELLO may take after the connection opens, ms; past it the
   * connection ends with ERR_PROTOCOL. Default 5000; Infinity waits for ever.
   */
  handshakeTimeoutMs?: number;
  /** Largest message accepted and sent, bytes. Default 64 MiB. */
  maxMessageSize?: number;
  /** A name sent in HELLO, for logs. */
  name?: string;
}

/** A non-negative, finite number of ms (Infinity where `infinite`), or undefined; else a RangeError naming the option. */
function validMs(name: string, v: unknown, infinite = false): void {
  if (v === undefined) return;
  if (typeof v !== "number" || Number.isNaN(v) || v < 0 || (!infinite && !Number.isFinite(v))) {
    throw new RangeError(`${name} must be a non-negative number of ms${infinite ? " (or Infinity)" : ""}, got ${String(v)}`);
  }
}

/** Check the time options of PeerOptions at once (sessions read them later); throws RangeError. */
export function checkPeerOptions(o: PeerOptions): void {
  validMs("heartbeatMs", o.heartbeatMs);
  validMs("peerTimeoutMs", o.peerTimeoutMs);
  validMs("maxPeerHeartbeatMs", o.maxPeerHeartbeatMs);
  validMs("handshakeTimeoutMs", o.handshakeTimeoutMs, true);
}

/** What a protocol's server session needs from its server. */
export interface ServerCore {
  readonly loop: Loop;
  readonly methods: ReadonlyMap<string, ExposedMethod>;
  readonly middleware: readonly Middleware[];
  readonly maxConcurrentCalls: number;
  readonly exposeStack: boolean;
  /** Output held for clients that do not read, across the server's connections. */
  readonly outputBudget?: ByteBudget;
  /** Write a line to the server's log (a handler's result that cannot be sent, ...). */
  log(line: string): void;
  /** The session's connection ended. */
  sessionEnded(s: ServerSessionLike): void;
  /** Optional: the session declared its peer lost for want of heartbeats (counted for metrics). */
  heartbeatLost?(): void;
}

/** The server end of one connection. */
export interface ServerSessionLike {
  /** Calls in flight. */
  readonly active: number;
  /** The calls in flight, for status reports (optional). */
  activeCalls?(): { id: number; method: string; peer: string; startedAt: number }[];
  /** Take no new calls; tell the client (if the protocol can). */
  goaway(reason: string): void;
  /** Resolves when no call is in flight. */
  idle(): Promise<void>;
  /** Cancel calls still in flight (answering them as unavailable), then close. */
  shutdown(reason: string): Promise<void>;
  /** Close the connection now, without flushing. */
  destroy(reason: Error): void;
}

/** The client end of one connection. */
export interface ClientSessionLike {
  /** Whether new calls may go on this connection. */
  readonly usable: boolean;
  readonly inFlight: number;
  call<R>(method: string, args: readonly unknown[], timeoutMs: number | undefined, options: CallOptions | undefined): PendingCall<R>;
  /** Resolves when no call is in flight. */
  idle(): Promise<void>;
  /** Close the connection (calls still in flight fail). */
  close(): Promise<void>;
}

/** Callbacks a client gives each session it opens. */
export interface ClientSessionHooks {
  middleware: readonly Middleware[];
  /** Metadata every call sends (the client's `meta`). */
  meta?: Metadata | undefined;
  /** The server asked for new calls to go elsewhere. */
  onGoaway(s: ClientSessionLike): void;
  /** The connection ended. */
  onEnded(s: ClientSessionLike, error: Error): void;
}

export interface RpcProtocol {
  /** The URL prefix: `drpc` in `drpc+tcp://…`. */
  readonly name: string;
  /**
   * The transport URL for a URL of this protocol, when the protocol implies a
   * transport (zrpc: `zrpc+tcp://` runs on `zmq+tcp://`). Default: as given.
   */
  transportUrl?(transport: string): string;
  /** The inverse of `transportUrl`, for the URLs a server reports. */
  publicUrl?(transport: string): string;
  /** Serve one accepted connection. */
  accept(server: ServerCore, conn: Connection, options: ServerOptions): ServerSessionLike;
  /**
   * The server's methods, asked in this protocol's own way (default: the
   * `.inspect` built-in of tilth servers). `call` makes a call on the client.
   */
  inspect?(call: (method: string, args: readonly unknown[]) => Promise<unknown>): Promise<{ methods: MethodInfo[] }>;
  /** Start a client session on a fresh connection. */
  open(loop: Loop, conn: Connection, options: ClientOptions & ClientSessionHooks): ClientSessionLike;
}
