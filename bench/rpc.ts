/**
 * `npm run bench -- rpc`: drpc echo calls per second over tcp, ipc and inproc,
 * beside a raw node:net echo with plain length-prefix framing (one write per
 * message) in the same run. Server and client are separate processes (inproc:
 * one process, as it must be). Scenarios: sequential (1 in flight, 16 B, with
 * p50/p99 latency), pipelined (100 in flight, 16 B), 64 KiB (10 in flight).
 * `--pin` runs both processes of the sequential scenarios on CPU 0.
 *
 * This machine's speed drifts by up to a third over seconds (both systems
 * slow down together), so baseline and tilth runs alternate in pairs, the
 * order flipping each pair, and the ratio reported is the median of the
 * pairs' ratios; sequential scenarios (the most sensitive) run 5 pairs.
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { type BenchResult, type Suite, formatRate, median, result } from "./lib.js";

const child = fileURLToPath(new URL("./echo-child.js", import.meta.url));

export interface EchoRun {
  calls: number;
  ms: number;
  p50: number;
  p99: number;
  p999: number;
}

const hasTaskset = (): boolean => spawnSync("taskset", ["-c", "0", "true"]).status === 0;

function launch(args: string[], pin: boolean): ChildProcess {
  const cmd = pin ? "taskset" : process.execPath;
  const argv = pin ? ["-c", "0", process.execPath, child, ...args] : [child, ...args];
  return spawn(cmd, argv, { stdio: ["ignore", "pipe", "inherit"] });
}

async function firstLine(p: ChildProcess): Promise<string> {
  let out = "";
  for await (const chunk of p.stdout!) {
    out += String(chunk);
    const i = out.indexOf("\n");
    if (i >= 0) return out.slice(0, i);
  }
  throw new Error(`child exited without output (code ${p.exitCode})`);
}

function stop(p: ChildProcess): Promise<void> {
  if (p.exitCode !== null || p.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    p.once("exit", () => resolve());
    p.kill("SIGKILL");
  });
}

/** One measured echo run: a server process (unless inproc) and a client process. */
export async function echoRun(kind: string, url: string, size: number, inflight: number, warmupMs: number, runMs: number, pin: boolean): Promise<EchoRun> {
  let server: ChildProcess | undefined;
  try {
    let target = url;
    if (!url.includes("inproc:")) {
      server = launch(["server", kind, url], pin);
      target = await firstLine(server);
      if (kind === "drpc" && !target.startsWith("drpc+")) throw new Error(`server said ${target}`);
    }
    const client = launch(["client", kind, target, String(size), String(inflight), String(warmupMs), String(runMs)], pin);
    const line = await firstLine(client);
    await new Promise<void>((r) => (client.exitCode !== null ? r() : client.once("exit", () => r())));
    if (client.exitCode !== 0) throw new Error(`${kind} client failed (exit ${client.exitCode})`);
    return JSON.parse(line) as EchoRun;
  } finally {
    if (server) await stop(server);
  }
}

export const run: Suite = async ({ quick, pin, progress }) => {
  const repeats = quick ? 1 : 3;
  const warmupMs = quick ? 200 : 500;
  const runMs = quick ? 500 : 2000;
  const canPin = pin && hasTaskset();
  const dir = mkdtempSync(join(tmpdir(), "tilth-bench-"));
  const out: BenchResult[] = [];
  try {
    const scenarios = [
      { name: "sequential 16 B", size: 16, inflight: 1 },
      { name: "pipelined 100 x 16 B", size: 16, inflight: 100 },
      { name: "64 KiB x 10", size: 65536, inflight: 10 },
    ];
    let n = 0;
    const places = [
      { t: "tcp", url: () => "tcp://127.0.0.1:0", base: () => "tcp://127.0.0.1:0" },
      { t: "ipc", url: () => `ipc://${join(dir, `d${n++}.sock`)}`, base: () => `ipc://${join(dir, `n${n++}.sock`)}` },
      { t: "inproc", url: () => `inproc://bench${n++}`, base: () => "tcp://127.0.0.1:0" },
    ];
    for (const sc of scenarios) {
      const pinned = canPin && sc.inflight === 1;
      for (const p of places) {
        const label = `drpc+${p.t} ${sc.name}`;
        const tilth: EchoRun[] = [];
        const base: EchoRun[] = [];
        const pairs = sc.inflight === 1 && !quick ? 5 : repeats;
        for (let r = 0; r < pairs; r++) {
          const runBase = async (): Promise<void> => {
            progress(`${label}: pair ${r + 1}/${pairs}, baseline`);
            base.push(await echoRun("net", p.base(), sc.size, sc.inflight, warmupMs, runMs, pinned));
          };
          const runTilth = async (): Promise<void> => {
            progress(`${label}: pair ${r + 1}/${pairs}, tilth`);
            tilth.push(await echoRun("drpc", `drpc+${p.url()}`, sc.size, sc.inflight, warmupMs, runMs, pinned));
          };
          if (r % 2 === 0) {
            await runBase();
            await runTilth();
          } else {
            await runTilth();
            await runBase();
          }
        }
        const rate = (x: EchoRun): number => (x.calls / x.ms) * 1000;
        const tr = tilth.map(rate);
        const br = base.map(rate);
        const pairRatios = tr.map((t, i) => t / br[i]!);
        const extra: Record<string, unknown> = {
          pinned,
          repeats: pairs,
          pairRatios: pairRatios.map((x) => Math.round(x * 1000) / 1000),
          runMs,
          tilthSpread: [Math.min(...tr), Math.max(...tr)],
          baselineSpread: [Math.min(...br), Math.max(...br)],
        };
        if (sc.inflight === 1) {
          extra.p50us = median(tilth.map((x) => x.p50));
          extra.p99us = median(tilth.map((x) => x.p99));
          extra.baselineP50us = median(base.map((x) => x.p50));
          extra.baselineP99us = median(base.map((x) => x.p99));
        }
        const res = result(label, "calls/s", median(tr), p.t === "ipc" ? "raw net (unix socket)" : "raw net (tcp)", median(br), extra);
        res.ratio = median(pairRatios);
        out.push(res);
        progress(`${label}: ${formatRate(res.value)} vs ${formatRate(res.baselineValue)} calls/s (${res.ratio.toFixed(2)}x)`);
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return out;
};
