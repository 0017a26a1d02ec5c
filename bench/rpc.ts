/**
 * `npm run bench -- rpc`: drpc echo calls per second over tcp, ipc and inproc,
 * beside a raw node:net echo with plain length-prefix framing (one write per
 * message) in the same run. Server and client are separate processes (inproc:
 * one process, as it must be). Scenarios: sequential (1 in flight, 16 B, with
 * p50/p99 latency), pipelined (100 in flight, 16 B), 64 KiB (10 in flight).
 * `--pin` runs both processes of the sequential scenarios on CPU 0.
 *
 * This machine's speed drifts by a third or more within seconds, so the two
 * systems are measured in interleaved slices: both are started and warmed up
 * (2 s each, long enough for the JIT to settle here), then each runs a slice
 * of 400 ms while the other idles, alternately, the order flipping each pair.
 * The ratio reported is the median of the pairs' ratios; rates are the total
 * calls over the total time of the slices.
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { createInterface } from "node:readline";
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

function launch(args: string[], pin: boolean, stdin: "ignore" | "pipe" = "ignore"): ChildProcess {
  const cmd = pin ? "taskset" : process.execPath;
  const argv = pin ? ["-c", "0", process.execPath, child, ...args] : [child, ...args];
  return spawn(cmd, argv, { stdio: [stdin, "pipe", "inherit"] });
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

/** The echo server for `url` (none for inproc: the client serves itself) and the URL it listens on; stopped again if it fails to start. */
async function startServer(kind: string, url: string, pin: boolean): Promise<{ server: ChildProcess | undefined; target: string }> {
  if (url.includes("inproc:")) return { server: undefined, target: url };
  const server = launch(["server", kind, url], pin);
  try {
    const target = await firstLine(server);
    if (kind === "drpc" && !target.startsWith("drpc+")) throw new Error(`server said ${target}`);
    return { server, target };
  } catch (e) {
    await stop(server);
    throw e;
  }
}

/** One measured echo run: a server process (unless inproc) and a client process. */
export async function echoRun(kind: string, url: string, size: number, inflight: number, warmupMs: number, runMs: number, pin: boolean): Promise<EchoRun> {
  const { server, target } = await startServer(kind, url, pin);
  try {
    const client = launch(["client", kind, target, String(size), String(inflight), String(warmupMs), String(runMs)], pin);
    const line = await firstLine(client);
    await new Promise<void>((r) => (client.exitCode !== null ? r() : client.once("exit", () => r())));
    if (client.exitCode !== 0) throw new Error(`${kind} client failed (exit ${client.exitCode})`);
    return JSON.parse(line) as EchoRun;
  } finally {
    if (server) await stop(server);
  }
}

/** One system's client (and server, unless inproc), warmed up and run in slices on request. */
class SlicedEcho {
  readonly #server: ChildProcess | undefined;
  readonly #client: ChildProcess;
  readonly #lines: AsyncIterator<string>;

  private constructor(server: ChildProcess | undefined, client: ChildProcess) {
    this.#server = server;
    this.#client = client;
    this.#lines = createInterface({ input: client.stdout! })[Symbol.asyncIterator]();
  }

  static async start(kind: string, url: string, size: number, inflight: number, warmupMs: number, pin: boolean): Promise<SlicedEcho> {
    const { server, target } = await startServer(kind, url, pin);
    const client = launch(["client", kind, target, String(size), String(inflight), String(warmupMs), "0"], pin, "pipe");
    // A client that died: writing to it fails, and the slice that waits for it says so.
    client.stdin!.on("error", () => {});
    const echo = new SlicedEcho(server, client);
    let ready: string;
    try {
      ready = await echo.#line();
    } catch (e) {
      await echo.end();
      throw e;
    }
    if (!ready.includes('"ready"')) {
      await echo.end();
      throw new Error(`${kind} client said ${ready}`);
    }
    return echo;
  }

