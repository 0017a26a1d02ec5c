/**
 * `npm run bench -- peers`: tilth's RPC against peer frameworks, each server
 * in its own process and its client in another, on 127.0.0.1, every system in
 * the same run as the raw node:net ceilings.
 *
 * Systems (see `bench/peer-systems.ts`): raw node:net with a 4-byte length
 * prefix and one write per message (`net`), the same with writes batched by
 * cork/uncork (`net-cork`, the practical ceiling and the baseline of every
 * ratio), raw zeromq.js DEALER/ROUTER, @grpc/grpc-js unary calls, jayson
 * JSON-RPC over one persistent TCP socket, moleculer with its TCP transporter,
 * the npm zerorpc peer, tilth's drpc+tcp and zrpc+tcp; in one process:
 * moleculer local calls and tilth's drpc+inproc and drpc+local; through a
 * nats-server the suite starts on loopback: tilth's drpc+nats and moleculer
 * with its NATS transporter (each server one instance).
 *
 * Scenarios: sequential (1 in flight, 16 B; p50/p99/p99.9; `--pin` runs both
 * processes on CPU 0), pipelined 100 and 1000 in flight, 64 KiB with 10 in
 * flight, 100 connections with 10 in flight each, a stream of 1e6 items;
 * `fleet`: the NATS systems with 1, 2 and 3 instances (each its own process)
 * of a service whose handler burns 1 ms of CPU, 100 calls in flight, each
 * count's ratio to one instance of the same system.
 * Each warms up, runs a bounded time, repeats (3; `--quick`: 1) and reports
 * the median and the spread. Beside throughput: the event-loop lag (p99 and
 * max, beyond the 1 ms sampling) and utilization of the server's process over
 * the measured window.
 *
 * Writes a Markdown table per scenario to stdout and `peers.md`, an SVG chart
 * per scenario, into `bench/results/` (quick runs: `bench/results/quick/`;
 * `TILTH_BENCH_RESULTS=DIR` overrides both). Subsets: `TILTH_BENCH_SYSTEMS`
 * and `TILTH_BENCH_SCENARIOS` (comma-separated ids), `TILTH_BENCH_REPEATS`.
 * See docs/benchmarks.md.
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import os from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { barChart } from "./chart.js";
import { type BenchResult, type Suite, formatRate, median, result } from "./lib.js";
import type { ChildResult, LoopMeasure, Scenario } from "./peer-child.js";
import { loadZrpc, ROOT, SYSTEMS } from "./peer-systems.js";
import { natsSkip, startNats, type NatsServer } from "../testing/nats.js";

const child = fileURLToPath(new URL("./peer-child.js", import.meta.url));

/** Table order, labels and kinds. `base`: raw ceilings; `tilth`: ours; `peer`: the others. */
export const SYSTEM_INFO: { id: string; label: string; kind: "base" | "tilth" | "peer"; inProcess?: boolean; nats?: boolean }[] = [
  { id: "net", label: "raw node:net (1 write/msg)", kind: "base" },
  { id: "net-cork", label: "raw node:net, cork/uncork", kind: "base" },
  { id: "zeromq", label: "raw zeromq.js DEALER/ROUTER", kind: "base" },
  { id: "drpc+tcp", label: "tilth drpc+tcp", kind: "tilth" },
  { id: "zrpc+tcp", label: "tilth zrpc+tcp", kind: "tilth" },
  { id: "grpc-js", label: "@grpc/grpc-js", kind: "peer" },
  { id: "jayson", label: "jayson (TCP, 1 socket)", kind: "peer" },
  { id: "moleculer-tcp", label: "moleculer (TCP transporter)", kind: "peer" },
  { id: "zerorpc", label: "npm zerorpc 0.9.8", kind: "peer" },
  { id: "drpc+inproc", label: "tilth drpc+inproc", kind: "tilth", inProcess: true },
  { id: "drpc+local", label: "tilth drpc+local (in-process, no encoding)", kind: "tilth", inProcess: true },
  { id: "moleculer-local", label: "moleculer local calls", kind: "peer", inProcess: true },
  { id: "drpc+nats", label: "tilth drpc+nats (one instance)", kind: "tilth", nats: true },
  { id: "moleculer-nats", label: "moleculer (NATS transporter)", kind: "peer", nats: true },
  { id: "drpc+ws", label: "tilth drpc+ws (Node client and server)", kind: "tilth" },
  { id: "socket.io", label: "socket.io (emitWithAck, websocket transport)", kind: "peer" },
];

