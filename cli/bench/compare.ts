/**
 * `tilth bench --compare A.json B.json`: the difference of two runs, with a
 * verdict on whether it is beyond run-to-run noise.
 *
 * A run's timeline gives a sample of its rate and p99 per interval (full
 * intervals only). A difference is beyond noise when both of these hold:
 * Welch's t-test on the two samples says so at 99% (two-sided), and it is
 * larger than either run's own drift (the difference between the means of
 * its first and second halves: how much one run moves while nothing
 * changes). A run too short for that (fewer than 4 full intervals) gets no
 * verdict. p99.9 and max are single values: shown, never judged.
 * @module
 */
import { BenchFileError, readJsonFile } from "./options.js";
import { formatCount, formatUs, type BenchFile, type RunRecord } from "./report.js";

/** Files larger than this are refused (a --json file of a day-long run is a few MiB). */
export const MAX_COMPARE_BYTES = 256 * 1024 * 1024;

export function readBenchFile(file: string): BenchFile {
  const v = readJsonFile(file, MAX_COMPARE_BYTES);
  const f = v as Partial<BenchFile>;
  if (f === null || typeof f !== "object" || f.tool !== "tilth bench" || f.format !== 1 || !Array.isArray(f.runs) || f.runs.length === 0)
    throw new BenchFileError(file, "is not a tilth bench --json file (format 1)");
  for (const r of f.runs) if (typeof r?.callsPerSec !== "number" || typeof r.latency?.p99 !== "number" || !Array.isArray(r.timeline)) throw new BenchFileError(file, "has a run without its figures");
  return f as BenchFile;
}

/** Two-sided critical values of Student's t at 99%, by degrees of freedom. */
const T99: Array<[number, number]> = [
  [1, 63.657], [2, 9.925], [3, 5.841], [4, 4.604], [5, 4.032], [6, 3.707], [7, 3.499], [8, 3.355], [9, 3.25], [10, 3.169],
  [12, 3.055], [15, 2.947], [20, 2.845], [25, 2.787], [30, 2.75], [40, 2.704], [60, 2.66], [120, 2.617], [Infinity, 2.576],
];

/** The critical value for `df` (rounded down to the table: conservative). */
export function tCritical99(df: number): number {
  let c = T99[0]![1];
  for (const [d, t] of T99) if (df >= d) c = t;
  return c;
}

