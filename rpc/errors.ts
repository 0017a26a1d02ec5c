/**
 * RPC errors. Errors raised by a remote handler arrive as {@link RemoteError}
 * with the remote name, message, stable code, data and retryable flag; errors
 * of the RPC machinery itself have their own classes and codes.
 * @module
 */
import { TilthError, describe, excerpt, type TilthErrorOptions } from "../core/errors.js";

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

/**
 * A value refused by the value model (docs/drpc.md, docs/zerorpc.md): the base
 * of {@link BadValueError} and {@link ValueLimitError}. `path` says where in
 * the value (`args[0].tags`), and the message ends with it.
 */
export abstract class ValueError extends TilthError {
  /** Where in the value: keys and indexes from the root (`args`, `result`, ...). */
  readonly path: (string | number)[] = [];
  readonly #reason: string;
  constructor(code: string, reason: string, options: TilthErrorOptions = {}) {
    super(code, reason, options);
    this.#reason = reason;
  }

  /** @internal The value was inside `key` of its parent (called from the innermost level out). */
  within(key: string | number): this {
    this.path.unshift(key);
    return this;
  }

  /** @internal Name the root of the path (`args`, `result`) and write the path into the message. */
  rooted(root: string): this {
    const step = (k: string | number): string => (typeof k === "number" ? `[${k}]` : /^[A-Za-z_$][\w$]*$/.test(k) && k.length <= 40 ? `.${k}` : `[${excerpt(k)}]`);
    const p = this.path;
    // A deep path keeps its first and last steps.
    const at = p.length <= 12 ? p.map(step).join("") : `${p.slice(0, 6).map(step).join("")}…${p.slice(-6).map(step).join("")}`;
    this.message = `${this.#reason} (at ${root}${at}${p.length > 12 ? `, ${p.length} deep` : ""})`;
    return this;
  }
}

/**
 * A value of a type the protocol does not carry: a Set, a RegExp, an Error, a
 * class instance without `toJSON`, a function, a symbol, a typed array other
 * than Uint8Array, an invalid Date, a msgpack extension outside the model.
 * Raised when sending (the call or answer is not sent) and when receiving
 * (the value never reaches a handler or a caller).
 */
export class BadValueError extends ValueError {
  constructor(reason: string, options: TilthErrorOptions = {}) {
    super("ERR_BAD_VALUE", reason, options);
  }
}

/**
 * A value past a limit of the value model: nested deeper than
 * `MAX_VALUE_DEPTH`, more than `MAX_VALUE_ITEMS` items, an integer beyond 64
 * bits. `limit` is the limit that was passed.
 */
export class ValueLimitError extends ValueError {
  readonly limit: number;
  constructor(reason: string, limit: number, options: TilthErrorOptions = {}) {
    super("ERR_VALUE_LIMIT", reason, { ...options, context: { limit, ...options.context } });
    this.limit = limit;
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
