/**
 * Counters, gauges and histograms of a service, served in the Prometheus text
 * format by `HttpTask` on `/metrics`. Backed by a prom-client `Registry`
 * (`registry`: add your own prom-client metrics there). One registry per
 * service: nothing is global, so two services in one process count
 * separately. The names are listed in docs/observability.md.
 *
 * @example
 * ```ts
 * const m = new Metrics();
 * const runs = m.counter("tilth_task_runs_total", "Runs of a task.");
 * runs.inc({ task: "tick" });
 * m.gauge("tilth_queue_depth", "Items waiting.", () => [[{ task: "jobs" }, queue.depth]]);
 * await m.text(); // "# HELP tilth_task_runs_total Runs of a task.\n# TYPE ...\ntilth_task_runs_total{task=\"tick\"} 1\n..."
 * ```
 * @module
 */
import { Registry, collectDefaultMetrics } from "prom-client";
import { TilthError } from "../core/errors.js";
import type { Loop, Timer } from "../core/Loop.js";

export type Labels = Readonly<Record<string, string>>;

/** A value that only goes up. */
export interface Counter {
  inc(labels?: Labels, by?: number): void;
  /** The value for `labels` (0 if never incremented). */
  get(labels?: Labels): number;
}

interface Family {
  type: "counter" | "gauge";
  help: string;
  values: Map<string, number>;
  /** The labels of each key of `values`. */
  labels: Map<string, Labels>;
  collect?: () => Iterable<readonly [Labels, number]>;
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;

function key(labels: Labels | undefined): string {
  if (labels === undefined) return "";
  const names = Object.keys(labels).sort();
  return names.map((n) => `${n}="${String(labels[n]).replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n")}"`).join(",");
}

/** One series of a histogram: `observe` is a few array writes, no label object or hashing per value. */
export interface HistogramSeries {
  observe(value: number): void;
}

/** A histogram family: one series per label set, bound once with `series()`. */
export interface Histogram {
  /** The series of `labels` (created on first use; keep it and observe through it). */
  series(labels?: Labels): HistogramSeries;
}

/** Default buckets of call durations, seconds: 50 µs to 10 s. */
export const DURATION_BUCKETS: readonly number[] = [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** Buckets of loop lag, seconds: 1 ms to 2.5 s. */
export const LAG_BUCKETS: readonly number[] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];

class Series implements HistogramSeries {
  readonly counts: Float64Array;
  sum = 0;
  count = 0;
  constructor(readonly labels: Labels, readonly bounds: readonly number[]) {
    this.counts = new Float64Array(bounds.length);
  }
  observe(v: number): void {
    const b = this.bounds;
    let i = 0;
    while (i < b.length && v > b[i]!) i++;
    if (i < b.length) this.counts[i]!++;
    this.sum += v;
    this.count++;
  }
}

/** A copy of `labels` with its names in order: series print the same whatever order their labels were given in. */
function sorted(labels: Labels | undefined): Labels {
  const out: Record<string, string> = {};
  if (labels !== undefined) for (const n of Object.keys(labels).sort()) out[n] = labels[n]!;
  return out;
}

export class Metrics {
  readonly #families = new Map<string, Family>();
  /** The prom-client registry the text comes from: tilth's families, the process's default metrics (from the first scrape on), and any metric you register. */
  readonly registry = new Registry();
  #defaults = false;

  /** A counter (created on first use; the same counter on later calls with the same name). */
  counter(name: string, help: string): Counter {
    const f = this.#family(name, "counter", help);
    return {
      inc: (labels, by = 1) => {
        if (!(by >= 0)) throw new RangeError(`counter ${name} cannot go down (by ${by})`);
        const k = key(labels);
        const v = f.values.get(k);
        if (v === undefined) f.labels.set(k, sorted(labels));
        f.values.set(k, (v ?? 0) + by);
      },
      get: (labels) => f.values.get(key(labels)) ?? 0,
    };
  }

  /** A gauge read when the metrics are written: `collect` gives each label set and its value. */
  gauge(name: string, help: string, collect: () => Iterable<readonly [Labels, number]>): void {
    this.#collected(name, "gauge", help, collect);
  }

  /**
   * A counter read when the metrics are written, for a total kept elsewhere
   * (bytes a server received): `collect` gives each label set and its value,
   * which must only go up.
   */
  counterFrom(name: string, help: string, collect: () => Iterable<readonly [Labels, number]>): void {
    this.#collected(name, "counter", help, collect);
  }

  #collected(name: string, type: Family["type"], help: string, collect: () => Iterable<readonly [Labels, number]>): void {
    const f = this.#family(name, type, help);
    const before = f.collect;
    // Several owners (tasks) may add series to one gauge family.
    f.collect = before === undefined ? collect : function* () {
      yield* before();
      yield* collect();
    };
  }

