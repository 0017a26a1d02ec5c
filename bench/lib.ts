/**
 * The benchmark suite's shared shapes. Every suite is a module `bench/<name>.ts`
 * exporting `run: Suite`; `bench/main.ts` runs the suites named on the command
 * line, prints a table and writes JSON in one shape for all of them.
 *
 * Benchmarks report ratios against a baseline measured in the same run, never
 * absolute budgets: `ratio = value / baselineValue` (or, where a suite runs
 * baseline and tilth in alternating pairs, the median of the pairs' ratios),
 * higher is better.
 */

export interface BenchResult {
  /** Scenario name, e.g. `timer schedule+cancel`. */
  name: string;
  /** Unit of `value`, e.g. `ops/s`, `calls/s`. */
  unit: string;
  value: number;
  /** What the baseline is, e.g. `setTimeout+clearTimeout`. */
  baseline: string;
  baselineValue: number;
  /** value / baselineValue; higher is better. */
  ratio: number;
  /** Extra figures: latency percentiles, pinning, spread. */
  extra?: Record<string, unknown>;
}

export interface SuiteOptions {
  /** Smoke-sized run. */
  quick: boolean;
  /** Pin client and server to one CPU for sequential figures (taskset), where the suite supports it. */
  pin: boolean;
  /** Report a live progress line. */
  progress: (line: string) => void;
}

export type Suite = (options: SuiteOptions) => Promise<BenchResult[]>;

export function result(
  name: string,
  unit: string,
  value: number,
  baseline: string,
  baselineValue: number,
  extra?: Record<string, unknown>,
): BenchResult {
  const r: BenchResult = { name, unit, value, baseline, baselineValue, ratio: baselineValue > 0 ? value / baselineValue : 0 };
  if (extra) r.extra = extra;
  return r;
}

/** Monotonic time in ms for measuring (benchmarks read the host clock directly, by design). */
export function clockMs(): number {
  return Number(process.hrtime.bigint()) / 1e6;
}

/** Median of numbers. */
export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const n = s.length;
  if (n === 0) return NaN;
  return n % 2 ? s[(n - 1) >> 1]! : (s[n / 2 - 1]! + s[n / 2]!) / 2;
}

/** Percentile (0..100) of a sample, nearest rank. */
export function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const i = Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1));
  return s[i]!;
}

/**
 * Run `fn` `repeats` times and return the median rate, the spread and each
 * rate. `fn` returns the number of operations it did and is timed whole.
 */
export async function measure(
  repeats: number,
  fn: () => Promise<number> | number,
): Promise<{ rate: number; min: number; max: number; rates: number[] }> {
  const rates: number[] = [];
  for (let i = 0; i < repeats; i++) {
    const t0 = clockMs();
    const ops = await fn();
    const dt = clockMs() - t0;
    rates.push((ops / dt) * 1000);
  }
  return { rate: median(rates), min: Math.min(...rates), max: Math.max(...rates), rates };
}

export function formatRate(v: number): string {
  if (v >= 1e6) return `${(v / 1e6).toFixed(2)}M`;
  if (v >= 1e3) return `${(v / 1e3).toFixed(1)}k`;
  return v.toFixed(1);
}
