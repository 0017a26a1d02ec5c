/**
 * `npm run bench -- transports [--quick] [--pin] [--json FILE]`
 *
 * Echo round trips per second over each tilth transport (tcp, ipc, tls,
 * inproc), sequential (1 in flight) and pipelined (100 in flight), with 16 B
 * and 64 KiB messages. The baseline, measured in the same run and interleaved
 * with the tilth runs, is a raw node:net echo with a minimal length prefix
 * written plainly (one `write` per message): over tcp for the tcp, tls and
 * inproc rows, over a unix socket for the ipc rows.
 *
 * Client and server are separate processes, started fresh for each run
 * (inproc: one process, as it must be). `--pin` runs both under `taskset -c 0`:
 * cross-CPU wake-ups make unpinned sequential figures swing widely on small
 * machines. Each figure is the median of the runs; `extra` has every run,
 * the spread, sequential latency percentiles and whether runs were pinned.
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { type BenchResult, type Suite, formatRate, median, result } from "./lib.js";
import { udpRows } from "./udp.js";

const childScript = fileURLToPath(new URL("./transports/echo.js", import.meta.url));

export interface EchoRun {
  calls: number;
  ms: number;
  p50: number;
  p99: number;
}

function launch(args: string[], pin: boolean, script = childScript): ChildProcess {
  const cmd = pin ? "taskset" : process.execPath;
  const argv = pin ? ["-c", "0", process.execPath, script, ...args] : [script, ...args];
  return spawn(cmd, argv, { stdio: ["ignore", "pipe", "inherit"] });
}

async function firstLine(p: ChildProcess): Promise<string> {
  let out = "";
  for await (const chunk of p.stdout!) {
    out += String(chunk);
    const i = out.indexOf("\n");
    if (i >= 0) return out.slice(0, i);
  }
  throw new Error(`bench child exited without output (exit ${p.exitCode})`);
}

function exited(p: ChildProcess): Promise<void> {
  if (p.exitCode !== null || p.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => p.once("exit", () => resolve()));
}

async function kill(p: ChildProcess): Promise<void> {
  const done = exited(p);
  if (p.exitCode === null && p.signalCode === null) p.kill("SIGKILL");
  await done;
}

export interface Timing {
  warmupMs: number;
  runMs: number;
  pin: boolean;
}

/** One run: a server process (except inproc), then a client process that measures. */
export async function echoRun(kind: "raw" | "tilth", url: string, size: number, inflight: number, t: Timing, script = childScript, more: string[] = []): Promise<EchoRun> {
  let server: ChildProcess | undefined;
  try {
    let target = url;
    if (!url.startsWith("inproc:")) {
      server = launch(["server", kind, url], t.pin, script);
      target = await firstLine(server);
    }
    const client = launch(["client", kind, target, String(size), String(inflight), String(t.warmupMs), String(t.runMs), ...more], t.pin, script);
    const line = await firstLine(client);
    await exited(client);
    if (client.exitCode !== 0) throw new Error(`${kind} client on ${url} failed (exit ${client.exitCode})`);
    const r = JSON.parse(line) as EchoRun;
    if (!(r.calls > 0)) throw new Error(`${kind} client on ${url} made no round trip`);
    return r;
  } finally {
    if (server) await kill(server);
  }
}

export const rate = (r: EchoRun): number => (r.calls / r.ms) * 1000;
export const round = (x: number, digits = 1): number => Math.round(x * 10 ** digits) / 10 ** digits;

export const run: Suite = async ({ quick, pin, progress }) => {
  const canPin = pin && spawnSync("taskset", ["-c", "0", "true"]).status === 0;
  if (pin && !canPin) progress("taskset unavailable: running unpinned");
  const timing: Timing = quick ? { warmupMs: 60, runMs: 200, pin: canPin } : { warmupMs: 300, runMs: 1500, pin: canPin };
  const repeats = quick ? 1 : 3;
  const dir = mkdtempSync(join(tmpdir(), "tilth-bench-tr-"));
  let n = 0;
  const ipcUrl = (): string => `ipc://${join(dir, `e${n++}.sock`)}`;
  const transports = [
    { name: "tcp", url: () => "tcp://127.0.0.1:0", baseline: "tcp" },
    { name: "ipc", url: ipcUrl, baseline: "ipc" },
    { name: "tls", url: () => "tls://127.0.0.1:0", baseline: "tcp" },
    { name: "inproc", url: () => `inproc://echo-${n++}`, baseline: "tcp" },
  ] as const;
  const baselines = { tcp: () => "tcp://127.0.0.1:0", ipc: ipcUrl };
  const shapes = [
    { label: "sequential 16 B", size: 16, inflight: 1 },
    { label: "pipelined x100 16 B", size: 16, inflight: 100 },
    { label: "sequential 64 KiB", size: 64 * 1024, inflight: 1 },
    { label: "pipelined x100 64 KiB", size: 64 * 1024, inflight: 100 },
  ];
  const out: BenchResult[] = [];
  try {
    for (const shape of shapes) {
      const base: Record<string, EchoRun[]> = { tcp: [], ipc: [] };
      const mine: Record<string, EchoRun[]> = {};
      for (const t of transports) mine[t.name] = [];
      // Interleave baseline and tilth runs so drift hits both alike.
      for (let rep = 0; rep < repeats; rep++) {
        for (const b of ["tcp", "ipc"] as const) {
          progress(`${shape.label}: raw node:net ${b} (run ${rep + 1}/${repeats})`);
          base[b]!.push(await echoRun("raw", baselines[b](), shape.size, shape.inflight, timing));
          for (const t of transports) {
            if (t.baseline !== b) continue;
            progress(`${shape.label}: tilth ${t.name} (run ${rep + 1}/${repeats})`);
            mine[t.name]!.push(await echoRun("tilth", t.url(), shape.size, shape.inflight, timing));
          }
        }
      }
      for (const t of transports) {
        const runs = mine[t.name]!;
        const bruns = base[t.baseline]!;
        const value = median(runs.map(rate));
        const baselineValue = median(bruns.map(rate));
        const extra: Record<string, unknown> = {
          pinned: canPin ? "taskset -c 0 (client and server)" : false,
          runs: runs.map((r) => Math.round(rate(r))),
          baselineRuns: bruns.map((r) => Math.round(rate(r))),
          spread: `${formatRate(Math.min(...runs.map(rate)))}..${formatRate(Math.max(...runs.map(rate)))}`,
        };
        if (shape.inflight === 1) {
          extra.p50_us = round(median(runs.map((r) => r.p50)));
          extra.p99_us = round(median(runs.map((r) => r.p99)));
          extra.baseline_p50_us = round(median(bruns.map((r) => r.p50)));
          extra.baseline_p99_us = round(median(bruns.map((r) => r.p99)));
        }
        out.push(
          result(`${t.name} ${shape.label}`, "round trips/s", value, `raw node:net ${t.baseline}, 1 write/msg`, baselineValue, extra),
        );
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  // Datagrams (udp): their own rows, against a raw node:dgram echo (bench/udp.ts).
  out.push(...(await udpRows({ quick, pin: canPin, progress })));
  return out;
};
