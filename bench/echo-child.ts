/**
 * One side of an echo benchmark, run as its own process.
 *
 *   node echo-child.js server KIND URL            prints the bound URL, echoes until killed
 *   node echo-child.js client KIND URL SIZE INFLIGHT WARMUP_MS RUN_MS
 *                                                  prints one JSON line: {calls, ms, p50, p99, p999}
 *   node echo-child.js client KIND URL SIZE INFLIGHT WARMUP_MS 0
 *                                                  slices: warms up, prints {"ready":true}, then for
 *                                                  each `run MS` line on stdin sends for MS ms and
 *                                                  prints that slice's JSON line; idle in between;
 *                                                  `end` exits
 *
 * KIND is `net` (raw node:net, 4-byte length prefix, one write per message:
 * the plain baseline), `net-cork` (the same with writes batched by
 * cork/uncork per turn), `drpc` (a tilth RPC echo on the URL), `zrpc` (the
 * same, the URL saying zrpc+…), or `zmq-raw` (zeromq.js DEALER/ROUTER echo,
 * one frame per message, no framing of its own: the zmq baseline).
 * Every reply is checked: a wrong echo fails the run.
 */
import { Metrics } from "../app/Metrics.js";
import { rpcServerStats } from "../app/tasks/RpcServerTask.js";
import type { ServerStats } from "../rpc/stats.js";
import net from "node:net";
import { NodeLoop } from "../adapters/node.js";
import { registerTransports } from "../transports/index.js";
import { close, connect, serve, tracing, type Middleware } from "../rpc/index.js";
import { percentile } from "./lib.js";

const [role, kind, url, ...rest] = process.argv.slice(2);

/** Where a raw net socket goes: `tcp://host:port` or `ipc:///path`. */
function netAddress(u: string): { host: string; port: number } | { path: string } {
  const ipc = /^ipc:\/\/(\/.+)$/.exec(u);
  if (ipc) return { path: ipc[1]! };
  const m = /^[a-z+]*:\/\/\[?([^\]/]+?)\]?:(\d+)$/.exec(u);
  if (!m) throw new Error(`bad url ${u}`);
  return { host: m[1]!, port: Number(m[2]) };
}

// ---------------------------------------------------------------- raw net

/** Minimal length-prefix framing written plainly: the baseline. */
function frameReader(onMessage: (m: Buffer) => void): (chunk: Buffer) => void {
  let buf: Buffer = Buffer.alloc(0);
  return (chunk) => {
    buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
    while (buf.length >= 4) {
      const n = buf.readUInt32BE(0);
      if (buf.length < 4 + n) break;
      onMessage(buf.subarray(4, 4 + n));
      buf = buf.subarray(4 + n);
    }
  };
}

function frame(m: Buffer): Buffer {
  const out = Buffer.allocUnsafe(4 + m.length);
  out.writeUInt32BE(m.length, 0);
  m.copy(out, 4);
  return out;
}

function netServer(cork: boolean): void {
  const srv = net.createServer((sock) => {
    sock.setNoDelay(true);
    let corked = false;
    sock.on(
      "data",
      frameReader((m) => {
        if (cork && !corked) {
          corked = true;
          sock.cork();
          process.nextTick(() => {
            corked = false;
            sock.uncork();
          });
        }
        sock.write(frame(m));
      }),
    );
    sock.on("error", () => {});
  });
  const addr = netAddress(url!);
  const ready = (): void => {
    const a = srv.address();
    process.stdout.write(typeof a === "string" ? `ipc://${a}\n` : `tcp://${a!.address}:${a!.port}\n`);
  };
  if ("path" in addr) srv.listen(addr.path, ready);
  else srv.listen(addr.port, addr.host, ready);
}

function netClient(cork: boolean, size: number, inflight: number, warmupMs: number, runMs: number): void {
  const addr = netAddress(url!);
  const sock = "path" in addr ? net.connect(addr.path) : net.connect(addr.port, addr.host);
  sock.setNoDelay(true);
  const payload = Buffer.alloc(size, 7);
  let seq = 0;
  const sentAt: bigint[] = [];
  let corked = false;
  const send = (): void => {
    const p = Buffer.from(payload);
    p.writeUInt32BE(seq++ >>> 0, 0);
    if (cork && !corked) {
      corked = true;
      sock.cork();
      process.nextTick(() => {
        corked = false;
        sock.uncork();
      });
    }
    if (inflight === 1) sentAt[0] = process.hrtime.bigint();
    sock.write(frame(p));
  };
  let expect = 0;
  const pacer = new Pacer(() => {
    sock.destroy();
    process.exit(0);
  });
  sock.on(
    "data",
    frameReader((m) => {
      if (m.length !== size || m.readUInt32BE(0) !== expect >>> 0) throw new Error("wrong echo");
      expect++;
      pacer.done(inflight === 1 ? sentAt[0]! : 0n);
      pacer.next(send);
    }),
  );
  sock.on("connect", () => {
    for (let i = 0; i < inflight; i++) send();
    pacer.begin(warmupMs, runMs);
  });
}

