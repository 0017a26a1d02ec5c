/**
 * `zmq+tcp://host:port` and `zmq+ipc:///path` message connections on ZeroMQ
 * (zeromq.js v6 through `adapters/zeromq`).
 *
 * - `listen` binds a ROUTER socket. Each peer (each routing identity libzmq
 *   assigns to an incoming DEALER/REQ connection) becomes one tilth
 *   Connection; the transport strips the identity frame from what it receives
 *   and puts it in front of what it sends. Frames map 1:1 to ZeroMQ frames, so
 *   a ZeroRPC peer's `[b"", payload]` arrives as a two-frame message.
 * - `connect` opens a DEALER socket: one Connection. It resolves once the
 *   ZMTP handshake succeeded; if the first attempt is refused (nobody listens),
 *   it fails with ERR_CONNECTION_REFUSED instead of retrying forever.
 *
 * One-way sockets (the `socket` option: `pub`, `sub`, `push`, `pull`):
 * - `connect` opens that socket, connected: one Connection, resolved (or
 *   refused) as a DEALER's. It ends only when closed here (or when receiving
 *   fails): libzmq reconnects a one-way socket by itself, as ZeroMQ always does.
 * - `listen` binds that socket. The Listener yields one Connection at once:
 *   the bound socket with all its peers. A PUB Connection's message goes to
 *   every subscriber, a PUSH Connection's to one puller (round robin); a PULL
 *   or SUB Connection receives from every peer. The socket unbinds when that
 *   Connection ends (or when the listener closes before it was claimed).
 * - A sending kind (pub, push) never receives; `send` on a receiving kind
 *   (sub, pull) throws ERR_INVALID_STATE. A SUB subscribes to the `subscribe`
 *   option's topics (prefixes of the first frame), default `[""]`: everything.
 *
 * How a connection ends (ZeroMQ has no per-peer disconnect on a ROUTER):
 * - a DEALER learns that the connection dropped through ZMQ_HICCUP_MSG, in
 *   order after the messages that arrived before: it ends `{by: "peer"}` with
 *   ERR_BROKEN, and the socket is closed (no silent reconnect);
 * - a ROUTER learns that a peer left through ZMQ_DISCONNECT_MSG (a random
 *   16-byte token per listener), in order after that peer's messages: its
 *   Connection ends `{by: "peer"}`, cleanly;
 * - closing or destroying a ROUTER-side Connection is local only: what was sent
 *   is flushed, later messages from that identity are dropped, and the remote
 *   DEALER is not told (it sees silence; protocols detect it with their
 *   heartbeats). The TCP connection itself stays until the peer leaves or the
 *   listener closes.
 * - a frame above a socket's `maxMessageSize` is refused by libzmq itself
 *   (ZMQ_MAXMSGSIZE, set on every socket opened here), which drops the
 *   sender's connection before buffering the frame: the sender's DEALER ends
 *   as above, the listener side's Connection as when the peer leaves;
 * - closing the listener stops accepting new peers (their messages are
 *   dropped); the ROUTER stays bound while accepted Connections live, and
 *   unbinds and closes when the last one ends. libzmq would drop every
 *   accepted connection on unbind, and it cannot refuse a new TCP peer while
 *   bound, so a connect after close is not refused until then.
 *
 * Receive-side backpressure: one ROUTER socket serves every peer, so a paused
 * (or not yet started) Connection buffers its messages; once it holds its
 * high-water mark, the whole ROUTER stops reading (libzmq's receive high-water
 * mark and TCP then hold every peer back) until it resumes. Send side: each
 * Connection counts its own queued bytes against its high-water mark; the
 * ROUTER's messages share one queue (zeromq.js takes one send at a time).
 *
 * @example
 * ```ts
 * const loop = registerTransports(new NodeLoop());
 * const listener = await loop.listen("zmq+tcp://127.0.0.1:0");
 * listener.start((conn) => conn.start({ message: (m) => conn.send(m), end() {} }));
 * const conn = await loop.connect(listener.url);
 *
 * const pub = await loop.listen("zmq+tcp://127.0.0.1:0", { socket: "pub" });
 * const sub = await loop.connect(pub.url, { socket: "sub" });
 * ```
 * @module
 */
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { abortReason, BrokenError } from "../core/errors.js";
import type { Loop } from "../core/Loop.js";
import { Ring } from "../core/Ring.js";
import { schemeOf, type Connection, type ConnectOptions, type Listener, type ListenOptions, type Message, type Transport } from "../core/Transport.js";
import { ZmqSocket, zmqErrno, type SendOwner, type ZmqEvent, type ZmqKind, type ZmqSocketOptions } from "../adapters/zeromq.js";
import { AddressInUseError, ConnectFailedError, ConnectionRefusedError, InvalidStateError, ListenFailedError, MessageTooLargeError } from "./errors.js";
import { checkMessage } from "./framing.js";
import { ConnectionBase, type ConnectionParams } from "./internal/ConnectionBase.js";
import { ListenerBase } from "./internal/ListenerBase.js";
import { connectionParams, hostPort, ipcPath } from "./internal/socket.js";

