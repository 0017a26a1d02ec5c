/**
 * One side of the transports echo benchmark, run as its own process.
 *
 *   node echo.js server KIND URL
 *       listens, prints the bound URL on one line, echoes until killed
 *   node echo.js client KIND URL SIZE INFLIGHT WARMUP_MS RUN_MS
 *       keeps INFLIGHT messages of SIZE bytes in flight, measures for RUN_MS
 *       after WARMUP_MS, prints one JSON line {calls, ms, p50, p99} (µs)
 *
 * KIND `raw` is the baseline: plain node:net with a minimal 4-byte length
 * prefix, one `write` per message, written as plainly as possible. KIND
 * `tilth` is a tilth message connection on the URL (tcp, ipc, tls, inproc;
 * inproc serves inside the client process, as it must). On the wire a
 * one-frame tilth message is byte-for-byte the raw baseline's framing.
 * Every echo is checked (length and sequence number): a wrong one fails the run.
 */
import { readFileSync } from "node:fs";
import net from "node:net";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { NodeLoop } from "../../adapters/node.js";
import type { Connection, Message } from "../../core/Transport.js";
import { registerTransports } from "../../transports/index.js";

const here = dirname(fileURLToPath(import.meta.url));
const fixtures = join(here, "..", "..", "..", "test", "fixtures", "tls");
const tlsServerOptions = (): { key: Buffer; cert: Buffer } => ({
  key: readFileSync(join(fixtures, "key.pem")),
  cert: readFileSync(join(fixtures, "cert.pem")),
});
const tlsClientOptions = (): { ca: Buffer } => ({ ca: readFileSync(join(fixtures, "cert.pem")) });

const [role, kind, url, ...rest] = process.argv.slice(2);
const [size, inflight, warmupMs, runMs] = rest.map(Number) as [number, number, number, number];

function netAddress(u: string): { host: string; port: number } | { path: string } {
  const parsed = new URL(u);
  if (parsed.protocol === "ipc:") return { path: decodeURIComponent(parsed.host + parsed.pathname) };
  return { host: parsed.hostname.replace(/^\[|\]$/g, ""), port: Number(parsed.port) };
}

// ------------------------------------------------------------ raw baseline

/** Minimal length-prefix framing, written plainly. */
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

function rawServer(): void {
  const srv = net.createServer((sock) => {
    sock.setNoDelay(true);
    sock.on("data", frameReader((m) => sock.write(frame(m))));
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

function rawClient(): void {
  const addr = netAddress(url!);
  const sock = "path" in addr ? net.connect(addr.path) : net.connect(addr.port, addr.host);
  sock.setNoDelay(true);
  const m = meter();
  const payload = Buffer.alloc(size, 7);
  let seq = 0;
  const send = (): void => {
    const p = Buffer.from(payload);
    p.writeUInt32BE(seq++ >>> 0, 0);
    m.sent();
    sock.write(frame(p));
  };
  let expect = 0;
  sock.on(
    "data",
    frameReader((echo) => {
      if (echo.length !== size || echo.readUInt32BE(0) !== expect >>> 0) fail("wrong echo");
      expect++;
      m.received();
      send();
    }),
  );
  sock.on("connect", () => {
    for (let i = 0; i < inflight; i++) send();
    m.run(() => {
      sock.destroy();
      process.exit(0);
    });
  });
}

// ------------------------------------------------------------------ tilth

function echoOn(conn: Connection): void {
  conn.start({
    message: (msg) => {
      conn.send(msg);
    },
    end: () => {},
  });
}

async function tilthServer(): Promise<void> {
  const loop = registerTransports(new NodeLoop());
  const listener = await loop.listen(url!, url!.startsWith("tls:") ? tlsServerOptions() : {});
  listener.start(echoOn);
  process.stdout.write(`${listener.url}\n`);
}

async function tilthClient(): Promise<void> {
  const loop = registerTransports(new NodeLoop());
  if (url!.startsWith("inproc:")) (await loop.listen(url!)).start(echoOn);
  const conn = await loop.connect(url!, url!.startsWith("tls:") ? tlsClientOptions() : {});
  const m = meter();
  const payload = Buffer.alloc(size, 7);
  let seq = 0;
  const send = (): void => {
    const p = Buffer.from(payload);
    p.writeUInt32BE(seq++ >>> 0, 0);
    m.sent();
    conn.send([p]);
  };
  let expect = 0;
  conn.start({
    message: (msg: Message) => {
      const f = msg[0]!;
      if (msg.length !== 1 || f.byteLength !== size || ((f[0]! << 24) | (f[1]! << 16) | (f[2]! << 8) | f[3]!) >>> 0 !== expect >>> 0) {
        fail("wrong echo");
      }
      expect++;
      m.received();
      send();
    },
    end: (e) => {
      if (e.error) fail(`connection ended: ${e.error.message}`);
    },
  });
  for (let i = 0; i < inflight; i++) send();
  m.run(() => {
    conn.destroy();
    process.exit(0);
  });
}

// ----------------------------------------------------------------- shared

/** Counts echoes in the measured window; sequential runs also record latency. */
function meter(): { sent(): void; received(): void; run(done: () => void): void } {
  let measuring = false;
  let calls = 0;
  let t0 = 0n;
  let sentAt = 0n;
  const lat: number[] = [];
  const single = inflight === 1;
  return {
    sent() {
      if (single) sentAt = process.hrtime.bigint();
    },
    received() {
      if (!measuring) return;
      calls++;
      if (single) lat.push(Number(process.hrtime.bigint() - sentAt) / 1e3);
    },
    run(done) {
      setTimeout(() => {
        measuring = true;
        t0 = process.hrtime.bigint();
        setTimeout(() => {
          measuring = false;
          const ms = Number(process.hrtime.bigint() - t0) / 1e6;
          lat.sort((a, b) => a - b);
          const pct = (p: number): number => (lat.length ? lat[Math.min(lat.length - 1, Math.ceil((p / 100) * lat.length) - 1)]! : NaN);
          process.stdout.write(JSON.stringify({ calls, ms, p50: pct(50), p99: pct(99) }) + "\n", done);
        }, runMs);
      }, warmupMs);
    },
  };
}

function fail(why: string): never {
  process.stderr.write(`echo ${role} ${kind}: ${why}\n`);
  process.exit(1);
}

if (role === "server") {
  process.on("SIGTERM", () => process.exit(0));
  if (kind === "raw") rawServer();
  else if (kind === "tilth") await tilthServer();
  else fail(`unknown kind ${kind}`);
} else if (role === "client") {
  if (kind === "raw") rawClient();
  else if (kind === "tilth") await tilthClient();
  else fail(`unknown kind ${kind}`);
} else {
  fail("usage: echo.js server|client raw|tilth URL [SIZE INFLIGHT WARMUP_MS RUN_MS]");
}