interface ScenarioDef {
  id: string;
  title: string;
  unit: "calls/s" | "items/s";
  sc: Omit<Scenario, "warmupMs" | "runMs" | "capMs" | "items"> & { items?: number };
  /** Pinned to CPU 0 with --pin. */
  pinnable?: boolean;
  /** Systems for which the scenario does not apply, and why. */
  na?: Record<string, string>;
  /** The fleet scenario: each system that runs as a fleet, with these numbers of instances (ratios to one instance). */
  instances?: number[];
}

export const SCENARIOS: ScenarioDef[] = [
  { id: "sequential", title: "sequential (1 in flight, 16 B)", unit: "calls/s", sc: { mode: "echo", size: 16, inflight: 1, conns: 1 }, pinnable: true },
  { id: "pipelined-100", title: "pipelined (100 in flight, 16 B)", unit: "calls/s", sc: { mode: "echo", size: 16, inflight: 100, conns: 1 } },
  { id: "pipelined-1000", title: "pipelined (1000 in flight, 16 B)", unit: "calls/s", sc: { mode: "echo", size: 16, inflight: 1000, conns: 1 } },
  { id: "64k", title: "64 KiB argument (10 in flight)", unit: "calls/s", sc: { mode: "echo", size: 65536, inflight: 10, conns: 1 } },
  {
    id: "conns-100",
    title: "100 connections (10 in flight each, 16 B)",
    unit: "calls/s",
    sc: { mode: "echo", size: 16, inflight: 10, conns: 100 },
    na: { "moleculer-local": "no connections in-process", "drpc+local": "no connections in-process" },
  },
  { id: "stream", title: "stream of 1e6 items", unit: "items/s", sc: { mode: "stream", size: 0, inflight: 1, conns: 1, items: 1_000_000 }, na: { jayson: "no streams" } },
  { id: "fleet", title: "fleet (100 in flight, 1 ms of CPU per call)", unit: "calls/s", sc: { mode: "burn", size: 1000, inflight: 100, conns: 1 }, instances: [1, 2, 3] },
];

// ------------------------------------------------------------ processes

/** Children alive now: ended on SIGINT/SIGTERM of the bench too. */
const live = new Set<ChildProcess>();
const onSignal = (sig: NodeJS.Signals): void => {
  for (const p of live) p.kill("SIGKILL");
  process.exit(sig === "SIGINT" ? 130 : 143);
};

/** A child process with its stdout read line by line and its stderr kept for errors. */
class Child {
  readonly proc: ChildProcess;
  readonly #lines: string[] = [];
  #waiter: (() => void) | undefined;
  #stderr = "";
  #exited = false;

  constructor(args: string[], pin: boolean) {
    const cmd = pin ? "taskset" : process.execPath;
    const argv = pin ? ["-c", "0", process.execPath, child, ...args] : [child, ...args];
    this.proc = spawn(cmd, argv, { stdio: ["pipe", "pipe", "pipe"] });
    live.add(this.proc);
    createInterface({ input: this.proc.stdout! }).on("line", (l) => {
      this.#lines.push(l);
      this.#waiter?.();
    });
    this.proc.stderr!.on("data", (d: Buffer) => {
      this.#stderr = (this.#stderr + String(d)).slice(-4000);
    });
    this.proc.stdin!.on("error", () => {});
    this.proc.on("exit", () => {
      live.delete(this.proc);
      this.#exited = true;
      this.#waiter?.();
    });
  }

