/**
 * An in-memory datagram network: `udp://host:port` conversations between
 * code on one loop, with no socket, delivered on the loop's timers, so it runs
 * in virtual time. It loses, duplicates and reorders datagrams at the rates
 * given, deciding each from a seeded pseudo-random source: the same seed and
 * the same traffic give the same deliveries on every run.
 *
 * It keeps the rules of the udp transport (see transports/udp.ts): a
 * conversation per remote endpoint on a listener, one frame per datagram, the
 * size limit of the address family, the queue, idle and conversation limits,
 * and an ICMP-like "port unreachable" that ends a connected conversation which
 * sends to an address nobody listens on (ERR_CONNECTION_REFUSED).
 *
 * Register it in place of the real udp transport (before
 * `registerTransports`, which leaves a registered scheme alone), so unchanged
 * code runs on a simulated network:
 *
 * @example
 * ```ts
 * const loop = new VirtualLoop();
 * loop.transports.register(new DatagramNetwork({ seed: 7, loss: 0.1, duplicate: 0.05, reorder: 0.2 }));
 * registerTransports(loop);
 * const listener = await loop.listen("udp://10.0.0.1:0");
 * ```
 * @module
 */
import { seededRandom } from "../core/random.js";
import { abortReason } from "../core/errors.js";
import type { Loop, Timer } from "../core/Loop.js";
import type { Connection, ConnectOptions, Frame, Listener, ListenOptions, Transport } from "../core/Transport.js";
import { schemeOf } from "../core/Transport.js";
import { AddressInUseError, ConnectionRefusedError } from "./errors.js";
import {
  DatagramConversation,
  DatagramListener,
  datagramParams,
  listenerLimits,
  UDP4_MAX_PAYLOAD,
  UDP6_MAX_PAYLOAD,
  type DatagramListenerStats,
  type DatagramOptions,
  type DatagramParams,
} from "./internal/Datagram.js";
import { formatHostPort, hostPort } from "./internal/socket.js";
import type { ByteBudget } from "../core/Budget.js";

/** How the simulated network treats datagrams. Rates are probabilities from 0 to 1. */
export interface DatagramNetworkOptions {
  /** Seed of the pseudo-random source that decides losses, duplicates, reorderings and delays. */
  seed: number;
  /** Share of datagrams lost. Default 0. */
  loss?: number;
  /** Share of datagrams delivered twice. Default 0. */
  duplicate?: number;
  /** Share of datagrams held back by a random extra delay (up to `reorderMs`), so later ones overtake them. Default 0. */
  reorder?: number;
  /** Delay of every datagram, ms. Default 1. */
  latencyMs?: number;
  /** Most extra delay of a reordered (or duplicated) datagram, ms. Default 10. */
  reorderMs?: number;
  /** URL schemes served. Default `["udp"]`. */
  schemes?: readonly string[];
}

/** Counters of the network (all loops it serves). */
export interface DatagramNetworkStats {
  sent: number;
  lost: number;
  duplicated: number;
  reordered: number;
  delivered: number;
  /** Datagrams to an address nobody listens on. */
  unreachable: number;
}

type Endpoint = DatagramNetworkListener | DatagramNetworkConversation;

/** What one loop sees of the network. */
interface Net {
  readonly loop: Loop;
  readonly endpoints: Map<string, Endpoint>;
  readonly inflight: Set<Timer>;
  readonly random: () => number;
  nextPort: number;
}

const key = (host: string, port: number): string => `${port} ${host}`;
const familyMax = (host: string): number => (host.includes(":") ? UDP6_MAX_PAYLOAD : UDP4_MAX_PAYLOAD);

function rate(name: string, v: number | undefined): number {
  if (v === undefined) return 0;
  if (typeof v !== "number" || !(v >= 0 && v <= 1)) throw new RangeError(`${name} must be a probability from 0 to 1, got ${String(v)}`);
  return v;
}

function delay(name: string, v: number | undefined, dflt: number): number {
  if (v === undefined) return dflt;
  if (typeof v !== "number" || !(v >= 0) || !Number.isFinite(v)) throw new RangeError(`${name} must be a finite number of ms, got ${String(v)}`);
  return v;
}

/** A conversation on the simulated network. */
export class DatagramNetworkConversation extends DatagramConversation {
  readonly #net: DatagramNetwork;
  readonly #state: Net;
  /** This end's address (a connected conversation's own; a listener's conversation: the listener's). */
  readonly #from: string;
  readonly #to: string;
  readonly #connected: boolean;
  readonly #leave: () => void;

