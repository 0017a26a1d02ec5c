/**
 * `npm run soak -- --minutes M [--json FILE] [--max-slope MIB_PER_HOUR]`
 *
 * A fixed mixed load (bench/soak/load.ts) against a server in a child
 * process, for M minutes. Every sample interval (a minute) it prints the
 * server's RSS and heap (from its `.debug.status`); at the end, the slope of
 * each (MiB per hour, by least squares over the samples after the first
 * interval). With `--max-slope B` it exits 1 when either slope exceeds B.
 * The child is always stopped (SIGTERM, then SIGKILL past 5 s), also on
 * Ctrl-C and on any failure.
 *
 * Options:
 *   --minutes M          how long (or --seconds S, for a short run)
 *   --sample-seconds N   sample interval (default 60, or a fifth of a run shorter than 5 minutes)
 *   --hold-seconds N     how long each slow reader and stalled writer stays (default 10)
 *   --max-slope B        fail when the RSS or heap slope exceeds B MiB per hour
 *   --json FILE          write the samples, slopes and load counts as JSON
 *
 * Exit status: 0, 1 (slope past the bound, or the server died or stopped
 * answering), 2 for a usage error.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { setMaxListeners } from "node:events";
import { writeFileSync } from "node:fs";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { NodeLoop } from "../../adapters/node.js";
import { describe as describeError } from "../../core/errors.js";
import { sleep } from "../../core/time.js";
import { registerTransports } from "../../transports/index.js";
import { close, connect, withOptions } from "../../rpc/index.js";
import { runLoad, type LoadCounts } from "./load.js";
import { slopes, type Sample } from "./slope.js";

const MiB = 1024 * 1024;

interface Args {
  seconds: number;
  sampleSeconds: number | undefined;
  holdSeconds: number;
  maxSlope: number | undefined;
  json: string | undefined;
}

function usage(why?: string): never {
  if (why) console.error(why);
  console.error("usage: npm run soak -- --minutes M | --seconds S [--sample-seconds N] [--hold-seconds N] [--max-slope MIB_PER_HOUR] [--json FILE]");
  process.exit(2);
}

function parse(argv: string[]): Args {
  const a: Args = { seconds: NaN, sampleSeconds: undefined, holdSeconds: 10, maxSlope: undefined, json: undefined };
  const num = (i: number, name: string): number => {
    const v = Number(argv[i]);
    if (argv[i] === undefined || !(v > 0)) usage(`${name} needs a positive number`);
    return v;
  };
  for (let i = 0; i < argv.length; i++) {
    const x = argv[i]!;
    if (x === "--minutes") a.seconds = num(++i, x) * 60;
    else if (x === "--seconds") a.seconds = num(++i, x);
    else if (x === "--sample-seconds") a.sampleSeconds = num(++i, x);
    else if (x === "--hold-seconds") a.holdSeconds = num(++i, x);
    else if (x === "--max-slope") a.maxSlope = num(++i, x);
    else if (x === "--json") a.json = argv[++i] ?? usage("--json needs a file");
    else if (x === "--help" || x === "-h") usage();
    else usage(`unknown argument "${x}"`);
  }
  if (!(a.seconds > 0)) usage("give --minutes or --seconds");
  return a;
}

/** Start the server child; its URL and pid once it listens. */
async function startServer(): Promise<{ child: ChildProcess; url: string; pid: number }> {
  const script = fileURLToPath(new URL("./server.js", import.meta.url));
  const child = spawn(process.execPath, [script], { stdio: ["pipe", "pipe", "inherit"] });
  const line = await new Promise<string>((resolve, reject) => {
    const rl = createInterface({ input: child.stdout! });
    rl.once("line", (l) => {
      rl.close();
      resolve(l);
    });
    child.once("exit", (code, signal) => reject(new Error(`the server exited (${signal ?? code}) before it listened`)));
  });
  child.stdout!.resume();
  const [url, pid] = line.split(" ");
  return { child, url: url!, pid: Number(pid) };
}

/** Stop the child: SIGTERM, then SIGKILL if it is still there after 5 s. */
async function stopServer(loop: NodeLoop, child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  child.kill("SIGTERM");
  const killer = loop.timer(5000, () => child.kill("SIGKILL"));
  await exited;
  killer.cancel();
}