const mean = (xs: readonly number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;
const variance = (xs: readonly number[]): number => {
  const m = mean(xs);
  return xs.reduce((a, b) => a + (b - m) ** 2, 0) / (xs.length - 1);
};

/** Welch's t statistic and degrees of freedom of two samples. */
export function welch(a: readonly number[], b: readonly number[]): { t: number; df: number } {
  const va = variance(a) / a.length;
  const vb = variance(b) / b.length;
  const se = Math.sqrt(va + vb);
  if (se === 0) return { t: mean(a) === mean(b) ? 0 : Infinity, df: a.length + b.length - 2 };
  const df = (va + vb) ** 2 / (va ** 2 / (a.length - 1) + vb ** 2 / (b.length - 1));
  return { t: (mean(b) - mean(a)) / se, df };
}

/** How much a run moves by itself: |mean of the first half − mean of the second| / mean of all. */
export function drift(xs: readonly number[]): number {
  const h = Math.floor(xs.length / 2);
  const m = mean(xs);
  if (h === 0 || m === 0) return 0;
  return Math.abs(mean(xs.slice(0, h)) - mean(xs.slice(xs.length - h))) / Math.abs(m);
}

/** The judgement of one figure. */
export interface Verdict {
  a: number;
  b: number;
  /** (b − a) / a. */
  change: number;
  /** undefined: too few intervals to judge. */
  beyondNoise: boolean | undefined;
  why: string;
}

export const MIN_INTERVALS = 4;

/** Judge the per-interval samples `xa` and `xb` whose overall figures are `a` and `b`. */
export function judge(a: number, b: number, xa: readonly number[], xb: readonly number[]): Verdict {
  const change = a === 0 ? (b === 0 ? 0 : Infinity) : (b - a) / a;
  if (xa.length < MIN_INTERVALS || xb.length < MIN_INTERVALS)
    return { a, b, change, beyondNoise: undefined, why: `too few full intervals to judge (${xa.length} and ${xb.length}; at least ${MIN_INTERVALS}: run longer)` };
  const { t, df } = welch(xa, xb);
  const crit = tCritical99(df);
  const noise = Math.max(drift(xa), drift(xb));
  const significant = Math.abs(t) > crit;
  const large = Math.abs(change) > noise;
  const tText = `t = ${Number.isFinite(t) ? t.toFixed(1) : "∞"}, needs ${crit.toFixed(1)}`;
  const driftText = `drift within a run ${(noise * 100).toFixed(1)}%`;
  if (significant && large) return { a, b, change, beyondNoise: true, why: `beyond noise (${tText}; ${driftText})` };
  if (!significant) return { a, b, change, beyondNoise: false, why: `within noise (${tText})` };
  return { a, b, change, beyondNoise: false, why: `within noise (the change is below the ${driftText})` };
}

/** Full intervals of a run: the last, partial one left out (a late tick only moves a boundary a little). */
function full(r: RunRecord): RunRecord["timeline"] {
  const lens = r.timeline.map((p) => p.ms).sort((a, b) => a - b);
  const typical = lens.length ? lens[lens.length >> 1]! : 0;
  return r.timeline.filter((p) => p.ms >= typical * 0.9);
}

export interface RunComparison {
  label: string;
  rate: Verdict;
  p99: Verdict;
  p50: { a: number; b: number };
  p999: { a: number; b: number };
  max: { a: number; b: number };
  errors: { a: number; b: number };
}

export function compareRuns(a: RunRecord, b: RunRecord, label: string): RunComparison {
  const fa = full(a);
  const fb = full(b);
  const streams = a.streams > 0 && b.streams > 0;
  const rate = streams
    ? judge(a.itemsPerSec, b.itemsPerSec, fa.map((p) => (p.items / p.ms) * 1000), fb.map((p) => (p.items / p.ms) * 1000))
    : judge(a.callsPerSec, b.callsPerSec, fa.map((p) => p.rate), fb.map((p) => p.rate));
  return {
    label,
    rate,
    p99: judge(a.latency.p99, b.latency.p99, fa.filter((p) => p.calls > 0).map((p) => p.p99), fb.filter((p) => p.calls > 0).map((p) => p.p99)),
    p50: { a: a.latency.p50, b: b.latency.p50 },
    p999: { a: a.latency.p999, b: b.latency.p999 },
    max: { a: a.latency.max, b: b.latency.max },
    errors: { a: a.failed, b: b.failed },
  };
}

/** Compare two files run by run (rate steps pair up by position). */
export function compareFiles(a: BenchFile, b: BenchFile): RunComparison[] {
  const n = Math.min(a.runs.length, b.runs.length);
  return Array.from({ length: n }, (_, i) => {
    const ra = a.runs[i]!;
    const label = ra.mode === "open" ? `open loop at ${formatCount(ra.rate ?? 0)} calls/s` : `closed loop, ${ra.connections}×${ra.inFlight} in flight`;
    return compareRuns(ra, b.runs[i]!, label);
  });
}

const signed = (x: number): string => (Number.isFinite(x) ? `${x >= 0 ? "+" : ""}${(x * 100).toFixed(1)}%` : "n/a");

/** The comparison as text: a table per run and a verdict line. */
export function formatComparison(fileA: string, fileB: string, cs: readonly RunComparison[], unit: (c: RunComparison) => string = () => "calls/s"): string {
  const out: string[] = [`A: ${fileA}`, `B: ${fileB}`];
  for (const c of cs) {
    out.push("", `${c.label}`);
    const rows: string[][] = [
      [unit(c), formatCount(c.rate.a), formatCount(c.rate.b), signed(c.rate.change), c.rate.why],
      ["p50", formatUs(c.p50.a), formatUs(c.p50.b), signed(c.p50.a ? (c.p50.b - c.p50.a) / c.p50.a : 0), ""],
      ["p99", formatUs(c.p99.a), formatUs(c.p99.b), signed(c.p99.change), c.p99.why],
      ["p99.9", formatUs(c.p999.a), formatUs(c.p999.b), signed(c.p999.a ? (c.p999.b - c.p999.a) / c.p999.a : 0), ""],
      ["max", formatUs(c.max.a), formatUs(c.max.b), signed(c.max.a ? (c.max.b - c.max.a) / c.max.a : 0), ""],
      ["errors", formatCount(c.errors.a), formatCount(c.errors.b), "", ""],
    ];
    const head = ["", "A", "B", "change", ""];
    const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
    const line = (r: string[]): string => `  ${r.map((x, i) => (i === 0 ? x.padEnd(w[i]!) : i === 4 ? x : x.padStart(w[i]!))).join("  ")}`.trimEnd();
    out.push(line(head), ...rows.map(line));
    out.push(`  verdict: ${verdictText(c)}`);
  }
  return `${out.join("\n")}\n`;
}

export function verdictText(c: RunComparison): string {
  const parts: string[] = [];
  const r = c.rate;
  if (r.beyondNoise === undefined) parts.push("no verdict on throughput: too few intervals");
  else if (r.beyondNoise) parts.push(`B is ${r.change > 0 ? "faster" : "slower"} by ${Math.abs(r.change * 100).toFixed(1)}%`);
  else parts.push("no difference in throughput beyond noise");
  const p = c.p99;
  if (p.beyondNoise === true) parts.push(`p99 is ${p.change > 0 ? "higher" : "lower"} in B by ${Math.abs(p.change * 100).toFixed(1)}%`);
  else if (p.beyondNoise === false) parts.push("p99 within noise");
  return parts.join("; ");
}
