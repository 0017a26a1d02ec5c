/**
 * The ZeroMQ-to-browser gateway: subscribes to a ZeroMQ PUB socket and to
 * the events of a ZeroRPC publisher, and serves whatever arrives to browsers
 * over drpc+ws, with the page and the browser client (tilth/browser, bundled
 * at start) served by the same HTTP server.
 *
 * Two sources, one stream of topics:
 * - ZeroMQ PUB (`zmqPub`): a message `[topic, payload]` is topic `topic`,
 *   text the payload (UTF-8);
 * - ZeroRPC events (`zrpc`): a ZeroRPC Publisher sends each event
 *   `[header, name, args]` over PUB/SUB (zerorpc-python's Publisher, tilth's
 *   `zrpcEmitter(loop, "pub", …)`). The gateway subscribes as a ZeroRPC
 *   Subscriber does, to the event names it is given (ZeroRPC events carry no
 *   topic a SUB socket could filter on, and a Subscriber is an object with a
 *   method per event): event `name(...args)` is topic `zrpc:name`, text the
 *   one string argument as is, else the arguments as JSON.
 *
 * The browsers' API:
 * - `topics()`: the topics seen so far;
 * - `subscribe(prefix)`: a stream of `{ topic, text, dropped }` for the topics
 *   that start with `prefix`, live;
 * - `time()`: a method to call (the server's clock).
 *
 * A slow browser: each subscription holds at most `maxQueued` messages; past
 * it the OLDEST is dropped and counted, and the next message it gets carries
 * `dropped`, the number lost since the last one it received. Memory per
 * browser stays bounded whatever it reads.
 *
 * Two ways to run it: `startGateway` opens its own HTTP server (the page at
 * `/`, the RPC at `/rpc`); `attachGateway` embeds it in an existing
 * `http.Server` (an Express or Fastify app's), taking only its paths.
 */
import { readFile } from "node:fs/promises";
import http from "node:http";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { Connection } from "tilth/core";
import type { Loop } from "tilth/core";
import { contextual, serve, zrpcReceiver, type CallContext, type RpcServer, type ZrpcReceiver } from "tilth/rpc";
import { page } from "./page.js";

export interface GatewayOptions {
  loop: Loop;
  /** The ZeroMQ PUB socket to subscribe to, e.g. `zmq+tcp://127.0.0.1:5556`. */
  zmqPub?: string;
  /** A ZeroRPC publisher to subscribe to, and the names of the events to take. */
  zrpc?: ZrpcSource;
  /** Messages a subscription may hold for a browser that reads slowly. Default 256. */
  maxQueued?: number;
  /** Browser origins allowed (default: any). */
  origins?: string[];
}

export interface ZrpcSource {
  /** The publisher's endpoint, as zerorpc names it (`tcp://127.0.0.1:4244`) or as a tilth URL (`zrpc+tcp://…`, `zrpc+inproc://…`). */
  url: string;
  /** The events to forward (whole names); others are dropped unread. */
  events: string[];
  /** Bind the SUB socket and let publishers connect to it (default: connect to a publisher that bound). */
  bind?: boolean;
}

/** The topic prefix of ZeroRPC events. */
export const ZRPC_TOPIC = "zrpc:";

export interface Message {
  topic: string;
  text: string;
  /** Messages dropped for this subscriber just before this one (drop-oldest policy). */
  dropped: number;
}

interface Sub {
  prefix: string;
  queue: Message[];
  dropped: number;
  wake: (() => void) | undefined;
}

/** The gateway's state and API, with counters the tests read. */
export class Gateway {
  readonly topics = new Set<string>();
  readonly subs = new Set<Sub>();
  /** Subscriptions whose generator is running. */
  activeStreams = 0;
  received = 0;
  /** ZeroRPC events that could not be forwarded (undecodable), by the receiver's report. */
  zrpcErrors = 0;
  readonly #loop: Loop;
  readonly #maxQueued: number;

  constructor(loop: Loop, maxQueued = 256) {
    this.#loop = loop;
    this.#maxQueued = maxQueued;
  }

  /** One message from a source: ZeroMQ's [topic, payload], or a ZeroRPC event (see `zrpcApi`). */
  publish(topic: string, text: string): void {
    this.received++;
    this.topics.add(topic);
    for (const s of this.subs) {
      if (!topic.startsWith(s.prefix)) continue;
      if (s.queue.length >= this.#maxQueued) {
        s.queue.shift();
        s.dropped++;
      }
      s.queue.push({ topic, text, dropped: 0 });
      const w = s.wake;
      s.wake = undefined;
      w?.();
    }
  }

  /** A ZeroRPC Subscriber's API: one method per event name, each publishing `zrpc:name`. */
  zrpcApi(names: readonly string[]): Record<string, (...args: unknown[]) => void> {
    const api: Record<string, (...args: unknown[]) => void> = {};
    for (const name of names) api[name] = (...args: unknown[]) => this.publish(ZRPC_TOPIC + name, eventText(args));
    return api;
  }

  api(): object {
    // eslint-disable-next-line @typescript-eslint/no-this-alias
    const gw = this;
    return {
      topics: async (): Promise<string[]> => [...gw.topics].sort(),
      time: async (): Promise<number> => gw.#loop.wallTime(),
      // The call's signal ends the wait for the next message: a browser that cancels stops the generator at once.
      subscribe: contextual(async function* (ctx: CallContext, prefix: string): AsyncGenerator<Message> {
        const sub: Sub = { prefix: String(prefix ?? ""), queue: [], dropped: 0, wake: undefined };
        gw.subs.add(sub);
        gw.activeStreams++;
        const stop = (): void => sub.wake?.();
        ctx.signal.addEventListener("abort", stop, { once: true });
        try {
          while (!ctx.signal.aborted) {
            const m = sub.queue.shift();
            if (m === undefined) {
              await new Promise<void>((resolve) => (sub.wake = resolve));
              continue;
            }
            if (sub.dropped > 0) {
              m.dropped = sub.dropped;
              sub.dropped = 0;
            }
            yield m;
          }
        } finally {
          ctx.signal.removeEventListener("abort", stop);
          gw.subs.delete(sub);
          gw.activeStreams--;
        }
      }),
    };
  }
}

