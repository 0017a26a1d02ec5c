/// <reference types="node" preserve="true" />
/**
 * zeromq.js v6 sockets on a tilth Loop: DEALER, ROUTER, PUB, SUB, PUSH, PULL
 * as message endpoints with a bounded send queue, receive-side pause, and an
 * idempotent close that rejects pending work with coded errors.
 *
 * zeromq.js allows one `send` in flight per socket (a second concurrent send
 * while the first waits is refused with EBUSY). {@link ZmqSocket} queues: its
 * `send` never waits, hands the message to libzmq at once when nothing is in
 * flight, and otherwise keeps it in a ring buffer. The queue says how much it
 * holds (`bufferedAmount`), `send` returns false past `highWaterMark` bytes
 * (wait for `drain()`), and refuses with `ERR_BUSY` past `maxQueuedBytes`.
 * Receiving is a chain of `receive()` calls handing whole messages (frames as
 * Buffers, the handler's to keep) to the handler; `pause()` stops asking, so
 * libzmq's receive high-water mark and TCP hold the peer back.
 *
 * Everything runs on the host's libuv loop (zeromq.js polls its sockets there),
 * which is the loop a NodeLoop drives: one loop underneath. The zeromq module is
 * loaded on first use, so importing this file costs nothing until a socket opens.
 *
 * @example
 * ```ts
 * const loop = new NodeLoop();
 * const pull = await ZmqSocket.open(loop, "pull");
 * const url = await pull.bind("tcp://127.0.0.1:*");
 * pull.start({ message: (frames) => console.log(String(frames[0])) });
 * const push = await ZmqSocket.open(loop, "push");
 * push.connect(url);
 * push.send([Buffer.from("hello")]);
 * await push.close();
 * await pull.close();
 * ```
 * @module
 */
import { BusyError, ClosedError, TilthError, type TilthErrorOptions } from "../core/errors.js";
import type { Loop } from "../core/Loop.js";
import { Ring } from "../core/Ring.js";
import { RESOLVED } from "../core/resolved.js";
import { requirePeer } from "./peers.js";

type Zmq = typeof import("zeromq");
type RawSocket = import("zeromq").Socket & {
  send(msg: unknown): Promise<void>;
  receive(): Promise<Buffer[]>;
  bind(ep: string): Promise<void>;
  unbind(ep: string): Promise<void>;
  connect(ep: string): void;
  disconnect(ep: string): void;
  subscribe?(...topics: Array<string | Buffer>): void;
  unsubscribe?(...topics: Array<string | Buffer>): void;
  readonly lastEndpoint: string | null;
};

let zmqModule: Zmq | undefined;
/** The zeromq module, loaded on first use (an optional peer dependency: ERR_MISSING_PACKAGE when it is not installed). */
export function loadZmq(): Zmq {
  if (zmqModule === undefined) zmqModule = requirePeer<Zmq>("zeromq", "ZeroMQ sockets (zmq+ transports, zrpc)");
  return zmqModule;
}

/** Socket kinds this adapter opens. */
export type ZmqKind = "dealer" | "router" | "pub" | "sub" | "push" | "pull";

const CAN_SEND: Record<ZmqKind, boolean> = { dealer: true, router: true, pub: true, sub: false, push: true, pull: false };
const CAN_RECV: Record<ZmqKind, boolean> = { dealer: true, router: true, pub: false, sub: true, push: false, pull: true };

/** libzmq option ids this adapter sets that zeromq.js does not name (DRAFT API; the prebuilt addon has it). */
const ZMQ_ROUTER_NOTIFY = 97;
const ZMQ_DISCONNECT_MSG = 111;
const ZMQ_HICCUP_MSG = 114;
const ZMQ_NOTIFY_CONNECT = 1;

/** Default bytes queued in JavaScript before `send` returns false: 1 MiB. */
export const DEFAULT_ZMQ_HIGH_WATER_MARK = 1024 * 1024;

