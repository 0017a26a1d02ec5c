/**
 * Call context and middleware, shared by server and client.
 * @module
 */

const CONTEXTUAL = Symbol.for("tilth.rpc.contextual");

/** What a handler (and middleware) knows about the call it serves. */
export interface CallContext {
  /** Method name as called. */
  readonly method: string;
  /** Call id on its connection. */
  readonly id: number;
  /** Positional arguments after binding named ones. */
  readonly args: readonly unknown[];
  /** Aborts when the client cancels, the deadline passes, the peer is lost or the server closes; with the reason. */
  readonly signal: AbortSignal;
  /** Loop time of the deadline, if the call has one. */
  readonly deadline: number | undefined;
  /** The remote end, as a URL. */
  readonly peer: string;
  /** Free slot for middleware (timings, trace ids). */
  readonly meta: Record<string, unknown>;
}

/**
 * Hooks around calls. All are synchronous and optional; `before` may throw to
 * refuse a call (the error is answered to the caller).
 */
export interface Middleware {
  before?(ctx: CallContext): void;
  after?(ctx: CallContext, result: unknown): void;
  error?(ctx: CallContext, error: unknown): void;
}

/**
 * Mark a handler that wants its call context: it is called as
 * `fn(ctx, ...args)`, and introspection shows only the remaining parameters.
 *
 * @example
 * ```ts
 * const api = {
 *   slow: contextual(async (ctx: CallContext, ms: number) => {
 *     await sleep(loop, ms, { signal: ctx.signal }); // stops when the client cancels
 *     return "done";
 *   }),
 * };
 * ```
 */
export function contextual<A extends unknown[], R>(fn: (ctx: CallContext, ...args: A) => R): (...args: A) => R {
  (fn as unknown as Record<symbol, unknown>)[CONTEXTUAL] = true;
  return fn as unknown as (...args: A) => R;
}

/** @internal */
export function isContextual(fn: Function): boolean {
  return (fn as unknown as Record<symbol, unknown>)[CONTEXTUAL] === true;
}
