/**
 * Distributed tracing with OpenTelemetry: `tracing()` is a middleware that
 * gives each call a client span (on a client) and a server span (on a
 * server), carrying the W3C `traceparent` in the call's metadata. The
 * OpenTelemetry API (`@opentelemetry/api`) is an optional peer dependency:
 * without it `tracing()` is a no-op, unless asked for with `required: true`.
 * See docs/tracing.md.
 * @module
 */
import { requirePeer } from "../adapters/peers.js";
import { isTilthError } from "../core/errors.js";
import type { CallContext, Middleware } from "./context.js";
import { PendingCall } from "./PendingCall.js";

/** The parts of `@opentelemetry/api` used here (structural: tilth's types do not need the package). */
export interface OtelApi {
  trace: {
    getTracer(name: string, version?: string): OtelTracer;
    setSpan(ctx: unknown, span: OtelSpan): unknown;
    setSpanContext(ctx: unknown, sc: OtelSpanContext): unknown;
    getSpan(ctx: unknown): OtelSpan | undefined;
  };
  context: { active(): unknown; with<T>(ctx: unknown, fn: () => T): T };
  ROOT_CONTEXT: unknown;
}
interface OtelTracer {
  startSpan(name: string, options: { kind: number; attributes: Record<string, string | number> }, ctx: unknown): OtelSpan;
}
interface OtelSpanContext {
  traceId: string;
  spanId: string;
  traceFlags: number;
  isRemote?: boolean;
}
interface OtelSpan {
  spanContext(): OtelSpanContext;
  setAttribute(key: string, value: string | number): unknown;
  setStatus(status: { code: number; message?: string }): unknown;
  end(): void;
}

/** SpanKind and SpanStatusCode of the OpenTelemetry API (stable numbers). */
const SERVER = 1;
const CLIENT = 2;
const STATUS_ERROR = 2;

export interface TracingOptions {
  /** Throw ERR_MISSING_PACKAGE when `@opentelemetry/api` is not installed, instead of tracing nothing. */
  required?: boolean;
  /** The tracer's name. Default `tilth`. */
  tracerName?: string;
  /** The OpenTelemetry API to use, instead of loading `@opentelemetry/api`. */
  api?: OtelApi;
  /** @internal how the API is loaded (tests stand in for an app without it) */
  load?: (name: string) => unknown;
}

/** The metadata key of the W3C trace context. */
export const TRACEPARENT = "traceparent";

const TRACEPARENT_RE = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;

/**
 * A middleware for clients and servers alike: a span per call (kind client
 * or server) named after the method, with attributes `rpc.system` (the
 * protocol), `rpc.method`, `rpc.tilth.transport`, `network.peer.address`,
 * on failure `error.type` (the error's code) and, for a stream,
 * `rpc.tilth.stream_items`. A client sends the W3C `traceparent` of its
 * span in the call's metadata; a server starts its span as that span's
 * child, and runs the handler with its span active (so calls the handler
 * makes are its children).
 */
export function tracing(options: TracingOptions = {}): Middleware {
  let api: OtelApi;
  try {
    api = options.api ?? requirePeer<OtelApi>("@opentelemetry/api", "tracing()", options.load);
  } catch (e) {
    if (options.required !== true && isTilthError(e, "ERR_MISSING_PACKAGE")) return {};
    throw e;
  }
  tracedApi ??= api;
  const tracer = api.trace.getTracer(options.tracerName ?? "tilth");
  const spans = new WeakMap<CallContext, OtelSpan>();
  const attributes = (ctx: CallContext): Record<string, string | number> => ({
    "rpc.system": ctx.protocol ?? "drpc",
    "rpc.method": ctx.method,
    "rpc.tilth.transport": transportOf(ctx.peer),
    "network.peer.address": ctx.peer,
  });
  const end = (ctx: CallContext, error: unknown): void => {
    const span = spans.get(ctx);
    if (span === undefined) return;
    spans.delete(ctx);
    if (ctx.items !== undefined && ctx.items > 0) span.setAttribute("rpc.tilth.stream_items", ctx.items);
    if (error !== undefined) {
      const code = (error as { code?: unknown } | null)?.code;
      span.setAttribute("error.type", typeof code === "string" ? code : "ERR_REMOTE");
      span.setStatus({ code: STATUS_ERROR, message: error instanceof Error ? error.message : String(error) });
    }
    span.end();
  };
  return {
    before(ctx) {
      if (ctx instanceof PendingCall) {
        const span = tracer.startSpan(ctx.method, { kind: CLIENT, attributes: attributes(ctx) }, api.context.active());
        spans.set(ctx, span);
        const sc = span.spanContext();
        ctx.meta[TRACEPARENT] = `00-${sc.traceId}-${sc.spanId}-${(sc.traceFlags & 0xff).toString(16).padStart(2, "0")}`;
        return;
      }
      let parent = api.ROOT_CONTEXT;
      const tp = ctx.meta[TRACEPARENT];
      const m = typeof tp === "string" ? TRACEPARENT_RE.exec(tp) : null;
      if (m !== null && !/^0+$/.test(m[1]!) && !/^0+$/.test(m[2]!)) parent = api.trace.setSpanContext(parent, { traceId: m[1]!, spanId: m[2]!, traceFlags: parseInt(m[3]!, 16), isRemote: true });
      spans.set(ctx, tracer.startSpan(ctx.method, { kind: SERVER, attributes: attributes(ctx) }, parent));
    },
    around(ctx, next) {
      const span = spans.get(ctx);
      return span === undefined ? next() : api.context.with(api.trace.setSpan(api.context.active(), span), next);
    },
    after(ctx) {
      end(ctx, undefined);
    },
    error(ctx, e) {
      end(ctx, e ?? new Error("failed"));
    },
  };
}

/** The API the first `tracing()` loaded: log lines read the active span through it. */
let tracedApi: OtelApi | undefined;

/**
 * The trace and span id of the span active now (a call's, inside its handler
 * under `tracing()`), for log lines; undefined without one, or before any
 * `tracing()` was made.
 */
export function traceIds(): { traceId: string; spanId: string } | undefined {
  const api = tracedApi;
  if (api === undefined) return undefined;
  const span = api.trace.getSpan(api.context.active());
  if (span === undefined) return undefined;
  const sc = span.spanContext();
  return { traceId: sc.traceId, spanId: sc.spanId };
}

/** `tcp` of `tcp://127.0.0.1:1234`. */
function transportOf(url: string): string {
  const i = url.indexOf("://");
  return i > 0 ? url.slice(0, i) : url;
}