export interface ZmqSocketOptions {
  /** Queued bytes (messages waiting for their turn to enter libzmq) past which `send` returns false. Default 1 MiB. */
  highWaterMark?: number;
  /** Queued bytes past which `send` throws BusyError instead of queueing. Default 64 × highWaterMark. */
  maxQueuedBytes?: number;
  /** libzmq's per-peer queue limits in messages (ZMQ_SNDHWM / ZMQ_RCVHWM). libzmq's default: 1000. */
  sendHighWaterMark?: number;
  receiveHighWaterMark?: number;
  /** ms libzmq keeps trying to deliver queued messages after a graceful `close()`. Default 2000. */
  linger?: number;
  /** ZMQ_MAXMSGSIZE: a peer sending a larger frame is disconnected by libzmq. Default: no limit. */
  maxFrameSize?: number;
  /** ROUTER: deliver `[identity, ""]` when a peer connects (ZMQ_ROUTER_NOTIFY, connect only). */
  notifyConnect?: boolean;
  /** ROUTER: deliver `[identity, message]` when a connected peer goes away (ZMQ_DISCONNECT_MSG). */
  disconnectMessage?: Uint8Array;
  /** DEALER: deliver `[message]` when the connection to the peer drops (ZMQ_HICCUP_MSG). */
  hiccupMessage?: Uint8Array;
  /** ROUTER: fail sends to unknown peers and wait on full ones instead of dropping (ZMQ_ROUTER_MANDATORY). Default true. */
  mandatory?: boolean;
  /** Accept IPv6 (needed to bind or connect `[::1]`). */
  ipv6?: boolean;
  /** SUB: topics (prefixes) to subscribe to at once; `""` for everything. */
  subscribe?: Array<string | Uint8Array>;
  /** The zeromq.js context (default: zeromq.js's shared one). */
  context?: import("zeromq").Context;
}

/** A zeromq operation failed; `errno` is libzmq's code (EADDRINUSE, EHOSTUNREACH...). */
export class ZmqError extends TilthError {
  readonly errno: string | undefined;
  constructor(message: string, errno: string | undefined, options: TilthErrorOptions = {}) {
    super("ERR_ZMQ", message, { ...options, context: { errno, ...options.context } });
    this.errno = errno;
  }
}

/** The errno code of a zeromq.js error. */
export function zmqErrno(e: unknown): string | undefined {
  const c = (e as { code?: unknown } | null)?.code;
  return typeof c === "string" ? c : undefined;
}

/**
 * Told when its messages leave the queue: lets one shared socket (a ROUTER
 * serving many peers) account queued bytes per peer without a closure per message.
 */
export interface SendOwner {
  /** `bytes` of one of this owner's messages were handed to libzmq (`ok`), or dropped (`!ok`). */
  zmqSent(bytes: number, ok: boolean): void;
  /** When true, this owner's messages still queued are dropped instead of sent. */
  readonly zmqCancelled: boolean;
}

/** Receives a socket's messages. */
export interface ZmqHandler {
  /** A whole message; the frames are the handler's to keep. */
  message(frames: Buffer[]): void;
  /** Receiving stopped because of an error (not called for a close by this side). */
  error?(error: Error): void;
}

/** A monitor event of the socket (see zeromq.js `EventType`): `connect`, `connect:retry`, `handshake`, `disconnect`, ... */
export interface ZmqEvent {
  type: string;
  address?: string;
  error?: Error;
}

type Observer = { close(): void; on(t: string, fn: (e: ZmqEvent) => void): unknown; off(t: string, fn: (e: ZmqEvent) => void): unknown };

const noop = (): void => {};

let openSockets = 0;
/** Sockets opened by this adapter and not yet closed (for leak checks in tests). */
export function openZmqSockets(): number {
  return openSockets;
}

function bytesOf(msg: readonly Uint8Array[]): number {
  let n = 0;
  for (let i = 0; i < msg.length; i++) n += msg[i]!.byteLength;
  return n;
}

