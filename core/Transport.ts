/**
 * The transport contract: what `loop.connect(url)` and `loop.listen(url)` give.
 *
 * The contract lives in core because the Loop owns the registry that resolves
 * URL schemes; the implementations (tcp, ipc, tls, inproc, zmq) live in
 * `transports/` and register themselves with a loop.
 *
 * A {@link Connection} carries whole messages. A message is one or more frames
 * (byte arrays); the receiver gets exactly the frames the sender sent.
 *
 * @example
 * ```ts
 * const conn = await loop.connect("tcp://127.0.0.1:9990");
 * conn.start({ message: (m) => console.log(m.length, "frames"), end: (e) => console.log("ended", e) });
 * if (!conn.send([Buffer.from("hello")])) await conn.drain();
 * await conn.close();
 * ```
 * @module
 */
import { TilthError } from "./errors.js";
import type { Loop } from "./Loop.js";

/** One frame of a message. */
export type Frame = Uint8Array;
/** A message: one or more frames, delivered together. */
export type Message = Frame[];

/** Writes one frame in place: see {@link Connection.sendFrame}. */
export interface FrameWriter {
  /** Write the frame, exactly the `size` given to `sendFrame`, at `dst[at]` onwards. */
  writeFrame(dst: Uint8Array, at: number): void;
}

/** How a connection ended: who ended it, and the error if it was not a clean close. */
export interface ConnectionEnd {
  /** `local`: this side closed or destroyed it. `peer`: the other side did, or the network broke. */
  readonly by: "local" | "peer";
  /** Undefined for a clean close; otherwise why (a coded TilthError, e.g. ERR_BROKEN, ERR_MALFORMED_FRAME). */
  readonly error?: Error;
}

/**
 * Who the peer of a connection is, as its transport verified it: for tls://,
 * the certificate the peer presented and the listener (or client) checked
 * against its trusted CAs. Absent when the transport verified nobody (tcp,
 * ipc, inproc; tls without a peer certificate, or with one that was not
 * verified). The fields are read from the certificate as it is.
 */
export interface PeerIdentity {
  /** The certificate's subject, e.g. `{ CN: "client-a", O: "Acme" }` (a repeated attribute gives an array). */
  readonly subject: Readonly<Record<string, string | readonly string[]>>;
  /** The certificate's issuer, in the same form. */
  readonly issuer: Readonly<Record<string, string | readonly string[]>>;
  /** Subject alternative names as `TYPE:value`, e.g. `["DNS:client-a.example", "URI:spiffe://example/client-a"]`. */
  readonly subjectAltNames: readonly string[];
  /** SHA-256 fingerprint of the certificate, colon-separated hex as OpenSSL prints it (`AB:CD:…`). */
  readonly fingerprint256: string;
}

/** Receives a connection's events. Calls are never synchronous with `start()`. */
export interface ConnectionHandler {
  /** A whole message arrived. The frames are the handler's to keep. */
  message(msg: Message): void;
  /**
   * A message of one frame arrived: `bytes[start]` to `bytes[end]` (the bytes,
   * and views of them, are the handler's to keep). Optional: a transport
   * that reads frames out of larger chunks calls it instead of `message`,
   * sparing a view and an array per message; others call `message`.
   */
  frame?(bytes: Uint8Array, start: number, end: number): void;
  /** The connection ended; no more messages follow. Called exactly once. */
  end(end: ConnectionEnd): void;
}

/** A message-oriented, bidirectional connection. */
export interface Connection extends AsyncDisposable {
  /** Scheme of the transport, e.g. `tcp`. */
  readonly scheme: string;
  /** The local end as a URL (e.g. `tcp://127.0.0.1:51234`). */
  readonly localUrl: string;
  /** The remote end as a URL. */
  readonly remoteUrl: string;
  /** The peer's identity, when the transport verified one (tls:// with a verified certificate). */
  readonly peerIdentity?: PeerIdentity | undefined;
  /** Set once the connection has ended; the same object `closed` resolves with. */
  readonly ended: ConnectionEnd | undefined;
  /** Resolves (never rejects) when the connection has ended. */
  readonly closed: Promise<ConnectionEnd>;

