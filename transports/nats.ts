/**
 * `nats://HOST:PORT[,HOST:PORT...]/SERVICE`: message connections carried by
 * NATS (the official `nats` client; an optional peer dependency, loaded on
 * first use), between the instances of a service and their clients.
 *
 * - `listen("nats://127.0.0.1:4222/ping")` makes this process one instance of
 *   `ping`: it announces itself on the service's discovery subjects and takes
 *   connections from clients. Any number of processes, on any hosts, may
 *   listen on the same service.
 * - `connect("nats://127.0.0.1:4222/ping/ID")` opens a connection to the
 *   instance `ID`; without an id, to whichever instance answers first.
 * - `discover(...)` watches the instances come and go (an RPC client keeps one
 *   connection per live instance and balances calls over them).
 *
 * Each connection is a pair of subjects private to its two ends, so a
 * protocol runs over it as over tcp (HELLO, heartbeats, streams, credit).
 * Every message is published with a reply subject of its sender's own (one
 * per message, numbered): when the other end's subscription is gone (its
 * process died), the NATS server answers "no responders" and the connection
 * ends at once with ERR_BROKEN. A connection also ends (ERR_BROKEN) when this
 * process loses its NATS server: messages in flight then may be lost, so a
 * protocol's calls fail rather than wait. The nats client reconnects by itself (to another server
 * of the cluster, if there is one) and new connections are opened as usual.
 * A message above the server's `max_payload` travels in pieces.
 *
 * Subjects (SERVICE and ids are letters, digits, `_` and `-`):
 * `tilth.svc.SERVICE.discover` (request; every instance answers),
 * `tilth.svc.SERVICE.announce` (instances say `up` and `leave`),
 * `tilth.svc.SERVICE.i.ID.open` (open a connection), `tilth.conn.CID.s.d` and
 * `tilth.conn.CID.c.d` (one connection: to the server, to the client), and
 * `tilth.conn.CID.s.r.SEQ` / `tilth.conn.CID.c.r.SEQ` (the reply subject of
 * each end's message SEQ, answered only by "no responders").
 *
 * @example
 * ```ts
 * const loop = registerTransports(new NodeLoop());
 * const listener = await loop.listen("nats://127.0.0.1:4222/echo");
 * listener.start((c) => c.start({ message: (m) => c.send(m), end() {} }));
 * const conn = await loop.connect("nats://127.0.0.1:4222/echo");
 * ```
 * @module
 */
import { hostname } from "node:os";
import { randomBytes } from "node:crypto";
import { BrokenError, BusyError, abortReason, formatMs } from "../core/errors.js";
import { importPeer } from "../adapters/peers.js";
import type { Loop, Timer } from "../core/Loop.js";
import { Ring } from "../core/Ring.js";
import { RESOLVED } from "../core/resolved.js";
import {
  InvalidUrlError,
  type ConnectOptions,
  type Discovery,
  type DiscoveryHandler,
  type Endpoint,
  type Listener,
  type ListenOptions,
  type Message,
  type Transport,
} from "../core/Transport.js";
import { ConnectFailedError, ConnectionRefusedError, ListenFailedError, MalformedFrameError, MessageTooLargeError } from "./errors.js";
import { checkMessage } from "./framing.js";
import { ConnectionBase, type ConnectionParams } from "./internal/ConnectionBase.js";
import { ListenerBase } from "./internal/ListenerBase.js";
import { connectionParams } from "./internal/socket.js";

/** What a `nats://` URL names: the servers, the service, and maybe one instance. */
export interface NatsTarget {
  /** `host:port` of each server given. */
  readonly servers: readonly string[];
  readonly service: string;
  readonly instance: string | undefined;
  readonly user: string | undefined;
  readonly pass: string | undefined;
  /** The URL of the service (servers and service, no instance, no password). */
  readonly serviceUrl: string;
}

const TOKEN = /^[A-Za-z0-9_-]{1,64}$/;

/** Parse `nats://HOST:PORT[,HOST:PORT...]/SERVICE[/INSTANCE]` (port default 4222). */
export function natsTarget(url: URL): NatsTarget {
  const hosts = url.searchParams.get("hosts") ?? url.host;
  if (hosts === "") throw new InvalidUrlError(url.href, "a NATS server is needed, e.g. nats://127.0.0.1:4222/SERVICE");
  const servers = hosts.split(",").map((h) => (/:\d+$/.test(h) ? h : `${h}:4222`));
  const parts = url.pathname.split("/").filter((p) => p !== "");
  if (parts.length < 1 || parts.length > 2) throw new InvalidUrlError(url.href, "expected nats://HOST:PORT/SERVICE (or /SERVICE/INSTANCE)");
  for (const p of parts) if (!TOKEN.test(p)) throw new InvalidUrlError(url.href, `"${p}" is not a service or instance name (letters, digits, _ and -, at most 64)`);
  const user = url.username === "" ? undefined : decodeURIComponent(url.username);
  const pass = url.password === "" ? undefined : decodeURIComponent(url.password);
  return {
    servers,
    service: parts[0]!,
    instance: parts[1],
    user,
    pass,
    serviceUrl: `nats://${user === undefined ? "" : `${encodeURIComponent(user)}@`}${servers.join(",")}/${parts[0]}`,
  };
}

