/**
 * ZeroRPC one-way events: PUSH/PULL (each event to one puller) and PUB/SUB
 * (each event to every subscriber), as zerorpc's Pusher/Puller and
 * Publisher/Subscriber. An event is `[header, name, args]` like a request,
 * but nobody answers it.
 *
 * Emitters and receivers open their connections through the loop's
 * transports (`loop.listen` when bound, `loop.connect` otherwise), so events
 * run over ZeroMQ (`zrpc+tcp://`, `zrpc+ipc://`: PUB, SUB, PUSH and PULL
 * sockets, interoperable with zerorpc) and over any other tilth transport
 * (`zrpc+inproc://`, a simulated network), where the same semantics are kept
 * on top of message connections: a bound PUB sends each event to every
 * connected subscriber, a bound PUSH to one connected puller in turn, and a
 * bound PULL or SUB takes events from every connected emitter.
 *
 * A SUB receiver's `subscribe` names the events it takes. ZeroMQ's own filter
 * cannot do it: it matches a prefix of a message's first frame, and no prefix
 * names an event (the frames are `["", payload]`, or `[payload]` from
 * zerorpc-python, whose payload starts with a header holding a message id new
 * for every event). So the SUB socket takes everything and the receiver drops
 * events of other names after reading the header and the name only.
 *
 * @example
 * ```ts
 * const puller = await zrpcReceiver(loop, "pull", "zrpc+tcp://127.0.0.1:4243", { log: (line: string) => console.log(line) }, { bind: true });
 * const pusher = await zrpcEmitter(loop, "push", puller.endpoint);
 * pusher.emit("log", "hello");
 *
 * const pub = await zrpcEmitter(loop, "pub", "zrpc+inproc://news", { bind: true });
 * const sub = await zrpcReceiver(loop, "sub", "zrpc+inproc://news", api, { subscribe: ["log"] });
 * ```
 * @module
 */
import { BrokenError, BusyError, ClosedError, excerpt, isTilthError } from "../../core/errors.js";
import { Event } from "../../core/Event.js";
import type { Loop } from "../../core/Loop.js";
import { stopWithin } from "../../core/Scope.js";
import type { Connection, ConnectionEnd, Listener, Message } from "../../core/Transport.js";
import { registerTransports } from "../../transports/index.js";
import { exposedMethods, type ExposeOptions } from "../api.js";
import { RpcError } from "../errors.js";
import { decodeEvent, encodeEvent, IdGenerator, ZRPC_VERSION } from "./codec.js";

/** Default bytes an emitter queues (no puller ready) before `emit` returns false: 1 MiB. */
export const DEFAULT_EVENTS_HIGH_WATER_MARK = 1024 * 1024;
/** Default ms `close()` lets connections flush before destroying them. */
export const DEFAULT_EVENTS_CLOSE_GRACE_MS = 2000;

export interface EventEndpointOptions {
  /** Bind to the endpoint (default: connect to it). */
  bind?: boolean;
  /** Aborts the bind or connect. */
  signal?: AbortSignal;
  /** ms `close()` lets connections flush what was sent before it destroys them. Default 2000. */
  closeGraceMs?: number;
  /**
   * Emitter: the high-water mark of each connection (bytes sent and not yet
   * taken), and of the events queued while no puller can take them: `emit`
   * returns false there. Default 1 MiB.
   */
  highWaterMark?: number;
  /** Emitter: bytes queued past which `emit` throws ERR_BUSY. Default 64 × highWaterMark. */
  maxQueuedBytes?: number;
}