  /**
   * A histogram (created on first use; the same one on later calls with the
   * same name). `buckets`: upper bounds, increasing (the `+Inf` bucket is
   * implied). Values in base units (seconds, bytes).
   */
  histogram(name: string, help: string, buckets: readonly number[] = DURATION_BUCKETS): Histogram {
    const existing = this.#histograms.get(name);
    if (existing !== undefined) return existing;
    if (!NAME.test(name) || this.#families.has(name)) throw new TilthError("ERR_METRIC_NAME", `invalid or taken metric name "${name}"`);
    for (let i = 1; i < buckets.length; i++)
      if (!(buckets[i]! > buckets[i - 1]!)) throw new RangeError(`histogram ${name}: buckets must increase`);
    const all = new Map<string, Series>();
    this.#series.set(name, all);
    const h: Histogram = {
      series: (labels = {}) => {
        const k = key(labels);
        let s = all.get(k);
        if (s === undefined) all.set(k, (s = new Series(sorted(labels), buckets)));
        return s;
      },
    };
    this.#histograms.set(name, h);
    this.registry.registerMetric({
      name,
      get: async () => {
        const values: { labels: Labels; value: number; metricName: string }[] = [];
        for (const s of all.values()) {
          let cum = 0;
          for (let i = 0; i < buckets.length; i++) {
            cum += s.counts[i]!;
            values.push({ metricName: `${name}_bucket`, labels: { ...s.labels, le: String(buckets[i]) }, value: cum });
          }
          values.push({ metricName: `${name}_bucket`, labels: { ...s.labels, le: "+Inf" }, value: s.count });
          values.push({ metricName: `${name}_sum`, labels: s.labels, value: s.sum });
          values.push({ metricName: `${name}_count`, labels: s.labels, value: s.count });
        }
        return { name, help, type: "histogram", values, aggregator: "sum" };
      },
    } as unknown as Parameters<Registry["registerMetric"]>[0]);
    return h;
  }

  readonly #histograms = new Map<string, Histogram>();

  /**
   * Watch `loop`: every `intervalMs` a timer of the loop measures how late it
   * fires (`tilth_loop_lag_seconds`, a histogram), and each scrape reads the
   * loop's utilisation (`tilth_loop_utilization_ratio`, when the loop can tell).
   * Returns what stops the watch (its timer is cancelled). `HttpTask` watches
   * its service's loop while it runs.
   */
  watchLoop(loop: Loop, intervalMs = 500): () => void {
    const lag = this.histogram("tilth_loop_lag_seconds", "How late a loop timer fires: time the loop could not serve callbacks.", LAG_BUCKETS).series({ loop: loop.name });
    if (loop.utilization !== undefined && !this.#families.has("tilth_loop_utilization_ratio")) {
      this.gauge("tilth_loop_utilization_ratio", "Share of time the loop was busy since the previous scrape.", () => [[{ loop: loop.name }, loop.utilization!()]]);
    }
    let t: Timer | undefined;
    const arm = (): void => {
      t = loop.timer(intervalMs, () => {
        lag.observe(Math.max(0, loop.now() - t!.deadline) / 1000);
        arm();
      }).unref();
    };
    arm();
    return () => t?.cancel();
  }
  readonly #series = new Map<string, Map<string, Series>>();

  /** The current value of a series (counters, gauges, and a histogram's `NAME_count` and `NAME_sum`), or undefined. */
  value(name: string, labels?: Labels): number | undefined {
    const f = this.#families.get(name);
    const k = key(labels);
    if (f === undefined) {
      // A histogram's `_count` or `_sum`.
      const m = /^(.*)_(count|sum)$/.exec(name);
      const s = m === null ? undefined : this.#series.get(m[1]!)?.get(k);
      return s === undefined ? undefined : m![2] === "count" ? s.count : s.sum;
    }
    if (f.collect) for (const [l, v] of f.collect()) if (key(l) === k) return v;
    return f.values.get(k);
  }

  /**
   * Every metric in the Prometheus text exposition format (version 0.0.4).
   * The first call also starts the process's default metrics (CPU, memory,
   * heap, handles, GC; prom-client's `collectDefaultMetrics`).
   */
  text(): Promise<string> {
    if (!this.#defaults) {
      this.#defaults = true;
      collectDefaultMetrics({ register: this.registry });
    }
    return this.registry.metrics();
  }

  #family(name: string, type: Family["type"], help: string): Family {
    if (!NAME.test(name) || this.#histograms.has(name)) throw new TilthError("ERR_METRIC_NAME", `invalid metric name "${name}"`);
    let f = this.#families.get(name);
    if (f === undefined) {
      const fam: Family = (f = { type, help, values: new Map(), labels: new Map() });
      this.#families.set(name, f);
      // prom-client takes any object with a name and an async get().
      this.registry.registerMetric({
        name,
        get: async () => {
          const values: { labels: Labels; value: number }[] = [];
          for (const [k, v] of fam.values) values.push({ labels: fam.labels.get(k) ?? {}, value: v });
          if (fam.collect) for (const [l, v] of fam.collect()) values.push({ labels: sorted(l), value: v });
          return { name, help, type: fam.type, values, aggregator: "sum" };
        },
      } as unknown as Parameters<Registry["registerMetric"]>[0]);
    } else if (f.type !== type) throw new TilthError("ERR_METRIC_NAME", `metric "${name}" is a ${f.type}, not a ${type}`);
    return f;
  }
}
