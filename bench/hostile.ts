/**
 * What hostile clients cost a drpc server, measured on a server child process:
 *
 *   node dist/bench/hostile.js [--connections N]
 *
 * - 40 connections that each announce a 64 MiB frame, send 64 kB of it and
 *   then nothing: the server's RSS and buffer memory above idle, and how long
 *   until the handshake rule has closed them all;
 * - N connections (default 2000) that never send HELLO: how long until all
 *   are closed;
 * - 10 clients that pipeline 1000 calls of 100 kB results each and never read:
 *   the server's RSS above idle.
 *
 * Prints one line per figure and a JSON summary. Every socket is closed and
 * the child is stopped at the end.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import net from "node:net";
import { fileURLToPath } from "node:url";
import { T, encode } from "../rpc/drpc/codec.js";
import { NodeLoop } from "../adapters/node.js";
import { registerTransports } from "../transports/index.js";
import { RpcClient } from "../rpc/Client.js";
import "../rpc/index.js";

const here = fileURLToPath(new URL(".", import.meta.url));
const arg = (name: string, dflt: number): number => {
  const i = process.argv.indexOf(name);
  return i < 0 ? dflt : Number(process.argv[i + 1]);
};

function rssMiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return m ? Number(m[1]) / 1024 : NaN;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function startServer(): Promise<{ child: ChildProcess; port: number }> {
  const child = spawn(process.execPath, [`${here}echo-child.js`, "server", "drpc", "drpc+tcp://127.0.0.1:0"], { stdio: ["ignore", "pipe", "inherit"] });
  const line = await new Promise<string>((resolve, reject) => {
    child.stdout!.once("data", (d: Buffer) => resolve(d.toString().trim()));
    child.once("exit", (c) => reject(new Error(`server exited (${c})`)));
  });
  return { child, port: Number(/:(\d+)$/.exec(line)![1]) };
}

function header(n: number): Buffer {
  const h = Buffer.alloc(4);
  h.writeUInt32BE(n);
  return h;
}

function frame(b: Uint8Array): Buffer {
  return Buffer.concat([header(b.length), b]);
}

/** Open `n` sockets, run `first` on each once connected; resolves with them and a promise of all closed. */
async function openMany(port: number, n: number, first: (s: net.Socket) => void): Promise<{ sockets: net.Socket[]; allClosed: Promise<number> }> {
  const sockets: net.Socket[] = [];
  const closed: Promise<void>[] = [];
  for (let i = 0; i < n; i++) {
    const s = net.connect(port, "127.0.0.1");
    s.on("error", () => {});
    s.on("data", () => {});
    sockets.push(s);
    closed.push(new Promise((r) => s.once("close", () => r())));
    await new Promise<void>((r) => s.once("connect", () => r()));
    first(s);
  }
  const t0 = performance.now();
  return { sockets, allClosed: Promise.all(closed).then(() => performance.now() - t0) };
}

/** The server's ArrayBuffer memory (V8's external), MiB, from its `.debug.status`. */
async function externalMiB(port: number): Promise<number> {
  const c = new RpcClient(`drpc+tcp://127.0.0.1:${port}`, { loop: registerTransports(new NodeLoop()) });
  try {
    const st = await c.call<{ memory: { external: number } }>(".debug.status");
    return st.memory.external / (1024 * 1024);
  } finally {
    await c.close();
  }
}

async function main(): Promise<void> {
  const { child, port } = await startServer();
  const pid = child.pid!;
  const out: Record<string, number> = {};
  const timeout = <T>(p: Promise<T>, ms: number): Promise<T | undefined> => Promise.race([p, sleep(ms).then(() => undefined)]);
  try {
    await sleep(1000);
    const idle = (out.idleRssMiB = rssMiB(pid));
    const idleExt = await externalMiB(port);
    console.log(`idle server: ${idle.toFixed(1)} MiB RSS, ${idleExt.toFixed(1)} MiB of buffers`);

    // A header announcing 64 MiB and 64 kB of it, then nothing.
    const a = await openMany(port, 40, (s) => s.write(Buffer.concat([header(64 * 1024 * 1024 - 16), Buffer.alloc(65_536, 1)])));
    await sleep(1000);
    out.announce40RssAboveIdleMiB = rssMiB(pid) - idle;
    out.announce40BuffersAboveIdleMiB = (await externalMiB(port)) - idleExt;
    console.log(`40 connections announcing a 64 MiB frame, sending 64 kB of it, then silent: ${out.announce40RssAboveIdleMiB.toFixed(1)} MiB RSS above idle, ${out.announce40BuffersAboveIdleMiB.toFixed(1)} MiB of buffers allocated`);
    const ta = await timeout(a.allClosed, 30_000);
    out.announce40ClosedAfterMs = ta ?? -1;
    console.log(ta === undefined ? "  not all closed within 30 s" : `  all closed by the server ${(ta / 1000).toFixed(2)} s after the last opened`);
    for (const s of a.sockets) s.destroy();

    const n = arg("--connections", 2000);
    const b = await openMany(port, n, () => {});
    const tb = await timeout(b.allClosed, 60_000);
    out.noHelloClosedAfterMs = tb ?? -1;
    out.noHelloConnections = n;
    console.log(tb === undefined ? `${n} connections without HELLO: not all closed within 60 s` : `${n} connections without HELLO: all closed ${(tb / 1000).toFixed(2)} s after the last opened`);
    for (const s of b.sockets) s.destroy();
    await sleep(500);

    const idle2 = rssMiB(pid);
    const hello = frame(encode([T.HELLO, "drpc", 1, { heartbeatMs: 5000, maxMessageSize: 64 << 20 }]));
    const payload = new Uint8Array(100_000);
    const calls = Buffer.concat(Array.from({ length: 1000 }, (_, i) => frame(encode([T.CALL, i + 1, "echo", [payload], null, null, 0]))));
    const c = await openMany(port, 10, (s) => {
      s.pause();
      s.removeAllListeners("data");
      s.write(hello);
      s.write(calls);
    });
    await sleep(3000);
    out.nonReaders10RssAboveIdleMiB = rssMiB(pid) - idle2;
    out.nonReaders10BuffersAboveIdleMiB = (await externalMiB(port)) - idleExt;
    console.log(`10 clients pipelining 1000 calls of 100 kB and reading nothing: ${out.nonReaders10RssAboveIdleMiB.toFixed(1)} MiB RSS above idle, ${out.nonReaders10BuffersAboveIdleMiB.toFixed(1)} MiB of buffers`);
    for (const s of c.sockets) s.destroy();
    await c.allClosed;
  } finally {
    child.kill("SIGKILL");
  }
  console.log(JSON.stringify(out));
}

await main();
