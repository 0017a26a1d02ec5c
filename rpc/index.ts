/// <reference types="node" preserve="true" />
/**
 * tilth RPC: servers that expose an API object, typed client proxies, the
 * drpc protocol. See docs/drpc.md.
 * @module
 */
// The Node client balances, calls in-process and names what a non-drpc peer is: each fills its slot of the client when loaded.
import "./Balancer.js";
import "./local.js";
import "./drpc/sniff.js";
export * from "./errors.js";
export * from "./url.js";
export { doc, params, streaming, exposedMethods, parseParams, type MethodInfo, type Signature, type ExposeOptions } from "./api.js";
export { contextual, type CallContext, type Middleware } from "./context.js";
export { tracing, TRACEPARENT, type TracingOptions, type OtelApi } from "./tracing.js";
export { MAX_META_KEYS, MAX_META_BYTES, MetadataError, type Metadata } from "./meta.js";
export type { ServerStats, MethodStats } from "./stats.js";
export { validated, BadResultError, type Schemas, type MethodSchema } from "./validate.js";
export { RpcServer, serve, maskSecrets, isLoopbackUrl, checkDebugAccess, DebugForbiddenError, type ServerOptions, type CloseOptions } from "./Server.js";
export { RpcClient, connect, remoteOf, withOptions, clientOf, close, DEFAULT_TIMEOUT_MS, type Remote, type RemoteCall, type RemoteStream, type ObservableLike, type ClientOptions, type CallOptions } from "./Client.js";
export { bindArguments, type ExposedMethod } from "./api.js";
export { VERSION as DRPC_VERSION } from "./drpc/codec.js";
export { MAX_VALUE_DEPTH, MAX_VALUE_ITEMS } from "./msgpack.js";
export { drpc } from "./drpc/index.js";
export { Float64, float64 } from "./float64.js";
export { zrpc, ZRPC_VERSION, ZRPC_REMOTE_CODE, zrpcEmitter, zrpcReceiver, type ZrpcEmitter, type ZrpcReceiver } from "./zerorpc/index.js";
export { PendingCall, STREAM_WINDOW, type CallOwner, type CallPromise } from "./PendingCall.js";
export type { RpcProtocol, ServerCore, ServerSessionLike, ClientSessionLike, ClientSessionHooks } from "./protocol.js";