const TOKEN_SIZE = 16;
/** Messages a paused or unstarted ROUTER-side Connection buffers before the ROUTER stops reading. */
const MAX_HELD_MESSAGES = 4096;

const noop = (): void => {};

/** The one-way ZeroMQ sockets a zmq URL opens with the `socket` option. */
export type ZmqOneWayKind = "pub" | "sub" | "push" | "pull";
const ONE_WAY: readonly string[] = ["pub", "sub", "push", "pull"];
const RECEIVES: readonly string[] = ["dealer", "sub", "pull"];

/** `connect` options of the zmq transports. */
export interface ZmqConnectOptions extends ConnectOptions {
  /** The socket to open: `dealer` (default), or a one-way kind. */
  socket?: "dealer" | ZmqOneWayKind;
  /** SUB: topics (prefixes of a message's first frame) to take. Default `[""]`: everything. */
  subscribe?: Array<string | Uint8Array>;
}

/** `listen` options of the zmq transports. */
export interface ZmqListenOptions extends ListenOptions {
  /** The socket to bind: `router` (default: one Connection per peer), or a one-way kind (one Connection for all peers). */
  socket?: "router" | ZmqOneWayKind;
  /** SUB: as for connect. */
  subscribe?: Array<string | Uint8Array>;
}

/** The socket kind an option asks for: `fallback` when absent, a one-way kind, or a RangeError. */
function socketKind(v: unknown, fallback: "dealer" | "router"): ZmqKind {
  if (v === undefined || v === fallback) return fallback;
  if (typeof v === "string" && ONE_WAY.includes(v)) return v as ZmqOneWayKind;
  throw new RangeError(`socket must be "${fallback}" or one of ${ONE_WAY.join(", ")}, got ${String(v)}`);
}

/** The zeromq endpoint of a `zmq+tcp:` / `zmq+ipc:` URL. */
export function zmqEndpoint(url: URL): { endpoint: string; ipv6: boolean; ipcPath?: string } {
  const scheme = schemeOf(url);
  if (scheme === "zmq+ipc") {
    const path = ipcPath(url);
    return { endpoint: `ipc://${path}`, ipv6: false, ipcPath: path };
  }
  const { host, port } = hostPort(url);
  const v6 = host.includes(":");
  return { endpoint: `tcp://${v6 ? `[${host}]` : host}:${port === 0 ? "*" : port}`, ipv6: v6 };
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.byteLength !== b.byteLength) return false;
  for (let i = 0; i < a.byteLength; i++) if (a[i] !== b[i]) return false;
  return true;
}

function payloadOf(frames: readonly Uint8Array[], from: number): number {
  let n = 0;
  for (let i = from; i < frames.length; i++) n += frames[i]!.byteLength;
  return n;
}

// ------------------------------------------------ DEALER and one-way sockets

/**
 * One socket as one Connection: the connecting end (a DEALER, or a one-way
 * socket), or a bound one-way socket with all its peers.
 */
