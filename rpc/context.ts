/**
 * Call context and middleware, shared by server and client.
 * @module
 */

import type { PeerIdentity } from "../core/Transport.js";

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
  /**
   * Who the peer is, when its transport verified it: on a server under
   * mutual TLS, the client's certificate (subject, issuer, subject alternative
   * names, SHA-256 fingerprint). Undefined otherwise. Authorise by it in a
   * `before` middleware or a `contextual` handler.
   */
  readonly peerIdentity?: PeerIdentity | undefined;
  /**
   * The call's metadata: on a server, what the client sent (string or byte
   * values; see docs/drpc.md, "Metadata"); on a client, what it sends (string
   * and byte values go on the wire). Middleware may keep its own values here.
   */
  readonly meta: Record<string, unknown>;
  /** The protocol the call travels by: `drpc` (drpc+local too) or `zrpc`. */
  readonly protocol?: string | undefined;
  /** Stream items so far: sent (server) or received (client). */
  readonly items?: number;
}

/**
 * Hooks around calls, on servers and clients alike. Every hook is optional and
 * may be async (return a promise, awaited before the call goes on).
 *
 * Order, the same for every protocol: `before` hooks in registration order,
 * then the call; then `after` hooks in order on success (for a stream, once it
 * has ended) or `error` hooks in order on failure; then the answer is sent
 * (server) or the caller gets it (client).
 * - `before` may throw or reject to refuse the call: that error is the call's
 *   answer, with its code (an auth check that awaits a token lookup, say),
 *   and the `error` hooks run; a call a client hook refused is never sent.
 * - An `after` hook that throws or rejects turns the call into that error, and
 *   the `error` hooks then run.
 * - An `error` hook that throws or rejects replaces the call's error with its own.
 * - On a server, `around` hooks wrap the handler's invocation (outermost first),
 *   after the `before` hooks.
 */
export interface Middleware {
  /** Returns nothing, or a promise that is awaited (any other value is ignored). */
  before?(ctx: CallContext): unknown;
  /**
   * Server side only: wraps the handler's invocation, after every `before`
   * hook. It must call `next()` once and return what it returns (the
   * handler's result, a promise or a stream). The first middleware's
   * `around` is the outermost. For what must run with the handler in its
   * scope: an OpenTelemetry context (see `tracing()`), an
   * AsyncLocalStorage.
   */
  around?(ctx: CallContext, next: () => unknown): unknown;
  after?(ctx: CallContext, result: unknown): unknown;
  error?(ctx: CallContext, error: unknown): unknown;
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