// ---------------------------------------------------------------- drpc

/**
 * TILTH_BENCH_TRACING=1: `tracing()` on server and client, with the
 * OpenTelemetry SDK recording every span (a batch processor whose exporter
 * drops them), as an app that traces would run. Otherwise no middleware.
 */
async function middleware(): Promise<Middleware[]> {
  if (process.env.TILTH_BENCH_TRACING !== "1") return [];
  const { context, trace } = await import("@opentelemetry/api");
  const { AsyncLocalStorageContextManager } = await import("@opentelemetry/context-async-hooks");
  const { BasicTracerProvider, BatchSpanProcessor } = await import("@opentelemetry/sdk-trace-base");
  const drop = { export: (_s: unknown[], done: (r: { code: number }) => void) => done({ code: 0 }), shutdown: () => Promise.resolve() };
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  trace.setGlobalTracerProvider(new BasicTracerProvider({ spanProcessors: [new BatchSpanProcessor(drop)] }));
  return [tracing({ required: true })];
}

/** Servers record every call, as an RpcServerTask does by default; TILTH_BENCH_STATS=0 turns it off. */
function stats(): { stats?: ServerStats } {
  return process.env.TILTH_BENCH_STATS === "0" ? {} : { stats: rpcServerStats(new Metrics(), "bench") };
}

async function drpcServer(): Promise<void> {
  const loop = registerTransports(new NodeLoop());
  const server = await serve({ echo: (x: Uint8Array) => x }, url!, { loop, middleware: await middleware(), ...stats() });
  process.stdout.write(`${server.urls[0]}\n`);
}

async function drpcClient(size: number, inflight: number, warmupMs: number, runMs: number): Promise<void> {
  const loop = registerTransports(new NodeLoop());
  // inproc lives in one loop: serve in this process too.
  const mw = await middleware();
  const server = url!.startsWith("drpc+inproc:") ? await serve({ echo: (x: Uint8Array) => x }, url!, { loop, middleware: mw, ...stats() }) : undefined;
  const api = await connect<{ echo(x: Uint8Array): Uint8Array }>(url!, { loop, middleware: mw });
  const payload = new Uint8Array(size).fill(7);
  let stopped!: () => void;
  const finished = new Promise<void>((r) => (stopped = r));
  const pacer = new Pacer(stopped);
  const worker = async (w: number): Promise<void> => {
    const p = new Uint8Array(payload);
    const view = new DataView(p.buffer);
    for (let i = 0; ; i++) {
      if (!pacer.sending) {
        await pacer.resumed();
        if (pacer.stopped) return;
      }
      view.setUint32(0, (w * 1_000_003 + i) >>> 0);
      const t = inflight === 1 ? process.hrtime.bigint() : 0n;
      const r = await api.echo(p);
      if (r.length !== size || new DataView(r.buffer, r.byteOffset, r.byteLength).getUint32(0) !== (w * 1_000_003 + i) >>> 0) throw new Error("wrong echo");
      pacer.done(t);
    }
  };
  const workers = Array.from({ length: inflight }, (_, w) => worker(w));
  pacer.begin(warmupMs, runMs);
  await finished;
  await Promise.all(workers);
  await close(api);
  await server?.close();
  process.exit(0);
}

// ---------------------------------------------------------------- shared

/**
 * When a client sends and what it counts. A timed run (RUN_MS > 0) warms up,
 * measures RUN_MS, prints one line and stops. Slices (RUN_MS = 0) warm up,
 * then send only while a slice asked for on stdin runs, one line per slice:
 * the parent alternates two systems' slices, so both meet the same moments of
 * a machine whose speed drifts.
 */
class Pacer {
  /** Calls may be issued. */
  sending = true;
  /** No more calls, ever. */
  stopped = false;
  #measuring = false;
  #calls = 0;
  #lat: number[] = [];
  #t0 = 0n;
  #parked: (() => void)[] = [];
  readonly #onStop: () => void;

  constructor(onStop: () => void) {
    this.#onStop = onStop;
  }