  /**
   * Begin delivering events to `handler`. Call once. Messages that arrived
   * before are delivered first. Use either `start` or `messages()`, not both.
   */
  start(handler: ConnectionHandler): void;
  /** Pull-style reading: an async iterable of messages that ends with the connection (throws if it broke). */
  messages(): AsyncIterable<Message>;
  /** Stop reading from the peer (receive-side backpressure). */
  pause(): void;
  /** Resume reading after `pause()`. */
  resume(): void;

  /**
   * Queue one message. Returns `true` while the writer may go on, `false` when
   * buffered bytes passed the high-water mark: wait for `drain()` before sending
   * more. Throws ClosedError/BrokenError once ended, and MessageTooLargeError for
   * a message above the connection's maximum.
   *
   * `owned`: the sender hands the frames (and the array) over and never touches
   * them again, so a transport that would copy them (inproc) may pass them on
   * as they are (inproc still copies a frame that is a small part of a larger
   * buffer, which the receiver would otherwise keep alive). Default false: the
   * sender may reuse its buffers at once.
   */
  send(msg: Message, owned?: boolean): boolean;
  /**
   * Optional: queue a message of one frame of `size` bytes that `writer`
   * writes straight into the transport's send buffer, which saves the sender
   * a buffer of its own per message. The same result and errors as `send`
   * (nothing is written when it throws). Where a transport lacks it, use
   * `send`.
   */
  sendFrame?(size: number, writer: FrameWriter): boolean;
  /** Bytes queued and not yet handed to the OS (or the peer, in memory). */
  readonly bufferedAmount: number;
  /**
   * Optional: bytes received on this connection so far, as its transport
   * counts them (tcp, ipc, tls, ws, wss: the socket's count, framing
   * included; the accepting end of zmq: the messages' bytes). Read for metrics; absent
   * where the transport does not count.
   */
  readonly bytesIn?: number;
  /** Optional: bytes sent (queued included) on this connection so far, counted as `bytesIn`. */
  readonly bytesOut?: number;
  /** Resolves when buffered bytes fall below the low-water mark; rejects if the connection ends first. */
  drain(): Promise<void>;

  /** Graceful close: flush what was sent, then end; destroyed past the close timeout (`closeTimeoutMs`). Idempotent. */
  close(): Promise<void>;
  /** Forceful close: drop buffers and end now, with `reason` reported as the end's error. Idempotent. */
  destroy(reason?: Error): void;
}

/** A listening endpoint that yields incoming connections. */
export interface Listener extends AsyncDisposable, AsyncIterable<Connection> {
  readonly scheme: string;
  /** The bound URL, with the real port when port 0 was asked. */
  readonly url: string;
  /** Deliver each incoming connection to `handler` instead of iterating. Call once. */
  start(handler: (conn: Connection) => void): void;
  /** Stop accepting. Connections already accepted stay open. Idempotent. */
  close(): Promise<void>;
}

/** Options every transport understands; transports may accept more. */
export interface ConnectOptions {
  /** Aborts the connection attempt. */
  signal?: AbortSignal;
  /** Largest message accepted or sent, in bytes (all frames together). */
  maxMessageSize?: number;
  /** Bytes buffered before `send` returns false. */
  highWaterMark?: number;
  /**
   * How long a graceful `close()` waits for the peer to finish it (flush and
   * the peer's end) before the connection is destroyed, ms. Default 2000;
   * `Infinity` waits as long as the peer likes.
   */
  closeTimeoutMs?: number;
  [option: string]: unknown;
}

/** Options for `listen`; transports may accept more (TLS keys, socket modes). */
export interface ListenOptions extends ConnectOptions {
  /** Pending connections the OS may queue. */
  backlog?: number;
  /**
   * For a listener that announces itself as one endpoint of a group (an
   * instance of a service on NATS): extra fields it tells whoever discovers
   * it, asked afresh on each answer (an RPC server gives its calls in flight).
   */
  instanceInfo?: () => Record<string, unknown>;
}