export class ZmqSocketConnection extends ConnectionBase {
  readonly #sock: ZmqSocket;
  /** DEALER: the message libzmq delivers when the connection drops. */
  readonly #hiccup: Uint8Array | undefined;
  /** A SUB or PULL socket: it cannot send. */
  readonly #receiveOnly: boolean;
  #writeClosed = false;
  #discard = false;
  #watchingDrain = false;

  /** @internal */
  constructor(loop: Loop, sock: ZmqSocket, hiccup: Uint8Array | undefined, params: ConnectionParams) {
    super(loop, params);
    this.#sock = sock;
    this.#hiccup = hiccup;
    this.#receiveOnly = sock.kind === "sub" || sock.kind === "pull";
  }

  /** The adapter socket (for options; do not send or receive on it). */
  get socket(): ZmqSocket {
    return this.#sock;
  }

  get bufferedAmount(): number {
    return this.#sock.bufferedAmount;
  }

  send(msg: Message): boolean {
    if (this.#writeClosed || this.ended !== undefined) throw this.sendError();
    if (this.#receiveOnly) {
      throw new InvalidStateError(`a zmq ${this.#sock.kind} connection only receives: send on the ${this.#sock.kind === "sub" ? "pub" : "push"} side`);
    }
    this.checkBuffered(checkMessage(msg, this.limits));
    this.#sock.send(msg);
    return this.#sock.bufferedAmount < this.highWaterMark;
  }

  override drain(): Promise<void> {
    const p = super.drain();
    if (this.draining && !this.#watchingDrain) {
      this.#watchingDrain = true;
      this.#sock.drain().then(
        () => {
          this.#watchingDrain = false;
          this.checkDrain();
        },
        () => {
          this.#watchingDrain = false;
        },
      );
    }
    return p;
  }

  pause(): void {
    this.#sock.pause();
  }

  resume(): void {
    this.#sock.resume();
  }

  protected onStart(): void {
    // A PUB or PUSH socket receives nothing: the Connection ends only when closed.
    if (!RECEIVES.includes(this.#sock.kind)) return;
    this.#sock.start({
      message: (frames) => this.#onMessage(frames),
      error: (e) => {
        this.setReason({ by: "peer", error: new BrokenError(`zmq receive failed: ${e.message}`, { cause: e }) });
        this.#teardown();
      },
    });
  }

  #onMessage(frames: Buffer[]): void {
    if (this.#discard) return;
    if (this.#hiccup !== undefined && frames.length === 1 && sameBytes(frames[0]!, this.#hiccup)) {
      // libzmq does not say why: the peer went away, or one side refused a frame above its ZMQ_MAXMSGSIZE.
      const why = `the peer went away, or refused a frame above its maxMessageSize (this side's: ${this.limits.maxMessageSize} bytes)`;
      this.setReason({ by: "peer", error: new BrokenError(`the zmq connection to the peer dropped (${why})`) });
      this.#teardown();
      return;
    }
    const size = payloadOf(frames, 0);
    if (size > this.limits.maxMessageSize || frames.length > this.limits.maxFrames) {
      const e =
        size > this.limits.maxMessageSize
          ? new MessageTooLargeError(size, this.limits.maxMessageSize)
          : new MessageTooLargeError(frames.length, this.limits.maxFrames, "frames");
      this.setReason({ by: "peer", error: e });
      this.#teardown();
      return;
    }
    this.deliver(frames);
  }

  protected beginClose(): void {
    this.#writeClosed = true;
    this.#discard = true;
    this.#sock.close().then(() => this.finish(), () => this.finish());
  }

  protected beginDestroy(): void {
    this.#teardown();
  }

  #teardown(): void {
    this.#writeClosed = true;
    this.#discard = true;
    this.#sock.destroy();
    this.loop.post(() => this.finish());
  }
}

/** The connecting end of a DEALER (the name this class had before one-way sockets). */
export const ZmqDealerConnection = ZmqSocketConnection;
export type ZmqDealerConnection = ZmqSocketConnection;

/** A bound PUB, SUB, PUSH or PULL socket: yields one Connection, the socket with all its peers. */
export class ZmqSocketListener extends ListenerBase {
  /** The bound zeromq endpoint. */
  readonly endpoint: string;