  /** @internal */
  constructor(
    net: DatagramNetwork,
    state: Net,
    p: DatagramParams,
    from: string,
    to: string,
    connected: boolean,
    leave: () => void,
    budget?: ByteBudget,
    stats?: DatagramListenerStats,
  ) {
    super(state.loop, p, budget, stats);
    this.#net = net;
    this.#state = state;
    this.#from = from;
    this.#to = to;
    this.#connected = connected;
    this.#leave = leave;
  }

  /** @internal */
  get _peerKey(): string {
    return this.#to;
  }

  protected transmit(frame: Frame): void {
    this.#net._send(this.#state, this.#from, this.#to, frame, this.#connected ? this : undefined);
  }

  /** The network takes every datagram at once. */
  protected get queuedToSend(): number {
    return 0;
  }

  /** @internal nobody listens where this connected conversation sends. */
  _unreachable(): void {
    this.fail(new ConnectionRefusedError(this.remoteUrl, { context: { icmp: "port unreachable" } }));
  }

  protected detach(): void {
    this.#leave();
  }
}

/** A listener on the simulated network. */
export class DatagramNetworkListener extends DatagramListener<DatagramNetworkConversation> {
  readonly #net: DatagramNetwork;
  readonly #state: Net;
  readonly #self: string;
  readonly #options: DatagramOptions;
  readonly #max: number;
  #from: { host: string; port: number } | undefined = undefined;

  /** @internal */
  constructor(net: DatagramNetwork, state: Net, scheme: string, host: string, port: number, options: DatagramOptions) {
    super(state.loop, scheme, formatHostPort(scheme, host, port), options, familyMax(host));
    this.#net = net;
    this.#state = state;
    this.#self = key(host, port);
    this.#options = options;
    this.#max = familyMax(host);
  }

  /** @internal a datagram from `host:port` arrived. */
  _arrive(host: string, port: number, frame: Frame): void {
    this.#from = { host, port };
    this.route(key(host, port), frame);
  }

