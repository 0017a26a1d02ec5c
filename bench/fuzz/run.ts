/**
 * The fuzz driver: for each target, fast-check runs its cases against the
 * live server, from a seed. A case with a problem is a finding: fast-check
 * shrinks it (each smaller candidate runs on a fresh server) and the report
 * gives the seed and path that replay it (`--seed S --path P`) and the
 * shrunk input in hex. A finding that matches a known issue the caller
 * allows is counted and the run goes on; anything else ends that target's run.
 * Memory is also watched over the whole run, and in tcp mode the server must
 * be left with no connection but the control client's.
 */
import fc from "fast-check";
import type { Loop } from "../../core/Loop.js";
import { sleep } from "../../core/time.js";
import { recordCorpus, type Corpus } from "./corpus.js";
import { collectGarbage, driving, Fixture, heldBytes, MiB, Trap, type Mode, type Problem } from "./harness.js";
import { isAllowed, KNOWN, type AllowKnown } from "./known.js";
import type { MemoryWatch } from "./session.js";
import { targetNamed, type CaseContext, type Target, type TargetName } from "./targets.js";

export interface FuzzOptions {
  target: TargetName;
  mode: Mode;
  /** Cases to run (from `path` when given). */
  cases: number;
  seed: number;
  /** A fast-check path: replay from that case (a shrunk path replays that exact input). */
  path?: string;
  allowKnown?: AllowKnown;
  /** Bound on one control call, ms. Default 2000. */
  controlMs?: number;
  /** Bytes a case may hold with its connection open. Default 32 MiB. */
  caseMemBytes?: number;
  /** Growth of held memory over the whole run (after collection) that is a finding. Default 64 MiB. */
  runMemBytes?: number;
  /** Another API to serve (the tool's own tests plant bugs with it). */
  api?: (loop: Loop) => object;
  /** The recorded corpus (recorded when absent). */
  corpus?: Corpus;
  /** Progress lines. */
  log?: (line: string) => void;
  /** Told the case about to run (the supervisor keeps the last, to name the case of a crash). */
  marker?: (line: string) => void;
}

export interface Finding extends Problem {
  target: TargetName;
  mode: Mode;
  seed: number;
  /** The fast-check path of the (shrunk) input; absent for run-level findings. */
  path?: string;
  /** The input, in hex. */
  input?: string;
  shrinks?: number;
}

export interface Report {
  target: TargetName;
  mode: Mode;
  seed: number;
  cases: number;
  findings: Finding[];
  /** Allowed known findings: how many, and the first of each. */
  known: Map<string, { count: number; first: Finding }>;
}

/** Thrown by a failing case so that fast-check records it and shrinks. */
class CaseFailure extends Error {
  constructor(readonly problem: Problem) {
    super(problem.message);
  }
}

const RUN_CHECK_EVERY = 1000;

export async function fuzz(options: FuzzOptions): Promise<Report> {
  const target = targetNamed(options.target);
  const corpus = options.corpus ?? (await recordCorpus());
  const log = options.log ?? (() => {});
  const report: Report = { target: options.target, mode: options.mode, seed: options.seed, cases: 0, findings: [], known: new Map() };
  const trap = new Trap().install();
  const live = target.live(options.mode);
  const fxOptions = { mode: options.mode, zrpc: target.zrpc, control: target.control, controlMs: options.controlMs ?? 2000, trap, ...(options.api ? { api: options.api } : {}) };
  const loop = live ? Fixture.loopFor(fxOptions) : undefined;
  try {
    const body = async (): Promise<void> => {
      const fx = loop ? await Fixture.open(loop, fxOptions) : undefined;
      try {
        // Over tcp, a server connection goes a little after its client: let it go before memory is read.
        const watch = new RunMemory(options, report, fx && options.mode === "tcp" ? () => lingering(fx) : undefined);
        const failed = await runCases(options, target, corpus, fx, trap, report, watch, log);
        if (fx && options.mode === "tcp") {
          const left = await lingering(fx);
          if (left > 0) report.findings.push({ kind: "liveness", message: `${left} server connection(s) outlived their clients by 3000 ms`, target: options.target, mode: options.mode, seed: options.seed });
        }
        if (!failed) await watch.check();
      } finally {
        await fx?.close();
      }
    };
    if (loop) await driving(loop, body);
    else await body();
  } finally {
    trap.uninstall();
  }
  return report;
}

/** Held memory over a whole run, after collection: growth past the bound is one finding. */
class RunMemory {
  readonly mem: MemoryWatch;
  readonly #start: number;
  readonly #bound: number;
  #found = false;

