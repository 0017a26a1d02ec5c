/**
 * `tilth bench URL|APP METHOD [ARG...]`: the command. Runs the load in this
 * process, or in `--workers K` child processes whose histograms it merges;
 * prints a live line while it runs and a summary at the end (also on
 * Ctrl-C, with the figures so far); writes `--json`, `--html` and `--svg`.
 * @module
 */
import { fork, type ChildProcess } from "node:child_process";
import { writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { performance, type EventLoopUtilization } from "node:perf_hooks";
import { NodeLoop } from "../../adapters/node.js";
import { describe, isTilthError } from "../../core/errors.js";
import { registerTransports } from "../../transports/index.js";
import { EXIT, helpText } from "../args.js";
import { resolveTarget } from "../call.js";
import { formatComparison, compareFiles, readBenchFile } from "./compare.js";
import { Latency } from "./histogram.js";
import { runLoad, type Interval, type LoadResult } from "./load.js";
import { BENCH, parseBench, type BenchOptions } from "./options.js";
import { htmlPage, svgPlots } from "./plot.js";
import { fromWire, liveLine, mergeResults, stepsTable, summary, toRecord, toWire, type BenchFile, type ClientLoad, type RunRecord, type WireResult } from "./report.js";
import { checkLoopback, rpcTarget } from "./target.js";

/** Messages between the parent and its workers. */
type ToParent =
  | { kind: "ready" }
  | { kind: "interval"; step: number; index: number; interval: Interval }
  | { kind: "step"; step: number; result: WireResult; client: { cpu: number; elu: number } }
  | { kind: "failed"; message: string; usage: boolean };
type ToWorker = { kind: "go" } | { kind: "stop" };

/** One step's outcome in this process. */
interface StepOut {
  result: LoadResult;
  client: { cpu: number; elu: number };
}

/** What a run reports as it goes. */
interface Hooks {
  signal: AbortSignal;
  onInterval?: (step: number, interval: Interval, totals: { calls: number; errors: number; items: number; latency: Latency }) => void;
  /** Before the load starts (after the connections opened): a worker waits for its parent's go here. */
  beforeLoad?: () => Promise<void>;
}

/** The part of the load that worker `index` of `of` carries: connections, rate and calls split, arguments begun apart. */
export function share(o: BenchOptions, index: number, of: number): BenchOptions {
  const part = (n: number): number => Math.floor(n / of) + (index < n % of ? 1 : 0);
  return { ...o, connections: part(o.connections), maxCalls: Math.max(1, part(o.maxCalls)), rates: o.rates.map((r) => r / of) };
}

/** Run every step of `o` in this process. */
async function runHere(loop: NodeLoop, o: BenchOptions, url: string, hooks: Hooks): Promise<StepOut[]> {
  const target = rpcTarget(loop, url, { method: o.method, connections: o.connections, timeout: o.timeoutMs });
  const out: StepOut[] = [];
  try {
    await target.open();
    await hooks.beforeLoad?.();
    const steps = o.rates.length ? o.rates : [undefined];
    for (let step = 0; step < steps.length && !hooks.signal.aborted; step++) {
      let cpu0 = process.cpuUsage();
      let elu0: EventLoopUtilization = performance.eventLoopUtilization();
      let t0 = loop.now();
      const result = await runLoad(loop, target, {
        connections: o.connections,
        inFlight: o.inFlight,
        rate: steps[step],
        durationMs: o.durationMs,
        maxCalls: o.maxCalls,
        warmupMs: o.warmupMs,
        argLists: o.argLists,
        argOffset: o.worker?.index ?? 0,
        // Every call ends by its time limit; the drain limit is the backstop past it.
        drainMs: o.timeoutMs + 1000,
        signal: hooks.signal,
        onMeasure: () => {
          cpu0 = process.cpuUsage();
          elu0 = performance.eventLoopUtilization();
          t0 = loop.now();
        },
        ...(hooks.onInterval ? { onInterval: (iv: Interval, run: { calls: number; errors: number; items: number; latency: Latency }) => hooks.onInterval!(step, iv, run) } : {}),
      });
      const used = process.cpuUsage(cpu0);
      const ms = Math.max(loop.now() - t0, 1);
      out.push({ result, client: { cpu: (used.user + used.system) / 1000 / ms, elu: performance.eventLoopUtilization(elu0).utilization } });
    }
  } finally {
    await target.close();
  }
  return out;
}

/** A worker process: its share of the load, reported to the parent over IPC. */
async function workerMain(loop: NodeLoop, o: BenchOptions, url: string): Promise<number> {
  const send = (m: ToParent): void => void process.send?.(m);
  const ac = new AbortController();
  const onInt = (): void => ac.abort(); // Ctrl-C reaches the whole process group: stop, report, exit
  process.on("SIGINT", onInt);
  let go!: () => void;
  const started = new Promise<void>((resolve) => (go = resolve));
  const onMessage = (m: ToWorker): void => {
    if (m.kind === "go") go();
    else if (m.kind === "stop") {
      ac.abort();
      go();
    }
  };
  process.on("message", onMessage);
  process.once("disconnect", () => {
    ac.abort();
    go();
  });
  try {
    const mine = share(o, o.worker!.index, o.worker!.of);
    const counts: number[] = [];
    const steps = await runHere(loop, mine, url, {
      signal: ac.signal,
      beforeLoad: async () => {
        send({ kind: "ready" });
        await started;
      },
      onInterval: (step, iv) => send({ kind: "interval", step, index: (counts[step] = (counts[step] ?? 0) + 1) - 1, interval: iv }),
    });
    steps.forEach((s, step) => send({ kind: "step", step, result: toWire(s.result), client: s.client }));
    return EXIT.ok;
  } catch (e) {
    send({ kind: "failed", message: describe(e), usage: false });
    return EXIT.failed;
  } finally {
    process.off("SIGINT", onInt);
    process.off("message", onMessage);
  }
}

const cliMain = fileURLToPath(new URL("../main.js", import.meta.url));

/** Run the load in `o.workers` child processes and merge what they measured. */
async function runWorkers(o: BenchOptions, argv: string[], hooks: Hooks): Promise<StepOut[]> {
  const k = o.workers;
  const procs: ChildProcess[] = [];
  const steps: { result: LoadResult; client: { cpu: number; elu: number } }[][] = [];
  const intervals = new Map<string, { n: number; iv: Interval; latency: Latency }>();
  const totals = new Map<number, { calls: number; errors: number; items: number; latency: Latency }>();
  let ready = 0;
  let failure: string | undefined;
  const stopAll = (): void => {
    for (const p of procs) if (p.connected) p.send({ kind: "stop" } satisfies ToWorker);
  };
  hooks.signal.addEventListener("abort", stopAll, { once: true });
  const exits: Promise<void>[] = [];
  for (let i = 0; i < k; i++) {
    const p = fork(cliMain, ["bench", ...argv, "--worker", `${i}/${k}`], { stdio: ["ignore", "ignore", "inherit", "ipc"], serialization: "advanced" });
    procs.push(p);
    exits.push(new Promise<void>((resolve) => p.once("exit", () => resolve())));
    p.on("message", (m: ToParent) => {
      if (m.kind === "ready" && ++ready === k) for (const q of procs) q.send({ kind: "go" } satisfies ToWorker);
      else if (m.kind === "failed") {
        failure ??= m.message;
        stopAll();
      } else if (m.kind === "step") ((steps[m.step] ??= [])[i] = { result: fromWire(m.result), client: m.client });
      else if (m.kind === "interval" && hooks.onInterval) {
        const id = `${m.step}:${m.index}`;
        const latency = Latency.decode(m.interval.histogram);
        const acc = intervals.get(id);
        if (acc === undefined) intervals.set(id, { n: 1, iv: { ...m.interval }, latency });
        else {
          acc.n++;
          acc.iv.calls += m.interval.calls;
          acc.iv.errors += m.interval.errors;
          acc.iv.items += m.interval.items;
          acc.latency.add(latency);
        }
        const a = intervals.get(id)!;
        if (a.n === k) {
          intervals.delete(id);
          const t = totals.get(m.step) ?? { calls: 0, errors: 0, items: 0, latency: new Latency() };
          totals.set(m.step, t);
          t.calls += a.iv.calls;
          t.errors += a.iv.errors;
          t.items += a.iv.items;
          t.latency.add(a.latency);
          hooks.onInterval(m.step, a.iv, t);
        }
      }
    });
  }
  await Promise.all(exits);
  hooks.signal.removeEventListener("abort", stopAll);
  if (failure !== undefined) throw new WorkerError(failure);
  const out: StepOut[] = [];
  for (const perWorker of steps) {
    if (!perWorker || perWorker.filter(Boolean).length !== k) break; // a step some worker did not finish (interrupted)
    out.push({
      result: mergeResults(perWorker.map((s) => s.result)),
      // CPU adds up over the processes; the busiest event loop says whether one of them was the limit.
      client: { cpu: perWorker.reduce((n, s) => n + s.client.cpu, 0), elu: Math.max(...perWorker.map((s) => s.client.elu)) },
    });
  }
  if (out.length === 0 && !hooks.signal.aborted) throw new WorkerError("the workers ended without a result");
  return out;
}

class WorkerError extends Error {}

/** Where the live line goes: a terminal line rewritten in place, or plain lines with --live. */
function liveWriter(o: BenchOptions): { write(line: string): void; end(): void } | undefined {
  const tty = process.stderr.isTTY === true;
  if (!tty && !o.live) return undefined;
  let shown = false;
  return {
    write(line) {
      shown = true;
      process.stderr.write(tty ? `\r${line}\x1b[K` : `${line}\n`);
    },
    end() {
      if (tty && shown) process.stderr.write("\r\x1b[K");
    },
  };
}

export async function benchCommand(argv: string[]): Promise<number> {
  const parsed = parseBench(argv);
  if (parsed.help) {
    process.stdout.write(helpText(BENCH));
    return EXIT.ok;
  }
  if (parsed.compare) {
    const [a, b] = parsed.compare;
    process.stdout.write(formatComparison(a, b, compareFiles(readBenchFile(a), readBenchFile(b))));
    return EXIT.ok;
  }
  const o = parsed.options;
  const url = await resolveTarget(o.target, o.settings);
  if (!o.allowRemote) {
    try {
      checkLoopback(url);
    } catch (e) {
      if (!isTilthError(e, "ERR_BENCH_NOT_LOOPBACK")) throw e;
      process.stderr.write(`tilth: ${e.message} [${e.code}]\n`);
      return EXIT.usage;
    }
  }
  const loop = registerTransports(new NodeLoop({ name: "bench" }));
  if (o.worker) return workerMain(loop, o, url);

  const ac = new AbortController();
  const onInt = (): void => ac.abort();
  process.on("SIGINT", onInt);
  const live = liveWriter(o);
  const steps = o.rates.length || 1;
  const hooks: Hooks = {
    signal: ac.signal,
    ...(live
      ? {
          onInterval: (step, iv, t) => live.write(`${steps > 1 ? `step ${step + 1}/${steps} (${o.rates[step]}/s) ` : ""}${liveLine(iv.t, iv, t)}`),
        }
      : {}),
  };
  let outs: StepOut[];
  try {
    outs = o.workers > 1 ? await runWorkers(o, argv, hooks) : await runHere(loop, o, url, hooks);
  } catch (e) {
    live?.end();
    if (e instanceof WorkerError) {
      process.stderr.write(`tilth: a bench worker failed: ${e.message}\n`);
      return EXIT.failed;
    }
    if (isTilthError(e) || (e instanceof Error && "code" in e)) {
      process.stderr.write(`tilth: ${describe(e)}\n`);
      return EXIT.failed;
    }
    throw e;
  } finally {
    process.off("SIGINT", onInt);
  }
  live?.end();
  const runs: RunRecord[] = outs.map((s) =>
    toRecord(s.result, { url, method: o.method, workers: o.workers }, {
      ...s.client,
      workers: o.workers,
      ...(s.result.mode === "open" ? { lagP99: Math.min(s.result.clientLag.at(99), s.result.clientLag.stats().max) } : {}),
    } satisfies ClientLoad),
  );
  for (const r of runs) process.stdout.write(`${summary(r)}\n`);
  if (runs.length > 1) process.stdout.write(stepsTable(runs));
  const file: BenchFile = { tool: "tilth bench", format: 1, date: new Date(loop.wallTime()).toISOString(), runs };
  if (o.json) writeFileSync(o.json, `${JSON.stringify(file, null, 1)}\n`);
  if (o.html) writeFileSync(o.html, htmlPage(file));
  if (o.svg) writeFileSync(o.svg, svgPlots(file));
  return ac.signal.aborted ? EXIT.interrupted : EXIT.ok;
}
