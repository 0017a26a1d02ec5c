/**
 * The simulated network: every stream URL scheme of tilth (tcp, ipc, tls,
 * inproc, zmq+tcp, zmq+ipc) between simulated hosts on one
 * {@link SimLoop}, so apps run unchanged in a simulation. Each host gets a
 * transport of its own on its {@link HostLoop} (`network.attach(host)`); the
 * addresses are one namespace, as on one machine.
 *
 * What the network does to bytes is asked of its {@link LinkPolicy} at every
 * packet: the one-way delay (latency and bandwidth) and whether the link is
 * cut (a partition). A message on a stream arrives whole, in order, after its
 * delay; across a cut link it waits until the link heals, as TCP retransmits;
 * a reset (RST) across a cut link is lost. Faults the simulation injects:
 * `reset(conn)` breaks both ends at once, `crash(host)` drops the host's ends
 * without a word to its code and sends a reset to their peers, and closes its
 * listeners.
 *
 * Every arrival is a trace event (`<ms> c<id>> <frames>/<bytes>`, `eof`,
 * `rst`), with the message's bytes in the trace hash.
 *
 * What is not simulated: TLS verification (a tls:// connection is a plain
 * one here and has no peer identity), ZeroMQ's own reconnection (zmq+ URLs
 * connect and fail as tcp does).
 *
 * @example
 * ```ts
 * const world = new SimLoop({ seed: 1 });
 * const net = new SimNetwork(world);
 * const a = net.attach(new HostLoop(world, "a"));
 * const b = net.attach(new HostLoop(world, "b"));
 * const l = await b.listen("tcp://127.0.0.1:9990");
 * ```
 * @module
 */
import type { HostLoop, SimLoop } from "../adapters/sim.js";
import { abortReason, BrokenError } from "../core/errors.js";
import type { Loop, Timer } from "../core/Loop.js";
import { Ring } from "../core/Ring.js";
import { InvalidUrlError, type Connection, type ConnectOptions, type Frame, type Listener, type ListenOptions, type Message, type Transport } from "../core/Transport.js";
import { RESOLVED } from "../core/resolved.js";
import { AddressInUseError, ConnectionRefusedError, MessageTooLargeError } from "./errors.js";
import { checkMessage, HEADER_SIZE } from "./framing.js";
import { ConnectionBase, type ConnectionParams } from "./internal/ConnectionBase.js";
import { ListenerBase } from "./internal/ListenerBase.js";
import { connectionParams, hostPort, ipcPath } from "./internal/socket.js";
import { inprocName } from "./inproc.js";

/** The URL schemes the simulated network serves. */
export const SIM_SCHEMES = ["tcp", "ipc", "tls", "inproc", "zmq+tcp", "zmq+ipc"] as const;

/** What the network does to a packet from host `from` to host `to`, asked at each one. */
export interface LinkPolicy {
  /** One-way delay of `bytes` bytes from `from` to `to` now, ms (latency plus bytes over bandwidth). */
  delay(from: string, to: string, bytes: number): number;
  /** While the link from `from` to `to` is cut: the time it heals. Undefined when it carries. */
  cutUntil(from: string, to: string): number | undefined;
}

const EOF: unique symbol = Symbol("sim EOF");
type Item = Message | typeof EOF;

/** Messages delivered per microtask batch before yielding to other work. */
const DELIVER_BATCH = 1024;

function wireOf(msg: Message): number {
  let n = HEADER_SIZE * msg.length;
  for (const f of msg) n += f.byteLength;
  return n;
}

function copyMessage(msg: Message): Message {
  const out: Frame[] = new Array<Frame>(msg.length);
  for (let i = 0; i < msg.length; i++) out[i] = Buffer.from(msg[i]!);
  return out;
}

