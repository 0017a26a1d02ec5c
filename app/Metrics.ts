/**
 * Counters and gauges of a service, written as the Prometheus text format
 * (`HttpTask` serves it on `/metrics`). One registry per service: nothing is
 * global, so two services in one process count separately.
 *
 * @example
 * ```ts
 * const m = new Metrics();
 * const runs = m.counter("tilth_task_runs_total", "Runs of a task.");
 * runs.inc({ task: "tick" });
 * m.gauge("tilth_queue_depth", "Items waiting.", () => [[{ task: "jobs" }, queue.depth]]);
 * m.text(); // "# HELP tilth_task_runs_total Runs of a task.\n# TYPE ...\ntilth_task_runs_total{task=\"tick\"} 1\n..."
 * ```
 * @module
 */
import { TilthError } from "../core/errors.js";

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
  collect?: () => Iterable<readonly [Labels, number]>;
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;

function key(labels: Labels | undefined): string {
  if (labels === undefined) return "";
  const names = Object.keys(labels).sort();
  return names.map((n) => `${n}="${String(labels[n]).replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n")}"`).join(",");
}

export class Metrics {
  readonly #families = new Map<string, Family>();

  /** A counter (created on first use; the same counter on later calls with the same name). */
  counter(name: string, help: string): Counter {
    const f = this.#family(name, "counter", help);
    return {
      inc: (labels, by = 1) => {
        if (!(by >= 0)) throw new RangeError(`counter ${name} cannot go down (by ${by})`);
        const k = key(labels);
        f.values.set(k, (f.values.get(k) ?? 0) + by);
      },
      get: (labels) => f.values.get(key(labels)) ?? 0,
    };
  }

  /** A gauge read when the metrics are written: `collect` gives each label set and its value. */
  gauge(name: string, help: string, collect: () => Iterable<readonly [Labels, number]>): void {
    const f = this.#family(name, "gauge", help);
    const before = f.collect;
    // Several owners (tasks) may add series to one gauge family.
    f.collect = before === undefined ? collect : function* () {
      yield* before();
      yield* collect();
    };
  }

  /** The current value of a series (counters and gauges), or undefined. */
  value(name: string, labels?: Labels): number | undefined {
    const f = this.#families.get(name);
    if (f === undefined) return undefined;
    const k = key(labels);
    if (f.collect) for (const [l, v] of f.collect()) if (key(l) === k) return v;
    return f.values.get(k);
  }

  /** Every family in the Prometheus text exposition format (version 0.0.4). */
  text(): string {
    let out = "";
    for (const [name, f] of this.#families) {
      out += `# HELP ${name} ${f.help}\n# TYPE ${name} ${f.type}\n`;
      const series: [string, number][] = [...f.values];
      if (f.collect) for (const [l, v] of f.collect()) series.push([key(l), v]);
      for (const [k, v] of series) out += `${name}${k ? `{${k}}` : ""} ${Number.isFinite(v) ? v : v > 0 ? "+Inf" : v < 0 ? "-Inf" : "NaN"}\n`;
    }
    return out;
  }

  #family(name: string, type: Family["type"], help: string): Family {
    if (!NAME.test(name)) throw new TilthError("ERR_METRIC_NAME", `invalid metric name "${name}"`);
    let f = this.#families.get(name);
    if (f === undefined) {
      f = { type, help, values: new Map() };
      this.#families.set(name, f);
    } else if (f.type !== type) throw new TilthError("ERR_METRIC_NAME", `metric "${name}" is a ${f.type}, not a ${type}`);
    return f;
  }
}