/** A transport: turns URLs of its schemes into connections and listeners. */
export interface Transport {
  /** URL schemes this transport serves, without the colon: `["tcp"]`. */
  readonly schemes: readonly string[];
  connect(loop: Loop, url: URL, options: ConnectOptions): Promise<Connection>;
  listen(loop: Loop, url: URL, options: ListenOptions): Promise<Listener>;
  /**
   * For a transport whose URL may name a group of endpoints (every instance
   * of one service on NATS): whether `url` names such a group rather than one
   * endpoint. Absent: every URL names one endpoint.
   */
  isGroup?(url: URL): boolean;
  /** Watch the endpoints of a group URL: `handler` hears each one come and go. */
  discover?(loop: Loop, url: URL, handler: DiscoveryHandler, options: ConnectOptions): Promise<Discovery>;
}

/** One endpoint of a group: what a client connects to, and what it says of itself. */
export interface Endpoint {
  /** Unique within the group. */
  readonly id: string;
  /** The transport URL that reaches exactly this endpoint. */
  readonly url: string;
  /** What the endpoint announced: host, pid, start time... */
  readonly info: Readonly<Record<string, unknown>>;
}

/** Hears the endpoints of a group come and go. */
export interface DiscoveryHandler {
  /** An endpoint is up (it may be reported again; the same id is the same endpoint). */
  up(endpoint: Endpoint): void;
  /** An endpoint announced that it leaves: it takes no new connections. */
  leaving(id: string): void;
  /** The first look-up is over (every endpoint up at that time has been reported). */
  settled?(): void;
}

/** A running watch of a group's endpoints; close it to stop. */
export interface Discovery extends AsyncDisposable {
  /** Look again (after the network came back, say). */
  refresh(): void;
  close(): Promise<void>;
}

/** Raised for a URL whose scheme no registered transport serves. */
export class UnknownSchemeError extends TilthError {
  constructor(scheme: string, known: readonly string[]) {
    super(
      "ERR_UNKNOWN_SCHEME",
      `no transport for scheme "${scheme}:" (registered: ${known.length ? known.join(", ") : "none"})`,
      { context: { scheme, known: [...known] } },
    );
  }
}

/** Raised for a URL that cannot be parsed or lacks a part the transport needs. */
export class InvalidUrlError extends TilthError {
  constructor(url: string, why: string) {
    super("ERR_INVALID_URL", `invalid URL "${url}": ${why}`, { context: { url } });
  }
}

/**
 * The transports a loop knows, by scheme. Each Loop owns one; nothing is global,
 * so two loops (or two simulated networks) never see each other's endpoints.
 */
export class TransportRegistry {
  readonly #bySchema = new Map<string, Transport>();

  /** Register a transport for its schemes; replaces an earlier one for the same scheme. */
  register(transport: Transport): this {
    for (const s of transport.schemes) this.#bySchema.set(s, transport);
    return this;
  }

  /** Whether a transport serves `scheme`. */
  has(scheme: string): boolean {
    return this.#bySchema.has(scheme);
  }

  /** The transport for `scheme`, or an UnknownSchemeError. */
  get(scheme: string): Transport {
    const t = this.#bySchema.get(scheme);
    if (t === undefined) throw new UnknownSchemeError(scheme, this.schemes());
    return t;
  }

  /** Registered schemes, sorted. */
  schemes(): string[] {
    return [...this.#bySchema.keys()].sort();
  }
}

/** Parse a transport URL, raising InvalidUrlError with the reason. */
export function parseUrl(url: string | URL): URL {
  if (url instanceof URL) return url;
  try {
    return new URL(url);
  } catch (e) {
    // A list of hosts (`nats://a:4222,b:4222/svc`): the first is the URL's host, the whole list its `hosts` parameter.
    const m = /^([a-z][a-z0-9+.-]*:\/\/)([^/?#,]+)((?:,[^/?#,]+)+)(.*)$/i.exec(url);
    if (m !== null) {
      const u = parseUrl(m[1]! + m[2]! + m[4]!);
      u.searchParams.set("hosts", m[2]! + m[3]!);
      return u;
    }
    throw new InvalidUrlError(url, e instanceof Error ? e.message : String(e));
  }
}

/** The scheme of a parsed URL, without its colon. */
export function schemeOf(url: URL): string {
  return url.protocol.slice(0, -1);
}