/** One zeromq.js socket on a loop. */
export class ZmqSocket {
  readonly kind: ZmqKind;
  readonly loop: Loop;
  readonly highWaterMark: number;
  readonly maxQueuedBytes: number;
  readonly #sock: RawSocket;
  readonly #linger: number;
  readonly #queue = new Ring<Uint8Array[]>(64);
  /** Owner of each queued message (parallel to #queue), or null. */
  readonly #owners = new Ring<SendOwner | null>(64);
  #inflightOwner: SendOwner | null = null;
  #queued = 0;
  /** Bytes of the message handed to libzmq whose send promise has not settled. */
  #inflightBytes = -1;
  #handler: ZmqHandler | undefined;
  #receiving = false;
  #paused = false;
  #held: Buffer[] | undefined;
  #closing = false;
  #closed = false;
  #closeP: Promise<void> | undefined;
  #flushed: (() => void) | undefined;
  #drain: { promise: Promise<void>; resolve: () => void; reject: (e: Error) => void } | undefined;
  #observer: Observer | undefined;
  #inflight: Uint8Array[] | undefined;
  #sendError: Error | undefined;

  private constructor(loop: Loop, kind: ZmqKind, sock: RawSocket, options: ZmqSocketOptions) {
    this.loop = loop;
    this.kind = kind;
    this.#sock = sock;
    this.highWaterMark = options.highWaterMark ?? DEFAULT_ZMQ_HIGH_WATER_MARK;
    this.maxQueuedBytes = options.maxQueuedBytes ?? 64 * this.highWaterMark;
    this.#linger = options.linger ?? 2000;
    openSockets++;
  }

  /** Open a socket of `kind` with `options` (loads zeromq on first use). */
  static open(loop: Loop, kind: ZmqKind, options: ZmqSocketOptions = {}): ZmqSocket {
    const z = loadZmq();
    const base = options.context === undefined ? {} : { context: options.context };
    let sock: RawSocket;
    switch (kind) {
      case "dealer":
        sock = new z.Dealer(base) as unknown as RawSocket;
        break;
      case "router":
        sock = new z.Router(base) as unknown as RawSocket;
        break;
      case "pub":
        sock = new z.Publisher(base) as unknown as RawSocket;
        break;
      case "sub":
        sock = new z.Subscriber(base) as unknown as RawSocket;
        break;
      case "push":
        sock = new z.Push(base) as unknown as RawSocket;
        break;
      case "pull":
        sock = new z.Pull(base) as unknown as RawSocket;
        break;
      default:
        throw new TypeError(`unknown zmq socket kind ${String(kind)}`);
    }
    const raw = sock as unknown as Record<string, unknown> & {
      setInt32Option(id: number, v: number): void;
      setStringOption(id: number, v: Buffer | string | null): void;
    };
    try {
      raw.linger = 0; // set for real at close: graceful close lingers, destroy does not
      if (options.sendHighWaterMark !== undefined) raw.sendHighWaterMark = options.sendHighWaterMark;
      if (options.receiveHighWaterMark !== undefined) raw.receiveHighWaterMark = options.receiveHighWaterMark;
      if (options.maxFrameSize !== undefined) raw.maxMessageSize = options.maxFrameSize;
      if (options.ipv6) raw.ipv6 = true;
      if (kind === "router") {
        raw.mandatory = options.mandatory ?? true;
        if (options.notifyConnect) raw.setInt32Option(ZMQ_ROUTER_NOTIFY, ZMQ_NOTIFY_CONNECT);
        if (options.disconnectMessage) raw.setStringOption(ZMQ_DISCONNECT_MSG, Buffer.from(options.disconnectMessage));
      }
      if (kind === "dealer" && options.hiccupMessage) raw.setStringOption(ZMQ_HICCUP_MSG, Buffer.from(options.hiccupMessage));
      if (kind === "sub") for (const t of options.subscribe ?? []) sock.subscribe!(typeof t === "string" ? t : Buffer.from(t));
    } catch (e) {
      sock.close();
      throw new ZmqError(`cannot set up a zmq ${kind} socket: ${(e as Error).message}`, zmqErrno(e), { cause: e });
    }
    return new ZmqSocket(loop, kind, sock, options);
  }

  /** The zeromq.js socket, for options this adapter does not cover. Do not send or receive on it. */
  get raw(): import("zeromq").Socket {
    return this.#sock;
  }

  /** Whether `close()` or `destroy()` was called. */
  get closed(): boolean {
    return this.#closing;
  }