/** The namespace key of an address: tcp-like schemes share ports, ipc-like ones paths. */
function addressOf(url: URL): { key: string; family: "tcp" | "ipc" | "inproc"; host?: string; port?: number; path?: string } {
  const scheme = url.protocol.slice(0, -1);
  if (scheme === "tcp" || scheme === "tls" || scheme === "zmq+tcp") {
    const { host, port } = hostPort(url);
    return { key: `tcp ${host.toLowerCase()}:${port}`, family: "tcp", host: host.toLowerCase(), port };
  }
  if (scheme === "ipc" || scheme === "zmq+ipc") {
    const path = ipcPath(url);
    return { key: `ipc ${path}`, family: "ipc", path };
  }
  if (scheme === "inproc") return { key: `inproc ${inprocName(url)}`, family: "inproc" };
  throw new InvalidUrlError(url.href, `the simulated network does not serve ${scheme}:`);
}

interface Flight {
  at: number;
  item: Item;
  bytes: number;
}

/** One end of a simulated stream connection. */
export class SimConnection extends ConnectionBase {
  /** Connection number in the trace. */
  readonly id: number;
  /** `>` for the connecting end (it sends client-to-server), `<` for the accepted one. */
  readonly side: ">" | "<";
  readonly host: HostLoop;
  #peer!: SimConnection;
  readonly #net: SimNetwork;
  /** Packets on their way to this end, in arrival order. */
  readonly #flight = new Ring<Flight>(16);
  #flightTimer: Timer | undefined;
  #lastArrival = 0;
  readonly #inbound = new Ring<Item>(16);
  #outstanding = 0;
  #writeClosed = false;
  #discard = false;
  #gone = false;
  #paused = false;
  #reading = false;
  #scheduled = false;
  #eofSent = false;
  /** Loop time something last arrived at this end (or it was established). */
  lastArrival: number;
  /** Handed to its owner: accepted (the server's end), or connected (the client's, once the handshake's answer came back). */
  established: boolean;

  /** @internal */
  constructor(net: SimNetwork, host: HostLoop, id: number, side: ">" | "<", params: ConnectionParams) {
    super(host, params);
    this.#net = net;
    this.host = host;
    this.id = id;
    this.side = side;
    this.lastArrival = net.world.now();
    this.established = side === "<";
  }

  /** @internal The connect resolved: the owner has this end from now on. */
  _establish(): void {
    this.established = true;
    this.lastArrival = this.#net.world.now();
  }

  /** @internal */
  static pair(net: SimNetwork, id: number, client: HostLoop, cp: ConnectionParams, server: HostLoop, sp: ConnectionParams): [SimConnection, SimConnection] {
    const a = new SimConnection(net, client, id, ">", cp);
    const b = new SimConnection(net, server, id, "<", sp);
    a.#peer = b;
    b.#peer = a;
    return [a, b];
  }

  /** The other end. */
  get peer(): SimConnection {
    return this.#peer;
  }

  /** Whether this end is still open (neither ended nor dropped by a crash). */
  get open(): boolean {
    return !this.#gone && this.ended === undefined;
  }

  /** Whether a graceful close of this end has begun. */
  get closing(): boolean {
    return this.#writeClosed;
  }

  get bufferedAmount(): number {
    return this.#outstanding;
  }

