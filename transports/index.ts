/// <reference types="node" preserve="true" />
/**
 * tilth transports: message connections by URL scheme.
 *
 * | scheme | module | carried by |
 * |---|---|---|
 * | `tcp://host:port` | {@link NetTransport} | node:net |
 * | `ipc:///path/to.sock` | {@link NetTransport} | node:net (unix socket) |
 * | `tls://host:port` | {@link TlsTransport} | node:tls |
 * | `inproc://name` | {@link InprocTransport} | memory, one loop |
 * | `zmq+tcp://host:port`, `zmq+ipc:///path` | {@link ZmqTransport} | ZeroMQ (zeromq.js) |
 * | `nats://host:port[,host:port...]/service` | {@link NatsTransport} | NATS (the `nats` client) |
 * | `ws://host:port/path`, `wss://host:port/path` | {@link WsTransport} | WebSocket (the `ws` library) |
 * | `udp://host:port` | {@link UdpTransport} | node:dgram (datagram conversations) |
 * | all of the above, between simulated hosts | {@link SimNetwork} | memory, in simulated time (docs/simulation.md) |
 *
 * Call {@link registerTransports} once per loop (it is idempotent), then use
 * `loop.connect(url)` and `loop.listen(url)`. See docs/transports.md.
 *
 * @example
 * ```ts
 * import { NodeLoop } from "tilth/adapters/node";
 * import { registerTransports } from "tilth/transports";
 * const loop = registerTransports(new NodeLoop());
 * const listener = await loop.listen("tcp://127.0.0.1:0");
 * listener.start((conn) => conn.start({ message: (m) => conn.send(m), end() {} }));
 * const conn = await loop.connect(listener.url);
 * conn.start({ message: (m) => console.log(String(m[0])), end() {} });
 * conn.send([Buffer.from("hello")]);
 * ```
 * @module
 */
import type { Loop } from "../core/Loop.js";
import { InprocTransport } from "./inproc.js";
import { netTransport } from "./net.js";
import { tlsTransport } from "./tls.js";
import { zmqTransport } from "./zmq.js";
import { NatsTransport } from "./nats.js";
import { udpTransport } from "./udp.js";
import { wsTransport } from "./ws.js";

export * from "./errors.js";
export * from "./framing.js";
export { SocketReader, StreamConnection } from "./StreamConnection.js";
export { NetTransport, claimIpcPath, netTransport } from "./net.js";
export { TlsTransport, tlsTransport, type TlsConnectOptions, type TlsListenOptions } from "./tls.js";
export { InprocTransport, InprocConnection, InprocListener, inprocName } from "./inproc.js";
export { ZmqTransport, zmqTransport, ZmqListener, ZmqDealerConnection, ZmqPeerConnection, zmqEndpoint } from "./zmq.js";
export { SimNetwork, SimConnection, SimListener, SIM_SCHEMES, type LinkPolicy } from "./sim.js";
export { NatsTransport, NatsListener, natsTransport, natsTarget, type NatsTarget, type NatsInstanceInfo, type NatsListenOptions, type NatsTransportOptions } from "./nats.js";
export { WsTransport, WsConnection, WsListener, wsTransport, DEFAULT_WS_PING_INTERVAL_MS, type WsConnectOptions, type WsListenOptions } from "./ws.js";
export { DEFAULT_HIGH_WATER_MARK } from "./internal/ConnectionBase.js";
export { DEFAULT_BACKLOG } from "./internal/ListenerBase.js";
// Datagrams (udp, the in-memory datagram network).
export { UdpTransport, udpTransport, UdpConversation, UdpListener, type UdpOptions } from "./udp.js";
export { DatagramNetwork, DatagramNetworkConversation, DatagramNetworkListener, type DatagramNetworkOptions } from "./datagram-network.js";
export {
  DatagramConversation,
  DatagramListener,
  DEFAULT_IDLE_TIMEOUT_MS,
  DEFAULT_MAX_CONVERSATIONS,
  DEFAULT_MAX_QUEUED,
  DEFAULT_MAX_QUEUED_BYTES,
  DEFAULT_LISTENER_QUEUED_BYTES,
  DEFAULT_DATAGRAM_HIGH_WATER_MARK,
  UDP4_MAX_PAYLOAD,
  UDP6_MAX_PAYLOAD,
  type ConversationStats,
  type DatagramListenerStats,
  type DatagramOptions,
} from "./internal/Datagram.js";

/** The URL schemes {@link registerTransports} registers: what a settings file may name without a transport of its own. */
export function standardSchemes(): string[] {
  return [...netTransport.schemes, ...tlsTransport.schemes, ...new InprocTransport().schemes, ...zmqTransport.schemes, "nats", ...udpTransport.schemes, ...wsTransport.schemes];
}

/**
 * Register tcp, ipc, tls, inproc, zmq+tcp and zmq+ipc (ZeroMQ: needs the
 * optional zeromq package when used), nats (the optional nats package),
 * udp, and ws and wss (WebSocket) on `loop.transports`, leaving any scheme
 * already registered alone (so calling it again, or after registering your
 * own tcp, changes nothing). Each loop gets its own inproc namespace.
 * Returns the loop.
 */
export function registerTransports<L extends Loop>(loop: L): L {
  const r = loop.transports;
  if (!r.has("tcp") && !r.has("ipc")) r.register(netTransport);
  else {
    if (!r.has("tcp")) r.register({ schemes: ["tcp"], connect: netTransport.connect.bind(netTransport), listen: netTransport.listen.bind(netTransport) });
    if (!r.has("ipc")) r.register({ schemes: ["ipc"], connect: netTransport.connect.bind(netTransport), listen: netTransport.listen.bind(netTransport) });
  }
  if (!r.has("tls")) r.register(tlsTransport);
  if (!r.has("inproc")) r.register(new InprocTransport());
  if (!r.has("zmq+tcp") && !r.has("zmq+ipc")) r.register(zmqTransport);
  if (!r.has("nats")) r.register(new NatsTransport());
  if (!r.has("udp")) r.register(udpTransport);
  if (!r.has("ws") && !r.has("wss")) r.register(wsTransport);
  return loop;
}
