/**
 * Errors of the transports, each with a stable `code`. Connections also end
 * with the core's {@link ClosedError} (`ERR_CLOSED`: this side closed it) and
 * {@link BrokenError} (`ERR_BROKEN`: the peer or the network broke it).
 *
 * Node's errno codes never reach the user bare: {@link fromSystemError} maps
 * them to these classes and keeps the original as `cause`.
 *
 * @example
 * ```ts
 * try { await loop.connect("tcp://127.0.0.1:1") }
 * catch (e) { if (isTilthError(e, "ERR_CONNECTION_REFUSED")) retryLater() }
 * ```
 * @module
 */
import { BrokenError, TilthError, type TilthErrorOptions } from "../core/errors.js";

/** Nobody listens at the address (ECONNREFUSED; ENOENT for a missing ipc path; no inproc listener). */
export class ConnectionRefusedError extends TilthError {
  constructor(url: string, options: TilthErrorOptions = {}) {
    super("ERR_CONNECTION_REFUSED", `connection refused: nobody listens at ${url}`, {
      retryable: true,
      ...options,
      context: { url, ...options.context },
    });
  }
}

/** Connecting failed for another reason (unreachable host, TLS handshake or certificate failure…); see `cause`. */
export class ConnectFailedError extends TilthError {
  constructor(url: string, why: string, options: TilthErrorOptions = {}) {
    super("ERR_CONNECT_FAILED", `cannot connect to ${url}: ${why}`, {
      retryable: true,
      ...options,
      context: { url, ...options.context },
    });
  }
}

/** The address is taken: a port in use, an ipc path that exists, an inproc name with a listener. */
export class AddressInUseError extends TilthError {
  constructor(url: string, hint = "", options: TilthErrorOptions = {}) {
    super("ERR_ADDRESS_IN_USE", `address in use: ${url}${hint ? ` (${hint})` : ""}`, {
      ...options,
      context: { url, ...options.context },
    });
  }
}

/** Listening failed for another reason (permission, bad address…); see `cause`. */
export class ListenFailedError extends TilthError {
  constructor(url: string, why: string, options: TilthErrorOptions = {}) {
    super("ERR_LISTEN_FAILED", `cannot listen on ${url}: ${why}`, { ...options, context: { url, ...options.context } });
  }
}

/**
 * A message is above the maximum size (sum of its frames' bytes) or has more
 * frames than allowed. Thrown by `send` for an outgoing message (the
 * connection stays open); an incoming one ends the connection with this error.
 */
export class MessageTooLargeError extends TilthError {
  readonly size: number;
  readonly limit: number;
  constructor(size: number, limit: number, what = "bytes", options: TilthErrorOptions = {}) {
    super("ERR_MESSAGE_TOO_LARGE", `message too large: ${size} ${what}, the limit is ${limit}`, {
      ...options,
      context: { size, limit, what, ...options.context },
    });
    this.size = size;
    this.limit = limit;
  }
}

/** The peer sent bytes that are not a valid frame (e.g. a reserved header bit set). The connection ends with it. */
export class MalformedFrameError extends TilthError {
  constructor(why: string, options: TilthErrorOptions = {}) {
    super("ERR_MALFORMED_FRAME", `malformed frame: ${why}`, options);
  }
}

/** `send` was given something that is not a message: no frames, or a frame that is not a Uint8Array. */
export class InvalidMessageError extends TilthError {
  constructor(why: string, options: TilthErrorOptions = {}) {
    super("ERR_INVALID_MESSAGE", `invalid message: ${why}`, options);
  }
}

/** A method was called in a state that does not allow it (e.g. `start` twice). */
export class InvalidStateError extends TilthError {
  constructor(why: string, options: TilthErrorOptions = {}) {
    super("ERR_INVALID_STATE", why, options);
  }
}

/** The `code` of a Node system error, if it has one. */
export function errnoOf(e: unknown): string | undefined {
  const c = (e as { code?: unknown } | null)?.code;
  return typeof c === "string" ? c : undefined;
}

/** Map an error raised while connecting to `url`. Aborts and tilth errors pass unchanged. */
export function connectError(e: unknown, url: string): Error {
  if (e instanceof TilthError) return e;
  const code = errnoOf(e);
  if (code === "ECONNREFUSED" || code === "ENOENT") return new ConnectionRefusedError(url, { cause: e });
  if (e instanceof Error && e.name === "AbortError") return e;
  const why = e instanceof Error ? e.message : String(e);
  return new ConnectFailedError(url, why, { cause: e, context: code ? { errno: code } : undefined });
}

/** Map an error raised while listening on `url`. */
export function listenError(e: unknown, url: string, hint = ""): Error {
  if (e instanceof TilthError) return e;
  const code = errnoOf(e);
  if (code === "EADDRINUSE") return new AddressInUseError(url, hint, { cause: e });
  const why = e instanceof Error ? e.message : String(e);
  return new ListenFailedError(url, why, { cause: e, context: code ? { errno: code } : undefined });
}

/** Map an I/O error on an established connection (ECONNRESET, EPIPE, TLS alerts…): the peer broke it. */
export function ioError(e: unknown): Error {
  if (e instanceof TilthError) return e;
  const code = errnoOf(e);
  const what =
    code === "ECONNRESET"
      ? "connection reset by peer"
      : code === "EPIPE"
        ? "broken pipe: the peer is gone"
        : `connection broken${e instanceof Error ? `: ${e.message}` : ""}`;
  return new BrokenError(what, { cause: e, context: code ? { errno: code } : undefined });
}

/**
 * A WebSocket peer sent a text message: tilth messages are binary (one binary
 * WebSocket message each). The connection ends with it (close code 1003).
 */
export class TextMessageError extends TilthError {
  constructor(options: TilthErrorOptions = {}) {
    super("ERR_TEXT_MESSAGE", "the peer sent a text WebSocket message: tilth messages are binary, one binary WebSocket message each", options);
  }
}
