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
 * Every call is counted through the server's middleware hooks:
 * `tilth_rpc_calls_total{task,method}`, `tilth_rpc_errors_total{task,method}`
 * and the gauge `tilth_rpc_in_flight{task}`.
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
import type { CallContext, Middleware } from "../../rpc/context.js";
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
  #inFlight = 0;
  #metered = false;

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
    const server = new RpcServer(api, {
      log: (line) => this.log.warn(line),
      ...this.#o.server,
      loop: this.loop,
      middleware: [...(this.#o.server?.middleware ?? []), this.#middleware()],
    });
    this.#server = server;
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
  }

  #middleware(): Middleware {
    const m = this.metrics;
    const calls = m.counter("tilth_rpc_calls_total", "RPC calls received, by method.");
    const errors = m.counter("tilth_rpc_errors_total", "RPC calls that failed, by method.");
    if (!this.#metered) {
      this.#metered = true;
      m.gauge("tilth_rpc_in_flight", "RPC calls in progress.", () => [[{ task: this.name }, this.#inFlight]]);
    }
    const task = this.name;
    // A call ends with `after` or `error`, or silently when it is cancelled
    // (client cancel, deadline, lost peer, server close): its signal aborts.
    // `meta` marks a counted call so each is uncounted once.
    const end = (ctx: CallContext): void => {
      if (ctx.meta.tilthOpen !== true) return;
      ctx.meta.tilthOpen = false;
      this.#inFlight--;
    };
    return {
      before: (ctx: CallContext) => {
        calls.inc({ task, method: ctx.method });
        this.#inFlight++;
        ctx.meta.tilthOpen = true;
        ctx.signal.addEventListener("abort", () => end(ctx), { once: true });
      },
      after: end,
      error: (ctx: CallContext) => {
        errors.inc({ task, method: ctx.method });
        end(ctx);
      },
    };
  }
}