/** Sends one-way events on a PUSH or PUB endpoint. */
export interface ZrpcEmitter extends AsyncDisposable {
  /** The transport URL bound (when bound, with the real port), else the one connected to. */
  readonly endpoint: string;
  /**
   * Events not sent: PUB, to a subscriber that held its high-water mark of
   * unsent bytes; PUSH, queued events a puller's connection refused (above its
   * maxMessageSize).
   */
  readonly dropped: number;
  /**
   * Send `name(...args)`. Returns false when the caller should wait for
   * `drain()`: PUSH, when no puller can take more (events queue here, up to
   * `maxQueuedBytes`); PUB, when a subscriber is full (it misses events until
   * it drains, as with ZeroMQ's PUB). Throws ERR_CLOSED after `close()`, and
   * ERR_BROKEN once the connection of an emitter that connected has ended.
   */
  emit(name: string, ...args: unknown[]): boolean;
  /** Resolves when emitting may go on (see `emit`); rejects once the emitter is closed or broken. */
  drain(): Promise<void>;
  /** Flush and close; connections still flushing after `closeGraceMs` are destroyed. Idempotent. */
  close(): Promise<void>;
}

export interface ReceiverOptions extends EventEndpointOptions, ExposeOptions {
  /**
   * SUB: the names of the events to take (whole names: `"log"` takes `log`,
   * not `logout`). Default: every event. Other events are dropped unread.
   */
  subscribe?: string[];
  /**
   * Called with an event that could not be dispatched (undecodable, unknown
   * method) or a handler's error; and, for a receiver that connected, with an
   * ERR_BROKEN when its connection ended by the peer (`name` undefined: it
   * receives no more).
   */
  onError?: (error: unknown, name: string | undefined) => void;
}

/** Dispatches one-way events from a PULL or SUB endpoint. */
export interface ZrpcReceiver extends AsyncDisposable {
  /** The transport URL bound (when bound), else the one connected to. */
  readonly endpoint: string;
  /** Stop receiving and close. Idempotent. */
  close(): Promise<void>;
}

/**
 * The transport URL of an events URL: `zrpc+` is optional; `tcp://` and
 * `ipc://` are ZeroMQ's (`zmq+tcp://`, `zmq+ipc://`), as for zrpc calls; any
 * other scheme is used as named (`inproc://news`, `zmq+tcp://…`). ZeroMQ's
 * wildcard port `*` is accepted for `0`.
 */
