/**
 * RPC errors. Errors raised by a remote handler arrive as {@link RemoteError}
 * with the remote name, message, stable code, data and retryable flag; errors
 * of the RPC machinery itself have their own classes and codes.
 * @module
 */
import { TilthError, describe, type TilthErrorOptions } from "../core/errors.js";

/** The peer is gone: reset, closed, or silent past the heartbeat limit. */
export class ConnectionLostError extends TilthError {
  /** How long the peer had been silent when it was declared lost (ms), if known. */
  readonly silentMs: number | undefined;
  constructor(message: string, options: TilthErrorOptions & { silentMs?: number } = {}) {
    super("ERR_CONNECTION_LOST", message, {
      retryable: true,
      ...options,
      context: { ...(options.silentMs === undefined ? {} : { silentMs: options.silentMs }), ...options.context },
    });
    this.silentMs = options.silentMs;
  }
}

/** The peer broke the protocol (garbage, wrong shape, unknown type, reused id). */
export class ProtocolError extends TilthError {
  constructor(message: string, options: TilthErrorOptions = {}) {
    super("ERR_PROTOCOL", message, options);
  }
}

/** The peer speaks another protocol or an incompatible version of it. */
export class IncompatiblePeerError extends TilthError {
  constructor(message: string, options: TilthErrorOptions = {}) {
    super("ERR_INCOMPATIBLE_PEER", message, options);
  }
}

/** The fields a remote error carries on the wire. */
export interface RemoteErrorInfo {
  name: string;
  message: string;
  code: string;
  data?: unknown;
  retryable?: boolean;
  stack?: string;
}

/**
 * An error raised on the other side of a call. `code` is the remote error's
 * code (`ERR_UNKNOWN_METHOD`, `ERR_BAD_ARGUMENTS`, `ERR_TIMEOUT`, a handler's
 * own code, or `ERR_REMOTE` when it had none); `remoteName` its class name.
 */
export class RemoteError extends TilthError {
  readonly remoteName: string;
  readonly data: unknown;
  readonly remoteStack: string | undefined;
  constructor(info: RemoteErrorInfo, method?: string) {
    super(info.code, info.message, {
      retryable: info.retryable ?? false,
      context: { remoteName: info.name, ...(method === undefined ? {} : { method }) },
    });
    this.remoteName = info.name;
    this.data = info.data;
    this.remoteStack = info.stack;
  }
}

/** A handler may throw this to answer with a chosen code, data and retry hint. */
export class RpcError extends TilthError {
  readonly data: unknown;
  constructor(code: string, message: string, options: TilthErrorOptions & { data?: unknown } = {}) {
    super(code, message, options);
    this.data = options.data;
  }
}

/** The wire form of any thrown value: code from `e.code` (else ERR_REMOTE), stack only when asked. */
export function errorInfo(e: unknown, exposeStack: boolean): RemoteErrorInfo {
  if (e instanceof Error) {
    const x = e as Error & { code?: unknown; data?: unknown; retryable?: unknown };
    const info: RemoteErrorInfo = {
      name: e.name,
      message: e.message,
      code: typeof x.code === "string" ? x.code : "ERR_REMOTE",
    };
    if (x.data !== undefined) info.data = x.data;
    if (x.retryable === true) info.retryable = true;
    if (exposeStack && e.stack) info.stack = e.stack;
    return info;
  }
  return { name: "NonError", message: describe(e), code: "ERR_NON_ERROR" };
}