/** An event's arguments as text: one string as is, else JSON (bytes as their length, big integers as digits). */
function eventText(args: unknown[]): string {
  if (args.length === 1 && typeof args[0] === "string") return args[0];
  // `this[k]` is the value before toJSON (a Buffer's would list every byte).
  return JSON.stringify(args, function (this: Record<string, unknown>, k: string, v: unknown) {
    const raw = this[k];
    return typeof raw === "bigint" ? raw.toString() : raw instanceof Uint8Array ? `<${raw.byteLength} bytes>` : v;
  });
}

const here = dirname(fileURLToPath(import.meta.url));

/** The browser client, bundled once for the page (esbuild; in a real deployment, bundle at build time). */
let bundle: Promise<string> | undefined;
export function clientBundle(): Promise<string> {
  return (bundle ??= (async () => {
    const { build } = await import("esbuild");
    const entry = join(here, "..", "..", "rpc", "browser.js");
    const r = await build({ entryPoints: [entry], bundle: true, minify: true, format: "esm", platform: "browser", write: false, logLevel: "silent" });
    return r.outputFiles[0]!.text;
  })());
}

/** Serve the page and the client on `server` (GET / and /tilth-browser.js); other requests are left to `next`. */
export function pageHandler(rpcPath: string, next?: http.RequestListener): http.RequestListener {
  return (req, res) => {
    const path = (req.url ?? "/").split("?")[0];
    if (path === "/" || path === "/index.html") {
      res.writeHead(200, { "content-type": "text/html; charset=utf-8" }).end(page(rpcPath));
    } else if (path === "/tilth-browser.js") {
      clientBundle().then(
        (js) => res.writeHead(200, { "content-type": "text/javascript" }).end(js),
        (e: unknown) => res.writeHead(500).end(String(e)),
      );
    } else if (next) next(req, res);
    else res.writeHead(404).end();
  };
}

export interface RunningGateway {
  gateway: Gateway;
  url: string;
  rpc: RpcServer;
  stop(): Promise<void>;
}

/** Subscribe to the PUB socket and feed the gateway. */
async function subscribeZmq(loop: Loop, url: string, gw: Gateway): Promise<Connection> {
  const sub = await loop.connect(url, { socket: "sub" });
  sub.start({
    message: (m) => gw.publish(Buffer.from(m[0]!).toString(), m.length > 1 ? Buffer.from(m[1]!).toString() : ""),
    end() {},
  });
  return sub;
}

/** Subscribe to a ZeroRPC publisher's events and feed the gateway. */
async function subscribeZrpc(loop: Loop, source: ZrpcSource, gw: Gateway): Promise<ZrpcReceiver> {
  return await zrpcReceiver(loop, "sub", source.url, gw.zrpcApi(source.events), {
    subscribe: source.events,
    ...(source.bind ? { bind: true } : {}),
    onError: () => void gw.zrpcErrors++,
  });
}

/** Embed the gateway in an existing, listening http.Server: the RPC on `rpcPath`; pages are the caller's (`pageHandler`, or Express routes: see express.ts). */
export async function attachGateway(server: http.Server, rpcPath: string, options: GatewayOptions): Promise<RunningGateway> {
  const { loop } = options;
  if (options.zmqPub === undefined && options.zrpc === undefined) throw new RangeError("the gateway needs a source: zmqPub, zrpc, or both");
  const gw = new Gateway(loop, options.maxQueued);
  const a = server.address() as { port: number };
  const rpc = await serve(gw.api(), `drpc+ws://127.0.0.1:${a.port}${rpcPath}`, { loop, transport: { server, ...(options.origins ? { origins: options.origins } : {}) } });
  const sources: { close(): Promise<void> }[] = [];
  try {
    if (options.zmqPub !== undefined) sources.push(await subscribeZmq(loop, options.zmqPub, gw));
    if (options.zrpc !== undefined) sources.push(await subscribeZrpc(loop, options.zrpc, gw));
  } catch (e) {
    for (const s of sources) await s.close();
    await rpc.close({ graceMs: 0 });
    throw e;
  }
  return {
    gateway: gw,
    url: `http://127.0.0.1:${a.port}/`,
    rpc,
    async stop() {
      for (const s of sources) await s.close();
      await rpc.close({ graceMs: 0 });
    },
  };
}

/**
 * The gateway on a listening `server` that it now owns: its `stop()` closes
 * the server too (and the server is closed if the gateway cannot start).
 */
export async function attachOwned(server: http.Server, rpcPath: string, options: GatewayOptions): Promise<RunningGateway> {
  let running: RunningGateway;
  try {
    running = await attachGateway(server, rpcPath, options);
  } catch (e) {
    await new Promise<void>((r) => server.close(() => r()));
    throw e;
  }
  return {
    ...running,
    async stop() {
      await running.stop();
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

/** The gateway with an HTTP server of its own on `port` (0: any), serving the page too. */
export async function startGateway(port: number, options: GatewayOptions): Promise<RunningGateway> {
  const server = http.createServer(pageHandler("/rpc"));
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, "127.0.0.1", () => resolve());
  });
  return await attachOwned(server, "/rpc", options);
}

/** The page's source, for tools that serve it themselves. */
export async function pageSource(): Promise<string> {
  return await readFile(join(here, "page.js"), "utf8");
}