export function eventsTransportUrl(url: string): string {
  const t = url.startsWith("zrpc+") ? url.slice(5) : url;
  return t.replace(/^(tcp|ipc):/, "zmq+$1:").replace(/^(zmq\+tcp:\/\/[^/?#]*):\*(?=$|[/?#])/, "$1:0");
}

const noop = (): void => {};

function bytesOf(msg: Message): number {
  let n = 0;
  for (let i = 0; i < msg.length; i++) n += msg[i]!.byteLength;
  return n;
}

/** What emitters and receivers share: their connections (accepted when bound, else the one connected) and a bounded close. */
abstract class EventEnd {
  endpoint = "";
  protected readonly loop: Loop;
  protected readonly kind: string;
  /** The connection of an end that connected (undefined when bound). */
  protected connected: Connection | undefined;
  readonly #conns = new Set<Connection>();
  readonly #graceMs: number;
  #listener: Listener | undefined;
  #closeP: Promise<void> | undefined;

  constructor(loop: Loop, kind: string, kinds: readonly string[], options: EventEndpointOptions) {
    if (!kinds.includes(kind)) throw new RangeError(`kind must be ${kinds.join(" or ")}, got ${String(kind)}`);
    this.loop = loop;
    this.kind = kind;
    this.#graceMs = options.closeGraceMs ?? DEFAULT_EVENTS_CLOSE_GRACE_MS;
  }

  /** A connection to serve: start it (its end must call `forget`). */
  protected abstract attach(conn: Connection): void;

  protected get closing(): boolean {
    return this.#closeP !== undefined;
  }

  async open(url: string, options: EventEndpointOptions): Promise<this> {
    registerTransports(this.loop);
    const turl = eventsTransportUrl(url);
    const opts = {
      socket: this.kind,
      ...(options.signal === undefined ? {} : { signal: options.signal }),
      ...(options.highWaterMark === undefined ? {} : { highWaterMark: options.highWaterMark }),
    };
    if (options.bind) {
      const listener = await this.loop.listen(turl, opts);
      this.#listener = listener;
      this.endpoint = listener.url;
      listener.start((conn) => this.#add(conn));
    } else {
      const conn = await this.loop.connect(turl, opts);
      this.endpoint = turl;
      this.connected = conn;
      this.#add(conn);
    }
    return this;
  }

  #add(conn: Connection): void {
    if (this.closing) {
      conn.destroy();
      return;
    }
    this.#conns.add(conn);
    this.attach(conn);
  }

  /** `conn` ended: forget it. Returns the error to report when it was the connection of an end that connected, ended by the peer. */
  protected forget(conn: Connection, end: ConnectionEnd): BrokenError | undefined {
    this.#conns.delete(conn);
    if (conn !== this.connected || end.by !== "peer" || this.closing) return undefined;
    const why = end.error ? `: ${end.error.message}` : " (the peer closed it)";
    return new BrokenError(`the zrpc ${this.kind} connection to ${this.endpoint} ended${why}; open a new ${this.kind} to go on`, { cause: end.error });
  }

  close(): Promise<void> {
    return (this.#closeP ??= this.#close());
  }

  async #close(): Promise<void> {
    this.onClosing();
    const conns = [...this.#conns];
    await stopWithin(this.loop, {
      what: `zrpc ${this.kind} ${this.endpoint}`,
      ended: Promise.all([this.#listener?.close(), ...conns.map((c) => c.close())]),
      graceMs: this.#graceMs,
      cancel: () => {
        for (const c of conns) c.destroy();
      },
      cancelMs: 1000,
    });
  }

  /** `close()` began. */
  protected onClosing(): void {}

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

interface Peer {
  readonly conn: Connection;
  /** Its last send returned true, or it drained since. */
  ready: boolean;
}

class Emitter extends EventEnd implements ZrpcEmitter {
  dropped = 0;
  readonly #ids: IdGenerator;
  readonly #pub: boolean;
  readonly #peers: Peer[] = [];
  #ready = 0;
  /** Round-robin position among the peers (PUSH). */
  #next = 0;
  /** PUSH: events waiting for a puller that can take them. */
  #queue: (Message | undefined)[] = [];
  #head = 0;
  #queuedBytes = 0;
  readonly #highWaterMark: number;
  readonly #maxQueued: number;
  /** Set when emitting may go on (drain() waits on it). */
  readonly #canEmit = new Event();
  /** Aborts when the emitter can emit no more: closed, or broken. */
  readonly #stop = new AbortController();
  /** Why an emitter that connected can emit no more. */
  #broken: Error | undefined;

  constructor(loop: Loop, kind: "push" | "pub", options: EventEndpointOptions) {
    super(loop, kind, ["push", "pub"], options);
    this.#ids = new IdGenerator(undefined, () => loop.random());
    this.#pub = kind === "pub";
    this.#highWaterMark = options.highWaterMark ?? DEFAULT_EVENTS_HIGH_WATER_MARK;
    this.#maxQueued = options.maxQueuedBytes ?? 64 * this.#highWaterMark;
  }

  protected attach(conn: Connection): void {
    const peer: Peer = { conn, ready: true };
    this.#peers.push(peer);
    this.#ready++;
    // Nothing comes from a puller or subscriber; started to learn when it ends.
    conn.start({ message: noop, end: (e) => this.#gone(peer, e) });
    this.#flush();
    this.#checkDrain();
  }

  #gone(peer: Peer, end: ConnectionEnd): void {
    const broken = this.forget(peer.conn, end);
    const i = this.#peers.indexOf(peer);
    if (i >= 0) {
      this.#peers.splice(i, 1);
      if (peer.ready) this.#ready--;
      if (this.#next > i) this.#next--;
    }
    if (broken !== undefined) {
      this.#broken = broken;
      this.#stop.abort(broken);
    } else this.#checkDrain();
  }

  emit(name: string, ...args: unknown[]): boolean {
    if (this.closing) throw new ClosedError(`the zrpc ${this.kind} emitter is closed`);
    if (this.#broken !== undefined) throw this.#broken;
    const msg = encodeEvent({ message_id: this.#ids.next(), v: ZRPC_VERSION }, name, args);
    return this.#pub ? this.#publish(msg) : this.#push(msg);
  }

  #publish(msg: Message): boolean {
    let all = true;
    for (let i = 0; i < this.#peers.length; i++) {
      const p = this.#peers[i]!;
      if (!p.ready) {
        this.dropped++;
        all = false;
      } else if (this.#send(p, msg) === false) all = false;
    }
    return all;
  }

  #push(msg: Message): boolean {
    if (this.#queue.length === this.#head) {
      for (let p = this.#nextReady(); p !== undefined; p = this.#nextReady()) {
        if (this.#send(p, msg) !== undefined) return this.#ready > 0;
      }
    }
    const n = bytesOf(msg);
    if (this.#queuedBytes > 0 && this.#queuedBytes + n > this.#maxQueued) {
      throw new BusyError(`the zrpc push emitter's queue is full (${this.#queuedBytes} bytes queued, limit ${this.#maxQueued}): wait for drain()`, {
        context: { queued: this.#queuedBytes, limit: this.#maxQueued },
      });
    }
    this.#queue.push(msg);
    this.#queuedBytes += n;
    return this.#queuedBytes < this.#highWaterMark;
  }

  /** Send to one peer: true, false (it is full now), or undefined when it has ended (nothing sent). */
  #send(p: Peer, msg: Message): boolean | undefined {
    let ok: boolean;
    try {
      ok = p.conn.send(msg);
    } catch (e) {
      // A connection that is ending is forgotten on its end event; anything else (too large) is the caller's.
      if (!(isTilthError(e, "ERR_CLOSED") || isTilthError(e, "ERR_BROKEN")) || p.conn === this.connected) throw e;
      if (p.ready) {
        p.ready = false;
        this.#ready--;
      }
      return undefined;
    }
    if (!ok) {
      p.ready = false;
      this.#ready--;
      p.conn.drain().then(() => this.#readyAgain(p), noop);
    }
    return ok;
  }

  #readyAgain(p: Peer): void {
    if (p.ready || !this.#peers.includes(p)) return;
    p.ready = true;
    this.#ready++;
    this.#flush();
    this.#checkDrain();
  }

  #nextReady(): Peer | undefined {
    const n = this.#peers.length;
    for (let i = 0; i < n; i++) {
      const k = (this.#next + i) % n;
      const p = this.#peers[k]!;
      if (p.ready) {
        this.#next = (k + 1) % n;
        return p;
      }
    }
    return undefined;
  }

  /** PUSH: hand queued events to pullers that can take them. */
  #flush(): void {
    while (this.#head < this.#queue.length) {
      const p = this.#nextReady();
      if (p === undefined) break;
      const msg = this.#queue[this.#head]!;
      try {
        // undefined: that puller is gone (and no longer ready); the event goes to the next one.
        if (this.#send(p, msg) === undefined) continue;
      } catch {
        // Refused by the connection (above its maxMessageSize): this event cannot go anywhere.
        this.dropped++;
      }
      this.#queue[this.#head++] = undefined;
      this.#queuedBytes -= bytesOf(msg);
    }
    if (this.#head === this.#queue.length) {
      this.#queue = [];
      this.#head = 0;
    }
  }

  #writable(): boolean {
    if (this.#pub) return this.#ready === this.#peers.length;
    return this.#queuedBytes <= this.#highWaterMark / 2 && (this.#ready > 0 || this.#peers.length === 0);
  }

  drain(): Promise<void> {
    let p: Promise<void>;
    if (this.#stop.signal.aborted) p = Promise.reject(this.#stop.signal.reason);
    else if (this.#writable()) return Promise.resolve();
    else {
      this.#canEmit.clear();
      p = this.#canEmit.wait({ signal: this.#stop.signal });
    }
    // A drain nobody awaits must not become an unhandled rejection.
    p.catch(noop);
    return p;
  }

  #checkDrain(): void {
    if (this.#writable()) this.#canEmit.set();
  }

  protected override onClosing(): void {
    // Events still queued for want of a puller are dropped, as a ZeroMQ socket closing without peers does.
    this.#queue = [];
    this.#head = 0;
    this.#queuedBytes = 0;
    this.#stop.abort(new ClosedError(`the zrpc ${this.kind} emitter is closed`));
  }
}

class Receiver extends EventEnd implements ZrpcReceiver {
  readonly #methods: ReturnType<typeof exposedMethods>;
  readonly #names: ReadonlySet<string> | undefined;
  readonly #onError: ReceiverOptions["onError"];

  constructor(loop: Loop, kind: "pull" | "sub", api: object, options: ReceiverOptions) {
    super(loop, kind, ["pull", "sub"], options);
    if (options.subscribe !== undefined && kind !== "sub") {
      throw new RangeError("subscribe is for a sub receiver: a puller that dropped events would lose them (each goes to one puller)");
    }
    this.#methods = exposedMethods(api, options);
    this.#names = options.subscribe === undefined ? undefined : new Set(options.subscribe);
    this.#onError = options.onError;
  }

  protected attach(conn: Connection): void {
    conn.start({
      message: (frames) => this.#dispatch(frames),
      end: (e) => {
        const broken = this.forget(conn, e);
        if (broken !== undefined) this.#report(broken, undefined);
      },
    });
  }

  #report(e: unknown, name: string | undefined): void {
    this.#onError?.(e, name);
  }

  #dispatch(frames: Message): void {
    if (this.closing) return;
    if (this.#names !== undefined) {
      const name = eventName(frames);
      // An event that does not decode that far is left to decodeEvent, which reports it.
      if (name !== undefined && !this.#names.has(name)) return;
    }
    let ev;
    try {
      ev = decodeEvent(frames);
    } catch (e) {
      this.#report(e, undefined);
      return;
    }
    const m = this.#methods.get(ev.name);
    if (m === undefined) {
      this.#report(new RpcError("ERR_UNKNOWN_METHOD", `unknown event ${excerpt(ev.name)}: the receiver's API has no such method`), ev.name);
      return;
    }
    if (ev.refused !== undefined) {
      this.#report(ev.refused, ev.name);
      return;
    }
    const args = Array.isArray(ev.args) ? ev.args : [ev.args];
    try {
      const r = m.fn(...args);
      if (r instanceof Promise) r.catch((e: unknown) => this.#report(e, ev.name));
    } catch (e) {
      this.#report(e, ev.name);
    }
  }
}

/**
 * Open an emitter of one-way events: `push` (each event to one puller) or
 * `pub` (each event to every subscriber), bound to `url` or connected to it.
 */
export async function zrpcEmitter(loop: Loop, kind: "push" | "pub", url: string, options: EventEndpointOptions = {}): Promise<ZrpcEmitter> {
  return new Emitter(loop, kind, options).open(url, options);
}

/** Dispatch one-way events from a PULL or SUB endpoint to `api`'s exposed methods. */
export async function zrpcReceiver(loop: Loop, kind: "pull" | "sub", url: string, api: object, options: ReceiverOptions = {}): Promise<ZrpcReceiver> {
  return new Receiver(loop, kind, api, options).open(url, options);
}

// ---- the event name, read without decoding the rest ----

/** The deepest nesting `skip` follows (a header is a flat map). */
const MAX_DEPTH = 32;

/** The big-endian unsigned integer of `n` bytes at `p`; -1 past the end. */
function uint(f: Uint8Array, p: number, n: number): number {
  if (p + n > f.length) return -1;
  let v = 0;
  for (let i = 0; i < n; i++) v = v * 256 + f[p + i]!;
  return v;
}

/** msgpack types with a length field: [bytes of the length, bytes before the payload, values per item (0: raw bytes)]. */
const SIZED: Record<number, readonly [number, number, number]> = {
  0xc4: [1, 2, 0], 0xc5: [2, 3, 0], 0xc6: [4, 5, 0], // bin
  0xd9: [1, 2, 0], 0xda: [2, 3, 0], 0xdb: [4, 5, 0], // str
  0xc7: [1, 3, 0], 0xc8: [2, 4, 0], 0xc9: [4, 6, 0], // ext (the type byte after the length)
  0xdc: [2, 3, 1], 0xdd: [4, 5, 1], // array
  0xde: [2, 3, 2], 0xdf: [4, 5, 2], // map
};
/** msgpack types of a fixed size, by first byte. */
const FIXED: Record<number, number> = {
  0xca: 5, 0xcb: 9, 0xcc: 2, 0xcd: 3, 0xce: 5, 0xcf: 9, 0xd0: 2, 0xd1: 3, 0xd2: 5, 0xd3: 9,
  0xd4: 3, 0xd5: 4, 0xd6: 6, 0xd7: 10, 0xd8: 18,
};

/** Where the msgpack value at `p` ends; -1 when it is malformed, truncated or nested deeper than MAX_DEPTH. */
function skip(f: Uint8Array, p: number, depth: number): number {
  const b = f[p];
  if (b === undefined) return -1;
  let q: number;
  let items = 0;
  if (b <= 0x7f || b >= 0xe0 || b === 0xc0 || b === 0xc2 || b === 0xc3) q = p + 1;
  else if (b <= 0x8f) [q, items] = [p + 1, 2 * (b & 0x0f)];
  else if (b <= 0x9f) [q, items] = [p + 1, b & 0x0f];
  else if (b <= 0xbf) q = p + 1 + (b & 0x1f);
  else if (FIXED[b] !== undefined) q = p + FIXED[b]!;
  else {
    const sized = SIZED[b];
    if (sized === undefined) return -1; // 0xc1: never used
    const n = uint(f, p + 1, sized[0]);
    if (n < 0) return -1;
    q = p + sized[1];
    if (sized[2] === 0) q += n;
    else items = n * sized[2];
  }
  if (q > f.length || (items > 0 && depth >= MAX_DEPTH)) return -1;
  for (let i = 0; i < items && q >= 0; i++) q = skip(f, q, depth + 1);
  return q;
}

/**
 * The name of the event `[header, name, args]` in a message's last frame,
 * read past the header without decoding it; undefined when the frame is not
 * that shape (decodeEvent then says why).
 */
export function eventName(frames: readonly Uint8Array[]): string | undefined {
  const f = frames[frames.length - 1];
  if (f === undefined) return undefined;
  let p: number;
  if (f[0] === 0x93) p = 1;
  else if (f[0] === 0xdc && f[1] === 0 && f[2] === 3) p = 3;
  else return undefined;
  p = skip(f, p, 1);
  if (p < 0 || p >= f.length) return undefined;
  const b = f[p]!;
  if (!((b >= 0xa0 && b <= 0xbf) || b === 0xd9 || b === 0xda || b === 0xdb)) return undefined;
  const end = skip(f, p, MAX_DEPTH);
  if (end < 0) return undefined;
  const start = b <= 0xbf ? p + 1 : p + SIZED[b]![1];
  return Buffer.from(f.buffer, f.byteOffset + start, end - start).toString("utf8");
}
