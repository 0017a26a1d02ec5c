/**
 * `udp://host:port` datagram conversations on node:dgram.
 *
 * `loop.listen("udp://127.0.0.1:0")` binds one socket and yields one
 * {@link UdpConversation} per remote endpoint (address and port), opened by
 * its first datagram; every conversation of a listener shares its socket.
 * `loop.connect("udp://host:port")` gives a conversation with one peer on a
 * connected socket of its own, so the system reports an ICMP port unreachable
 * from that peer: the conversation ends with ERR_CONNECTION_REFUSED.
 *
 * One message is one datagram of exactly one frame (another count is
 * ERR_INVALID_MESSAGE); a datagram above `maxMessageSize` (at most 65,507 B
 * over IPv4, 65,527 B over IPv6) is refused by `send` with
 * ERR_MESSAGE_TOO_LARGE before any system call, and dropped (counted) when it
 * arrives. Nothing is promised about order, delivery or uniqueness. The
 * family (udp4 or udp6) follows the address: an IPv6 literal in brackets,
 * `[::1]`, is udp6; a host name is looked up first. The limits (idle timeout,
 * queue per conversation with tail drop, conversations per listener) are in
 * {@link DatagramOptions} and docs/transports.md.
 *
 * @example
 * ```ts
 * const loop = registerTransports(new NodeLoop());
 * const listener = await loop.listen("udp://127.0.0.1:0");
 * listener.start((conv) => {
 *   let count = 0; // state of this conversation, in scope
 *   conv.start({ message: (m) => conv.send([Buffer.from(`${++count} ${String(m[0])}`)]), end() {} });
 * });
 * const conv = await loop.connect(listener.url);
 * ```
 * @module
 */
import dgram from "node:dgram";
import { lookup } from "node:dns/promises";
import { isIP } from "node:net";
import { abortReason } from "../core/errors.js";
import type { Loop } from "../core/Loop.js";
import type { Connection, ConnectOptions, Frame, Listener, ListenOptions, Transport } from "../core/Transport.js";
import { ConnectionRefusedError, connectError, ioError, listenError } from "./errors.js";
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
import { formatHostPort, hostPort, waitFor } from "./internal/socket.js";
import type { ByteBudget } from "../core/Budget.js";

/** Options of `udp://` connect and listen: {@link DatagramOptions} plus the socket's kernel buffer sizes. */
export interface UdpOptions extends DatagramOptions {
  /** SO_RCVBUF of the socket, bytes (the system's default when absent). */
  recvBufferSize?: number;
  /** SO_SNDBUF of the socket, bytes. */
  sendBufferSize?: number;
}

interface Target {
  address: string;
  port: number;
  family: 4 | 6;
}

async function target(url: URL): Promise<Target> {
  const { host, port } = hostPort(url);
  let address = host;
  let family = isIP(host);
  if (family === 0) {
    const r = await lookup(host);
    address = r.address;
    family = r.family;
  }
  return { address, port, family: family === 6 ? 6 : 4 };
}

function createSocket(family: 4 | 6, o: UdpOptions): dgram.Socket {
  const opts: dgram.SocketOptions = { type: family === 6 ? "udp6" : "udp4" };
  if (o.recvBufferSize !== undefined) opts.recvBufferSize = o.recvBufferSize;
  if (o.sendBufferSize !== undefined) opts.sendBufferSize = o.sendBufferSize;
  return dgram.createSocket(opts);
}

/** Close `socket` (its connect or bind failed) and give `e`. */
function closing(socket: dgram.Socket, e: Error): Error {
  socket.close();
  return e;
}

/** An error on a connected socket: ICMP port unreachable is ERR_CONNECTION_REFUSED; the rest ERR_BROKEN. */
function socketError(e: unknown, remoteUrl: string): Error {
  const code = (e as { code?: unknown } | null)?.code;
  if (code === "ECONNREFUSED") return new ConnectionRefusedError(remoteUrl, { cause: e, context: { icmp: "port unreachable" } });
  return ioError(e);
}

/** A conversation over udp: on a listener's shared socket, or on a connected socket of its own. */
export class UdpConversation extends DatagramConversation {
  readonly #socket: dgram.Socket;
  readonly #address: string;
  readonly #port: number;
  /** Set on a listener's conversation: how to leave the listener's table. */
  readonly #leave: (() => void) | undefined;

  /** @internal */
  constructor(
    loop: Loop,
    p: DatagramParams,
    socket: dgram.Socket,
    address: string,
    port: number,
    leave: (() => void) | undefined,
    budget?: ByteBudget,
    stats?: DatagramListenerStats,
  ) {
    super(loop, p, budget, stats);
    this.#socket = socket;
    this.#address = address;
    this.#port = port;
    this.#leave = leave;
  }