  send(msg: Message, owned = false): boolean {
    if (this.#writeClosed || this.ended !== undefined || this.#gone) throw this.sendError();
    checkMessage(msg, this.limits);
    const wire = wireOf(msg);
    this.checkBuffered(wire);
    this.#outstanding += wire;
    this.#peer.#inFlight(owned ? msg : copyMessage(msg), wire);
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

  /** A packet leaves the peer for this end: it arrives after the link's delay, in order. */
  #inFlight(item: Item, bytes: number): void {
    if (this.#gone) {
      if (item !== EOF) this.#peer.#credit(bytes);
      return;
    }
    const now = this.#net.world.now();
    const at = Math.max(now + this.#net.policy.delay(this.#peer.host.name, this.host.name, bytes), this.#lastArrival);
    this.#lastArrival = at;
    this.#flight.push({ at, item, bytes });
    if (this.#flightTimer === undefined) this.#arm(at);
  }

  #arm(at: number): void {
    this.#flightTimer = this.#net.world.timer(at - this.#net.world.now(), this.#land);
  }

  readonly #land = (): void => {
    this.#flightTimer = undefined;
    const world = this.#net.world;
    const now = world.now();
    for (;;) {
      const head = this.#flight.peek();
      if (head === undefined) return;
      if (this.#gone) {
        this.#flight.shift();
        if (head.item !== EOF) this.#peer.#credit(head.bytes);
        continue;
      }
      if (head.at > now) {
        this.#arm(head.at);
        return;
      }
      const cut = this.#net.policy.cutUntil(this.#peer.host.name, this.host.name);
      if (cut !== undefined) {
        // Held in the network (TCP retransmits) until the link heals.
        this.#arm(Math.max(cut, now + 1));
        return;
      }
      this.#flight.shift();
      const item = head.item;
      if (item === EOF) world.trace.record(`${world.stamp()} c${this.id}${this.#peer.side} eof`);
      else world.trace.record(`${world.stamp()} c${this.id}${this.#peer.side} ${item.length}/${head.bytes}`, item);
      this.lastArrival = now;
      this.#inbound.push(item);
      this.#schedule();
    }
  };

  #credit(bytes: number): void {
    this.#outstanding -= bytes;
    if (this.draining && !this.#gone) this.checkDrain();
  }

  #schedule(): void {
    if (this.#scheduled || this.#gone) return;
    if (!this.#discard && (!this.#reading || this.#paused)) return;
    if (this.#inbound.length === 0) return;
    this.#scheduled = true;
    void (this.host.cooperate() ?? RESOLVED).then(this.#deliverTask);
  }

  readonly #deliverTask = (): void => {
    this.#scheduled = false;
    if (!this.host.alive) return;
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
        if (wire - HEADER_SIZE * item.length > max) {
          this.#fail(new MessageTooLargeError(wire - HEADER_SIZE * item.length, max));
          return;
        }
        this.deliver(item);
      }
    } finally {
      if (credit > 0) this.#peer.#credit(credit);
      this.#schedule();
    }
  };

  #onPeerEof(): void {
    this.setReason({ by: "peer" });
    this.#writeClosed = true;
    this.#discard = true;
    this.#sendEof();
    this.#gone = true;
    this.#net._ended(this);
    this.finish();
  }

  #sendEof(): void {
    if (this.#eofSent) return;
    this.#eofSent = true;
    this.#peer.#inFlight(EOF, 0);
  }

  protected beginClose(): void {
    this.#writeClosed = true;
    this.#discard = true;
    this.#sendEof();
    this.#schedule();
  }

  protected beginDestroy(): void {
    this.#fail(undefined);
  }

  /** End this end now; a reset travels to the peer (lost if the link is cut). */
  #fail(error: Error | undefined): void {
    if (this.#gone) return;
    if (error !== undefined) this.setReason({ by: "peer", error });
    this.#drop();
    this.host.post(() => this.finish());
    this.#sendReset();
  }

  #sendReset(): void {
    const peer = this.#peer;
    const net = this.#net;
    const from = this.host.name;
    const to = peer.host.name;
    net.world.timer(net.policy.delay(from, to, 0), () => {
      if (net.policy.cutUntil(from, to) !== undefined) return; // lost
      if (peer.#gone) return;
      net.world.trace.record(`${net.world.stamp()} c${this.id}${this.side} rst`);
      peer._broken(new BrokenError("connection reset by peer"));
    });
  }