  /** @internal */
  constructor(loop: Loop, scheme: string, url: string, endpoint: string, conn: ZmqSocketConnection, backlog: number | undefined) {
    super(loop, scheme, url, backlog);
    this.endpoint = endpoint;
    this.accept(conn);
  }

  // The socket lives as long as its Connection (ListenerBase destroys it if nobody claimed it).
  protected stopAccepting(): Promise<void> {
    return Promise.resolve();
  }
}

// ------------------------------------------------------------------ ROUTER

type PeerKey = number | string;

function peerKey(id: Buffer): PeerKey {
  // libzmq's own identities: 0x00 + a 32-bit counter.
  if (id.length === 5 && id[0] === 0) return id.readUInt32BE(1);
  return id.toString("latin1");
}

/** The accepting end of one peer of a ROUTER: one routing identity. */
export class ZmqPeerConnection extends ConnectionBase implements SendOwner {
  readonly identity: Buffer;
  readonly #listener: ZmqListener;
  readonly #inbound = new Ring<Buffer[]>(16);
  #inboundBytes = 0;
  #queued = 0;
  #writeClosed = false;
  #discard = false;
  #paused = false;
  #reading = false;
  #holding = false;
  #scheduled = false;
  /** Queued messages are dropped (destroyed, or the peer left). */
  zmqCancelled = false;
  #closeWhenFlushed = false;

  /** @internal */
  constructor(loop: Loop, listener: ZmqListener, identity: Buffer, params: ConnectionParams) {
    super(loop, params);
    this.#listener = listener;
    this.identity = identity;
  }

  get bufferedAmount(): number {
    return this.#queued;
  }

  /** Bytes of the messages received from this peer (frames' payload; for metrics). */
  bytesIn = 0;
  /** Bytes of the messages sent to this peer (frames' payload; for metrics). */
  bytesOut = 0;

