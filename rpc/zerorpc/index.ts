/**
 * The ZeroRPC protocol (`zrpc+tcp://`, `zrpc+ipc://`, and over any tilth
 * transport) for servers and clients. See docs/zerorpc.md.
 * @module
 */
import type { RpcProtocol } from "../protocol.js";
import { ZrpcClientSession } from "./ClientSession.js";
import { ZrpcServerSession } from "./ServerSession.js";

export const zrpc: RpcProtocol = {
  name: "zrpc",
  // ZeroRPC is ZeroMQ: zrpc+tcp:// and zrpc+ipc:// run on zmq+tcp:// and zmq+ipc://; other transports as named.
  transportUrl: (t) => (/^(tcp|ipc):/.test(t) ? `zmq+${t}` : t),
  publicUrl: (t) => (/^zmq\+(tcp|ipc):/.test(t) ? t.slice(4) : t),
  accept: (server, conn, options) => new ZrpcServerSession(server, conn, options),
  open: (loop, conn, options) => new ZrpcClientSession(loop, conn, options),
};

export { ZRPC_VERSION, encodeEvent, decodeEvent, type Header, type MessageId, type ZEvent } from "./codec.js";
export { ZRPC_REMOTE_CODE, remoteErrorOf } from "./ClientSession.js";
export { errArgs } from "./ServerSession.js";
export { zrpcEmitter, zrpcReceiver, type ZrpcEmitter, type ZrpcReceiver, type ReceiverOptions, type EventEndpointOptions } from "./events.js";