  begin(warmupMs: number, runMs: number): void {
    setTimeout(() => {
      if (runMs > 0) {
        this.#start();
        setTimeout(() => {
          this.#report();
          this.#stop();
        }, runMs);
        return;
      }
      this.sending = false;
      process.stdout.write('{"ready":true}\n');
      let buf = "";
      process.stdin.on("data", (d) => {
        buf += String(d);
        for (let i = buf.indexOf("\n"); i >= 0; i = buf.indexOf("\n")) {
          const cmd = buf.slice(0, i).trim().split(" ");
          buf = buf.slice(i + 1);
          if (cmd[0] === "run") this.#slice(Number(cmd[1]));
          else if (cmd[0] === "end") this.#stop();
        }
      });
      // The parent is gone: so are we.
      process.stdin.on("end", () => this.#stop());
    }, warmupMs);
  }

  /** One call answered; `sentAt` is its send time (sequential runs, for latency). */
  done(sentAt: bigint): void {
    if (!this.#measuring) return;
    this.#calls++;
    if (sentAt !== 0n) this.#lat.push(Number(process.hrtime.bigint() - sentAt) / 1e3);
  }

  /** Issue the next call now, or once sending resumes. */
  next(send: () => void): void {
    if (this.sending) send();
    else if (!this.stopped) this.#parked.push(send);
  }

  /** Resolves once sending resumes (or stops for good). */
  resumed(): Promise<void> {
    return new Promise<void>((r) => (this.stopped ? r() : this.next(r)));
  }

  /** Let every parked call go (a slice starts, or the client stops). */
  #release(): void {
    const parked = this.#parked;
    this.#parked = [];
    for (const f of parked) f();
  }

  #start(): void {
    this.#calls = 0;
    this.#lat = [];
    this.#measuring = true;
    this.#t0 = process.hrtime.bigint();
  }

  #slice(ms: number): void {
    this.#start();
    this.sending = true;
    this.#release();
    setTimeout(() => {
      this.sending = false;
      this.#report();
    }, ms);
  }

  #report(): void {
    this.#measuring = false;
    const ms = Number(process.hrtime.bigint() - this.#t0) / 1e6;
    const lat = this.#lat;
    process.stdout.write(JSON.stringify({ calls: this.#calls, ms, p50: percentile(lat, 50), p99: percentile(lat, 99), p999: percentile(lat, 99.9) }) + "\n");
  }

  #stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    this.sending = false;
    this.#release();
    this.#onStop();
  }
}

// ---------------------------------------------------------------- raw zeromq

async function zmqRawServer(): Promise<void> {
  const zmq = await import("zeromq");
  const sock = new zmq.Router();
  await sock.bind(url!.replace(/:0$/, ":*"));
  process.stdout.write(`${sock.lastEndpoint}\n`);
  for await (const msg of sock) await sock.send(msg);
}

async function zmqRawClient(size: number, inflight: number, warmupMs: number, runMs: number): Promise<void> {
  const zmq = await import("zeromq");
  const sock = new zmq.Dealer();
  sock.connect(url!);
  const payload = Buffer.alloc(size, 7);
  let seq = 0;
  let expect = 0;
  let sentAt = 0n;
  const next = (): Buffer => {
    const p = Buffer.from(payload);
    p.writeUInt32BE(seq++ >>> 0, 0);
    if (inflight === 1) sentAt = process.hrtime.bigint();
    return p;
  };
  // A receive pending on a closed socket never settles: exit at once.
  const pacer = new Pacer(() => {
    sock.close();
    process.exit(0);
  });
  pacer.begin(warmupMs, runMs);
  for (let i = 0; i < inflight; i++) await sock.send(next());
  try {
    for await (const [m] of sock) {
      if (m!.length !== size || m!.readUInt32BE(0) !== expect >>> 0) throw new Error("wrong echo");
      expect++;
      pacer.done(inflight === 1 ? sentAt : 0n);
      if (!pacer.sending) await pacer.resumed();
      if (pacer.stopped) break;
      await sock.send(next());
    }
  } catch (e) {
    if (!pacer.stopped) throw e;
  }
  process.exit(0);
}

const [size, inflight, warmupMs, runMs] = rest.map(Number) as [number, number, number, number];
if (role === "server") {
  process.on("SIGTERM", () => process.exit(0)); // a clean exit (lets --cpu-prof write its profile)
  if (kind === "net" || kind === "net-cork") netServer(kind === "net-cork");
  else if (kind === "drpc" || kind === "zrpc") await drpcServer();
  else if (kind === "zmq-raw") await zmqRawServer();
  else throw new Error(`unknown kind ${kind}`);
} else if (role === "client") {
  if (kind === "net" || kind === "net-cork") netClient(kind === "net-cork", size, inflight, warmupMs, runMs);
  else if (kind === "drpc" || kind === "zrpc") await drpcClient(size, inflight, warmupMs, runMs);
  else if (kind === "zmq-raw") await zmqRawClient(size, inflight, warmupMs, runMs);
  else throw new Error(`unknown kind ${kind}`);
} else {
  console.error("usage: echo-child.js server|client KIND URL [SIZE INFLIGHT WARMUP_MS RUN_MS]");
  process.exit(2);
}
