/**
 * Embedding tilth in an existing program: a plain node:http key-value server
 * that was there first, and a tilth service started inside it with one call
 * (`embed`), serving the same store over RPC. Other services can now reach
 * the store as `drpc+tcp://…` with a typed client, while the HTTP API goes
 * on as before; both stop cleanly together.
 *
 *     PUT /kv/greeting  (body: hello)   ->  204
 *     GET /kv/greeting                  ->  200 hello
 *     rpc: await kv.get("greeting")     ->  "hello"
 *
 * Run it: `node dist/examples/embed/main.js` (see main.ts).
 * @module
 */
import http from "node:http";
import type { AddressInfo } from "node:net";
import { AppContext } from "../../app/App.js";
import { container as rootContainer, injectable } from "../../app/di.js";
import { embed, type Embedded } from "../../app/embed.js";
import { Service } from "../../app/Service.js";
import { PeriodicTask } from "../../app/tasks/PeriodicTask.js";
import { RpcServerTask } from "../../app/tasks/RpcServerTask.js";
import type { LoggerOptions } from "../../app/Logger.js";

// ---- the program as it was: a store and an HTTP API over it ----------------

/** The program's own state. */
export class Store {
  readonly #data = new Map<string, string>();
  get(key: string): string | undefined {
    return this.#data.get(key);
  }
  set(key: string, value: string): void {
    this.#data.set(key, value);
  }
  delete(key: string): boolean {
    return this.#data.delete(key);
  }
  keys(): string[] {
    return [...this.#data.keys()];
  }
}

function httpHandler(store: Store): http.RequestListener {
  return (req, res) => {
    const m = /^\/kv\/([^/?]+)$/.exec(req.url ?? "");
    if (m === null) {
      res.writeHead(404).end("try /kv/KEY\n");
      return;
    }
    const key = decodeURIComponent(m[1]!);
    if (req.method === "GET") {
      const v = store.get(key);
      if (v === undefined) res.writeHead(404).end();
      else res.writeHead(200, { "content-type": "text/plain" }).end(v);
    } else if (req.method === "PUT") {
      let body = "";
      req.setEncoding("utf8");
      req.on("data", (c: string) => (body += c));
      req.on("end", () => {
        store.set(key, body);
        res.writeHead(204).end();
      });
    } else if (req.method === "DELETE") {
      res.writeHead(store.delete(key) ? 204 : 404).end();
    } else res.writeHead(405, { allow: "GET, PUT, DELETE" }).end();
  };
}

// ---- the tilth side: a service serving the store over RPC -----------------

/** What the embedded service serves. */
export interface KvAPI {
  get(key: string): string | null;
  set(key: string, value: string): void;
  keys(): string[];
}

/** Logs the size of the store now and then: a task beside the RPC server. */
@injectable()
class Report extends PeriodicTask {
  constructor(
    ctx: AppContext,
    private readonly store: Store,
  ) {
    super(ctx, { interval: 60_000, initialDelay: 60_000 });
  }
  override execute(): void {
    this.log.info(`${this.store.keys().length} keys`);
  }
}

/** The store as a tilth service; it receives the program's Store by DI. */
@injectable()
export class KvService extends Service {
  static override tasks = [RpcServerTask, Report];
  override api: KvAPI;

  constructor(ctx: AppContext, store: Store) {
    super(ctx);
    this.api = {
      get: (key) => store.get(key) ?? null,
      set: (key, value) => store.set(key, value),
      keys: () => store.keys(),
    };
  }
}

export interface Running {
  httpUrl: string;
  /** The RPC URL the embedded service listens on (port 0 resolved). */
  rpcUrl: string;
  tilth: Embedded;
  /** Stop the embedded service, then the HTTP server. */
  stop(): Promise<void>;
}

/** Start the program: the HTTP server, and tilth inside it. */
export async function startServer(o: { port?: number; rpcUrl?: string; log?: Omit<LoggerOptions, "app" | "loop"> } = {}): Promise<Running> {
  const store = new Store();
  const server = http.createServer(httpHandler(store));
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(o.port ?? 8080, "127.0.0.1", () => resolve());
  });
  const httpUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  // The one call. The program's Store goes in through a DI container of its own
  // (a child container: nothing global), the RPC URL through the options.
  let tilth: Embedded;
  try {
    const di = rootContainer.createChildContainer();
    di.register(Store, { useValue: store });
    tilth = await embed(KvService, {
      name: "kv",
      container: di,
      options: { rpc: { bind: o.rpcUrl ?? "drpc+tcp://127.0.0.1:9993" } },
      ...(o.log ? { log: o.log } : {}),
    });
  } catch (e) {
    server.close();
    throw e;
  }
  const rpcUrl = (tilth.app as KvService).task(RpcServerTask).urls[0]!;

  let stopping: Promise<void> | undefined;
  return {
    httpUrl,
    rpcUrl,
    tilth,
    stop: () =>
      (stopping ??= (async () => {
        await tilth.stop();
        await new Promise<void>((resolve) => {
          server.close(() => resolve());
          server.closeIdleConnections();
        });
      })()),
  };
}
