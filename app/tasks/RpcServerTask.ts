/**
 * `RpcServerTask`: serve an API object on one or more RPC URLs while the
 * service runs.
 *
 * The API is the `api` option, else the service's own `api` object. The URLs
 * are the `bind` option (settings: `options.<name>.bind`, a URL or a list).
 * On stop the server stops accepting, lets calls in flight finish until
 * shortly before the task's stop deadline (a fifth of `stopTimeout`, at most
 * 1 s, is kept for closing connections) and then cancels them: callers get
 * `ERR_UNAVAILABLE`, handlers' signals abort.
 *
 * Every call is recorded in the service's metrics (unless `stats: false`):
 * the histogram `tilth_rpc_server_call_duration_seconds{task,method,code}`,
 * `tilth_rpc_server_stream_items_total{task,method}`, and the gauges
 * `tilth_rpc_server_calls_in_flight{task}` and
 * `tilth_rpc_server_connections{task}` (docs/observability.md).
 *
 * @example
 * ```ts
 * class Api extends RpcServerTask {
 *   constructor(ctx: AppContext) { super(ctx, { bind: "drpc+tcp://127.0.0.1:9990", api: { ping: () => "pong" } }); }
 * }
 * ```
 * @module
 */
import "../../rpc/index.js"; // registers drpc and zrpc
import { z } from "zod";
import { TilthError, describe } from "../../core/errors.js";
import type { MethodStats, ServerStats } from "../../rpc/stats.js";
import type { HistogramSeries, Labels, Metrics } from "../Metrics.js";
import { RpcServer, type ServerOptions } from "../../rpc/Server.js";
import type { AppContext } from "../App.js";
import { Task, type TaskOptions } from "../Service.js";

export interface RpcServerTaskOptions extends TaskOptions {
  /** The URL(s) to serve on, e.g. `drpc+tcp://127.0.0.1:9990`. */
  bind?: string | string[];
  /** The API object. Default: the service's `api`. */
  api?: object;
  /** Extra server options (limits, middleware, protocols). */
  server?: Partial<Omit<ServerOptions, "loop">>;
  /** How long calls in flight may finish on stop, ms. Default: `stopTimeout` less a fifth (at most 1 s). */
  graceMs?: number;
  /** Record every call in the service's metrics (duration by method and outcome, stream items). Default true; false turns the per-call recording off (the in-flight and connection gauges stay). */
  stats?: boolean;
}

/** Options of an RpcServerTask that the settings may set. */
export const rpcServerShape = {
  bind: z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]),
  graceMs: z.number().nonnegative(),
};

export class RpcServerTask extends Task {
  readonly bind: string[];
  readonly graceMs: number;
  readonly #o: RpcServerTaskOptions;
  #server: RpcServer | undefined;

  constructor(ctx: AppContext, options: RpcServerTaskOptions = {}) {
    super(ctx, { ...options, name: options.name ?? (new.target === RpcServerTask ? "rpc" : undefined) }, rpcServerShape);
    const s = this.settings as Partial<RpcServerTaskOptions>;
    const b = s.bind ?? options.bind ?? [];
    this.bind = Array.isArray(b) ? b : [b];
    this.graceMs = s.graceMs ?? options.graceMs ?? Math.max(0, this.stopTimeout - Math.min(1000, this.stopTimeout / 5));
    this.#o = options;
  }

  /** The bound URLs (port 0 resolved), while running. */
  get urls(): string[] {
    return this.#server?.urls ?? [];
  }

  /** The server, while running. */
  get server(): RpcServer | undefined {
    return this.#server;
  }

