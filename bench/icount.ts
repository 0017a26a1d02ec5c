/**
 * `npm run bench -- icount`: CPU instructions per call of the RPC layer,
 * counted by valgrind's callgrind, which counts instructions rather than
 * time: the same build and input give the same count whatever else the
 * machine does. Each workload (bench/icount-child.ts) runs twice, with N and
 * 2N calls; the difference over N is the count per call (start-up, warm-up
 * and shutdown cancel out). Client and server share the process, so a count
 * covers both sides of a call, the kernel's work excluded (callgrind counts
 * user-space instructions only). Not part of the default suites: it needs
 * valgrind and takes a few minutes.
 */
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { BenchResult, Suite } from "./lib.js";

/** The workload script: this build's, or another build's (TILTH_ICOUNT_CHILD), for a before-and-after count. */
const child = process.env.TILTH_ICOUNT_CHILD ?? fileURLToPath(new URL("./icount-child.js", import.meta.url));

export const WORKLOADS: { mode: string; what: string; n: number }[] = [
  { mode: "tcp-seq", what: "drpc+tcp, sequential echo (16 B)", n: 20_000 },
  { mode: "tcp-pipe", what: "drpc+tcp, 100 in flight", n: 40_000 },
  { mode: "tcp-stream", what: "drpc+tcp, stream item", n: 400_000 },
  { mode: "local-seq", what: "drpc+local, sequential echo", n: 40_000 },
  { mode: "local-stream", what: "drpc+local, stream item", n: 400_000 },
  { mode: "ws-seq", what: "drpc+ws, sequential echo (16 B)", n: 20_000 },
  { mode: "ws-pipe", what: "drpc+ws, 100 in flight", n: 40_000 },
];

/** Instructions of one run of `mode` with `n` calls. */
async function count(mode: string, n: number): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), "tilth-icount-"));
  try {
    const out = join(dir, "callgrind.out");
    const r = await spawnAsync("valgrind", ["--tool=callgrind", `--callgrind-out-file=${out}`, "--smc-check=all-non-file", process.execPath, "--single-threaded", child, mode, String(n)], { encoding: "utf8", maxBuffer: 64 << 20 });
    if (r.status !== 0) throw new Error(`callgrind run of ${mode} ${n} failed (${r.status}): ${r.stderr.slice(-600)}`);
    const m = /^summary:\s+(\d+)/m.exec(readFileSync(out, "utf8")) ?? /Collected\s*:\s*(\d+)/.exec(r.stderr);
    if (!m) throw new Error(`no instruction count in callgrind's output for ${mode}`);
    return Number(m[1]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function spawnAsync(cmd: string, args: string[], _o: object): Promise<{ status: number | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    p.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
    p.on("error", reject).on("close", (status) => resolve({ status, stderr }));
  });
}

export const run: Suite = async ({ quick, progress }) => {
  if (spawnSync("valgrind", ["--version"]).status !== 0) throw new Error("icount needs valgrind (Debian: apt-get install valgrind)");
  const out: BenchResult[] = [];
  const only = process.env.TILTH_ICOUNT_MODES?.split(",");
  for (const w of WORKLOADS.filter((w) => !only || only.includes(w.mode))) {
    const n = quick ? Math.ceil(w.n / 4) : w.n;
    progress(`${w.what}: ${n} and ${2 * n}`);
    // The two runs at once: the counts are the same as one after the other.
    const [a, b] = await Promise.all([count(w.mode, n), count(w.mode, 2 * n)]);
    const per = (b - a) / n;
    out.push({ name: w.what, value: per, unit: "instructions/call", baseline: "none", baselineValue: per, ratio: 1 });
  }
  return out;
};

export function tables(results: BenchResult[]): string {
  return ["| workload | instructions per call (both sides) |", "|---|---:|", ...results.map((r) => `| ${r.name} | ${Math.round(r.value).toLocaleString("en-US")} |`)].join("\n");
}
