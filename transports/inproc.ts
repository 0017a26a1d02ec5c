/**
 * `inproc://name` message connections in memory, between code on one Loop.
 *
 * There is no global bus: the endpoints live in an {@link InprocTransport}
 * value, per loop, so two loops (two simulated systems in one test) never see
 * each other's names. Delivery is never synchronous and never uses a timer,
 * so the transport runs unchanged on the virtual-time loop: messages are
 * delivered on a microtask (a call and its answer cost no event-loop turn)
 * within the loop's cooperative budget (`loop.cooperate()`, as a channel
 * does), so timers, I/O and other posted work still get their turn.
 *
 * Semantics match the byte-stream transports: frames are copied on `send`
 * (the receiver owns what it gets, the sender may reuse its buffers), unless
 * the sender hands them over (`send(msg, true)`, as the RPC codecs do);
 * `bufferedAmount` counts the bytes (payload plus 4 per frame, as on the wire)
 * sent and not yet taken by the receiver's handler, so a paused or slow reader
 * holds the writer back at its high-water mark; `close()` delivers what was
 * sent, then the peer ends with `{by: "peer"}`; `destroy()` drops what was not
 * delivered and the peer ends broken (ERR_BROKEN).
 *
 * @example
 * ```ts
 * const loop = registerTransports(new VirtualLoop());
 * const listener = await loop.listen("inproc://echo");
 * listener.start((c) => c.start({ message: (m) => c.send(m), end() {} }));
 * const conn = await loop.connect("inproc://echo");
 * ```
 * @module
 */
import { abortReason, BrokenError } from "../core/errors.js";
import type { Loop } from "../core/Loop.js";
import { Ring } from "../core/Ring.js";
import {
  InvalidUrlError,
  type Connection,
  type ConnectOptions,
  type Frame,
  type Listener,
  type ListenOptions,
  type Message,
  type Transport,
} from "../core/Transport.js";
import { AddressInUseError, ConnectionRefusedError, MessageTooLargeError } from "./errors.js";
import { checkMessage, HEADER_SIZE } from "./framing.js";
import { ConnectionBase, type ConnectionParams } from "./internal/ConnectionBase.js";
import { ListenerBase } from "./internal/ListenerBase.js";
import { connectionParams } from "./internal/socket.js";
import { RESOLVED } from "../core/resolved.js";

const EOF: unique symbol = Symbol("inproc EOF");
type Item = Message | typeof EOF;

/** Messages delivered per posted turn before yielding to other work. */
const DELIVER_BATCH = 1024;
/** Messages smaller than this are copied into one shared allocation. */
const SMALL_COPY = 4096;

/** `inproc://name` (or `inproc://a/b`) → the name. */
export function inprocName(url: URL): string {
  const raw = url.host + url.pathname;
  if (raw === "") throw new InvalidUrlError(url.href, "a name is needed, e.g. inproc://echo");
  try {
    return decodeURIComponent(raw);
  } catch {
    throw new InvalidUrlError(url.href, "bad percent-encoding in the name");
  }
}

/**
 * Whether handed-over frames may be passed on as they are: each is most of
 * its memory (or in a small pool slab), so what the receiver keeps does not
 * keep much more alive (an encoder's large shared buffer, say).
 */
function compact(msg: Message): boolean {
  for (let i = 0; i < msg.length; i++) {
    const f = msg[i]!;
    if (f.buffer.byteLength > Math.max(8192, 2 * f.byteLength)) return false;
  }
  return true;
}

function copyMessage(msg: Message, payload: number): Message {
  const n = msg.length;
  const out: Frame[] = new Array<Frame>(n);
  if (payload < SMALL_COPY) {
    const block = Buffer.allocUnsafe(payload);
    let pos = 0;
    for (let i = 0; i < n; i++) {
      const f = msg[i]!;
      block.set(f, pos);
      out[i] = block.subarray(pos, pos + f.byteLength);
      pos += f.byteLength;
    }
  } else {
    for (let i = 0; i < n; i++) {
      const f = msg[i]!;
      const c = Buffer.allocUnsafeSlow(f.byteLength);
      c.set(f);
      out[i] = c;
    }
  }
  return out;
}

