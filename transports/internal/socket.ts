/**
 * Plumbing shared by the node:net and node:tls transports: URL targets,
 * waiting for a socket or server event with an abort signal, connection
 * parameters from options (node:net, node:tls and ws options alike).
 * Internal module: not part of the public API.
 */
import { abortReason } from "../../core/errors.js";
import { InvalidUrlError, type ConnectOptions } from "../../core/Transport.js";
import { framingLimits, type FramingOptions } from "../framing.js";
import { DEFAULT_CLOSE_TIMEOUT_MS, validHighWaterMark, validMaxBuffered, type ConnectionParams } from "./ConnectionBase.js";

export type NetTarget = { kind: "tcp"; host: string; port: number } | { kind: "ipc"; path: string };

/** `tcp://host:port` (IPv6 in brackets) → host and port. */
export function hostPort(url: URL): { host: string; port: number } {
  let host = url.hostname;
  if (host.startsWith("[") && host.endsWith("]")) host = host.slice(1, -1);
  if (host === "") throw new InvalidUrlError(url.href, "a host is needed, e.g. tcp://127.0.0.1:9990");
  if (url.port === "") throw new InvalidUrlError(url.href, "a port is needed (0 to pick a free one when listening)");
  const port = Number(url.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new InvalidUrlError(url.href, `bad port ${url.port}`);
  return { host, port };
}

/** `ipc:///abs/path.sock` → `/abs/path.sock`; `ipc://rel/path.sock` → `rel/path.sock`. */
export function ipcPath(url: URL): string {
  const raw = url.host + url.pathname;
  if (raw === "") throw new InvalidUrlError(url.href, "a socket path is needed, e.g. ipc:///tmp/app.sock");
  try {
    return decodeURIComponent(raw);
  } catch {
    throw new InvalidUrlError(url.href, "bad percent-encoding in the path");
  }
}

/** Format host and port as a URL (IPv6 in brackets). */
export function formatHostPort(scheme: string, host: string | undefined, port: number | undefined): string {
  const h = host === undefined ? "unknown" : host.includes(":") ? `[${host}]` : host;
  return `${scheme}://${h}:${port ?? 0}`;
}

/** `closeTimeoutMs` option: how long a graceful close may wait for the peer before it destroys. */
export function validCloseTimeout(v: unknown): number {
  if (v === undefined) return DEFAULT_CLOSE_TIMEOUT_MS;
  if (typeof v !== "number" || !(v >= 0)) throw new RangeError(`closeTimeoutMs must be a number of ms (Infinity: no limit), got ${String(v)}`);
  return v;
}

export function connectionParams(scheme: string, localUrl: string, remoteUrl: string, options: ConnectOptions): ConnectionParams {
  const highWaterMark = validHighWaterMark(options.highWaterMark);
  const limits = framingLimits({
    maxMessageSize: options.maxMessageSize,
    maxFrames: typeof options.maxFrames === "number" ? options.maxFrames : undefined,
    inputBudget: options.inputBudget as FramingOptions["inputBudget"],
  });
  return {
    scheme,
    localUrl,
    remoteUrl,
    highWaterMark,
    maxBuffered: validMaxBuffered(options.maxBuffered, highWaterMark, limits.maxMessageSize),
    limits,
    closeTimeoutMs: validCloseTimeout(options.closeTimeoutMs),
  };
}

/**
 * Wait until `emitter` emits `event`, then resolve with `build()` run inside
 * that event (so no other event can slip in before the result's own listeners
 * are attached). Reject with `mapError(err)` on 'error', or with the abort
 * reason when `signal` aborts (then `onAbort` cleans up). Listeners are always
 * removed.
 */
export function waitFor<T>(
  emitter: NodeJS.EventEmitter,
  event: string,
  signal: AbortSignal | undefined,
  mapError: (e: unknown) => Error,
  onAbort: () => void,
  build: () => T,
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    if (signal?.aborted) {
      onAbort();
      reject(abortReason(signal));
      return;
    }
    const cleanup = (): void => {
      emitter.removeListener(event, onEvent);
      emitter.removeListener("error", onError);
      signal?.removeEventListener("abort", onAbortEvent);
    };
    const onEvent = (): void => {
      cleanup();
      try {
        resolve(build());
      } catch (e) {
        reject(e);
      }
    };
    const onError = (e: unknown): void => {
      cleanup();
      reject(mapError(e));
    };
    const onAbortEvent = (): void => {
      cleanup();
      onAbort();
      reject(abortReason(signal!));
    };
    emitter.once(event, onEvent);
    emitter.once("error", onError);
    signal?.addEventListener("abort", onAbortEvent, { once: true });
  });
}

/** `o` without its undefined fields, so that a library's own defaults apply to what the caller left out. */
export function defined<T extends object>(o: T): Partial<T> {
  const out: Partial<T> = {};
  for (const [k, v] of Object.entries(o)) if (v !== undefined) (out as Record<string, unknown>)[k] = v;
  return out;
}