  async #line(): Promise<string> {
    const r = await this.#lines.next();
    if (r.done) throw new Error(`echo client exited (code ${this.#client.exitCode})`);
    return r.value;
  }

  /** Send for `ms`, then idle; what the slice measured. */
  async slice(ms: number): Promise<EchoRun> {
    this.#client.stdin!.write(`run ${ms}\n`);
    return JSON.parse(await this.#line()) as EchoRun;
  }

  async end(): Promise<void> {
    if (this.#client.exitCode === null && this.#client.signalCode === null) {
      const exited = new Promise<void>((r) => this.#client.once("exit", () => r()));
      this.#client.stdin!.end("end\n");
      await Promise.race([exited, new Promise<void>((r) => setTimeout(r, 5000).unref())]);
      await stop(this.#client);
    }
    if (this.#server) await stop(this.#server);
  }
}

/** Slices of two systems, interleaved: `pairs` of each, the order flipping each pair. */
export async function interleavedEcho(
  a: { kind: string; url: string },
  b: { kind: string; url: string },
  o: { size: number; inflight: number; warmupMs: number; sliceMs: number; pairs: number; pin: boolean; progress?: (i: number) => void },
): Promise<{ a: EchoRun[]; b: EchoRun[] }> {
  const ea = await SlicedEcho.start(a.kind, a.url, o.size, o.inflight, o.warmupMs, o.pin);
  try {
    const eb = await SlicedEcho.start(b.kind, b.url, o.size, o.inflight, o.warmupMs, o.pin);
    try {
      const ra: EchoRun[] = [];
      const rb: EchoRun[] = [];
      for (let i = 0; i < o.pairs; i++) {
        o.progress?.(i);
        if (i % 2 === 0) {
          ra.push(await ea.slice(o.sliceMs));
          rb.push(await eb.slice(o.sliceMs));
        } else {
          rb.push(await eb.slice(o.sliceMs));
          ra.push(await ea.slice(o.sliceMs));
        }
      }
      return { a: ra, b: rb };
    } finally {
      await eb.end();
    }
  } finally {
    await ea.end();
  }
}

export const run: Suite = async ({ quick, pin, progress }) => {
  const warmupMs = quick ? 300 : 2000;
  const sliceMs = quick ? 200 : 400;
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
        // Sequential scenarios (the most sensitive) run more slices.
        const pairs = quick ? 3 : sc.inflight === 1 ? 16 : 8;
        const { a: base, b: tilth } = await interleavedEcho(
          { kind: "net", url: p.base() },
          { kind: "drpc", url: `drpc+${p.url()}` },
          { size: sc.size, inflight: sc.inflight, warmupMs, sliceMs, pairs, pin: pinned, progress: (i) => progress(`${label}: slice pair ${i + 1}/${pairs}`) },
        );
        const rate = (x: EchoRun): number => (x.calls / x.ms) * 1000;
        const total = (xs: EchoRun[]): number => (xs.reduce((s, x) => s + x.calls, 0) / xs.reduce((s, x) => s + x.ms, 0)) * 1000;
        const tr = tilth.map(rate);
        const br = base.map(rate);
        const pairRatios = tr.map((t, i) => t / br[i]!);
        const extra: Record<string, unknown> = {
          pinned,
          slices: pairs,
          sliceMs,
          warmupMs,
          pairRatios: pairRatios.map((x) => Math.round(x * 1000) / 1000),
          tilthSpread: [Math.min(...tr), Math.max(...tr)],
          baselineSpread: [Math.min(...br), Math.max(...br)],
        };
        if (sc.inflight === 1) {
          // Medians of the slices' percentiles.
          extra.p50us = median(tilth.map((x) => x.p50));
          extra.p99us = median(tilth.map((x) => x.p99));
          extra.baselineP50us = median(base.map((x) => x.p50));
          extra.baselineP99us = median(base.map((x) => x.p99));
        }
        const res = result(label, "calls/s", total(tilth), p.t === "ipc" ? "raw net (unix socket)" : "raw net (tcp)", total(base), extra);
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
