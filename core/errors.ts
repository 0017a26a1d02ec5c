/**
 * Errors of tilth. Every error is a class with a stable `code`, an optional
 * `cause`, optional context and a `retryable` flag that says whether trying the
 * same operation again may help. Tell errors apart by `code` (or `instanceof`),
 * never by message text.
 *
 * @example
 * ```ts
 * try { await channel.send(x) }
 * catch (e) { if (isTilthError(e, "ERR_CLOSED")) return; throw e }
 * ```
 * @module
 */

/** Options common to every tilth error. */
export interface TilthErrorOptions {
  cause?: unknown;
  /** Extra facts for logs and for the remote side of an RPC. */
  context?: Record<string, unknown>;
  /** Whether the same operation may succeed if tried again. */
  retryable?: boolean;
}

/** Base class: every error the framework raises is one of these. */
export class TilthError extends Error {
  /** Stable machine-readable code, e.g. `ERR_TIMEOUT`. */
  readonly code: string;
  readonly context: Record<string, unknown> | undefined;
  readonly retryable: boolean;

  constructor(code: string, message: string, options: TilthErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.context = options.context;
    this.retryable = options.retryable ?? false;
  }

  override get name(): string {
    return this.constructor.name;
  }
}

/**
 * The operation was cancelled: its scope or signal was aborted. `reason` is what
 * the canceller gave (often another error, e.g. the sibling failure or a timeout).
 */
export class CancelledError extends TilthError {
  readonly reason: unknown;
  constructor(message = "operation cancelled", reason?: unknown, options: TilthErrorOptions = {}) {
    super("ERR_CANCELLED", message, { cause: reason, ...options });
    this.reason = reason;
  }
}

/**
 * A duration for a message a person reads: whole milliseconds and the unit,
 * `formatMs(3666.04)` is `"3666 ms"`. Loop times are fractional (Node's clock
 * has µs resolution); messages and log lines show them through this, while
 * error contexts keep the exact number.
 */
export function formatMs(ms: number): string {
  return `${Math.round(ms)} ms`;
}

/** A time limit was hit. `limitMs` is the limit that was exceeded. */
export class TimeoutError extends TilthError {
  readonly limitMs: number;
  constructor(limitMs: number, what = "operation", options: TilthErrorOptions = {}) {
    super("ERR_TIMEOUT", `${what} timed out after ${formatMs(limitMs)}`, {
      retryable: true,
      ...options,
      context: { limitMs, ...options.context },
    });
    this.limitMs = limitMs;
  }
}

/** The resource was closed by this side ("you closed it"). */
export class ClosedError extends TilthError {
  constructor(message = "resource is closed", options: TilthErrorOptions = {}) {
    super("ERR_CLOSED", message, options);
  }
}

/** The peer broke the resource ("they broke it"): reset, vanished, protocol violation. */
export class BrokenError extends TilthError {
  constructor(message = "resource broken by peer", options: TilthErrorOptions = {}) {
    super("ERR_BROKEN", message, { retryable: true, ...options });
  }
}

/** The resource refuses more concurrent work right now (a bound was reached). */
export class BusyError extends TilthError {
  constructor(message = "resource busy", options: TilthErrorOptions = {}) {
    super("ERR_BUSY", message, { retryable: true, ...options });
  }
}

/** Several children of a scope failed; `errors` holds each failure in order. */
export class ScopeError extends TilthError {
  readonly errors: unknown[];
  constructor(errors: unknown[], options: TilthErrorOptions = {}) {
    super("ERR_SCOPE", `${errors.length} tasks failed: ${errors.map(describe).join("; ")}`, {
      cause: errors[0],
      ...options,
    });
    this.errors = errors;
  }
}

/** True when `e` is a tilth error, optionally with the given code. */
export function isTilthError(e: unknown, code?: string): e is TilthError {
  return e instanceof TilthError && (code === undefined || e.code === code);
}

/** True when `e` means "cancelled" (ours, or a DOM AbortError raised by node APIs). */
export function isCancellation(e: unknown): boolean {
  return e instanceof CancelledError || (e instanceof Error && e.name === "AbortError");
}

/** A short one-line description of any thrown value. */
export function describe(e: unknown): string {
  if (e instanceof TilthError) return `${e.name} [${e.code}]: ${e.message}`;
  if (e instanceof Error) return `${e.name}: ${e.message}`;
  try {
    return `non-Error thrown: ${typeof e === "string" ? e : JSON.stringify(e)}`;
  } catch {
    return `non-Error thrown: ${String(e)}`;
  }
}

/** Turn any thrown value into an Error (non-Error values become a TilthError with code ERR_NON_ERROR). */
export function toError(e: unknown): Error {
  if (e instanceof Error) return e;
  return new TilthError("ERR_NON_ERROR", describe(e), { context: { value: e } });
}

/** The error to raise when `signal` is aborted: its reason if it is an Error, else a CancelledError. */
export function abortReason(signal: AbortSignal): Error {
  const r: unknown = signal.reason;
  if (r instanceof Error) return r;
  return new CancelledError("operation cancelled", r);
}
