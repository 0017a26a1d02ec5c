/**
 * What `tilth bench` calls: one RPC client per connection, on a loop whose
 * connections count the bytes they carry (every frame of every message, both
 * ways), and the loopback rule that keeps a load test on this machine unless
 * asked otherwise.
 * @module
 */
import type { Loop } from "../../core/Loop.js";
import type { Connection, ConnectionHandler, ConnectOptions, Message } from "../../core/Transport.js";
import { TilthError } from "../../core/errors.js";
import { RpcClient, parseRpcUrl, type ClientOptions } from "../../rpc/index.js";
import type { BenchTarget, CallHandle } from "./load.js";

/** Byte counts shared by the connections of one target. */
interface Counts {
  sent: number;
  received: number;
}

const size = (msg: Message): number => {
  let n = 0;
  for (const f of msg) n += f.byteLength;
  return n;
};

/** A connection that counts the bytes of the messages it carries and is otherwise the one it wraps. */
class CountingConnection implements Connection {
  readonly #c: Connection;
  readonly #n: Counts;
  constructor(inner: Connection, counts: Counts) {
    this.#c = inner;
    this.#n = counts;
  }
  get scheme(): string {
    return this.#c.scheme;
  }
  get localUrl(): string {
    return this.#c.localUrl;
  }
  get remoteUrl(): string {
    return this.#c.remoteUrl;
  }
  get peerIdentity(): Connection["peerIdentity"] {
    return this.#c.peerIdentity;
  }
  get ended(): Connection["ended"] {
    return this.#c.ended;
  }
  get closed(): Connection["closed"] {
    return this.#c.closed;
  }
  get bufferedAmount(): number {
    return this.#c.bufferedAmount;
  }
  start(handler: ConnectionHandler): void {
    const n = this.#n;
    this.#c.start({
      message: (m) => {
        n.received += size(m);
        handler.message(m);
      },
      end: (e) => handler.end(e),
    });
  }
  async *messages(): AsyncIterable<Message> {
    for await (const m of this.#c.messages()) {
      this.#n.received += size(m);
      yield m;
    }
  }
  pause(): void {
    this.#c.pause();
  }
  resume(): void {
    this.#c.resume();
  }
  send(msg: Message, owned?: boolean): boolean {
    this.#n.sent += size(msg);
    return this.#c.send(msg, owned);
  }
  drain(): Promise<void> {
    return this.#c.drain();
  }
  close(): Promise<void> {
    return this.#c.close();
  }
  destroy(reason?: Error): void {
    this.#c.destroy(reason);
  }
  async [Symbol.asyncDispose](): Promise<void> {
    await this.#c[Symbol.asyncDispose]();
  }
}

/** `loop` as it is, except that its connections count their bytes into `counts`. */
function countingLoop(loop: Loop, counts: Counts): Loop {
  return {
    get name() {
      return loop.name;
    },
    now: () => loop.now(),
    wallTime: () => loop.wallTime(),
    random: () => loop.random(),
    post: (fn) => loop.post(fn),
    timer: (ms, fn) => loop.timer(ms, fn),
    cooperate: () => loop.cooperate(),
    get budget() {
      return loop.budget;
    },
    get pendingTimers() {
      return loop.pendingTimers;
    },
    get transports() {
      return loop.transports;
    },
    connect: async (url: string | URL, options?: ConnectOptions) => new CountingConnection(await loop.connect(url, options), counts),
    listen: (url, options) => loop.listen(url, options),
  };
}

/** The clients of a bench run, one per connection. */
export interface RpcTarget extends BenchTarget {
  readonly clients: readonly RpcClient[];
  /** Open every connection (a wrong address fails here, before the run). */
  open(): Promise<void>;
  close(): Promise<void>;
}

export interface TargetOptions extends Omit<ClientOptions, "loop"> {
  /** The method to call. */
  method: string;
  /** Connections (one client each). */
  connections: number;
  /** A call's time limit, ms. */
  timeout: number;
}

/** One RPC client per connection to `url`, calling `method`. */
export function rpcTarget(loop: Loop, url: string, options: TargetOptions): RpcTarget {
  const counts: Counts = { sent: 0, received: 0 };
  const counting = countingLoop(loop, counts);
  const { method, connections, timeout, ...clientOptions } = options;
  const clients = Array.from({ length: connections }, () => new RpcClient(url, { ...clientOptions, loop: counting, timeout }));
  return {
    clients,
    call: (conn: number, args: readonly unknown[]): CallHandle => clients[conn]!.call(method, args),
    bytes: () => ({ sent: counts.sent, received: counts.received }),
    open: async () => {
      await Promise.all(clients.map((c) => c.connect()));
    },
    close: async () => {
      await Promise.all(clients.map((c) => c.close()));
    },
  };
}

/** `tilth bench` refused a target: it is not on this machine and `--allow-remote` was not given. */
export class NotLoopbackError extends TilthError {
  constructor(url: string, host: string) {
    super(
      "ERR_BENCH_NOT_LOOPBACK",
      `refusing to load-test ${url}: ${host} is not a loopback address (127.0.0.0/8, ::1, localhost); a load test of another machine needs --allow-remote`,
      { context: { url, host } },
    );
  }
}

/** Whether `host` (as a URL writes it) is this machine's loopback. Names other than localhost are not resolved: they count as remote. */
export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, "").toLowerCase();
  if (h === "localhost" || h.endsWith(".localhost")) return true;
  if (/^127(\.\d{1,3}){3}$/.test(h)) return true;
  if (h === "::1" || h === "0:0:0:0:0:0:0:1") return true;
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(h);
  return mapped !== null && mapped[1]!.startsWith("127.");
}

/**
 * Throws NotLoopbackError unless `url` stays on this machine: a loopback
 * host, or a transport without a host (inproc, local, ipc, unix sockets).
 */
export function checkLoopback(url: string): void {
  const transport = parseRpcUrl(url).transport;
  let u: URL;
  try {
    u = new URL(transport);
  } catch {
    return; // not a URL with a host: the client refuses it with its own error
  }
  if (/^(inproc|local|ipc|unix|zmq\+ipc|zmq\+inproc):$/i.test(u.protocol) || u.hostname === "") return;
  const host = u.hostname;
  if (!isLoopbackHost(host)) throw new NotLoopbackError(url, host);
}
