/**
 * One side of an echo benchmark, run as its own process.
 *
 *   node echo-child.js server KIND URL            prints the bound URL, echoes until killed
 *   node echo-child.js client KIND URL SIZE INFLIGHT WARMUP_MS RUN_MS
 *                                                  prints one JSON line: {calls, ms, p50, p99, p999}
 *
 * KIND is `net` (raw node:net, 4-byte length prefix, one write per message:
 * the plain baseline), `net-cork` (the same with writes batched by
 * cork/uncork per turn), `drpc` (a tilth RPC echo on the URL), `zrpc` (the
 * same, the URL saying zrpc+…), or `zmq-raw` (zeromq.js DEALER/ROUTER echo,
 * one frame per message, no framing of its own: the zmq baseline).
 * Every reply is checked: a wrong echo fails the run.
 */
import net from "node:net";
import { NodeLoop } from "../adapters/node.js";
import { registerTransports } from "../transports/index.js";
import { close, connect, serve } from "../rpc/index.js";

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
  const lat: number[] = [];
  let calls = 0;
  let measuring = false;
  let t0 = 0n;
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
  sock.on(
    "data",
    frameReader((m) => {
      if (m.length !== size || m.readUInt32BE(0) !== expect >>> 0) throw new Error("wrong echo");
      expect++;
      if (measuring) {
        calls++;
        if (inflight === 1) lat.push(Number(process.hrtime.bigint() - sentAt[0]!) / 1e3);
      }
      send();
    }),
  );
  sock.on("connect", () => {
    for (let i = 0; i < inflight; i++) send();
    timers(warmupMs, runMs, () => {
      measuring = true;
      t0 = process.hrtime.bigint();
    }, () => {
      measuring = false;
      const ms = Number(process.hrtime.bigint() - t0) / 1e6;
      report(calls, ms, lat);
      sock.destroy();
      process.exit(0);
    });
  });
}

// ---------------------------------------------------------------- drpc

async function drpcServer(): Promise<void> {
  const loop = registerTransports(new NodeLoop());
  const server = await serve({ echo: (x: Uint8Array) => x }, url!, { loop });
  process.stdout.write(`${server.urls[0]}\n`);
}

async function drpcClient(size: number, inflight: number, warmupMs: number, runMs: number): Promise<void> {
  const loop = registerTransports(new NodeLoop());
  // inproc lives in one loop: serve in this process too.
  const server = url!.startsWith("drpc+inproc:") ? await serve({ echo: (x: Uint8Array) => x }, url!, { loop }) : undefined;
  const api = await connect<{ echo(x: Uint8Array): Uint8Array }>(url!, { loop });
  const payload = new Uint8Array(size).fill(7);
  let measuring = false;
  let running = true;
  let calls = 0;
  const lat: number[] = [];
  let t0 = 0n;
  const worker = async (w: number): Promise<void> => {
    const p = new Uint8Array(payload);
    const view = new DataView(p.buffer);
    for (let i = 0; running; i++) {
      view.setUint32(0, (w * 1_000_003 + i) >>> 0);
      const t = inflight === 1 ? process.hrtime.bigint() : 0n;
      const r = await api.echo(p);
      if (r.length !== size || new DataView(r.buffer, r.byteOffset, r.byteLength).getUint32(0) !== (w * 1_000_003 + i) >>> 0) throw new Error("wrong echo");
      if (measuring) {
        calls++;
        if (inflight === 1) lat.push(Number(process.hrtime.bigint() - t) / 1e3);
      }
    }
  };
  const workers = Array.from({ length: inflight }, (_, w) => worker(w));
  await new Promise<void>((resolve) =>
    timers(warmupMs, runMs, () => {
      measuring = true;
      t0 = process.hrtime.bigint();
    }, () => {
      measuring = false;
      report(calls, Number(process.hrtime.bigint() - t0) / 1e6, lat);
      running = false;
      resolve();
    }),
  );
  await Promise.all(workers);
  await close(api);
  await server?.close();
}

// ---------------------------------------------------------------- shared

function timers(warmupMs: number, runMs: number, start: () => void, stop: () => void): void {
  setTimeout(() => {
    start();
    setTimeout(stop, runMs);
  }, warmupMs);
}

function pct(xs: number[], p: number): number {
  if (!xs.length) return NaN;
  const s = Float64Array.from(xs).sort();
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!;
}

let reported = false;
function report(calls: number, ms: number, lat: number[]): void {
  if (reported) return;
  reported = true;
  process.stdout.write(JSON.stringify({ calls, ms, p50: pct(lat, 50), p99: pct(lat, 99), p999: pct(lat, 99.9) }) + "\n");
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
  let calls = 0;
  let measuring = false;
  let running = true;
  let t0 = 0n;
  let sentAt = 0n;
  const lat: number[] = [];
  const next = (): Buffer => {
    const p = Buffer.from(payload);
    p.writeUInt32BE(seq++ >>> 0, 0);
    if (inflight === 1) sentAt = process.hrtime.bigint();
    return p;
  };
  timers(warmupMs, runMs, () => {
    measuring = true;
    t0 = process.hrtime.bigint();
  }, () => {
    measuring = false;
    running = false;
    report(calls, Number(process.hrtime.bigint() - t0) / 1e6, lat);
    sock.close();
  });
  for (let i = 0; i < inflight; i++) await sock.send(next());
  for await (const [m] of sock) {
    if (m!.length !== size || m!.readUInt32BE(0) !== expect >>> 0) throw new Error("wrong echo");
    expect++;
    if (measuring) {
      calls++;
      if (inflight === 1) lat.push(Number(process.hrtime.bigint() - sentAt) / 1e3);
    }
    if (!running) break;
    await sock.send(next());
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
