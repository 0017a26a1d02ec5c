/**
 * `npm run bench -- zmq`: ZeroRPC echo calls per second, tilth's zrpc over
 * zmq+tcp beside, in the same run,
 *  - a raw zeromq.js DEALER/ROUTER echo with no framing of its own (the ceiling), and
 *  - the npm zerorpc 0.9.8 peer (client and server both), from test/interop/.
 * Server and client are separate processes. Scenarios: sequential (1 in
 * flight, 16 B, with p50/p99), pipelined (100 in flight, 16 B), 64 KiB (10 in
 * flight). `--pin` runs both processes of the sequential scenario on CPU 0.
 * Acceptance (issue 5): sequential ratio to raw zeromq >= 0.7, pipelined >= 0.5,
 * sequential at least 3x the npm zerorpc peer.
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import net from "node:net";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { type BenchResult, type Suite, formatRate, median, result } from "./lib.js";
import { echoRun, type EchoRun } from "./rpc.js";

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const interop = join(root, "test", "interop");
const peerScript = join(interop, "peer.cjs");

const hasTaskset = (): boolean => spawnSync("taskset", ["-c", "0", "true"]).status === 0;

async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

function launchPeer(args: string[], pin: boolean): ChildProcess {
  const cmd = pin ? "taskset" : process.execPath;
  const argv = pin ? ["-c", "0", process.execPath, peerScript, ...args] : [peerScript, ...args];
  return spawn(cmd, argv, { cwd: interop, stdio: ["ignore", "pipe", "inherit"] });
}

async function firstLine(p: ChildProcess): Promise<string> {
  let out = "";
  for await (const chunk of p.stdout!) {
    out += String(chunk);
    const i = out.indexOf("\n");
    if (i >= 0) return out.slice(0, i);
  }
  throw new Error(`peer exited without output (code ${p.exitCode})`);
}

async function peerRun(size: number, inflight: number, warmupMs: number, runMs: number, pin: boolean): Promise<EchoRun> {
  const endpoint = `tcp://127.0.0.1:${await freePort()}`;
  const server = launchPeer(["bench-server", endpoint], pin);
  try {
    if ((await firstLine(server)) !== "ready") throw new Error("npm zerorpc server did not start");
    const client = launchPeer(["bench-client", endpoint, String(size), String(inflight), String(warmupMs), String(runMs)], pin);
    const line = await firstLine(client);
    await new Promise<void>((r) => (client.exitCode !== null ? r() : client.once("exit", () => r())));
    return JSON.parse(line) as EchoRun;
  } finally {
    if (server.exitCode === null) {
      await new Promise<void>((r) => {
        server.once("exit", () => r());
        server.kill("SIGKILL");
      });
    }
  }
}

export const run: Suite = async ({ quick, pin, progress }) => {
  const repeats = quick ? 1 : 3;
  const warmupMs = quick ? 200 : 500;
  const runMs = quick ? 500 : 2000;
  const canPin = pin && hasTaskset();
  const peerReady = existsSync(join(interop, "node_modules", "zerorpc"));
  if (!peerReady) progress("npm zerorpc peer not installed (node scripts/setup-interop.mjs): its rows are left out");
  const scenarios = [
    { name: "sequential 16 B", size: 16, inflight: 1 },
    { name: "pipelined 100 x 16 B", size: 16, inflight: 100 },
    { name: "64 KiB x 10", size: 65536, inflight: 10 },
  ];
  const out: BenchResult[] = [];
  const rate = (x: EchoRun): number => (x.calls / x.ms) * 1000;
  for (const sc of scenarios) {
    const pinned = canPin && sc.inflight === 1;
    const tilth: EchoRun[] = [];
    const raw: EchoRun[] = [];
    const peer: EchoRun[] = [];
    for (let r = 0; r < repeats; r++) {
      progress(`zrpc+tcp ${sc.name}: run ${r + 1}/${repeats}, raw zeromq`);
      raw.push(await echoRun("zmq-raw", "tcp://127.0.0.1:0", sc.size, sc.inflight, warmupMs, runMs, pinned));
      progress(`zrpc+tcp ${sc.name}: run ${r + 1}/${repeats}, tilth`);
      tilth.push(await echoRun("zrpc", "zrpc+tcp://127.0.0.1:0", sc.size, sc.inflight, warmupMs, runMs, pinned));
      if (peerReady) {
        progress(`zrpc+tcp ${sc.name}: run ${r + 1}/${repeats}, npm zerorpc`);
        peer.push(await peerRun(sc.size, sc.inflight, warmupMs, runMs, pinned));
      }
    }
    const tr = tilth.map(rate);
    const extra = (base: EchoRun[]): Record<string, unknown> => {
      const e: Record<string, unknown> = {
        pinned,
        repeats,
        runMs,
        tilthSpread: [Math.min(...tr), Math.max(...tr)],
        baselineSpread: [Math.min(...base.map(rate)), Math.max(...base.map(rate))],
      };
      if (sc.inflight === 1) {
        e.p50us = median(tilth.map((x) => x.p50));
        e.p99us = median(tilth.map((x) => x.p99));
        e.baselineP50us = median(base.map((x) => x.p50));
        e.baselineP99us = median(base.map((x) => x.p99));
      }
      return e;
    };
    const a = result(`zrpc+tcp ${sc.name}`, "calls/s", median(tr), "raw zeromq.js DEALER/ROUTER", median(raw.map(rate)), extra(raw));
    out.push(a);
    progress(`zrpc+tcp ${sc.name}: ${formatRate(a.value)} vs raw ${formatRate(a.baselineValue)} (${a.ratio.toFixed(2)}x)`);
    if (peer.length) {
      const b = result(`zrpc+tcp ${sc.name} vs npm zerorpc`, "calls/s", median(tr), "npm zerorpc 0.9.8 (both sides)", median(peer.map(rate)), extra(peer));
      out.push(b);
      progress(`zrpc+tcp ${sc.name}: ${formatRate(b.value)} vs npm zerorpc ${formatRate(b.baselineValue)} (${b.ratio.toFixed(2)}x)`);
    }
  }
  return out;
};