  /** Bind to a zeromq endpoint (`tcp://127.0.0.1:*`, `ipc:///path`); resolves with the bound endpoint. */
  async bind(endpoint: string): Promise<string> {
    this.#checkOpen();
    try {
      await this.#sock.bind(endpoint);
    } catch (e) {
      throw new ZmqError(`cannot bind ${endpoint}: ${(e as Error).message}`, zmqErrno(e), { cause: e, context: { endpoint } });
    }
    return this.#sock.lastEndpoint ?? endpoint;
  }

  /** Stop listening on an endpoint (libzmq also drops the connections accepted there). */
  async unbind(endpoint: string): Promise<void> {
    if (this.#closed) return;
    try {
      await this.#sock.unbind(endpoint);
    } catch (e) {
      throw new ZmqError(`cannot unbind ${endpoint}: ${(e as Error).message}`, zmqErrno(e), { cause: e, context: { endpoint } });
    }
  }

  /** Connect to an endpoint; libzmq connects (and reconnects) in the background. */
  connect(endpoint: string): void {
    this.#checkOpen();
    try {
      this.#sock.connect(endpoint);
    } catch (e) {
      throw new ZmqError(`cannot connect to ${endpoint}: ${(e as Error).message}`, zmqErrno(e), { cause: e, context: { endpoint } });
    }
  }

  disconnect(endpoint: string): void {
    if (this.#closed) return;
    try {
      this.#sock.disconnect(endpoint);
    } catch (e) {
      throw new ZmqError(`cannot disconnect from ${endpoint}: ${(e as Error).message}`, zmqErrno(e), { cause: e });
    }
  }

  /** SUB: subscribe to topics (message prefixes); `""` for everything. */
  subscribe(...topics: Array<string | Uint8Array>): void {
    if (this.kind !== "sub") throw new TypeError("subscribe() is for sub sockets");
    this.#checkOpen();
    this.#sock.subscribe!(...topics.map((t) => (typeof t === "string" ? t : Buffer.from(t))));
  }

  unsubscribe(...topics: Array<string | Uint8Array>): void {
    if (this.kind !== "sub") throw new TypeError("unsubscribe() is for sub sockets");
    if (this.#closed) return;
    this.#sock.unsubscribe!(...topics.map((t) => (typeof t === "string" ? t : Buffer.from(t))));
  }

  /**
   * Listen to the socket's monitor events (`connect`, `connect:delay`,
   * `connect:retry`, `handshake`, `handshake:error:*`, `disconnect`, `accept`,
   * `bind`, `close`...). The monitor is closed with the socket, or by calling
   * the returned function.
   */
  monitor(types: readonly string[], fn: (e: ZmqEvent) => void): () => void {
    this.#checkOpen();
    const obs = (this.#observer ??= (this.#sock as unknown as { events: Observer }).events);
    for (const t of types) obs.on(t, fn);
    // The observer itself stays until the socket closes (closing it early fails in zeromq.js with ENOTSOCK).
    return () => {
      for (const t of types) obs.off(t, fn);
    };
  }

  #checkOpen(): void {
    if (this.#closing) throw new ClosedError(`zmq ${this.kind} socket is closed`);
  }

  // ------------------------------------------------------------------ send

  /** Bytes waiting in this adapter's queue (including the message libzmq is taking now). */
  get bufferedAmount(): number {
    return this.#queued + (this.#inflightBytes > 0 ? this.#inflightBytes : 0);
  }

  /**
   * Queue one message (one or more frames). Returns false once the queue holds
   * `highWaterMark` bytes or more: wait for `drain()`. Throws ClosedError after
   * close, BusyError past `maxQueuedBytes`, the socket's error once a send failed.
   * Frames are handed to libzmq as they are: do not modify them after `send`.
   */
  send(msg: Uint8Array[], owner: SendOwner | null = null): boolean {
    if (this.#closing) throw new ClosedError(`zmq ${this.kind} socket is closed`);
    if (this.#sendError !== undefined) throw this.#sendError;
    if (!CAN_SEND[this.kind]) throw new TypeError(`a zmq ${this.kind} socket cannot send`);
    const n = bytesOf(msg);
    if (this.#inflightBytes < 0) {
      this.#inflightBytes = n;
      this.#inflight = msg;
      this.#inflightOwner = owner;
      this.#sock.send(msg).then(this.#sent, this.#sendFailed);
      return true;
    }
    if (this.#queued + n > this.maxQueuedBytes && this.#queue.length > 0) {
      throw new BusyError(`zmq ${this.kind} send queue is full (${this.#queued} bytes queued, limit ${this.maxQueuedBytes})`, {
        context: { queued: this.#queued, limit: this.maxQueuedBytes },
      });
    }
    this.#queue.push(msg);
    this.#owners.push(owner);
    this.#queued += n;
    return this.#queued < this.highWaterMark;
  }

  readonly #sent = (): void => {
    const owner = this.#inflightOwner;
    if (owner !== null) {
      this.#inflightOwner = null;
      owner.zmqSent(this.#inflightBytes, true);
    }
    this.#inflightBytes = -1;
    this.#inflight = undefined;
    this.#next();
  };

  readonly #sendFailed = (e: unknown): void => {
    const msg = this.#inflight;
    const owner = this.#inflightOwner;
    if (owner !== null) {
      this.#inflightOwner = null;
      owner.zmqSent(this.#inflightBytes, false);
    }
    this.#inflightBytes = -1;
    this.#inflight = undefined;
    if (this.#closed) return;
    const errno = zmqErrno(e);
    // A ROUTER send to a peer that left: drop that message, go on with the rest.
    if (errno === "EHOSTUNREACH") {
      if (msg !== undefined) this.onUnroutable?.(msg);
      this.#next();
      return;
    }
    this.#sendError = new ZmqError(`zmq ${this.kind} send failed: ${(e as Error)?.message}`, errno, { cause: e });
    this.#dropQueue();
    this.#rejectDrain(this.#sendError);
  };

  /** ROUTER: called with a message that could not be routed (its peer is gone); the message is dropped. */
  onUnroutable: ((msg: Uint8Array[]) => void) | undefined;

  #next(): void {
    let msg = this.#queue.shift();
    let owner = this.#owners.shift() ?? null;
    while (owner !== null && owner.zmqCancelled && msg !== undefined) {
      const n = bytesOf(msg);
      this.#queued -= n;
      owner.zmqSent(n, false);
      msg = this.#queue.shift();
      owner = this.#owners.shift() ?? null;
    }
    if (msg === undefined) {
      if (this.#drain !== undefined) this.#checkDrain();
      const f = this.#flushed;
      if (f !== undefined) {
        this.#flushed = undefined;
        f();
      }
      return;
    }
    const n = bytesOf(msg);
    this.#queued -= n;
    this.#inflightBytes = n;
    this.#inflight = msg;
    this.#inflightOwner = owner;
    if (this.#drain !== undefined) this.#checkDrain();
    this.#sock.send(msg).then(this.#sent, this.#sendFailed);
  }

  /** Resolves once queued bytes are at or below half the high-water mark; rejects if the socket closes first. */
  drain(): Promise<void> {
    if (this.#closing) {
      const p = Promise.reject(new ClosedError(`zmq ${this.kind} socket is closed`));
      p.catch(noop);
      return p;
    }
    if (this.bufferedAmount <= this.highWaterMark / 2) return RESOLVED;
    if (this.#drain === undefined) {
      let resolve!: () => void;
      let reject!: (e: Error) => void;
      const promise = new Promise<void>((res, rej) => {
        resolve = res;
        reject = rej;
      });
      promise.catch(noop);
      this.#drain = { promise, resolve, reject };
    }
    return this.#drain.promise;
  }

  #checkDrain(): void {
    const d = this.#drain;
    if (d !== undefined && this.bufferedAmount <= this.highWaterMark / 2) {
      this.#drain = undefined;
      d.resolve();
    }
  }

  #rejectDrain(e: Error): void {
    const d = this.#drain;
    if (d !== undefined) {
      this.#drain = undefined;
      d.reject(e);
    }
  }

  #dropQueue(): void {
    for (let m = this.#queue.shift(); m !== undefined; m = this.#queue.shift()) {
      const owner = this.#owners.shift() ?? null;
      if (owner !== null) owner.zmqSent(bytesOf(m), false);
    }
    this.#queued = 0;
  }

  // --------------------------------------------------------------- receive

  /** Begin delivering messages to `handler` (on later turns; never synchronously). Call once. */
  start(handler: ZmqHandler): void {
    if (!CAN_RECV[this.kind]) throw new TypeError(`a zmq ${this.kind} socket cannot receive`);
    if (this.#handler !== undefined) throw new TilthError("ERR_INVALID_STATE", "start() was already called on this zmq socket");
    this.#handler = handler;
    this.loop.post(() => this.#pump());
  }

  /** Stop taking messages from libzmq (its receive high-water mark then holds peers back). */
  pause(): void {
    this.#paused = true;
  }

  /** Take messages again, from a later turn. */
  resume(): void {
    if (!this.#paused) return;
    this.#paused = false;
    this.loop.post(() => this.#pump());
  }

  #pump(): void {
    if (this.#receiving || this.#paused || this.#closed || this.#handler === undefined) return;
    const held = this.#held;
    if (held !== undefined) {
      this.#held = undefined;
      this.#deliver(held);
      if (this.#paused || this.#closed) return;
    }
    this.#receive();
  }

  #receive(): void {
    this.#receiving = true;
    let p: Promise<Buffer[]>;
    try {
      p = this.#sock.receive();
    } catch (e) {
      // zeromq.js throws (EBUSY) while a bind/unbind is in progress: try again on a later turn.
      this.#receiving = false;
      if (zmqErrno(e) === "EBUSY") this.loop.post(() => this.#pump());
      else this.#receiveFailed(e);
      return;
    }
    p.then(this.#received, this.#receiveFailed);
  }

  readonly #received = (frames: Buffer[]): void => {
    this.#receiving = false;
    if (this.#closed) return;
    if (this.#paused) {
      this.#held = frames;
      return;
    }
    this.#deliver(frames);
    if (!this.#paused && !this.#closed) this.#receive();
  };

  #deliver(frames: Buffer[]): void {
    try {
      this.#handler!.message(frames);
    } catch (e) {
      // A handler's bug must not stop the socket; report it where the loop reports errors.
      this.loop.post(() => {
        throw e;
      });
    }
  }

  readonly #receiveFailed = (e: unknown): void => {
    this.#receiving = false;
    if (this.#closed || this.#closing) return;
    const err = new ZmqError(`zmq ${this.kind} receive failed: ${(e as Error)?.message}`, zmqErrno(e), { cause: e });
    this.#handler?.error?.(err);
  };

  // ----------------------------------------------------------------- close

  /**
   * Graceful close: stop sending and receiving, hand what is queued to libzmq,
   * then close the socket with the linger period (libzmq keeps delivering
   * queued messages for up to `linger` ms). Idempotent.
   */
  close(): Promise<void> {
    if (this.#closeP !== undefined) return this.#closeP;
    this.#closing = true;
    this.#rejectDrain(new ClosedError(`zmq ${this.kind} socket is closed`));
    if (this.#inflightBytes < 0 && this.#queue.length === 0) {
      this.#closeNow(this.#linger);
      this.#closeP = RESOLVED;
    } else {
      this.#closeP = new Promise<void>((resolve) => {
        this.#flushed = () => {
          this.#closeNow(this.#linger);
          resolve();
        };
      });
    }
    return this.#closeP;
  }

  /** Forceful close: drop what is queued, close at once without lingering. Idempotent. */
  destroy(): void {
    this.#closing = true;
    this.#rejectDrain(new ClosedError(`zmq ${this.kind} socket was destroyed`));
    this.#dropQueue();
    this.#closeNow(0);
    const f = this.#flushed;
    if (f !== undefined) {
      this.#flushed = undefined;
      f();
    }
    this.#closeP ??= RESOLVED;
  }

  #closeNow(linger: number): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#held = undefined;
    // The monitor (if any) ends with its socket; closing it in emitter mode throws ENOTSOCK later.
    this.#observer = undefined;
    try {
      (this.#sock as unknown as { linger: number }).linger = linger;
    } catch {
      // not settable any more; close anyway
    }
    this.#sock.close();
    openSockets--;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