function wireOf(msg: Message): number {
  let n = HEADER_SIZE * msg.length;
  for (const f of msg) n += f.byteLength;
  return n;
}

/** One end of an in-memory connection. */
export class InprocConnection extends ConnectionBase {
  #peer!: InprocConnection;
  readonly #inbound = new Ring<Item>(64);
  /** Wire bytes we sent that the peer has not taken yet. */
  #outstanding = 0;
  #writeClosed = false;
  /** Incoming messages are dropped (closing or gone). */
  #discard = false;
  /** Ended or ending by force: nothing more flows either way. */
  #gone = false;
  #paused = false;
  #reading = false;
  #scheduled = false;
  #eofSent = false;

  private constructor(loop: Loop, params: ConnectionParams) {
    super(loop, params);
  }

  /** A connected pair: `[client end, server end]`. */
  static pair(loop: Loop, client: ConnectionParams, server: ConnectionParams): [InprocConnection, InprocConnection] {
    const a = new InprocConnection(loop, client);
    const b = new InprocConnection(loop, server);
    a.#peer = b;
    b.#peer = a;
    return [a, b];
  }

  get bufferedAmount(): number {
    return this.#outstanding;
  }

  send(msg: Message, owned = false): boolean {
    if (this.#writeClosed || this.ended !== undefined) throw this.sendError();
    const payload = checkMessage(msg, this.limits);
    const wire = payload + HEADER_SIZE * msg.length;
    this.checkBuffered(wire);
    this.#outstanding += wire;
    this.#peer.#enqueue(owned && compact(msg) ? msg : copyMessage(msg, payload));
    return this.#outstanding < this.highWaterMark;
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

  #enqueue(item: Item): void {
    if (this.#gone) {
      if (item !== EOF) this.#peer.#credit(wireOf(item));
      return;
    }
    this.#inbound.push(item);
    this.#schedule();
  }

  #credit(bytes: number): void {
    this.#outstanding -= bytes;
    // Bytes dropped because the connection is going away do not satisfy drain():
    // it rejects when the end comes.
    if (this.draining && !this.#gone) this.checkDrain();
  }

  #schedule(): void {
    if (this.#scheduled || this.#gone) return;
    if (!this.#discard && (!this.#reading || this.#paused)) return;
    if (this.#inbound.length === 0) return;
    this.#scheduled = true;
    void (this.loop.cooperate() ?? RESOLVED).then(this.#deliverTask);
  }

  readonly #deliverTask = (): void => {
    this.#scheduled = false;
    const inbound = this.#inbound;
    const max = this.limits.maxMessageSize;
    let credit = 0;
    try {
      for (let n = 0; n < DELIVER_BATCH; n++) {
        if (this.#gone || (this.#paused && !this.#discard)) return;
        const item = inbound.shift();
        if (item === undefined) return;
        if (item === EOF) {
          this.#onPeerEof();
          return;
        }
        const wire = wireOf(item);
        credit += wire;
        if (this.#discard) continue;
        const payload = wire - HEADER_SIZE * item.length;
        if (payload > max) {
          this.#fail(new MessageTooLargeError(payload, max));
          return;
        }
        this.deliver(item);
      }
    } finally {
      if (credit > 0) this.#peer.#credit(credit);
      this.#schedule();
    }
  };

  /** The peer closed gracefully and everything it sent was delivered. */
  #onPeerEof(): void {
    this.setReason({ by: "peer" });
    this.#writeClosed = true;
    this.#discard = true;
    this.#sendEof();
    this.#gone = true;
    this.finish();
  }

  #sendEof(): void {
    if (this.#eofSent) return;
    this.#eofSent = true;
    this.#peer.#enqueue(EOF);
  }

  protected beginClose(): void {
    this.#writeClosed = true;
    this.#discard = true;
    this.#sendEof();
    // Drop what arrived, and wait (reading past a pause) for the peer's EOF.
    this.#schedule();
  }

  protected beginDestroy(): void {
    this.#fail(undefined);
  }

  /** End this side now; the peer sees the connection broken. */
  #fail(error: Error | undefined): void {
    if (this.#gone) return;
    if (error !== undefined) this.setReason({ by: "peer", error });
    this.#writeClosed = true;
    this.#discard = true;
    this.#gone = true;
    this.#dropInbound();
    this.loop.post(() => this.finish());
    this.#peer.#broken(
      new BrokenError(error ? `the peer dropped the connection: ${error.message}` : "the peer destroyed the connection", { cause: error }),
    );
  }

  /** The peer destroyed the connection or dropped it. */
  #broken(error: Error): void {
    if (this.#gone) return;
    this.setReason({ by: "peer", error });
    this.#writeClosed = true;
    this.#discard = true;
    this.#gone = true;
    this.#dropInbound();
    this.loop.post(() => this.finish());
  }

  #dropInbound(): void {
    let credit = 0;
    for (let item = this.#inbound.shift(); item !== undefined; item = this.#inbound.shift()) {
      if (item !== EOF) credit += wireOf(item);
    }
    if (credit > 0) this.#peer.#credit(credit);
  }
}

/** A name on one loop's inproc transport. */
export class InprocListener extends ListenerBase {
  readonly #options: ListenOptions;
  readonly #release: () => void;

  /** @internal */
  constructor(loop: Loop, url: string, options: ListenOptions, release: () => void) {
    super(loop, "inproc", url, options.backlog);
    this.#options = options;
    this.#release = release;
  }

  /** @internal */
  _connect(clientOptions: ConnectOptions): InprocConnection {
    const [client, server] = InprocConnection.pair(
      this.loop,
      connectionParams("inproc", this.url, this.url, clientOptions),
      connectionParams("inproc", this.url, this.url, this.#options),
    );
    this.accept(server);
    return client;
  }

  protected stopAccepting(): Promise<void> {
    this.#release();
    return Promise.resolve();
  }
}

/**
 * The in-memory transport. Its names are scoped to the loop they are used
 * on; `registerTransports(loop)` gives each loop its own value.
 */
export class InprocTransport implements Transport {
  readonly schemes = ["inproc"] as const;
  readonly #byLoop = new WeakMap<Loop, Map<string, InprocListener>>();

  #names(loop: Loop): Map<string, InprocListener> {
    let m = this.#byLoop.get(loop);
    if (m === undefined) {
      m = new Map();
      this.#byLoop.set(loop, m);
    }
    return m;
  }

  async connect(loop: Loop, url: URL, options: ConnectOptions): Promise<Connection> {
    const name = inprocName(url);
    connectionParams("inproc", url.href, url.href, options);
    if (options.signal?.aborted) throw abortReason(options.signal);
    const listener = this.#byLoop.get(loop)?.get(name);
    if (listener === undefined || listener.closing) throw new ConnectionRefusedError(url.href);
    return listener._connect(options);
  }

  async listen(loop: Loop, url: URL, options: ListenOptions): Promise<Listener> {
    const name = inprocName(url);
    connectionParams("inproc", url.href, url.href, options);
    if (options.signal?.aborted) throw abortReason(options.signal);
    const names = this.#names(loop);
    if (names.has(name)) throw new AddressInUseError(url.href, "another inproc listener on this loop has the name");
    const listener = new InprocListener(loop, url.href, options, () => {
      if (names.get(name) === listener) names.delete(name);
    });
    names.set(name, listener);
    return listener;
  }
}
