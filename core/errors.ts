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

/** A short one-line description of any thrown value (a thrown non-Error value as an {@link excerpt}). */
export function describe(e: unknown): string {
  if (e instanceof TilthError) return `${e.name} [${e.code}]: ${e.message}`;
  if (e instanceof Error) return `${e.name}: ${e.message}`;
  return `non-Error thrown: ${excerpt(e)}`;
}

/** Longest text of a value that {@link excerpt} quotes, in characters. */
const EXCERPT_CHARS = 40;
/** BigInts within this many bits are written out in full by {@link excerpt}. */
const EXCERPT_BIGINT_BITS = 64n;

/**
 * A short description of any value, for error messages and logs: at most
 * about 80 characters and bounded work whatever the value (a 10 MB string, a
 * BigInt of a million digits, an object of a million keys, a cycle, a Proxy
 * that throws). Strings are quoted and cut, with their length; containers
 * give their kind and size; class instances their class.
 *
 * Wherever an error describes a value it received, it uses this, never
 * `String(v)` or `JSON.stringify(v)`.
 *
 * @example
 * ```ts
 * excerpt("x".repeat(1e6)) // '"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx…" (1000000 chars)'
 * excerpt(2n ** 4096n)     // 'a BigInt of 4097 bits'
 * excerpt(new Set([1, 2])) // 'a Set of 2 items'
 * ```
 */
export function excerpt(v: unknown): string {
  try {
    return excerptOf(v);
  } catch {
    return `a value that cannot be described (${typeof v})`;
  }
}

function quote(s: string): string {
  const cut = s.length > EXCERPT_CHARS;
  const q = JSON.stringify(cut ? s.slice(0, EXCERPT_CHARS) : s);
  return cut ? `${q.slice(0, -1)}…" (${s.length} chars)` : q;
}

function excerptOf(v: unknown): string {
  switch (typeof v) {
    case "string":
      return quote(v);
    case "number":
    case "boolean":
    case "undefined":
      return String(v);
    case "bigint": {
      const big = v < 0n ? -v : v;
      // Never the decimal form of a large one: converting it costs time quadratic in its size.
      return big >> EXCERPT_BIGINT_BITS === 0n ? `${v}n` : `a BigInt of ${big.toString(16).length * 4} bits`;
    }
    case "symbol":
      return `a symbol ${quote(v.description ?? "")}`;
    case "function":
      return `a function ${quote(v.name)}`;
  }
  if (v === null) return "null";
  const o = v as object;
  if (Array.isArray(o)) return `an array of ${o.length} items`;
  if (o instanceof Uint8Array) return `${o.constructor.name === "Buffer" ? "a Buffer" : "a Uint8Array"} of ${o.length} bytes`;
  if (ArrayBuffer.isView(o)) return `a ${o.constructor.name} of ${o.byteLength} bytes`;
  if (o instanceof ArrayBuffer) return `an ArrayBuffer of ${o.byteLength} bytes`;
  if (o instanceof Map) return `a Map of ${o.size} entries`;
  if (o instanceof Set) return `a Set of ${o.size} items`;
  if (o instanceof Date) return Number.isNaN(o.getTime()) ? "an invalid Date" : `a Date (${o.toISOString()})`;
  if (o instanceof RegExp) return `a RegExp ${quote(o.source)}`;
  if (o instanceof Error) return `an Error ${quote(`${o.name}: ${o.message}`)}`;
  const proto: unknown = Object.getPrototypeOf(o);
  if (proto === Object.prototype || proto === null) {
    const keys: string[] = [];
    let n = 0;
    for (const k in o) {
      if (!Object.prototype.hasOwnProperty.call(o, k)) continue;
      if (n++ < 3) keys.push(quote(k));
      else break;
    }
    if (n <= 3) return keys.length === 0 ? "an empty object" : `an object with keys ${keys.join(", ")}`;
    return `an object of ${Object.keys(o).length} keys (${keys.join(", ")}, …)`;
  }
  const name = (proto as { constructor?: { name?: unknown } } | null)?.constructor?.name;
  if (typeof name !== "string" || name === "") return "an object";
  return `an instance of ${name.length > EXCERPT_CHARS ? `${name.slice(0, EXCERPT_CHARS)}…` : name}`;
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