  protected transmit(frame: Frame): void {
    // No callback: a failure comes as the socket's 'error' (connected: this conversation's; a listener's: see UdpListener).
    if (this.#leave === undefined) this.#socket.send(frame);
    else this.#socket.send(frame, this.#port, this.#address);
  }

  /** The socket's send queue (a listener's: shared by its conversations). */
  protected get queuedToSend(): number {
    return this.#socket.getSendQueueSize();
  }

  /** @internal the connected socket reported an error (ICMP unreachable, a reset network). */
  _socketError(e: unknown): void {
    this.fail(socketError(e, this.remoteUrl));
  }

  protected detach(): void {
    if (this.#leave !== undefined) this.#leave();
    else this.#socket.close();
  }
}

/** A bound udp socket that yields a conversation per remote endpoint. */
export class UdpListener extends DatagramListener<UdpConversation> {
  readonly #socket: dgram.Socket;
  readonly #options: UdpOptions;
  readonly #family: 4 | 6;
  #from: dgram.RemoteInfo | undefined = undefined;

  /** @internal */
  constructor(loop: Loop, url: string, socket: dgram.Socket, family: 4 | 6, options: UdpOptions) {
    super(loop, "udp", url, options, family === 6 ? UDP6_MAX_PAYLOAD : UDP4_MAX_PAYLOAD);
    this.#socket = socket;
    this.#options = options;
    this.#family = family;
    socket.on("message", (msg, rinfo) => {
      this.#from = rinfo;
      this.route(`${rinfo.port} ${rinfo.address}`, msg);
    });
    // An unconnected socket gets no ICMP errors; a send the system refuses later (no route, say) names no
    // conversation: it is counted, and the datagram is lost, as datagrams may be.
    socket.on("error", () => {
      this.counters.sendErrors++;
    });
  }

  protected open(key: string): UdpConversation {
    const from = this.#from!;
    const p = datagramParams("udp", this.url, formatHostPort("udp", from.address, from.port), this.#options, this.#family === 6 ? UDP6_MAX_PAYLOAD : UDP4_MAX_PAYLOAD);
    let conv: UdpConversation | undefined = undefined;
    conv = new UdpConversation(this.loop, p, this.#socket, from.address, from.port, () => this.forget(key, conv!), this.queueBudget, this.counters);
    return conv;
  }

  protected closeSocket(): Promise<void> {
    return new Promise<void>((resolve) => this.#socket.close(() => resolve()));
  }
}

/** The node:dgram transport for `udp:` URLs. Stateless; one value serves any number of loops. */
export class UdpTransport implements Transport {
  readonly schemes = ["udp"] as const;

  async connect(loop: Loop, url: URL, options: ConnectOptions): Promise<Connection> {
    const o = options as UdpOptions;
    const href = url.href;
    const t = await target(url).catch((e: unknown) => {
      throw connectError(e, href);
    });
    if (t.port === 0) throw connectError(new RangeError("port 0: a udp peer needs a port"), href);
    const max = t.family === 6 ? UDP6_MAX_PAYLOAD : UDP4_MAX_PAYLOAD;
    datagramParams("udp", href, href, o, max); // validate before any socket exists
    if (options.signal?.aborted) throw abortReason(options.signal);
    const socket = createSocket(t.family, o);
    socket.connect(t.port, t.address);
    await waitFor(socket, "connect", options.signal, (e) => closing(socket, connectError(e, href)), () => socket.close(), () => undefined);
    const local = socket.address();
    const remote = formatHostPort("udp", t.address, t.port);
    const conv = new UdpConversation(loop, datagramParams("udp", formatHostPort("udp", local.address, local.port), remote, o, max), socket, t.address, t.port, undefined);
    socket.on("message", (msg) => conv.receive(msg));
    socket.on("error", (e) => conv._socketError(e));
    return conv;
  }

  async listen(loop: Loop, url: URL, options: ListenOptions): Promise<Listener> {
    const o = options as UdpOptions;
    const href = url.href;
    const t = await target(url).catch((e: unknown) => {
      throw listenError(e, href);
    });
    datagramParams("udp", href, href, o, t.family === 6 ? UDP6_MAX_PAYLOAD : UDP4_MAX_PAYLOAD);
    listenerLimits(o);
    if (options.signal?.aborted) throw abortReason(options.signal);
    const socket = createSocket(t.family, o);
    socket.bind({ port: t.port, address: t.address, exclusive: true });
    await waitFor(socket, "listening", options.signal, (e) => closing(socket, listenError(e, href)), () => socket.close(), () => undefined);
    const a = socket.address();
    return new UdpListener(loop, formatHostPort("udp", a.address, a.port), socket, t.family, o);
  }
}

/** The shared udp transport value. */
export const udpTransport: UdpTransport = new UdpTransport();