  override async start(): Promise<void> {
    const api = this.#o.api ?? this.service?.api;
    if (api === undefined || api === null)
      throw new TilthError("ERR_TASK_CLASS", `task ${this.name}: no API to serve (pass an api option or give the service an api object)`);
    if (this.bind.length === 0)
      throw new TilthError("ERR_TASK_CLASS", `task ${this.name}: no URL to serve on (set options.${this.name}.bind in the settings, or a bind option)`);
    this.#gauges();
    // The app's debug rule: on listeners that are not loopback, off unless its settings say debugRemote, then behind its backdoor's token.
    const debugRemote = this.ctx.settings.data.apps[this.ctx.name]?.debugRemote === true;
    const server = new RpcServer(api, {
      log: (line) => this.log.warn(line),
      debugToken: () => this.ctx.debugToken(),
      ...(debugRemote ? { debugRemote } : {}),
      ...this.#o.server,
      loop: this.loop,
      ...(this.#o.stats === false ? {} : { stats: rpcServerStats(this.metrics, this.name) }),
    });
    this.#server = server;
    this.#counting = server;
    for (const url of this.bind) {
      const bound = await server.listen(url);
      this.log.info(`serving on ${bound}`);
    }
  }

  override async stop(): Promise<void> {
    const server = this.#server;
    if (server === undefined) return;
    this.#server = undefined;
    try {
      await server.close({ graceMs: this.graceMs });
    } catch (e) {
      this.log.error(`closing the server failed: ${describe(e)}`);
    }
    this.#counting = undefined;
    const { received, sent } = server.bytes;
    this.#ended.received += received;
    this.#ended.sent += sent;
    this.#ended.heartbeatsLost += server.heartbeatsLost;
  }

  #metered = false;

  /** The in-flight and connection gauges, read from the server when the metrics are written. */
  #gauges(): void {
    if (this.#metered) return;
    this.#metered = true;
    const m = this.metrics;
    const task = this.name;
    m.gauge("tilth_rpc_server_calls_in_flight", "RPC calls in progress.", () => [[{ task }, this.#server?.inFlight ?? 0]]);
    m.gauge("tilth_rpc_server_connections", "Connections open to the RPC server.", () => [[{ task }, this.#server?.connections ?? 0]]);
    // Totals of this task across its servers (a restarted task keeps counting from where the last one ended).
    const total = (read: (s: RpcServer) => number, base: () => number) => (): [Labels, number][] => [[{ task }, base() + (this.#counting ? read(this.#counting) : 0)]];
    m.counterFrom("tilth_rpc_server_received_bytes_total", "Bytes received on the RPC server's connections (tcp, ipc, tls, zmq).", total((s) => s.bytes.received, () => this.#ended.received));
    m.counterFrom("tilth_rpc_server_sent_bytes_total", "Bytes sent on the RPC server's connections (tcp, ipc, tls, zmq).", total((s) => s.bytes.sent, () => this.#ended.sent));
    m.counterFrom("tilth_rpc_server_heartbeats_lost_total", "Peers the RPC server declared lost because their heartbeats stopped.", total((s) => s.heartbeatsLost, () => this.#ended.heartbeatsLost));
  }

  /** The server the totals read, until it has closed (then its counts join #ended). */
  #counting: RpcServer | undefined;
  /** What the servers of earlier runs of this task counted. */
  readonly #ended = { received: 0, sent: 0, heartbeatsLost: 0 };
}

/**
 * Per-call recording of an RPC server into `metrics`, labelled `task`:
 * `tilth_rpc_server_call_duration_seconds{task,method,code}` and
 * `tilth_rpc_server_stream_items_total{task,method}`. Histogram series are
 * bound once per method (and per error code on its first use), so a call costs
 * one observation. `RpcServerTask` uses it; pass it as the `stats` option of a
 * bare `RpcServer`.
 */
export function rpcServerStats(metrics: Metrics, task: string): ServerStats {
  const durations = metrics.histogram("tilth_rpc_server_call_duration_seconds", "RPC calls served, by method and outcome (code: ok or the error code), from arrival to answer.");
  const items = metrics.counter("tilth_rpc_server_stream_items_total", "Stream items sent by RPC servers, by method.");
  return {
    method(method: string): MethodStats {
      const ok = durations.series({ task, method, code: "ok" });
      const failed = new Map<string, HistogramSeries>();
      const itemLabels = { task, method };
      return {
        end(code, ms, n) {
          let s = ok;
          if (code !== undefined) {
            s = failed.get(code) ?? failed.get("ERR_OTHER")!;
            if (s === undefined) {
              // At most 16 codes per method: a handler's own codes cannot grow the series without bound.
              const c = failed.size < 15 ? code : "ERR_OTHER";
              s = durations.series({ task, method, code: c });
              failed.set(c, s);
            }
          }
          s.observe(ms / 1000);
          if (n > 0) items.inc(itemLabels, n);
        },
      };
    },
  };
}