  constructor(
    readonly options: FuzzOptions,
    readonly report: Report,
    readonly settle: (() => Promise<unknown>) | undefined,
  ) {
    collectGarbage();
    this.#start = heldBytes();
    this.#bound = options.runMemBytes ?? 64 * MiB;
    this.mem = { floor: this.#start, caseBound: options.caseMemBytes ?? 32 * MiB, allowed: (id) => isAllowed(options.allowKnown, id) };
  }

  async check(): Promise<void> {
    await this.settle?.();
    collectGarbage();
    const now = heldBytes();
    this.mem.floor = now;
    if (this.#found || now - this.#start <= this.#bound) return;
    this.#found = true;
    const { options, report } = this;
    report.findings.push({
      kind: "memory",
      message: `held memory grew by ${((now - this.#start) / MiB).toFixed(1)} MiB over ${report.cases} cases (bound ${(this.#bound / MiB).toFixed(0)} MiB), after collection`,
      target: options.target,
      mode: options.mode,
      seed: options.seed,
    });
  }
}

/** Connections the server still holds besides the control client's, after waiting up to 3 s for them to go. */
async function lingering(fx: Fixture): Promise<number> {
  for (let i = 0; i < 30 && fx.server.connections > 1; i++) await sleep(fx.loop, 100);
  return Math.max(0, fx.server.connections - 1);
}

/** Run the cases; true when one failed (and was shrunk and reported). */
async function runCases(options: FuzzOptions, target: Target<unknown>, corpus: Corpus, fx: Fixture | undefined, trap: Trap, report: Report, watch: RunMemory, log: (line: string) => void): Promise<boolean> {
  const ctx: CaseContext = { mode: options.mode, fx, corpus, mem: watch.mem };
  const base = options.path === undefined ? 0 : Number(options.path.split(":")[0]);
  let next = base;
  let shrinking = false;
  const where = `${options.target} (${options.mode})`;
  const property = fc.asyncProperty(target.arbitrary(corpus), async (c) => {
    const index = shrinking ? undefined : next++;
    options.marker?.(shrinking ? `shrink ${options.target} ${options.mode} ${options.seed}` : `case ${options.target} ${options.mode} ${options.seed} ${index}`);
    trap.take();
    // Each candidate of a shrink runs on a fresh server: what an earlier one did must not decide it.
    if (shrinking) await fx?.reset();
    let problem: Problem | undefined;
    try {
      problem = await target.run(ctx, c);
    } catch (e) {
      problem = { kind: "uncaught", message: `the case itself failed: ${(e as Error).stack ?? String(e)}` };
    }
    problem = trap.take() ?? problem;
    if (index !== undefined) {
      report.cases++;
      if (report.cases % RUN_CHECK_EVERY === 0) {
        await watch.check();
        log(`${where}: ${report.cases} cases, ${[...report.known].map(([id, k]) => `${id} ×${k.count}`).join(", ") || "no known findings"}`);
      }
    }
    if (problem === undefined) return true;
    if (isAllowed(options.allowKnown, problem.known)) {
      const k = report.known.get(problem.known!);
      if (k) k.count++;
      else report.known.set(problem.known!, { count: 1, first: { ...problem, target: options.target, mode: options.mode, seed: options.seed, path: String(index ?? "?"), input: target.describe(c, corpus) } });
      return true;
    }
    shrinking = true;
    throw new CaseFailure(problem);
  });
  const params: fc.Parameters<[unknown]> = { seed: options.seed, numRuns: options.cases };
  if (options.path !== undefined) params.path = options.path;
  const details = await fc.check(property, params);
  if (details.failed && details.counterexample !== null) {
    const err = details.errorInstance;
    const problem: Problem = err instanceof CaseFailure ? err.problem : { kind: "uncaught", message: `the fuzz property failed: ${String(err)}` };
    report.findings.push({
      ...problem,
      target: options.target,
      mode: options.mode,
      seed: options.seed,
      path: details.counterexamplePath ?? undefined,
      input: target.describe(details.counterexample[0], corpus),
      shrinks: details.numShrinks,
    } as Finding);
  }
  return details.failed;
}

/** A finding as the report prints it. */
export function formatFinding(f: Finding, n: number): string {
  const lines = [`FINDING ${n} ${f.target} (${f.mode}) [${f.kind}]: ${f.message}`];
  if (f.known) lines.push(`  known issue "${f.known}": ${KNOWN[f.known]} (--allow-known ${f.known} lets a run go on past it)`);
  if (f.path !== undefined) {
    lines.push(`  seed ${f.seed}, path ${f.path}${f.shrinks ? ` (shrunk in ${f.shrinks} steps)` : ""}`);
    lines.push(`  replay: npm run fuzz -- --target ${f.target}${f.mode === "tcp" ? " --tcp" : ""} --seed ${f.seed} --path ${f.path}`);
  } else lines.push(`  seed ${f.seed} (the whole run)`);
  if (f.input !== undefined) lines.push(`  input${f.shrinks ? " (shrunk)" : ""}:`, f.input);
  return lines.join("\n");
}

/** A report's summary line and its findings. */
export function formatReport(r: Report, first = 1): string {
  const known = [...r.known].map(([id, k]) => `${id} ×${k.count} (first at path ${k.first.path})`);
  const lines = [`${r.target} (${r.mode}): ${r.cases} cases from seed ${r.seed}, ${r.findings.length} finding(s)${known.length ? `; known and allowed: ${known.join(", ")}` : ""}`];
  r.findings.forEach((f, i) => lines.push(formatFinding(f, first + i)));
  return lines.join("\n");
}

/** The input a target generates at `path` from `seed`, described (without running it). */
export async function describeCase(targetName: TargetName, seed: number, path: string, corpus?: Corpus): Promise<string> {
  const target = targetNamed(targetName);
  const c = corpus ?? (await recordCorpus());
  let described = "";
  fc.check(
    fc.property(target.arbitrary(c), (v) => {
      described = target.describe(v, c);
      return true;
    }),
    { seed, path, numRuns: 1 },
  );
  return described;
}
