/**
 * The ZeroRPC protocol (`zrpc+tcp://`, `zrpc+ipc://`, and over any tilth
 * transport) for servers and clients. See docs/zerorpc.md.
 * @module
 */
import type { MethodInfo } from "../api.js";
import type { RpcProtocol } from "../protocol.js";
import { registerProtocol } from "../protocols.js";
import { ZrpcClientSession } from "./ClientSession.js";
import { ZrpcServerSession } from "./ServerSession.js";

export const zrpc: RpcProtocol = {
  name: "zrpc",
  // ZeroRPC is ZeroMQ: zrpc+tcp:// and zrpc+ipc:// run on zmq+tcp:// and zmq+ipc://; other transports as named.
  transportUrl: (t) => (/^(tcp|ipc):/.test(t) ? `zmq+${t}` : t),
  publicUrl: (t) => (/^zmq\+(tcp|ipc):/.test(t) ? t.slice(4) : t),
  accept: (server, conn, options) => new ZrpcServerSession(server, conn, options),
  open: (loop, conn, options) => new ZrpcClientSession(loop, conn, options),
  inspect: inspectZrpc,
};

/** A ZeroRPC server, in whatever language: its `_zerorpc_inspect`, as tilth's method listing. */
async function inspectZrpc(call: (method: string, args: readonly unknown[]) => Promise<unknown>): Promise<{ methods: MethodInfo[] }> {
  const r = (await call("_zerorpc_inspect", [])) as { methods?: Record<string, { args?: { name?: unknown; default?: unknown }[]; doc?: unknown; schema?: unknown }> };
  const methods = Object.entries(r.methods ?? {}).map(([name, m]): MethodInfo => {
    const args = (m.args ?? []).filter((a) => a.name !== "self");
    const firstDefault = args.findIndex((a) => a.default !== undefined);
    const info: MethodInfo = {
      name,
      params: args.map((a, i) => (typeof a.name === "string" ? a.name : `arg${i}`)),
      rest: false,
      required: firstDefault < 0 ? args.length : firstDefault,
      stream: false, // ZeroRPC does not say; the first reply does
    };
    const defaults = Object.fromEntries(args.filter((a) => a.default !== undefined && typeof a.name === "string").map((a) => [a.name as string, a.default]));
    if (Object.keys(defaults).length) info.defaults = defaults;
    if (typeof m.doc === "string" && m.doc) info.doc = m.doc;
    const s = m.schema as { params?: unknown } | undefined;
    if (typeof s === "object" && s !== null && Array.isArray(s.params)) info.schema = s as MethodInfo["schema"] & object;
    return info;
  });
  return { methods };
}

registerProtocol(zrpc);

export { ZRPC_VERSION, encodeEvent, decodeEvent, type Header, type MessageId, type ZEvent } from "./codec.js";
export { ZRPC_REMOTE_CODE, remoteErrorOf } from "./ClientSession.js";
export { errArgs } from "./ServerSession.js";
export { zrpcEmitter, zrpcReceiver, type ZrpcEmitter, type ZrpcReceiver, type ReceiverOptions, type EventEndpointOptions } from "./events.js";