/** A fresh id: 16 hex digits from the loop's random source when it has one, else the system's. */
function newId(loop: Loop): string {
  const random = (loop as Partial<{ random(): number }>).random;
  if (typeof random === "function") {
    let s = "";
    for (let i = 0; i < 4; i++) s += Math.floor(random.call(loop) * 0x10000).toString(16).padStart(4, "0");
    return s;
  }
  return randomBytes(8).toString("hex");
}

// ---- the shared NATS connection of a loop and a server list ----

/** Something that ends when its NATS connection is lost. */
interface OnLost {
  lost(error: Error): void;
  reconnected?(): void;
}

class Shared {
  refs = 0;
  readonly members = new Set<OnLost>();
  /** Set while the nats client is away (reconnecting): resolves when it is back. */
  #back: { promise: Promise<void>; resolve: () => void } | undefined;
  constructor(
    readonly nc: NatsConnection,
    readonly key: string,
  ) {}
  down(): void {
    if (this.#back !== undefined) return;
    let resolve!: () => void;
    const promise = new Promise<void>((r) => (resolve = r));
    this.#back = { promise, resolve };
  }

  up(): void {
    this.#back?.resolve();
    this.#back = undefined;
  }

  /** Resolves at once when connected, else when the nats client is back (requests made while away may go unanswered). */
  whenUp(): Promise<void> | undefined {
    return this.#back?.promise;
  }

  /** Largest payload the server takes, less room for our header. */
  get maxChunk(): number {
    return Math.max(1024, (this.nc.info?.max_payload ?? 1024 * 1024) - 16);
  }
}

/*
 * The part of the nats client this transport uses, written out so that
 * tilth's published types do not need the optional package.
 */
interface Msg {
  readonly subject: string;
  readonly reply?: string | undefined;
  readonly data: Uint8Array;
  readonly headers?: { readonly code: number } | undefined;
}
interface Subscription {
  unsubscribe(): void;
}
interface NatsConnection {
  readonly info?: { readonly max_payload: number } | undefined;
  publish(subject: string, data?: Uint8Array, options?: { reply?: string }): void;
  subscribe(subject: string, options: { callback: (err: Error | null, msg: Msg) => void }): Subscription;
  request(subject: string, data: Uint8Array, options: { timeout: number }): Promise<Msg>;
  flush(): Promise<void>;
  close(): Promise<void>;
  closed(): Promise<void | Error>;
  isClosed(): boolean;
  status(): AsyncIterable<{ type: string; data: unknown }>;
}
interface NatsModule {
  connect(options: Record<string, unknown>): Promise<NatsConnection>;
}
const loadNats = (): Promise<NatsModule> => importPeer<NatsModule>("nats", "the nats:// transport");

const enc = new TextEncoder();
const dec = new TextDecoder();
const json = (v: unknown): Uint8Array => enc.encode(JSON.stringify(v));
function parseJson(data: Uint8Array): Record<string, unknown> | undefined {
  try {
    const v: unknown = JSON.parse(dec.decode(data));
    return v !== null && typeof v === "object" && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/** A "no responders" status: the subject we published to has no subscriber any more. */
function isNoResponders(m: Msg): boolean {
  return m.data.length === 0 && m.headers !== undefined && m.headers.code === 503;
}

// ---- wire form of one connection's messages ----

/** A batch up to this many bytes is published as a copy and its buffer kept; a larger one is handed over. */
const COPY_BATCH = 4096;

/** Publish times kept, to say which messages a "no responders" answer covers. */
const SENT_TIMES = 1024;

const K_ONE = 0; // [0][frame]
const K_MANY = 1; // [1][n u32][len u32 × n][frames]
const K_PART = 2; // [2][piece]: a piece of a long payload, more follow
const K_LAST = 3; // [3][piece]: the last piece
const K_CLOSE = 4; // [4][decimal count]: the sender closed the connection, having read that many of our messages
const K_RESET = 5; // [5][utf8 reason]: the sender destroyed the connection
const K_BATCH = 6; // [6]([len u32][a message in the K_ONE or K_MANY form]) × n: messages sent in one run of code

/** Bytes of a message in the K_ONE or K_MANY form, given its frames and payload size. */
function encodedSize(msg: Message, size: number): number {
  return msg.length === 1 ? 1 + size : 5 + 4 * msg.length + size;
}

function encodeMessage(msg: Message, size: number): Uint8Array {
  const out = new Uint8Array(encodedSize(msg, size));
  encodeInto(out, 0, msg);
  return out;
}

/** Write `msg` in the K_ONE or K_MANY form at `out[at]`; returns the position after it. */
function encodeInto(out: Uint8Array, at: number, msg: Message): number {
  if (msg.length === 1) {
    out[at] = K_ONE;
    const f = msg[0]!;
    out.set(f, at + 1);
    return at + 1 + f.byteLength;
  }
  out[at] = K_MANY;
  at = putU32(out, at + 1, msg.length);
  for (const f of msg) at = putU32(out, at, f.byteLength);
  for (const f of msg) {
    out.set(f, at);
    at += f.byteLength;
  }
  return at;
}

function putU32(out: Uint8Array, at: number, n: number): number {
  out[at] = n >>> 24;
  out[at + 1] = n >>> 16;
  out[at + 2] = n >>> 8;
  out[at + 3] = n;
  return at + 4;
}

function decodeMessage(p: Uint8Array, maxFrames: number): Message {
  if (p[0] === K_ONE) return [p.subarray(1)];
  if (p.length < 5) throw new MalformedFrameError("short NATS message");
  const view = new DataView(p.buffer, p.byteOffset, p.byteLength);
  const n = view.getUint32(1);
  if (n < 1 || n > maxFrames || 5 + 4 * n > p.length) throw new MalformedFrameError(`bad frame count ${n}`);
  const msg: Message = [];
  let at = 5 + 4 * n;
  for (let i = 0; i < n; i++) {
    const len = view.getUint32(5 + 4 * i);
    if (at + len > p.length) throw new MalformedFrameError("frame lengths exceed the message");
    msg.push(p.subarray(at, at + len));
    at += len;
  }
  if (at !== p.length) throw new MalformedFrameError("bytes after the last frame");
  return msg;
}

/** One connection over NATS: publishes on `out`, hears on `in`. */
export class NatsConnection_ extends ConnectionBase implements OnLost {
  readonly #shared: Shared;
  /**
   * Where this end publishes (`OUT.d`) and hears (`IN.d`: messages; `IN.r.SEQ`: "no responders" for our
   * message SEQ), each on a subscription of its own, so that a message is told by its subscription rather
   * than by decoding its subject.
   */
  readonly #out: string;
  readonly #inBase: string;
  /** `IN.r.`: the reply subject of message SEQ is this and SEQ. */
  readonly #replyPrefix: string;
  /** Sequence number of the next message published, and the loop time each of the last SENT_TIMES was published. */
  #seq = 0;
  readonly #sentAt = new Float64Array(SENT_TIMES);
  /** Data messages (and pieces) received: a graceful close tells the other end how many were read. */
  #received = 0;
  #sub: Subscription | undefined;
  #statusSub: Subscription | undefined;
  readonly #release: () => void;
  /** Arrived before start() or while paused. */
  readonly #held = new Ring<Message>(16);
  #heldBytes = 0;
  #paused = false;
  /** The other end closed (K_CLOSE, with its count) while messages were held: ends once they are delivered. */
  #closedAfterHeld: number | undefined;
  /** Pieces of a long payload being put together. */
  #pieces: Uint8Array[] | undefined;
  #piecesBytes = 0;
  /** Bytes published since the last flush that completed. */
  #unflushed = 0;
  #flushing = false;
  #released = false;
  /**
   * Messages sent in this run of code, published together as one NATS message
   * (K_BATCH) when it is over. The buffer is kept from batch to batch: a small
   * batch is published as an exact copy (the nats client holds what it is
   * given until it writes), so a call costs no fresh buffer of its own.
   */
  #batch: Uint8Array | undefined;
  #batchLen = 0;
  #batchCount = 0;
  #batchQueued = false;

  constructor(loop: Loop, shared: Shared, out: string, inSubject: string, params: ConnectionParams, release: () => void) {
    super(loop, params);
    this.#shared = shared;
    this.#out = `${out}.d`;
    this.#inBase = inSubject;
    this.#replyPrefix = `${inSubject}.r.`;
    this.#release = release;
    shared.members.add(this);
  }

  /** Subscribe to this connection's incoming subject (before the other end may publish). */
  listen(): void {
    const nc = this.#shared.nc;
    this.#sub = nc.subscribe(`${this.#inBase}.d`, { callback: (_err, m) => this.#onMsg(m) });
    this.#statusSub = nc.subscribe(`${this.#replyPrefix}*`, { callback: (_err, m) => this.#onStatus(m) });
  }

  get bufferedAmount(): number {
    return this.#unflushed;
  }

  send(msg: Message, _owned?: boolean): boolean {
    if (this.reason !== undefined || this.ended !== undefined) throw this.sendError();
    const size = checkMessage(msg, this.limits);
    this.checkBuffered(size);
    const chunk = this.#shared.maxChunk;
    const n = encodedSize(msg, size);
    if (n + 5 <= chunk) this.#add(msg, n, chunk);
    else this.#sendLarge(encodeMessage(msg, size), chunk);
    this.#unflushed += n;
    if (this.#unflushed < this.highWaterMark) return true;
    this.#flush();
    return false;
  }

  /** Add a message of `n` bytes (encoded) to this run's batch. */
  #add(msg: Message, n: number, chunk: number): void {
    if (this.#batchLen + 4 + n > chunk) this.#publishBatch();
    // A new batch starts with its kind byte.
    const at = this.#batchLen === 0 ? 1 : this.#batchLen;
    const need = at + 4 + n;
    let b = this.#batch;
    if (b === undefined || b.length < need) {
      const grown = new Uint8Array(Math.min(chunk, Math.max(need, 2 * (b?.length ?? 0), 512)));
      if (b !== undefined) grown.set(b.subarray(0, this.#batchLen));
      b = this.#batch = grown;
    }
    b[0] = K_BATCH;
    this.#batchLen = encodeInto(b, putU32(b, at, n), msg);
    this.#batchCount++;
    if (!this.#batchQueued) {
      this.#batchQueued = true;
      void RESOLVED.then(this.#publishTask);
    }
  }

  readonly #publishTask = (): void => {
    this.#batchQueued = false;
    if (this.reason === undefined && this.ended === undefined) this.#publishBatch();
  };

  /** Publish the batch: one message alone in its own form, several as one K_BATCH. */
  #publishBatch(): void {
    const b = this.#batch;
    if (b === undefined || this.#batchCount === 0) return;
    // The nats client holds what it is given until it writes: a small batch goes as an exact copy (on the
    // engine's heap when tiny) and the buffer is used again; a large one is handed over with its buffer.
    const from = this.#batchCount === 1 ? 5 : 0;
    let out: Uint8Array;
    if (this.#batchLen <= COPY_BATCH) out = b.slice(from, this.#batchLen);
    else {
      out = b.subarray(from, this.#batchLen);
      this.#batch = undefined;
    }
    this.#batchLen = 0;
    this.#batchCount = 0;
    try {
      this.#shared.nc.publish(this.#out, out, { reply: this.#reply() });
    } catch (e) {
      // The NATS connection closed meanwhile: the connection ends as it would on the next send.
      this.#end({ by: "peer", error: new BrokenError(`lost the NATS connection: ${(e as Error).message}`) });
    }
  }

  /** A message above the NATS server's payload limit: in pieces, after what is batched (order kept). */
  #sendLarge(payload: Uint8Array, chunk: number): void {
    this.#publishBatch();
    const nc = this.#shared.nc;
    {
      for (let at = 0; at < payload.length; at += chunk) {
        const piece = payload.subarray(at, Math.min(payload.length, at + chunk));
        const out = new Uint8Array(1 + piece.length);
        out[0] = at + chunk >= payload.length ? K_LAST : K_PART;
        out.set(piece, 1);
        nc.publish(this.#out, out, { reply: this.#reply() });
      }
    }
  }

  /** The reply subject of the next message: a "no responders" answer to it names the message. */
  #reply(): string {
    const n = this.#seq++;
    this.#sentAt[n % SENT_TIMES] = this.loop.now();
    return this.#replyPrefix + n;
  }

  /** Ask the server to confirm what was published; the bytes count as sent once it has. */
  #flush(): void {
    if (this.#flushing) return;
    this.#flushing = true;
    const counted = this.#unflushed;
    this.#shared.nc.flush().then(
      () => {
        this.#flushing = false;
        this.#unflushed -= counted;
        this.checkDrain();
        if (this.draining) this.#flush();
      },
      () => (this.#flushing = false),
    );
  }

  pause(): void {
    this.#paused = true;
  }

  resume(): void {
    if (!this.#paused) return;
    this.#paused = false;
    if (this.started) this.loop.post(() => this.#deliverHeld());
  }

  protected onStart(): void {
    this.#deliverHeld();
  }

  #deliverHeld(): void {
    while (!this.#paused && this.ended === undefined && this.reason === undefined) {
      const m = this.#held.shift();
      if (m === undefined) {
        if (this.#closedAfterHeld !== undefined) this.#peerClosed(this.#closedAfterHeld);
        return;
      }
      for (const f of m) this.#heldBytes -= f.byteLength;
      this.deliver(m);
    }
  }

  /** An answer to one of our reply subjects: only "no responders" means something. */
  #onStatus(m: Msg): void {
    if (this.reason !== undefined || this.ended !== undefined || !isNoResponders(m)) return;
    // Message K found nobody: neither it nor any later one reached the other end. Say what was
    // published after which loop time (that of message K-1) went nowhere.
    const k = Number(m.subject.slice(this.#replyPrefix.length));
    const known = Number.isSafeInteger(k) && k < this.#seq && this.#seq - k < SENT_TIMES;
    const since = !known ? undefined : k === 0 ? -Infinity : this.#sentAt[(k - 1) % SENT_TIMES];
    this.#end({
      by: "peer",
      error: new BrokenError(`the other end of ${this.remoteUrl} is gone (its NATS subscription ended: stopped or crashed)`, {
        context: since === undefined ? {} : { undeliveredAfter: since },
      }),
    });
  }

  #onMsg(m: Msg): void {
    if (this.reason !== undefined || this.ended !== undefined) return;
    const p = m.data;
    if (p.length === 0) return this.#fail(new MalformedFrameError("empty NATS message"));
    const kind = p[0]!;
    if (kind === K_CLOSE) {
      const read = Number(dec.decode(p.subarray(1)));
      // What arrived before the close is read first: held messages are delivered, then the connection ends.
      if (this.#held.length > 0 || !this.started) this.#closedAfterHeld = read;
      else this.#peerClosed(read);
      return;
    }
    this.#received++;
    if (kind === K_RESET) return this.#end({ by: "peer", error: new BrokenError(`connection reset by the other end: ${dec.decode(p.subarray(1)).slice(0, 200)}`) });
    if (kind === K_PART || kind === K_LAST) {
      const pieces = (this.#pieces ??= []);
      pieces.push(p.subarray(1));
      this.#piecesBytes += p.length - 1;
      if (this.#piecesBytes > this.limits.maxMessageSize + 5 + 4 * this.limits.maxFrames) {
        return this.#fail(new MessageTooLargeError(this.#piecesBytes, this.limits.maxMessageSize));
      }
      if (kind === K_PART) return;
      const whole = Buffer.concat(pieces, this.#piecesBytes);
      this.#pieces = undefined;
      this.#piecesBytes = 0;
      return this.#take(whole);
    }
    if (kind === K_BATCH) return this.#takeBatch(p);
    if (kind !== K_ONE && kind !== K_MANY) return this.#fail(new MalformedFrameError(`unknown message kind ${kind}`));
    this.#take(p);
  }

  /** The messages of a K_BATCH, in order, until the batch ends or the connection does. */
  #takeBatch(p: Uint8Array): void {
    let at = 1;
    while (at < p.length) {
      if (at + 4 > p.length) return this.#fail(new MalformedFrameError("a batch ends inside a message's length"));
      const n = p[at]! * 0x1000000 + ((p[at + 1]! << 16) | (p[at + 2]! << 8) | p[at + 3]!);
      const from = at + 4;
      at = from + n;
      if (n === 0 || at > p.length) return this.#fail(new MalformedFrameError(`a message of ${n} bytes in a batch of ${p.length}`));
      const kind = p[from]!;
      if (kind !== K_ONE && kind !== K_MANY) return this.#fail(new MalformedFrameError(`unknown message kind ${kind} in a batch`));
      this.#take(p.subarray(from, at));
      if (this.reason !== undefined || this.ended !== undefined) return;
    }
  }

  #take(p: Uint8Array): void {
    let msg: Message;
    try {
      msg = decodeMessage(p, this.limits.maxFrames);
    } catch (e) {
      return this.#fail(e as Error);
    }
    let size = 0;
    for (const f of msg) size += f.byteLength;
    if (size > this.limits.maxMessageSize) return this.#fail(new MessageTooLargeError(size, this.limits.maxMessageSize));
    if (this.started && !this.#paused && this.#held.length === 0) {
      this.deliver(msg);
      return;
    }
    // Held while paused: NATS cannot stop the sender, so the hold is bounded.
    this.#heldBytes += size;
    if (this.#heldBytes > this.maxBuffered) {
      this.#fail(new BusyError(`receive buffer full: ${this.#heldBytes} bytes held while paused, limit ${this.maxBuffered}`));
      return;
    }
    this.#held.push(msg);
  }

  /**
   * The other end closed after reading `read` of our messages. Any we sent
   * after those were not read (they crossed its close): the end says so, and
   * since when (loop time), so that what they carried can be known undone.
   */
  #peerClosed(read: number): void {
    const seq = this.#seq;
    if (!Number.isSafeInteger(read) || read >= seq || read < 0) return this.#end({ by: "peer" });
    const since = read === 0 ? -Infinity : seq - read < SENT_TIMES ? this.#sentAt[(read - 1) % SENT_TIMES] : undefined;
    this.#end({
      by: "peer",
      error: new BrokenError(`the other end of ${this.remoteUrl} closed the connection before reading our last ${seq - read} message(s)`, {
        context: since === undefined ? {} : { undeliveredAfter: since },
      }),
    });
  }

  /** Tell the other end, then end with `error`. */
  #fail(error: Error): void {
    this.#send(K_RESET, error.message);
    this.#end({ by: "peer", error });
  }

  #send(kind: number, text?: string): void {
    const nc = this.#shared.nc;
    if (nc.isClosed()) return;
    // After what this end sent before it (a close must not pass the last messages).
    this.#publishBatch();
    const body = text === undefined ? new Uint8Array(0) : enc.encode(text.slice(0, 200));
    const out = new Uint8Array(1 + body.length);
    out[0] = kind;
    out.set(body, 1);
    try {
      nc.publish(this.#out, out);
    } catch {
      // The NATS connection is closing: the other end learns from its heartbeats or "no responders".
    }
  }

  #end(end: { by: "local" | "peer"; error?: Error }): void {
    this.setReason(end);
    this.#stop();
    this.finish();
  }

  #stop(): void {
    for (const sub of [this.#sub, this.#statusSub]) {
      try {
        sub?.unsubscribe();
      } catch {
        // already closed with the NATS connection
      }
    }
    this.#sub = this.#statusSub = undefined;
    this.#held.drain();
    this.#shared.members.delete(this);
    if (!this.#released) {
      this.#released = true;
      this.#release();
    }
  }

  protected beginClose(): void {
    this.#send(K_CLOSE, String(this.#received));
    const nc = this.#shared.nc;
    const done = (): void => {
      this.#stop();
      this.finish();
    };
    if (nc.isClosed()) done();
    else nc.flush().then(done, done);
  }

  protected beginDestroy(): void {
    const r = this.reason;
    this.#send(K_RESET, r?.error?.message ?? "destroyed");
    this.#stop();
    this.finish();
  }

  /** OnLost: this process lost its NATS server. */
  lost(error: Error): void {
    if (this.ended !== undefined) return;
    // Published now, sent when the nats client is back: the other end may still be waiting.
    this.#send(K_RESET, error.message);
    this.#end({ by: "peer", error });
  }
}

// ---- listener: one instance of a service ----

/** What an instance says of itself in its announcements and discovery answers. */
export interface NatsInstanceInfo {
  id: string;
  service: string;
  host: string;
  pid: number;
  /** Wall-clock ms when it started listening. */
  startedAt: number;
  [key: string]: unknown;
}

/** instanceInfo (of ListenOptions) adds fields to what an instance announces, shown by `tilth inspect`. */
export type NatsListenOptions = ListenOptions;

export class NatsListener extends ListenerBase implements OnLost {
  /** This instance's id within the service. */
  readonly instanceId: string;
  readonly #shared: Shared;
  readonly #target: NatsTarget;
  readonly #subs: Subscription[] = [];
  readonly #info: NatsInstanceInfo;
  readonly #options: NatsListenOptions;
  readonly #transport: NatsTransport;
  readonly #release: () => void;

  constructor(loop: Loop, transport: NatsTransport, shared: Shared, target: NatsTarget, id: string, options: NatsListenOptions, release: () => void) {
    super(loop, "nats", target.serviceUrl, typeof options.backlog === "number" ? options.backlog : undefined);
    this.instanceId = id;
    this.#shared = shared;
    this.#target = target;
    this.#options = options;
    this.#transport = transport;
    this.#release = release;
    this.#info = { id, service: target.service, host: hostname(), pid: process.pid, startedAt: Math.round(loop.wallTime()) };
    const nc = shared.nc;
    const p = prefix(target.service);
    this.#subs.push(nc.subscribe(`${p}.discover`, { callback: (_e, m) => void (m.reply && nc.publish(m.reply, json(this.info()))) }));
    this.#subs.push(nc.subscribe(`${p}.i.${id}.open`, { callback: (_e, m) => this.#open(m) }));
    shared.members.add(this);
    this.#announce("up");
  }

  /** What this instance announces. */
  info(): NatsInstanceInfo {
    return { ...this.#info, ...this.#options.instanceInfo?.() };
  }

  #announce(event: "up" | "leave"): void {
    this.#shared.nc.publish(`${prefix(this.#target.service)}.announce`, json({ event, ...this.info() }));
  }

  #open(m: Msg): void {
    const req = parseJson(m.data);
    const cid = req?.cid;
    if (typeof cid !== "string" || !TOKEN.test(cid) || m.reply === undefined) return;
    if (this.closing) return; // no answer: the client's request times out, or finds another instance
    const local = `${this.#target.serviceUrl}/${this.instanceId}`;
    const conn = this.#transport.wrap(this.loop, this.#shared, `tilth.conn.${cid}.c`, `tilth.conn.${cid}.s`, connectionParams("nats", local, `nats://${cid}`, this.#options));
    conn.listen();
    this.#shared.nc.publish(m.reply, json({ ok: true, id: this.instanceId }));
    this.accept(conn);
  }

  lost(): void {
    // The nats client reconnects by itself; subscriptions are restored with it.
  }

  reconnected(): void {
    if (!this.closing) this.#announce("up");
  }

  protected async stopAccepting(): Promise<void> {
    this.#announce("leave");
    for (const s of this.#subs) s.unsubscribe();
    this.#shared.members.delete(this);
    try {
      await this.#shared.nc.flush();
    } catch {
      // closed or disconnected: clients learn it from their connections
    }
    this.#release();
  }
}

const prefix = (service: string): string => `tilth.svc.${service}`;

// ---- the transport ----

/** Options of the nats client a `nats://` transport opens (its defaults suit most uses). */
export interface NatsTransportOptions {
  /** Wait between reconnect attempts to one server, ms. Default 250. */
  reconnectTimeWaitMs?: number;
  /** How long opening a connection to an instance may take, ms. Default 5000. */
  openTimeoutMs?: number;
  /** Name the nats client gives itself (shown by the NATS server's monitoring). Default `tilth`. */
  name?: string;
}

/** `nats://` transport: see the module documentation. One per loop (it keeps that loop's NATS connections). */
export class NatsTransport implements Transport {
  readonly schemes = ["nats"] as const;
  readonly #pool = new Map<string, Promise<Shared>>();
  readonly #options: NatsTransportOptions;

  constructor(options: NatsTransportOptions = {}) {
    this.#options = options;
  }

  isGroup(url: URL): boolean {
    return natsTarget(url).instance === undefined;
  }

  /** @internal a connection over `shared` */
  wrap(loop: Loop, shared: Shared, out: string, inSubject: string, params: ConnectionParams): NatsConnection_ {
    shared.refs++;
    return new NatsConnection_(loop, shared, out, inSubject, params, () => this.#release(shared));
  }

  /** `#acquire`, given up when `signal` aborts (the connection, once open, is released again). */
  async #acquireOrAbort(loop: Loop, t: NatsTarget, url: string, signal: AbortSignal | undefined): Promise<Shared> {
    const p = this.#acquire(loop, t, url);
    try {
      return await this.#abortable(p, signal);
    } catch (e) {
      if (signal?.aborted) p.then((s) => this.#release(s), () => {});
      throw e;
    }
  }

  async #acquire(loop: Loop, t: NatsTarget, url: string): Promise<Shared> {
    const key = `${t.user ?? ""}@${[...t.servers].sort().join(",")}`;
    let p = this.#pool.get(key);
    if (p === undefined) {
      p = this.#open(t, key, url);
      this.#pool.set(key, p);
      p.catch(() => this.#pool.delete(key));
    }
    const shared = await p;
    shared.refs++;
    return shared;
  }

  async #open(t: NatsTarget, key: string, url: string): Promise<Shared> {
    const nats = await loadNats();
    let nc: NatsConnection;
    try {
      nc = await nats.connect({
        servers: [...t.servers],
        name: this.#options.name ?? "tilth",
        ...(t.user === undefined ? {} : { user: t.user, pass: t.pass ?? "" }),
        reconnect: true,
        maxReconnectAttempts: -1,
        reconnectTimeWait: this.#options.reconnectTimeWaitMs ?? 250,
        reconnectJitter: 50,
        waitOnFirstConnect: false,
      });
    } catch (e) {
      const code = (e as { code?: unknown }).code;
      const why = e instanceof Error ? e.message : String(e);
      if (code === "CONNECTION_REFUSED") throw new ConnectionRefusedError(`NATS server ${t.servers.join(",")} (for ${url})`, { cause: e });
      throw new ConnectFailedError(url, `NATS server ${t.servers.join(",")}: ${why}`, { cause: e });
    }
    const shared = new Shared(nc, key);
    void (async () => {
      void nc.closed().then(() => shared.up());
    for await (const s of nc.status()) {
        if (s.type === "disconnect") {
          shared.down();
          const error = new BrokenError(`NATS connection lost (server ${String(s.data)})`);
          for (const m of [...shared.members]) m.lost(error);
        } else if (s.type === "reconnect") {
          shared.up();
          for (const m of [...shared.members]) m.reconnected?.();
        }
      }
    })().catch(() => {});
    return shared;
  }

  #release(shared: Shared): void {
    if (--shared.refs > 0) return;
    if (this.#pool.get(shared.key) !== undefined) this.#pool.delete(shared.key);
    void shared.nc.close().catch(() => {});
  }

  /** Wait for `p` unless `signal` aborts first. */
  async #abortable<T>(p: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
    if (signal === undefined) return p;
    if (signal.aborted) throw abortReason(signal);
    let off!: () => void;
    const aborted = new Promise<never>((_r, reject) => {
      const f = (): void => reject(abortReason(signal));
      signal.addEventListener("abort", f, { once: true });
      off = () => signal.removeEventListener("abort", f);
    });
    try {
      return await Promise.race([p, aborted]);
    } finally {
      off();
    }
  }

  async connect(loop: Loop, url: URL, options: ConnectOptions): Promise<Connection_> {
    const t = natsTarget(url);
    const shared = await this.#acquireOrAbort(loop, t, url.href, options.signal);
    // The connection takes a reference of its own; this one is for the time of the opening.
    try {
      const nc = shared.nc;
      const timeout = this.#options.openTimeoutMs ?? 5000;
      let instance = t.instance;
      if (instance === undefined) {
        // Any instance: the first to answer the discovery request.
        const m = await this.#abortable(this.#request(loop, shared, `${prefix(t.service)}.discover`, new Uint8Array(0), timeout, t), options.signal);
        const id = parseJson(m.data)?.id;
        if (typeof id !== "string" || !TOKEN.test(id)) throw new ConnectFailedError(url.href, "an instance answered discovery without an id");
        instance = id;
      }
      const cid = newId(loop) + newId(loop);
      const remote = `${t.serviceUrl}/${instance}`;
      const conn = this.wrap(loop, shared, `tilth.conn.${cid}.s`, `tilth.conn.${cid}.c`, connectionParams("nats", `nats://${cid}`, remote, options));
      conn.listen();
      try {
        const m = await this.#abortable(this.#request(loop, shared, `${prefix(t.service)}.i.${instance}.open`, json({ cid }), timeout, t, remote), options.signal);
        if (parseJson(m.data)?.ok !== true) throw new ConnectFailedError(remote, "the instance refused the connection");
      } catch (e) {
        conn.destroy();
        throw e;
      }
      return conn;
    } finally {
      this.#release(shared);
    }
  }

  /** A request, with NATS's failures as tilth's errors: no responders is a refused connection. */
  async #request(loop: Loop, shared: Shared, subject: string, data: Uint8Array, timeout: number, t: NatsTarget, what?: string): Promise<Msg> {
    const target = what ?? `${t.serviceUrl} (no instance of service "${t.service}")`;
    const nc = shared.nc;
    try {
      const away = shared.whenUp();
      if (away !== undefined) {
        let t: Timer | undefined;
        const late = new Promise<never>((_r, reject) => (t = loop.timer(timeout, () => reject(Object.assign(new Error("NATS connection away"), { code: "TIMEOUT" })))));
        try {
          await Promise.race([away, late]);
        } finally {
          t!.cancel();
        }
      }
      return await nc.request(subject, data, { timeout });
    } catch (e) {
      const code = (e as { code?: unknown }).code;
      if (code === "503") throw new ConnectionRefusedError(target, { cause: e });
      if (code === "TIMEOUT") throw new ConnectFailedError(target, `no answer within ${formatMs(timeout)}`, { cause: e });
      throw new ConnectFailedError(target, e instanceof Error ? e.message : String(e), { cause: e });
    }
  }

  async listen(loop: Loop, url: URL, options: NatsListenOptions): Promise<Listener> {
    const t = natsTarget(url);
    if (t.instance !== undefined) throw new InvalidUrlError(url.href, "listen on nats://HOST:PORT/SERVICE (the instance id is made by the listener)");
    let shared: Shared;
    try {
      shared = await this.#acquireOrAbort(loop, t, url.href, options.signal);
    } catch (e) {
      if (options.signal?.aborted) throw e;
      throw new ListenFailedError(url.href, e instanceof Error ? e.message : String(e), { cause: e });
    }
    if (options.signal?.aborted) {
      this.#release(shared);
      throw abortReason(options.signal);
    }
    return new NatsListener(loop, this, shared, t, newId(loop), options, () => this.#release(shared));
  }

  async discover(loop: Loop, url: URL, handler: DiscoveryHandler, options: ConnectOptions): Promise<Discovery> {
    const t = natsTarget(url);
    const shared = await this.#acquireOrAbort(loop, t, url.href, options.signal);
    return new NatsDiscovery(loop, shared, t, handler, () => this.#release(shared));
  }
}

/** A Connection as the transport returns it. */
type Connection_ = NatsConnection_;

/** Watches the instances of one service: announcements, and discovery requests (at start and after a reconnect). */
class NatsDiscovery implements Discovery, OnLost {
  readonly #shared: Shared;
  readonly #target: NatsTarget;
  readonly #handler: DiscoveryHandler;
  readonly #subs: Subscription[] = [];
  readonly #inbox: string;
  readonly #release: () => void;
  #settled = false;
  #closed: Promise<void> | undefined;
  #settleTimer: Timer | undefined;

  constructor(loop: Loop, shared: Shared, t: NatsTarget, handler: DiscoveryHandler, release: () => void) {
    this.#shared = shared;
    this.#target = t;
    this.#handler = handler;
    this.#release = release;
    const nc = shared.nc;
    this.#inbox = `tilth.disc.${newId(loop)}${newId(loop)}`;
    this.#subs.push(nc.subscribe(`${prefix(t.service)}.announce`, { callback: (_e, m) => this.#heard(m, true) }));
    this.#subs.push(nc.subscribe(this.#inbox, { callback: (_e, m) => this.#heard(m, false) }));
    shared.members.add(this);
    this.refresh();
    // Settled at the latest after 2 s (a "no responders" answer or a first instance settles it sooner).
    this.#settleTimer = loop.timer(2000, () => this.#settle());
  }

  #heard(m: Msg, announced: boolean): void {
    if (this.#closed !== undefined) return;
    if (isNoResponders(m)) {
      this.#settle(); // nobody listens on discovery: no instance now
      return;
    }
    const info = parseJson(m.data);
    const id = info?.id;
    if (info === undefined || typeof id !== "string" || !TOKEN.test(id)) return;
    if (announced && info.event === "leave") this.#handler.leaving(id);
    else {
      const { event: _e, ...rest } = info;
      this.#handler.up({ id, url: `${this.#target.serviceUrl}/${id}`, info: rest } satisfies Endpoint);
      this.#settle();
    }
  }

  #settle(): void {
    if (this.#settled) return;
    this.#settled = true;
    this.#settleTimer?.cancel();
    this.#handler.settled?.();
  }

  refresh(): void {
    if (this.#closed !== undefined || this.#shared.nc.isClosed()) return;
    this.#shared.nc.publish(`${prefix(this.#target.service)}.discover`, new Uint8Array(0), { reply: this.#inbox });
  }

  lost(): void {}

  reconnected(): void {
    this.refresh();
  }

  close(): Promise<void> {
    if (this.#closed === undefined) {
      for (const s of this.#subs) s.unsubscribe();
      this.#shared.members.delete(this);
      this.#release();
      this.#settleTimer?.cancel();
      this.#closed = Promise.resolve();
    }
    return this.#closed;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/** The transport for `registerTransports`: one per loop. */
export function natsTransport(options?: NatsTransportOptions): NatsTransport {
  return new NatsTransport(options);
}