  send(msg: Message): boolean {
    if (this.#writeClosed || this.ended !== undefined) throw this.sendError();
    const n = checkMessage(msg, this.limits);
    this.checkBuffered(n);
    const out = new Array<Uint8Array>(msg.length + 1);
    out[0] = this.identity;
    for (let i = 0; i < msg.length; i++) out[i + 1] = msg[i]!;
    this.bytesOut += n;
    this.#queued += n;
    this.#listener._send(out, this);
    return this.#queued < this.highWaterMark;
  }

  /** SendOwner: one of our messages left the ROUTER's queue (called by the zeromq adapter). */
  zmqSent(bytes: number, _ok: boolean): void {
    // bytes include the identity frame
    this.#queued -= bytes - this.identity.byteLength;
    if (this.draining) this.checkDrain();
    if (this.#queued <= 0 && this.#closeWhenFlushed) {
      this.#closeWhenFlushed = false;
      this.#end();
    }
  }

  pause(): void {
    this.#paused = true;
  }

  resume(): void {
    if (!this.#paused) return;
    this.#paused = false;
    this.#schedule();
  }

  protected onStart(): void {
    this.#reading = true;
    this.#schedule();
  }

  /** @internal A message from this peer (identity stripped). */
  _incoming(frames: Buffer[]): void {
    if (this.#discard) return;
    const size = payloadOf(frames, 0);
    if (size > this.limits.maxMessageSize || frames.length > this.limits.maxFrames) {
      const e =
        size > this.limits.maxMessageSize
          ? new MessageTooLargeError(size, this.limits.maxMessageSize)
          : new MessageTooLargeError(frames.length, this.limits.maxFrames, "frames");
      this.setReason({ by: "peer", error: e });
      this.#drop();
      return;
    }
    this.bytesIn += size;
    if (this.#reading && !this.#paused && this.#inbound.length === 0 && !this.#scheduled) {
      this.deliver(frames);
      return;
    }
    this.#inbound.push(frames);
    this.#inboundBytes += size;
    if (!this.#holding && (this.#inboundBytes >= this.highWaterMark || this.#inbound.length >= MAX_HELD_MESSAGES)) {
      this.#holding = true;
      this.#listener._hold(1);
    }
    this.#schedule();
  }

  #schedule(): void {
    if (this.#scheduled || !this.#reading || this.#paused || this.#inbound.length === 0) return;
    this.#scheduled = true;
    this.loop.post(this.#deliverTask);
  }

  readonly #deliverTask = (): void => {
    this.#scheduled = false;
    for (let n = 0; n < 1024; n++) {
      if (this.#paused || this.#discard) break;
      const m = this.#inbound.shift();
      if (m === undefined) break;
      this.#inboundBytes -= payloadOf(m, 0);
      this.deliver(m);
    }
    this.#checkHold();
    this.#schedule();
  };

  #checkHold(): void {
    if (this.#holding && this.#inboundBytes <= this.highWaterMark / 2 && this.#inbound.length <= MAX_HELD_MESSAGES / 2) {
      this.#holding = false;
      this.#listener._hold(-1);
    }
  }

  /** @internal The peer left (ZMQ_DISCONNECT_MSG, or a send found it gone). */
  _peerGone(error?: Error): void {
    if (this.ended !== undefined) return;
    if (error !== undefined) this.setReason({ by: "peer", error });
    else if (this.#inbound.length > 0 && !this.#discard) {
      // Deliver what arrived before the peer left, then end.
      this.setReason({ by: "peer" });
      this.#writeClosed = true;
      this.zmqCancelled = true;
      const wait = (): void => {
        if (this.#inbound.length === 0 || this.#discard) this.#drop();
        else this.loop.post(wait);
      };
      this.loop.post(wait);
      return;
    } else this.setReason({ by: "peer" });
    this.#drop();
  }

  protected beginClose(): void {
    this.#writeClosed = true;
    this.#discard = true;
    this.#clearInbound();
    if (this.#queued <= 0) this.#end();
    else this.#closeWhenFlushed = true;
  }

  protected beginDestroy(): void {
    this.#drop();
  }

  #clearInbound(): void {
    while (this.#inbound.shift() !== undefined);
    this.#inboundBytes = 0;
    this.#checkHold();
  }

  /** End now: queued messages are dropped. */
  #drop(): void {
    this.zmqCancelled = true;
    this.#end();
  }

  #end(): void {
    this.#writeClosed = true;
    this.#discard = true;
    this.#clearInbound();
    this.#listener._forget(this);
    this.loop.post(() => this.finish());
  }
}

/** A bound ROUTER socket: one Connection per peer. */
export class ZmqListener extends ListenerBase {
  readonly #sock: ZmqSocket;
  /** The bound zeromq endpoint. */
  readonly endpoint: string;
  readonly #token: Uint8Array;
  readonly #options: ListenOptions;
  readonly #peers = new Map<PeerKey, ZmqPeerConnection>();
  /** Identities whose messages are dropped (their Connection ended here, or they came after close). */
  readonly #ignored = new Set<PeerKey>();
  #held = 0;
  #stopped = false;

  /** @internal */
  constructor(loop: Loop, scheme: string, url: string, endpoint: string, sock: ZmqSocket, token: Uint8Array, options: ListenOptions) {
    super(loop, scheme, url, options.backlog);
    this.#sock = sock;
    this.endpoint = endpoint;
    this.#token = token;
    this.#options = options;
    sock.onUnroutable = (msg) => {
      const key = peerKey(msg[0] as Buffer);
      this.#peers.get(key)?._peerGone(new BrokenError("the zmq peer is gone (unroutable)"));
    };
    sock.start({ message: (frames) => this.#onMessage(frames), error: () => this.#shutdown() });
  }

  /** Peers with a live Connection. */
  get peers(): number {
    return this.#peers.size;
  }

  #onMessage(frames: Buffer[]): void {
    const id = frames[0]!;
    const key = peerKey(id);
    const conn = this.#peers.get(key);
    if (frames.length === 2) {
      const body = frames[1]!;
      if (body.length === TOKEN_SIZE && sameBytes(body, this.#token)) {
        // The peer left: its messages before this one were delivered already.
        this.#ignored.delete(key);
        conn?._peerGone();
        return;
      }
      if (body.length === 0 && conn === undefined && !this.#ignored.has(key)) {
        this.#connected(id, key);
        return;
      }
    }
    if (conn !== undefined) conn._incoming(frames.slice(1));
  }

  #connected(id: Buffer, key: PeerKey): void {
    if (this.closing) {
      this.#ignored.add(key);
      return;
    }
    const idHex = id.toString("hex");
    const params = connectionParams(this.scheme, this.url, `${this.url}#${idHex}`, this.#options);
    const conn = new ZmqPeerConnection(this.loop, this, Buffer.from(id), params);
    this.#peers.set(key, conn);
    this.accept(conn);
  }

  /** @internal */
  _send(msg: Uint8Array[], owner: ZmqPeerConnection): void {
    this.#sock.send(msg, owner);
  }

  /** @internal A Connection ended: drop its identity's later messages until the peer leaves. */
  _forget(conn: ZmqPeerConnection): void {
    const key = peerKey(conn.identity);
    if (this.#peers.get(key) === conn) {
      this.#peers.delete(key);
      this.#ignored.add(key);
    }
    if (this.#stopped && this.#peers.size === 0) this.#shutdown();
  }

  /** @internal A Connection holds too much unread input (+1) or no longer (-1). */
  _hold(delta: number): void {
    const before = this.#held;
    this.#held += delta;
    if (before === 0 && this.#held > 0) this.#sock.pause();
    else if (before > 0 && this.#held === 0) this.#sock.resume();
  }

  protected stopAccepting(): Promise<void> {
    this.#stopped = true;
    if (this.#peers.size === 0) return this.#shutdown();
    return Promise.resolve();
  }

  #shutdownP: Promise<void> | undefined;
  #shutdown(): Promise<void> {
    return (this.#shutdownP ??= (async () => {
      for (const c of [...this.#peers.values()]) c._peerGone(new BrokenError("the zmq listener closed"));
      // Closing the socket unbinds it (and removes an ipc socket file).
      await this.#sock.close();
    })());
  }
}

// --------------------------------------------------------------- transport

export interface ZmqTransportOptions {
  /** ms a graceful close lets libzmq deliver what was sent. Default 2000. */
  linger?: number;
}

/** The transport of `zmq+tcp:` and `zmq+ipc:` URLs. */
export class ZmqTransport implements Transport {
  readonly schemes = ["zmq+tcp", "zmq+ipc"] as const;
  readonly #linger: number | undefined;

  constructor(options: ZmqTransportOptions = {}) {
    this.#linger = options.linger;
  }

  /**
   * Socket options every socket of this transport gets. libzmq itself refuses
   * a frame above `maxMessageSize` (ZMQ_MAXMSGSIZE): it disconnects that peer
   * at the frame's header, before buffering it (its DEALER then sees the
   * connection drop, and reconnects), where the transport's own check would
   * only see the message once libzmq had received it whole.
   */
  #socketOptions(kind: ZmqKind, ipv6: boolean, options: ZmqConnectOptions | ZmqListenOptions, params: ConnectionParams): ZmqSocketOptions {
    return {
      maxQueuedBytes: Number.MAX_SAFE_INTEGER,
      maxFrameSize: params.limits.maxMessageSize,
      ipv6,
      ...(kind === "sub" ? { subscribe: options.subscribe ?? [""] } : {}),
      ...(this.#linger === undefined ? {} : { linger: this.#linger }),
    };
  }

  async connect(loop: Loop, url: URL, options: ZmqConnectOptions): Promise<Connection> {
    const scheme = schemeOf(url);
    const href = url.href;
    const kind = socketKind(options.socket, "dealer");
    const params = connectionParams(scheme, `${href}#${kind}`, href, options);
    const { endpoint, ipv6 } = zmqEndpoint(url);
    if (options.signal?.aborted) throw abortReason(options.signal);
    const hiccup = kind === "dealer" ? randomBytes(TOKEN_SIZE) : undefined;
    const sock = ZmqSocket.open(loop, kind, {
      ...this.#socketOptions(kind, ipv6, options, params),
      highWaterMark: params.highWaterMark,
      ...(hiccup === undefined ? {} : { hiccupMessage: hiccup }),
    });
    try {
      await new Promise<void>((resolve, reject) => {
        const signal = options.signal;
        const onAbort = (): void => done(abortReason(signal!));
        let stop: () => void = noop;
        const done = (e?: Error): void => {
          stop();
          signal?.removeEventListener("abort", onAbort);
          if (e) reject(e);
          else resolve();
        };
        stop = sock.monitor(
          ["handshake", "connect:retry", "handshake:error:protocol", "handshake:error:auth", "handshake:error:other", "disconnect"],
          (ev: ZmqEvent) => {
            if (ev.type === "handshake") done();
            // One-way sockets connect as ZeroMQ does when nobody listens yet: in
            // the background, reconnecting on their own (a subscriber started
            // before its publisher is the common case). When someone listens,
            // the handshake comes first, so a subscription is in place on return.
            else if (ev.type === "connect:retry" || ev.type === "disconnect") done(kind === "dealer" ? new ConnectionRefusedError(href) : undefined);
            else {
              // The errno (ECONNRESET from a server that crashed mid-handshake) says whether trying again may help.
              const errno = zmqErrno(ev.error);
              done(new ConnectFailedError(href, `ZMTP handshake failed (${ev.type}${ev.error ? `: ${ev.error.message}` : ""})`, { cause: ev.error, ...(errno ? { context: { errno } } : {}) }));
            }
          },
        );
        signal?.addEventListener("abort", onAbort, { once: true });
        sock.connect(endpoint);
      });
    } catch (e) {
      sock.destroy();
      throw e;
    }
    return new ZmqSocketConnection(loop, sock, hiccup, params);
  }

  async listen(loop: Loop, url: URL, options: ZmqListenOptions): Promise<Listener> {
    const scheme = schemeOf(url);
    const href = url.href;
    const kind = socketKind(options.socket, "router");
    const params = connectionParams(scheme, href, href, options); // validates
    const { endpoint, ipv6, ipcPath: path } = zmqEndpoint(url);
    if (options.signal?.aborted) throw abortReason(options.signal);
    // libzmq replaces an existing ipc socket file silently; refuse it, as the ipc transport does.
    if (path !== undefined && existsSync(path)) {
      throw new AddressInUseError(href, "the path exists: another listener uses it, or a stale socket file is left (remove it)");
    }
    const token = kind === "router" ? randomBytes(TOKEN_SIZE) : undefined;
    const sock = ZmqSocket.open(
      loop,
      kind,
      token !== undefined
        ? { ...this.#socketOptions(kind, ipv6, options, params), notifyConnect: true, disconnectMessage: token, mandatory: true }
        : { ...this.#socketOptions(kind, ipv6, options, params), highWaterMark: params.highWaterMark },
    );
    let bound: string;
    try {
      bound = await sock.bind(endpoint);
    } catch (e) {
      sock.destroy();
      const errno = zmqErrno((e as { cause?: unknown }).cause) ?? zmqErrno(e);
      if (errno === "EADDRINUSE") throw new AddressInUseError(href, "", { cause: e });
      throw new ListenFailedError(href, (e as Error).message, { cause: e });
    }
    if (options.signal?.aborted) {
      sock.destroy();
      throw abortReason(options.signal);
    }
    const boundUrl = scheme === "zmq+ipc" ? href : `zmq+${bound}`;
    if (token !== undefined) return new ZmqListener(loop, scheme, boundUrl, bound, sock, token, options);
    const conn = new ZmqSocketConnection(loop, sock, undefined, { ...params, localUrl: boundUrl, remoteUrl: `${boundUrl}#${kind}-peers` });
    return new ZmqSocketListener(loop, scheme, boundUrl, bound, conn, options.backlog);
  }
}

/** The shared zmq transport value. */
export const zmqTransport: ZmqTransport = new ZmqTransport();
