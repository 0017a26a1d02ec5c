/**
 * `HttpTask`: a small node:http endpoint for operations.
 *
 * - `GET /health`: 200 while every task of the service is running, 503
 *   otherwise; the body is JSON: `{"status":"ok","service":"svc","tasks":{"http":"running","tick":"running"}}`.
 * - `GET /metrics`: the service's metrics in the Prometheus text format:
 *   task runs, errors and failures, queue depth, RPC call durations, loop
 *   lag and utilisation, the process's default metrics (docs/observability.md).
 *
 * Binds `127.0.0.1` by default (`host`), port `port` (default 0: any free
 * port; the bound URL is logged and in `url`). On stop the server stops
 * accepting and closes idle connections; connections still busy at the stop
 * deadline are closed. Subclasses may answer more paths by overriding
 * `route()`.
 *
 * @example
 * ```ts
 * class Svc extends Service { static override tasks = [HttpTask, Tick]; }
 * // settings: options: { http: { port: 9100 } }  ->  curl http://127.0.0.1:9100/health
 * ```
 * @module
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { z } from "zod";
import type { AppContext } from "../App.js";
import type { Health } from "../Service.js";
import { Task, type TaskOptions } from "../Service.js";

export interface HttpTaskOptions extends TaskOptions {
  /** Address to bind. Default `127.0.0.1` (loopback only). */
  host?: string;
  /** Port to bind. Default 0: any free port. */
  port?: number;
}

/** Options of an HttpTask that the settings may set. */
export const httpShape = {
  host: z.string().min(1),
  port: z.number().int().min(0).max(65535),
};

export class HttpTask extends Task {
  readonly host: string;
  readonly port: number;
  #server: Server | undefined;
  #url: string | undefined;
  #unwatch: (() => void) | undefined;

  constructor(ctx: AppContext, options: HttpTaskOptions = {}) {
    super(ctx, options, httpShape); // named "http" by default (from the class name)
    const s = this.settings as Partial<HttpTaskOptions>;
    this.host = s.host ?? options.host ?? "127.0.0.1";
    this.port = s.port ?? options.port ?? 0;
  }

  /** `http://host:port` once listening. */
  get url(): string | undefined {
    return this.#url;
  }

  /** The health the endpoint reports: the service's, or this task's alone. */
  health(): Health {
    return (
      this.service?.health() ?? {
        status: this.state === "running" ? "ok" : "unavailable",
        service: this.ctx.name,
        tasks: { [this.name]: this.state },
      }
    );
  }

  override async start(): Promise<void> {
    const server = createServer((req, res) => this.#serve(req, res));
    this.#server = server;
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(this.port, this.host, () => {
        server.off("error", reject);
        resolve();
      });
    });
    // An error after listening (rare: EMFILE on accept) fails the task.
    server.on("error", (e) => this.fail(e));
    const a = server.address() as AddressInfo;
    this.#url = `http://${a.family === "IPv6" ? `[${a.address}]` : a.address}:${a.port}`;
    this.#unwatch = this.metrics.watchLoop(this.loop);
    this.log.info(`health and metrics on ${this.#url}`);
  }

  override async stop(cancelSignal: AbortSignal): Promise<void> {
    this.#unwatch?.();
    this.#unwatch = undefined;
    const server = this.#server;
    if (server === undefined) return;
    this.#server = undefined;
    this.#url = undefined;
    const force = (): void => server.closeAllConnections();
    cancelSignal.addEventListener("abort", force, { once: true });
    try {
      await new Promise<void>((resolve) => {
        server.close(() => resolve()); // an error here means "was not listening": closed all the same
        server.closeIdleConnections();
      });
    } finally {
      cancelSignal.removeEventListener("abort", force);
    }
  }

  /**
   * Answer one request; return false for "not found". Override to add paths
   * (call `super.route` for the built-in ones).
   */
  protected route(path: string, _req: IncomingMessage, res: ServerResponse): boolean {
    if (path === "/health") {
      const h = this.health();
      send(res, h.status === "ok" ? 200 : 503, "application/json", JSON.stringify(h) + "\n");
      return true;
    }
    if (path === "/metrics") {
      this.metrics.text().then(
        (body) => send(res, 200, "text/plain; version=0.0.4; charset=utf-8", body),
        (e: unknown) => {
          this.log.error(`GET /metrics failed: ${(e as Error).message}`);
          if (!res.headersSent) send(res, 500, "text/plain; charset=utf-8", "internal error\n");
        },
      );
      return true;
    }
    return false;
  }

  #serve(req: IncomingMessage, res: ServerResponse): void {
    const path = (req.url ?? "/").split("?")[0]!;
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.setHeader("allow", "GET, HEAD");
      send(res, 405, "text/plain; charset=utf-8", "method not allowed\n");
      return;
    }
    try {
      if (!this.route(path, req, res)) send(res, 404, "text/plain; charset=utf-8", "not found: try /health or /metrics\n");
    } catch (e) {
      this.log.error(`${req.method} ${path} failed: ${(e as Error).message}`);
      if (!res.headersSent) send(res, 500, "text/plain; charset=utf-8", "internal error\n");
      else res.destroy();
    }
  }
}

function send(res: ServerResponse, status: number, type: string, body: string): void {
  const buf = Buffer.from(body);
  res.writeHead(status, { "content-type": type, "content-length": buf.length, "cache-control": "no-store" });
  res.end(res.req.method === "HEAD" ? undefined : buf);
}
