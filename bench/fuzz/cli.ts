/**
 * The fuzz command line (`npm run fuzz`, bench/fuzz/main.ts): options, one
 * worker process per target, and the supervisor that turns a worker's death
 * into a finding that names the case it was running.
 * Usage is in main.ts and docs/operators.md.
 */
import { spawn } from "node:child_process";
import { randomInt } from "node:crypto";
import { writeSync } from "node:fs";
import { createInterface } from "node:readline";
import type { Loop } from "../../core/Loop.js";
import type { Mode } from "./harness.js";
import { KNOWN, parseAllowKnown, type AllowKnown } from "./known.js";
import { describeCase, formatFinding, formatReport, fuzz } from "./run.js";
import { TARGETS, type TargetName } from "./targets.js";

interface Args {
  targets: TargetName[];
  cases: number | undefined;
  seed: number;
  path: string | undefined;
  mode: Mode;
  allowKnown: AllowKnown;
  allowKnownArg: string | undefined;
  controlMs: number;
  caseMemMiB: number;
  runMemMiB: number;
  inProcess: boolean;
  worker: boolean;
}

function usage(why?: string): never {
  if (why) console.error(why);
  console.error(
    "usage: npm run fuzz -- [--target drpc|zrpc|msgpack|framing]… [--cases N] [--seed S] [--path P] [--tcp]\n" +
      "                       [--allow-known [IDS]] [--control-ms MS] [--case-mem-mib N] [--run-mem-mib N] [--in-process]\n" +
      `known issues: ${Object.keys(KNOWN).join(", ")}`,
  );
  process.exit(2);
}

function parse(argv: string[]): Args {
  const a: Args = { targets: [], cases: undefined, seed: randomInt(2 ** 31 - 1), path: undefined, mode: "inproc", allowKnown: undefined, allowKnownArg: undefined, controlMs: 2000, caseMemMiB: 32, runMemMiB: 64, inProcess: false, worker: false };
  const num = (i: number, name: string): number => {
    const v = Number(argv[i]);
    if (argv[i] === undefined || !Number.isFinite(v)) usage(`${name} needs a number`);
    return v;
  };
  for (let i = 0; i < argv.length; i++) {
    const x = argv[i]!;
    if (x === "--target") {
      for (const t of (argv[++i] ?? usage("--target needs a name")).split(",")) {
        if (!TARGETS.includes(t as TargetName)) usage(`unknown target "${t}"`);
        a.targets.push(t as TargetName);
      }
    } else if (x === "--cases") a.cases = num(++i, x);
    else if (x === "--seed") a.seed = num(++i, x);
    else if (x === "--path") a.path = argv[++i] ?? usage("--path needs a path");
    else if (x === "--tcp") a.mode = "tcp";
    else if (x === "--allow-known") {
      const next = argv[i + 1];
      a.allowKnownArg = next !== undefined && !next.startsWith("--") ? argv[++i]! : "all";
      try {
        a.allowKnown = parseAllowKnown(a.allowKnownArg);
      } catch (e) {
        usage((e as Error).message);
      }
    } else if (x === "--control-ms") a.controlMs = num(++i, x);
    else if (x === "--case-mem-mib") a.caseMemMiB = num(++i, x);
    else if (x === "--run-mem-mib") a.runMemMiB = num(++i, x);
    else if (x === "--in-process") a.inProcess = true;
    else if (x === "--worker") a.worker = true;
    else if (x === "--help" || x === "-h") usage();
    else usage(`unknown argument "${x}"`);
  }
  if (a.targets.length === 0) a.targets = [...TARGETS];
  return a;
}

/** Where the workers come from, and what they serve. */
export interface CliOptions {
  /** The script a worker runs: one that calls `cli` with the same options. */
  script: string;
  /** Another API to serve (the tool's own tests plant bugs with it). */
  api?: (loop: Loop) => object;
}