  get stderr(): string {
    return this.#stderr.trim();
  }

  /** The next line of stdout, within `ms`. */
  async line(ms: number, what: string): Promise<string> {
    const deadline = Date.now() + ms;
    for (;;) {
      const l = this.#lines.shift();
      if (l !== undefined) return l;
      if (this.#exited) throw new ChildError(`exited (code ${this.proc.exitCode}) before ${what}`, this);
      const left = deadline - Date.now();
      if (left <= 0) throw new ChildError(`no ${what} within ${ms} ms`, this);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.#waiter = () => {
          clearTimeout(t);
          resolve();
        };
      });
      this.#waiter = undefined;
    }
  }

  send(line: string): void {
    if (!this.#exited) this.proc.stdin!.write(`${line}\n`);
  }

  exit(ms: number): Promise<number | null> {
    if (this.#exited) return Promise.resolve(this.proc.exitCode);
    return new Promise((resolve) => {
      const t = setTimeout(() => resolve(null), ms);
      this.proc.once("exit", (code) => {
        clearTimeout(t);
        resolve(code);
      });
    });
  }

  /** SIGTERM, then SIGKILL after a grace period. */
  async stop(): Promise<void> {
    if (this.#exited) return;
    this.proc.kill("SIGTERM");
    if ((await this.exit(2000)) === null && !this.#exited) {
      this.proc.kill("SIGKILL");
      await this.exit(5000);
    }
  }
}

class ChildError extends Error {
  /** A result failed its check (wrong echo, wrong item): never retried. */
  readonly check: boolean;
  constructor(msg: string, c: Child) {
    const detail = c.stderr ? `\n${c.stderr}` : "";
    super(`${msg}${detail}`);
    this.check = c.proc.exitCode === 3;
  }
}

interface RunOut {
  rate: number;
  run: ChildResult;
  loop: LoopMeasure | undefined;
}

let runs = 0;

/** One measured run; `instances` servers (the fleet scenario), each its own process, behind one URL. */
async function runOnce(system: string, inProcess: boolean, sc: Scenario, pin: boolean, instances = 1): Promise<RunOut> {
  let server: Child | undefined;
  const others: Child[] = [];
  let client: Child | undefined;
  // The instances of one run share a service name no earlier run used.
  process.env.TILTH_BENCH_SERVICE = `bench${process.pid}r${++runs}`;
  try {
    let url = "inproc";
    if (!inProcess) {
      server = new Child(["server", system], pin);
      for (let i = 1; i < instances; i++) others.push(new Child(["server", system], pin));
      url = await server.line(30_000, `${system} server URL`);
      for (const o of others) await o.line(30_000, `${system} server URL`);
    }
    client = new Child(["client", system, url, JSON.stringify(sc)], pin);
    const first = await client.line(sc.warmupMs + 60_000, `${system} client start`);
    if (first !== "measuring") throw new ChildError(`client said ${JSON.stringify(first)}`, client);
    server?.send("start");
    const run = JSON.parse(await client.line(Math.max(sc.runMs, sc.capMs) + 60_000, `${system} result`)) as ChildResult;
    let loop = run.loop;
    if (server) {
      server.send("stop");
      loop = JSON.parse(await server.line(10_000, `${system} server loop measures`)) as LoopMeasure;
    }
    const code = await client.exit(15_000);
    if (code !== 0) throw new ChildError(`client exit code ${code}`, client);
    return { rate: (run.calls / run.ms) * 1000, run, loop };
  } finally {
    await Promise.all([client?.stop(), server?.stop(), ...others.map((o) => o.stop())]);
  }
}

// ------------------------------------------------------------ setup

/** Installs the peers (idempotent); returns why systems cannot run, by id. */
async function prepare(progress: (l: string) => void): Promise<Map<string, string>> {
  const missing = new Map<string, string>();
  progress("checking peers (scripts/setup-bench-peers.mjs)");
  const r = spawnSync(process.execPath, [join(ROOT, "scripts", "setup-bench-peers.mjs"), "--quiet"], { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`scripts/setup-bench-peers.mjs failed:\n${r.stderr}`);
  for (const line of r.stdout.split("\n")) {
    const m = /^unavailable (\S+): (.*)$/.exec(line);
    if (m) missing.set(m[1]!, m[2]!);
  }
  if (!(await loadZrpc())) missing.set("zrpc+tcp", "tilth's zrpc protocol is not in this build yet");
  let noNats = natsSkip;
  if (noNats) {
    // Installs Debian's nats-server when missing and root.
    spawnSync(process.execPath, [join(ROOT, "scripts", "setup-nats.mjs"), "--optional", "--quiet"], { stdio: "inherit" });
    noNats = spawnSync("nats-server", ["--version"]).status === 0 ? false : noNats;
  }
  if (noNats) for (const s of SYSTEM_INFO) if (s.nats) missing.set(s.id, noNats);
  return missing;
}

function machine(): string {
  const cpus = os.cpus();
  return `${cpus.length} × ${cpus[0]?.model.trim() ?? "cpu"}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, Linux ${os.release()}, Node ${process.version}`;
}

// ------------------------------------------------------------ the suite

export interface PeerRow {
  scenario: string;
  system: string;
  value: number;
  min: number;
  max: number;
  na?: string;
}

export const run: Suite = async ({ quick, pin, progress }) => {
  const canPin = pin && spawnSync("taskset", ["-c", "0", "true"]).status === 0;
  if (pin && !canPin) progress("--pin: taskset is not available, running unpinned");
  process.on("SIGINT", onSignal).on("SIGTERM", onSignal);
  try {
    return await measureAll(quick, canPin, progress);
  } finally {
    process.off("SIGINT", onSignal).off("SIGTERM", onSignal);
  }
};

/** Median over the rounds of a system's rate over the baseline's in the same round (the machine drifts between rounds). */
function roundRatio(xs: number[], base: number[]): number {
  const n = Math.min(xs.length, base.length);
  return n === 0 ? NaN : median(Array.from({ length: n }, (_, i) => xs[i]! / base[i]!));
}

async function measureAll(quick: boolean, canPin: boolean, progress: (l: string) => void): Promise<BenchResult[]> {
  const only = process.env.TILTH_BENCH_SYSTEMS?.split(",");
  const onlyScenarios = process.env.TILTH_BENCH_SCENARIOS?.split(",");
  const missing = await prepare(progress);
  const systems = SYSTEM_INFO.filter((s) => !only || only.includes(s.id) || s.id === "net-cork");
  const scenarios = SCENARIOS.filter((s) => !onlyScenarios || onlyScenarios.includes(s.id));
  let nats: NatsServer | undefined;
  if (systems.some((s) => s.nats && !missing.has(s.id))) {
    // One nats-server on loopback for the whole run; the children find it in their environment.
    nats = await startNats();
    process.env.TILTH_BENCH_NATS = nats.hostPort;
  }
  try {
    return await measureScenarios(scenarios, systems, missing, quick, canPin, progress);
  } finally {
    await nats?.stop();
  }
}

async function measureScenarios(
  scenarios: ScenarioDef[],
  systems: typeof SYSTEM_INFO,
  missing: Map<string, string>,
  quick: boolean,
  canPin: boolean,
  progress: (l: string) => void,
): Promise<BenchResult[]> {
  const repeats = Number(process.env.TILTH_BENCH_REPEATS) || (quick ? 1 : 3);
  const warmupMs = quick ? 150 : 500;
  const runMs = quick ? 300 : 2000;
  const items = quick ? 100_000 : undefined;
  const capMs = quick ? 2_000 : 15_000;
  const out: BenchResult[] = [];
  const started = new Date();

  const load: number[] = [os.loadavg()[0]!];
  for (const def of scenarios) {
    const pinned = canPin && def.pinnable === true;
    const sc: Scenario = { ...def.sc, warmupMs, runMs, items: items ?? def.sc.items ?? 0, capMs };
    const runs = new Map<string, RunOut[]>();
    const skip = (id: string): string | undefined => missing.get(id) ?? def.na?.[id] ?? (def.sc.mode === "stream" && !SYSTEMS[id]!.streams ? "no streams" : undefined);
    const entries = scenarioEntries(def, systems, quick);
    // Rounds over every system, so drift over time touches all of them alike.
    for (let r = 0; r < repeats; r++) {
      for (const e of entries) {
        if (skip(e.system)) continue;
        const tag = `${def.title} · ${e.id} · run ${r + 1}/${repeats}`;
        progress(tag);
        let o: RunOut;
        try {
          o = await runOnce(e.system, e.inProcess === true, sc, pinned, e.instances);
        } catch (err) {
          if (err instanceof ChildError && err.check) throw new Error(`${tag}: ${err.message}`);
          progress(`${tag}: failed, once more (${(err as Error).message.split("\n")[0]})`);
          try {
            o = await runOnce(e.system, e.inProcess === true, sc, pinned, e.instances);
          } catch (e2) {
            throw new Error(`${tag}: ${(e2 as Error).message}`);
          }
        }
        if (!runs.has(e.id)) runs.set(e.id, []);
        runs.get(e.id)!.push(o);
        progress(`${tag}: ${formatRate(o.rate)} ${def.unit}${o.run.complete === false ? " (time cap)" : ""}`);
      }
    }
    const rates = (id: string): number[] => (runs.get(id) ?? []).map((o) => o.rate);
    for (const e of entries) {
      // Ratios to net-cork; in the fleet, to one instance of the same system.
      const base = def.instances ? `${e.system}×1` : "net-cork";
      const baseline = median(rates(base));
      const why = skip(e.system);
      const extra: Record<string, unknown> = { scenario: def.id, system: e.id, label: e.label, kind: e.kind, inProcess: e.inProcess === true, ...(def.instances ? { instances: e.instances } : {}) };
      if (why) {
        out.push(result(`${def.title}: ${e.id}`, def.unit, 0, base, baseline, { ...extra, na: why }));
        continue;
      }
      const os_ = runs.get(e.id)!;
      const rs = rates(e.id);
      const med = (f: (o: RunOut) => number | undefined): number | null => {
        const xs = os_.map(f).filter((x): x is number => typeof x === "number" && Number.isFinite(x));
        return xs.length ? Math.round(median(xs) * 1000) / 1000 : null;
      };
      Object.assign(extra, {
        spread: [Math.min(...rs), Math.max(...rs)],
        runs: rs,
        repeats,
        runMs: def.sc.mode === "stream" ? undefined : runMs,
        pinned,
        lagP50Ms: med((o) => o.loop?.lagP50Ms),
        lagP99Ms: med((o) => o.loop?.lagP99Ms),
        lagMaxMs: med((o) => o.loop?.lagMaxMs),
        elu: med((o) => o.loop?.elu),
      });
      if (def.sc.inflight === 1 && def.sc.conns === 1 && def.sc.mode === "echo") {
        Object.assign(extra, { p50us: med((o) => o.run.p50), p99us: med((o) => o.run.p99), p999us: med((o) => o.run.p999), netRatio: roundRatio(rs, rates("net")) });
      }
      if (def.sc.mode === "stream") Object.assign(extra, { items: sc.items, complete: os_.every((o) => o.run.complete !== false) });
      out.push(result(`${def.title}: ${e.id}`, def.unit, median(rs), base, baseline, extra));
    }
    load.push(os.loadavg()[0]!);
  }
  writeOutputs(out, quick, { started, machine: machine(), repeats, quick, pinned: canPin, load });
  return out;
}

/**
 * What one scenario runs: every system once; in the fleet, each system that
 * runs as a fleet at each number of instances (`--quick`: 1 and 2).
 */
export function scenarioEntries(
  def: ScenarioDef,
  systems: typeof SYSTEM_INFO,
  quick = false,
): { id: string; system: string; label: string; kind: string; inProcess?: boolean; instances: number }[] {
  if (!def.instances) return systems.filter((s) => !(def.sc.mode === "burn" && !SYSTEMS[s.id]!.fleet)).map((s) => ({ ...s, system: s.id, instances: 1 }));
  return systems
    .filter((s) => SYSTEMS[s.id]!.fleet)
    .flatMap((s) =>
      def.instances!.filter((k) => !quick || k <= 2).map((k) => ({ ...s, id: `${s.id}×${k}`, system: s.id, label: `${s.label.replace(" (one instance)", "")}, ${k} instance${k > 1 ? "s" : ""}`, instances: k })),
    );
}

// ------------------------------------------------------------ output

interface RunInfo {
  started: Date;
  machine: string;
  repeats: number;
  quick: boolean;
  pinned: boolean;
  /** 1-minute load average at the start and after each scenario (the bench itself adds about 2). */
  load: number[];
}

const fmt = (v: unknown, digits = 0): string => (typeof v === "number" && Number.isFinite(v) ? v.toFixed(digits) : "–");

/** One Markdown table per scenario. */
export function tables(results: BenchResult[]): string {
  const out: string[] = [];
  for (const def of SCENARIOS) {
    const rows = results.filter((r) => r.extra?.scenario === def.id);
    if (!rows.length) continue;
    const seq = def.id === "sequential";
    const pinned = rows.some((r) => r.extra?.pinned === true);
    out.push(`### ${def.title}${seq ? (pinned ? ", both processes pinned to CPU 0" : ", unpinned") : ""}`, "");
    const head = ["system", def.unit, "min–max", def.instances ? "× one instance" : "× net-cork"];
    if (seq) head.push("× net", "p50 µs", "p99 µs", "p99.9 µs");
    head.push("server loop lag p99 / max ms", "server loop busy");
    out.push(`| ${head.join(" | ")} |`, `|${head.map((h, i) => (i === 0 ? "---" : "---:")).join("|")}|`);
    for (const r of rows) {
      const x = r.extra ?? {};
      const label = `${String(x.label ?? x.system)}${x.inProcess ? " ¹" : ""}`;
      if (x.na !== undefined) {
        out.push(`| ${label} | n/a (${String(x.na)}) |${" |".repeat(head.length - 2)}`);
        continue;
      }
      const [lo, hi] = (x.spread as [number, number] | undefined) ?? [NaN, NaN];
      const cells = [label, `${formatRate(r.value)}${x.complete === false ? " ²" : ""}`, `${formatRate(lo)}–${formatRate(hi)}`, r.ratio.toFixed(2)];
      if (seq) cells.push(fmt(x.netRatio, 2), fmt(x.p50us), fmt(x.p99us), fmt(x.p999us));
      cells.push(`${fmt(x.lagP99Ms, 1)} / ${fmt(x.lagMaxMs, 1)}`, typeof x.elu === "number" ? `${Math.round(x.elu * 100)}%` : "–");
      out.push(`| ${cells.join(" | ")} |`);
    }
    out.push("");
  }
  out.push(
    "¹ client and server in one process (the loop measures are that process's).",
    "² the stream hit the time cap before its last item: items/s of the part received.",
    "Loop lag: how late a 1 ms timer fires in the server's process (monitorEventLoopDelay, beyond its 1 ms interval), median over the runs; loop busy: event-loop utilization.",
    "",
  );
  return out.join("\n");
}

/** One compact table: a row per system, a column per scenario, value and ratio to net-cork. */
export function summaryTable(results: BenchResult[]): string {
  // The fleet has rows of its own (a system at each number of instances): its table is under Per scenario.
  const defs = SCENARIOS.filter((d) => !d.instances && results.some((r) => r.extra?.scenario === d.id));
  const short: Record<string, string> = {
    sequential: "sequential",
    "pipelined-100": "100 in flight",
    "pipelined-1000": "1000 in flight",
    "64k": "64 KiB × 10",
    "conns-100": "100 conns × 10",
    stream: "stream items/s",
  };
  const head = ["system", ...defs.map((d) => short[d.id] ?? d.id)];
  const out = [`| ${head.join(" | ")} |`, `|---|${defs.map(() => "---:").join("|")}|`];
  for (const s of SYSTEM_INFO) {
    const cells = [`${s.label}${s.inProcess ? " ¹" : ""}`];
    let any = false;
    for (const d of defs) {
      const r = results.find((x) => x.extra?.scenario === d.id && x.extra?.system === s.id);
      if (r) any = true;
      if (!r || r.extra?.na !== undefined) cells.push("n/a");
      else cells.push(`${formatRate(r.value)}${r.extra?.complete === false ? " ²" : ""} (${r.ratio >= 10 ? r.ratio.toFixed(0) : r.ratio.toFixed(2)}×)`);
    }
    if (any) out.push(`| ${cells.join(" | ")} |`);
  }
  return out.join("\n") + "\n";
}

function writeOutputs(results: BenchResult[], quick: boolean, info: RunInfo): void {
  const dir = process.env.TILTH_BENCH_RESULTS ?? join(ROOT, "bench", "results", ...(quick ? ["quick"] : []));
  mkdirSync(dir, { recursive: true });
  const header = [
    `# Peers benchmark${info.quick ? " (quick)" : ""}`,
    "",
    `Measured ${info.started.toISOString().slice(0, 10)} on ${info.machine}; ${info.repeats} run${info.repeats > 1 ? "s" : ""} per system and scenario, median and min–max; ratios to raw node:net with cork/uncork in the same run. Command: \`npm run bench -- peers${info.quick ? " --quick" : ""}${info.pinned ? " --pin" : ""}\`.`,
    "",
    `1-minute load average at the start and after each scenario: ${info.load.map((l) => l.toFixed(1)).join(", ")} (the benchmark's own two processes account for about 2; more means something else ran).`,
    "",
  ];
  const summary = [
    "## Summary",
    "",
    "Calls/s (items/s for the stream), median; in brackets the ratio to raw node:net with cork/uncork in the same scenario.",
    "",
    summaryTable(results),
    "## Per scenario",
    "",
  ];
  writeFileSync(join(dir, "peers.md"), [...header, ...summary, ""].join("\n") + tables(results));
  writeFileSync(join(dir, "peers.json"), JSON.stringify({ suite: "peers", machine: info.machine, date: info.started.toISOString(), loadAverage: info.load, results }, null, 2) + "\n");
  for (const def of SCENARIOS) {
    const rows = results.filter((r) => r.extra?.scenario === def.id);
    if (!rows.length) continue;
    const bars = rows.map((r) => {
      const x = r.extra ?? {};
      const [lo, hi] = (x.spread as [number, number] | undefined) ?? [NaN, NaN];
      return { label: String(x.label ?? x.system), value: r.value, min: lo, max: hi, kind: String(x.kind), na: x.na as string | undefined, inProcess: x.inProcess === true };
    });
    const pinned = rows.some((r) => r.extra?.pinned === true);
    writeFileSync(
      join(dir, `peers-${def.id}.svg`),
      barChart({
        title: `${def.title}${def.id === "sequential" && pinned ? ", pinned to one CPU" : ""}`,
        subtitle: `${def.unit}, median of ${info.repeats} with min–max · ${info.started.toISOString().slice(0, 10)} · ${info.machine}`,
        unit: def.unit,
        bars,
      }),
    );
  }
}