  protected open(k: string): DatagramNetworkConversation {
    const from = this.#from!;
    const p = datagramParams(this.scheme, this.url, formatHostPort(this.scheme, from.host, from.port), this.#options, this.#max);
    let conv: DatagramNetworkConversation | undefined = undefined;
    conv = new DatagramNetworkConversation(this.#net, this.#state, p, this.#self, k, false, () => this.forget(k, conv!), this.queueBudget, this.counters);
    return conv;
  }

  protected closeSocket(): Promise<void> {
    this.#net._release(this.#state, this.#self, this);
    return Promise.resolve();
  }
}

/**
 * The in-memory datagram network, a Transport value: each loop it serves has
 * its own addresses and its own pseudo-random sequence from the seed.
 */
export class DatagramNetwork implements Transport {
  readonly schemes: readonly string[];
  readonly stats: DatagramNetworkStats = { sent: 0, lost: 0, duplicated: 0, reordered: 0, delivered: 0, unreachable: 0 };
  readonly #seed: number;
  readonly #loss: number;
  readonly #duplicate: number;
  readonly #reorder: number;
  readonly #latencyMs: number;
  readonly #reorderMs: number;
  readonly #byLoop = new WeakMap<Loop, Net>();

  constructor(options: DatagramNetworkOptions) {
    if (typeof options.seed !== "number" || !Number.isFinite(options.seed)) throw new RangeError(`a seed must be a finite number, got ${String(options.seed)}`);
    this.#seed = options.seed;
    this.#loss = rate("loss", options.loss);
    this.#duplicate = rate("duplicate", options.duplicate);
    this.#reorder = rate("reorder", options.reorder);
    this.#latencyMs = delay("latencyMs", options.latencyMs, 1);
    this.#reorderMs = delay("reorderMs", options.reorderMs, 10);
    this.schemes = options.schemes ?? ["udp"];
  }

  #net(loop: Loop): Net {
    let n = this.#byLoop.get(loop);
    if (n === undefined) {
      n = { loop, endpoints: new Map(), inflight: new Set(), random: seededRandom(this.#seed), nextPort: 49152 };
      this.#byLoop.set(loop, n);
    }
    return n;
  }

  #port(net: Net, host: string): number {
    for (let i = 0; i < 16384; i++) {
      const p = net.nextPort;
      net.nextPort = p >= 65535 ? 49152 : p + 1;
      if (!net.endpoints.has(key(host, p))) return p;
    }
    throw new AddressInUseError(`udp://${host}:0`, "no free port left on the simulated network");
  }

  async connect(loop: Loop, url: URL, options: ConnectOptions): Promise<Connection> {
    const o = options as DatagramOptions;
    const scheme = schemeOf(url);
    const { host, port } = hostPort(url);
    if (port === 0) throw new ConnectionRefusedError(url.href, { context: { why: "port 0" } });
    datagramParams(scheme, url.href, url.href, o, familyMax(host));
    if (options.signal?.aborted) throw abortReason(options.signal);
    const net = this.#net(loop);
    const localPort = this.#port(net, host);
    const self = key(host, localPort);
    const p = datagramParams(scheme, formatHostPort(scheme, host, localPort), formatHostPort(scheme, host, port), o, familyMax(host));
    let conv: DatagramNetworkConversation | undefined = undefined;
    conv = new DatagramNetworkConversation(this, net, p, self, key(host, port), true, () => this._release(net, self, conv!));
    net.endpoints.set(self, conv);
    return conv;
  }

  async listen(loop: Loop, url: URL, options: ListenOptions): Promise<Listener> {
    const o = options as DatagramOptions;
    const scheme = schemeOf(url);
    const { host, port: asked } = hostPort(url);
    datagramParams(scheme, url.href, url.href, o, familyMax(host));
    listenerLimits(o);
    if (options.signal?.aborted) throw abortReason(options.signal);
    const net = this.#net(loop);
    const port = asked === 0 ? this.#port(net, host) : asked;
    const k = key(host, port);
    if (net.endpoints.has(k)) throw new AddressInUseError(url.href, "another endpoint of the simulated network has this address");
    const listener = new DatagramNetworkListener(this, net, scheme, host, port, o);
    net.endpoints.set(k, listener);
    return listener;
  }

  /** @internal an endpoint is gone; with the last one, datagrams still in flight are dropped (no timer outlives the traffic). */
  _release(net: Net, k: string, e: Endpoint): void {
    if (net.endpoints.get(k) === e) net.endpoints.delete(k);
    if (net.endpoints.size === 0) {
      for (const t of net.inflight) t.cancel();
      net.inflight.clear();
    }
  }

  /** @internal send one datagram from `from` to `to`; `sender` is a connected conversation told of unreachable ports. */
  _send(net: Net, from: string, to: string, frame: Frame, sender: DatagramNetworkConversation | undefined): void {
    const s = this.stats;
    s.sent++;
    const r = net.random;
    if (r() < this.#loss) {
      s.lost++;
      return;
    }
    const copy = Buffer.from(frame);
    let extra = 0;
    if (r() < this.#reorder) {
      s.reordered++;
      extra = r() * this.#reorderMs;
    }
    this.#schedule(net, from, to, copy, sender, this.#latencyMs + extra);
    if (r() < this.#duplicate) {
      s.duplicated++;
      this.#schedule(net, from, to, copy, undefined, this.#latencyMs + r() * this.#reorderMs);
    }
  }

  #schedule(net: Net, from: string, to: string, frame: Buffer, sender: DatagramNetworkConversation | undefined, ms: number): void {
    const t = net.loop.timer(ms, () => {
      net.inflight.delete(t);
      this.#arrive(net, from, to, frame, sender);
    });
    t.unref();
    net.inflight.add(t);
  }

  #arrive(net: Net, from: string, to: string, frame: Buffer, sender: DatagramNetworkConversation | undefined): void {
    const dst = net.endpoints.get(to);
    if (dst === undefined) {
      this.stats.unreachable++;
      // A connected socket hears of it (ICMP port unreachable), one latency later.
      if (sender !== undefined && net.endpoints.get(from) === sender) {
        const t = net.loop.timer(this.#latencyMs, () => {
          net.inflight.delete(t);
          sender._unreachable();
        });
        t.unref();
        net.inflight.add(t);
      }
      return;
    }
    this.stats.delivered++;
    if (dst instanceof DatagramNetworkListener) {
      const sp = from.indexOf(" ");
      dst._arrive(from.slice(sp + 1), Number(from.slice(0, sp)), frame);
    } else if (dst._peerKey === from) {
      // A connected socket takes datagrams from its peer only.
      dst.receive(frame);
    }
  }
}