/** Run one target here; returns the number of findings. */
async function runHere(a: Args, target: TargetName, firstFinding: number, o: CliOptions): Promise<number> {
  // The supervisor reads the case being run from fd 3, written synchronously (so a crash cannot lose it).
  const marker = a.worker ? (line: string) => void writeSync(3, `${line}\n`) : undefined;
  const report = await fuzz({
    target,
    mode: a.mode,
    cases: a.cases ?? (a.path === undefined ? 10_000 : 1),
    seed: a.seed,
    ...(a.path === undefined ? {} : { path: a.path }),
    allowKnown: a.allowKnown,
    controlMs: a.controlMs,
    caseMemBytes: a.caseMemMiB * 1024 * 1024,
    runMemBytes: a.runMemMiB * 1024 * 1024,
    log: (line) => console.error(line),
    ...(marker ? { marker } : {}),
    ...(o.api ? { api: o.api } : {}),
  });
  console.log(formatReport(report, firstFinding));
  marker?.(`findings ${report.findings.length}`);
  return report.findings.length;
}

/** Run one target in a worker process; a crash becomes a finding. Returns the number of findings. */
async function runSupervised(a: Args, target: TargetName, firstFinding: number, o: CliOptions): Promise<number> {
  const argv = ["--target", target, "--seed", String(a.seed), "--control-ms", String(a.controlMs), "--case-mem-mib", String(a.caseMemMiB), "--run-mem-mib", String(a.runMemMiB), "--worker"];
  if (a.cases !== undefined) argv.push("--cases", String(a.cases));
  if (a.path !== undefined) argv.push("--path", a.path);
  if (a.mode === "tcp") argv.push("--tcp");
  if (a.allowKnownArg !== undefined) argv.push("--allow-known", a.allowKnownArg);
  const child = spawn(process.execPath, [...process.execArgv, o.script, ...argv], { stdio: ["ignore", "inherit", "inherit", "pipe"] });
  let last = "";
  let reported = 0;
  createInterface({ input: child.stdio[3] as NodeJS.ReadableStream }).on("line", (l) => {
    if (l.startsWith("findings ")) reported = Number(l.slice(9));
    else last = l;
  });
  const stop = (): void => void child.kill("SIGTERM");
  process.once("SIGINT", stop);
  const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve) => child.once("exit", (c, s) => resolve([c, s])));
  process.off("SIGINT", stop);
  if (code === 0) return 0;
  if (code === 1 && reported > 0) return reported; // findings, printed by the worker
  // Anything else: the worker died. Name the case it was running.
  const [kind, , , seed, index] = last.split(" ");
  const how = signal ? `signal ${signal}` : `exit code ${code}`;
  let text: string;
  if (kind === "case" && index !== undefined) {
    const input = await describeCase(target, Number(seed), index).catch((e: unknown) => `    (could not describe it: ${String(e)})`);
    text = formatFinding({ kind: "crash", message: `the process died (${how}) while running this case`, target, mode: a.mode, seed: Number(seed), path: index, input }, firstFinding);
  } else if (kind === "shrink") {
    text = formatFinding({ kind: "crash", message: `the process died (${how}) while shrinking a finding; replay the run without shrinking to see it`, target, mode: a.mode, seed: a.seed }, firstFinding);
  } else {
    text = formatFinding({ kind: "crash", message: `the process died (${how}) before its first case`, target, mode: a.mode, seed: a.seed }, firstFinding);
  }
  console.log(text);
  return 1;
}

/** Run the fuzz command with `argv`; resolves with the exit status. */
export async function cli(argv: string[], o: CliOptions): Promise<number> {
  const a = parse(argv);
  if (!a.worker) console.error(`fuzz: targets ${a.targets.join(", ")}, ${a.mode}, seed ${a.seed}${a.path ? `, path ${a.path}` : ""}`);
  let findings = 0;
  for (const t of a.targets) {
    findings += a.worker || a.inProcess ? await runHere(a, t, findings + 1, o) : await runSupervised(a, t, findings + 1, o);
  }
  return findings > 0 ? 1 : 0;
}