  #drop(): void {
    this.#writeClosed = true;
    this.#discard = true;
    this.#gone = true;
    this.#net._ended(this);
    let credit = 0;
    for (let item = this.#inbound.shift(); item !== undefined; item = this.#inbound.shift()) if (item !== EOF) credit += wireOf(item);
    for (let f = this.#flight.shift(); f !== undefined; f = this.#flight.shift()) if (f.item !== EOF) credit += f.bytes;
    this.#flightTimer?.cancel();
    this.#flightTimer = undefined;
    if (credit > 0) this.#peer.#credit(credit);
  }

  /** @internal The network broke this end (a reset arrived, or a fault): it ends with `error`. */
  _broken(error: Error): void {
    if (this.#gone) return;
    this.setReason({ by: "peer", error });
    this.#drop();
    this.host.post(() => this.finish());
  }

  /** @internal The host crashed: this end vanishes without a word to its code; the peer gets a reset. */
  _crash(): void {
    if (this.#gone) return;
    this.#drop();
    this.#sendReset();
  }
}

/** A simulated listening address. */
export class SimListener extends ListenerBase {
  readonly host: HostLoop;
  readonly #options: ListenOptions;
  readonly #release: () => void;

  /** @internal */
  constructor(host: HostLoop, scheme: string, url: string, options: ListenOptions, release: () => void) {
    super(host, scheme, url, options.backlog);
    this.host = host;
    this.#options = options;
    this.#release = release;
  }

  /** @internal */
  _accept(conn: SimConnection): void {
    this.accept(conn);
  }

  /** @internal */
  get _options(): ListenOptions {
    return this.#options;
  }

  protected stopAccepting(): Promise<void> {
    this.#release();
    return Promise.resolve();
  }
}

const ALWAYS_UP: LinkPolicy = { delay: () => 1, cutUntil: () => undefined };

/**
 * The network of one simulated world: its listening addresses, its open
 * connections, and the link policy the simulation sets.
 */
export class SimNetwork {
  readonly world: SimLoop;
  /** Asked at every packet; the simulation replaces it with its fault profile. Default: 1 ms, never cut. */
  policy: LinkPolicy = ALWAYS_UP;
  readonly #listeners = new Map<string, SimListener>();
  readonly #ends = new Set<SimConnection>();
  #nextPort = 40000;
  #nextConn = 1;

  constructor(world: SimLoop) {
    this.world = world;
  }

  /** Give `host` this network for every scheme of {@link SIM_SCHEMES}. Returns the host. */
  attach<H extends HostLoop>(host: H): H {
    host.transports.register(new SimTransport(this, host));
    return host;
  }

  /** Connection ends that are open (for invariants and faults), in the order they opened. */
  openEnds(): SimConnection[] {
    return [...this.#ends];
  }

  /** Listening addresses, with their host. */
  listeners(): { url: string; host: string }[] {
    return [...this.#listeners.values()].map((l) => ({ url: l.url, host: l.host.name }));
  }

  /** Break both ends of `conn` at once (a reset fault). */
  reset(conn: SimConnection): void {
    this.world.trace.record(`${this.world.stamp()} c${conn.id} reset`);
    const err = new BrokenError("connection reset (simulated fault)");
    conn._broken(err);
    conn.peer._broken(err);
  }

  /** `host` crashed: drop its connection ends (their peers get resets) and its listeners. */
  crash(host: HostLoop): void {
    for (const end of [...this.#ends]) if (end.host === host) end._crash();
    for (const [key, l] of [...this.#listeners]) {
      if (l.host === host) {
        this.#listeners.delete(key);
        void l.close();
      }
    }
  }

  /** @internal */
  _ended(end: SimConnection): void {
    this.#ends.delete(end);
  }

  /** Resolve after `ms` of world time; rejects when `signal` aborts first. */
  #wait(ms: number, signal: AbortSignal | undefined): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      if (signal?.aborted) return reject(abortReason(signal));
      const onAbort = (): void => {
        t.cancel();
        reject(abortReason(signal!));
      };
      const t = this.world.timer(ms, () => {
        signal?.removeEventListener("abort", onAbort);
        resolve();
      });
      signal?.addEventListener("abort", onAbort, { once: true });
    });
  }

  /** Wait for one packet from `from` to `to`: its delay, then until the link heals if it is cut. */
  async #hop(from: string, to: string, signal: AbortSignal | undefined): Promise<void> {
    await this.#wait(this.policy.delay(from, to, 0), signal);
    for (let cut = this.policy.cutUntil(from, to); cut !== undefined; cut = this.policy.cutUntil(from, to)) {
      await this.#wait(Math.max(1, cut - this.world.now()), signal);
    }
  }

  /** @internal */
  async _connect(host: HostLoop, url: URL, options: ConnectOptions): Promise<Connection> {
    const scheme = url.protocol.slice(0, -1);
    const addr = addressOf(url);
    const cp = connectionParams(scheme, "", url.href, options);
    const signal = options.signal;
    if (signal?.aborted) throw abortReason(signal);
    const target = this.#listeners.get(addr.key);
    const to = target?.host.name ?? host.name;
    await this.#hop(host.name, to, signal);
    const ln = this.#listeners.get(addr.key);
    if (ln === undefined || ln.closing || ln.host.name !== to || !ln.host.alive || ln.scheme !== scheme) {
      await this.#hop(to, host.name, signal);
      throw new ConnectionRefusedError(url.href);
    }
    const id = this.#nextConn++;
    const local = addr.family === "tcp" ? `${scheme}://${addr.host!.includes(":") ? `[${addr.host}]` : addr.host}:${this.#nextPort++}` : url.href;
    const [client, server] = SimConnection.pair(
      this,
      id,
      host,
      { ...cp, localUrl: local },
      ln.host,
      connectionParams(scheme, ln.url, local, ln._options),
    );
    this.#ends.add(client);
    this.#ends.add(server);
    this.world.trace.record(`${this.world.stamp()} c${id} open ${host.name}->${ln.host.name} ${ln.url}`);
    ln._accept(server);
    try {
      await this.#hop(ln.host.name, host.name, signal);
    } catch (e) {
      client.destroy();
      throw e;
    }
    if (!host.alive) return new Promise<Connection>(() => {}); // the process is gone: nobody waits
    client._establish();
    return client;
  }

  /** @internal */
  async _listen(host: HostLoop, url: URL, options: ListenOptions): Promise<Listener> {
    const scheme = url.protocol.slice(0, -1);
    const addr = addressOf(url);
    connectionParams(scheme, url.href, url.href, options);
    if (options.signal?.aborted) throw abortReason(options.signal);
    let key = addr.key;
    let href = url.href;
    if (addr.family === "tcp" && addr.port === 0) {
      const port = this.#nextPort++;
      const h = addr.host!.includes(":") ? `[${addr.host}]` : addr.host!;
      key = `tcp ${addr.host}:${port}`;
      href = `${scheme}://${h}:${port}`;
    } else if (addr.family === "tcp") {
      href = `${scheme}://${url.host}`;
    }
    if (this.#listeners.has(key)) throw new AddressInUseError(href, "another simulated host listens there");
    const listener: SimListener = new SimListener(host, scheme, href, options, () => {
      if (this.#listeners.get(key) === listener) this.#listeners.delete(key);
    });
    this.#listeners.set(key, listener);
    return listener;
  }
}

/** One host's view of the network, registered on its loop for {@link SIM_SCHEMES}. */
class SimTransport implements Transport {
  readonly schemes = SIM_SCHEMES;
  readonly #net: SimNetwork;
  readonly #host: HostLoop;

  constructor(net: SimNetwork, host: HostLoop) {
    this.#net = net;
    this.#host = host;
  }

  connect(_loop: Loop, url: URL, options: ConnectOptions): Promise<Connection> {
    return this.#net._connect(this.#host, url, options);
  }

  listen(_loop: Loop, url: URL, options: ListenOptions): Promise<Listener> {
    return this.#net._listen(this.#host, url, options);
  }
}