const fmt = (b: number): string => `${(b / MiB).toFixed(1)} MiB`;
const fmtSlope = (k: number | undefined): string => (k === undefined ? "n/a (too few samples)" : `${k >= 0 ? "+" : ""}${k.toFixed(1)} MiB/h`);

async function main(): Promise<number> {
  const a = parse(process.argv.slice(2));
  const interval = a.sampleSeconds ?? (a.seconds < 300 ? a.seconds / 5 : 60);
  const loop = registerTransports(new NodeLoop());
  const { child, url, pid } = await startServer();
  const killOnExit = (): void => void child.kill("SIGKILL");
  process.on("exit", killOnExit);
  const ac = new AbortController();
  // Every load loop's waits listen on it.
  setMaxListeners(200, ac.signal);
  const onSigint = (): void => ac.abort(new Error("interrupted"));
  process.once("SIGINT", onSigint);
  let stopping = false;
  const failures: string[] = [];
  child.once("exit", (code, signal) => {
    if (stopping) return;
    failures.push(`the server exited (${signal ?? code}) during the run`);
    ac.abort(new Error("the server exited"));
  });
  console.log(`soak: server pid ${pid} at ${url}; ${a.seconds} s of load, a sample every ${interval} s`);
  const samples: Sample[] = [];
  const counts: LoadCounts = {};
  const t0 = loop.now();
  const until = t0 + a.seconds * 1000;
  const control = withOptions(await connect<Record<string, () => Promise<unknown>>>(url, { loop }), { timeout: 10_000 });
  try {
    const load = runLoad({ loop, url, until, signal: ac.signal, holdSeconds: a.holdSeconds }, counts);
    for (let k = 1; loop.now() < until && !ac.signal.aborted; k++) {
      await sleep(loop, Math.max(0, t0 + k * interval * 1000 - loop.now()), { signal: ac.signal }).catch(() => {});
      if (ac.signal.aborted) break;
      try {
        const st = (await control[".debug.status"]!()) as { memory: { rss: number; heapUsed: number }; connections: number };
        const s: Sample = { t: Math.round((loop.now() - t0) / 100) / 10, rss: st.memory.rss, heapUsed: st.memory.heapUsed };
        samples.push(s);
        const done = Object.entries(counts).map(([kind, c]) => `${kind} ${c.rounds}${c.errors ? ` (${c.errors} errors)` : ""}`).join(", ");
        console.log(`t=${s.t}s rss ${fmt(s.rss)} heap ${fmt(s.heapUsed)} connections ${st.connections}; ${done}`);
      } catch (e) {
        failures.push(`the server did not answer its status at t=${Math.round((loop.now() - t0) / 1000)}s: ${describeError(e)}`);
        break;
      }
    }
    ac.abort(new Error("the soak run is over"));
    await load;
  } finally {
    process.off("SIGINT", onSigint);
    await close(control).catch(() => {});
    stopping = true;
    await stopServer(loop, child);
    process.off("exit", killOnExit);
  }
  const k = slopes(samples, interval);
  console.log(`slope over ${k.points} samples after the first ${interval} s: rss ${fmtSlope(k.rss)}, heap ${fmtSlope(k.heap)}`);
  for (const [kind, c] of Object.entries(counts)) if (c.errors > 0) console.log(`${kind}: ${c.errors} errors of ${c.rounds + c.errors} rounds, last: ${c.lastError}`);
  if (a.maxSlope !== undefined) {
    for (const [name, v] of [["rss", k.rss], ["heap", k.heap]] as const) {
      if (v !== undefined && v > a.maxSlope) failures.push(`the ${name} slope ${fmtSlope(v)} exceeds --max-slope ${a.maxSlope} MiB/h`);
    }
  }
  if (a.json) {
    writeFileSync(a.json, JSON.stringify({ seconds: a.seconds, sampleSeconds: interval, samples, slope: { rssMiBPerHour: k.rss ?? null, heapMiBPerHour: k.heap ?? null, points: k.points }, load: counts, failures }, null, 2) + "\n");
    console.log(`wrote ${a.json}`);
  }
  console.log(`server pid ${pid} stopped`);
  for (const f of failures) console.log(`FAIL: ${f}`);
  return failures.length > 0 ? 1 : 0;
}

main().then(
  (code) => (process.exitCode = code),
  (e: unknown) => {
    console.error(e);
    process.exitCode = 1;
  },
);
