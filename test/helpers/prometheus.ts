/**
 * A strict parser of the Prometheus text exposition format (0.0.4), for
 * tests only: every line must be a `# HELP`, a `# TYPE`, a blank line or a
 * sample of a declared family (histograms: `_bucket`, `_sum`, `_count`);
 * label values are unescaped; anything else throws. (The npm parser we
 * tried merges the series of a labelled histogram into one.)
 */
export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface Family {
  name: string;
  help: string;
  type: "counter" | "gauge" | "histogram" | "summary" | "untyped";
  samples: Sample[];
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/** A float as Prometheus reads it (Go's ParseFloat: NaN and Inf in any case; prom-client writes "Nan"). */
function parseValue(s: string, line: string): number {
  if (/^\+?inf$/i.test(s)) return Infinity;
  if (/^-inf$/i.test(s)) return -Infinity;
  if (/^nan$/i.test(s)) return NaN;
  if (!/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(s)) throw new Error(`bad value in: ${line}`);
  return Number(s);
}

function parseLabels(s: string, line: string): Record<string, string> {
  const out: Record<string, string> = {};
  let i = 0;
  while (i < s.length) {
    const eq = s.indexOf("=", i);
    if (eq < 0) throw new Error(`bad labels in: ${line}`);
    const name = s.slice(i, eq);
    if (!LABEL.test(name) || name in out) throw new Error(`bad or repeated label name "${name}" in: ${line}`);
    if (s[eq + 1] !== '"') throw new Error(`unquoted label value in: ${line}`);
    let v = "";
    let j = eq + 2;
    for (;; j++) {
      if (j >= s.length) throw new Error(`unterminated label value in: ${line}`);
      const c = s[j]!;
      if (c === '"') break;
      if (c === "\\") {
        const n = s[++j];
        if (n === "n") v += "\n";
        else if (n === "\\" || n === '"') v += n;
        else throw new Error(`bad escape in: ${line}`);
      } else v += c;
    }
    out[name] = v;
    i = j + 1;
    if (i < s.length) {
      if (s[i] !== ",") throw new Error(`expected , in: ${line}`);
      i++;
    }
  }
  return out;
}

/** Families by name. Throws on any line that does not follow the format. */
export function parsePrometheus(text: string): Map<string, Family> {
  const families = new Map<string, Family>();
  const owner = new Map<string, Family>(); // sample name -> family
  if (!text.endsWith("\n")) throw new Error("the text must end with a newline");
  for (const line of text.slice(0, -1).split("\n")) {
    if (line === "") continue;
    let m: RegExpExecArray | null;
    if ((m = /^# HELP (\S+) (.*)$/.exec(line))) {
      const name = m[1]!;
      if (!NAME.test(name)) throw new Error(`bad name: ${line}`);
      const f = families.get(name) ?? { name, help: "", type: "untyped" as const, samples: [] };
      f.help = m[2]!;
      families.set(name, f);
      owner.set(name, f);
      continue;
    }
    if ((m = /^# TYPE (\S+) (counter|gauge|histogram|summary|untyped)$/.exec(line))) {
      const f = families.get(m[1]!);
      if (f === undefined || f.samples.length > 0) throw new Error(`TYPE must follow HELP and precede samples: ${line}`);
      f.type = m[2] as Family["type"];
      for (const s of f.type === "histogram" ? ["_bucket", "_sum", "_count"] : f.type === "summary" ? ["_sum", "_count"] : []) owner.set(f.name + s, f);
      continue;
    }
    if (line.startsWith("#")) throw new Error(`unknown comment line: ${line}`);
    m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)(?: (-?\d+))?$/.exec(line);
    if (m === null) throw new Error(`bad sample line: ${line}`);
    const f = owner.get(m[1]!);
    if (f === undefined) throw new Error(`sample of an undeclared family: ${line}`);
    f.samples.push({ name: m[1]!, labels: parseLabels(m[2] ?? "", line), value: parseValue(m[3]!, line) });
  }
  return families;
}

/** The series of a histogram family, checked: cumulative buckets ending in `+Inf` equal to `_count`, and a `_sum`. */
export function histogramSeries(f: Family): { labels: Record<string, string>; buckets: [number, number][]; sum: number; count: number }[] {
  if (f.type !== "histogram") throw new Error(`${f.name} is a ${f.type}`);
  const by = new Map<string, { labels: Record<string, string>; buckets: [number, number][]; sum: number; count: number }>();
  const keyOf = (l: Record<string, string>): string => JSON.stringify(Object.entries(l).filter(([k]) => k !== "le").sort());
  for (const s of f.samples) {
    const k = keyOf(s.labels);
    let e = by.get(k);
    if (e === undefined) {
      const { le: _le, ...labels } = s.labels;
      by.set(k, (e = { labels, buckets: [], sum: NaN, count: NaN }));
    }
    if (s.name.endsWith("_bucket")) {
      if (s.labels.le === undefined) throw new Error(`${f.name}: a bucket without le`);
      e.buckets.push([parseValue(s.labels.le, s.name), s.value]);
    } else if (s.name.endsWith("_sum")) e.sum = s.value;
    else if (s.name.endsWith("_count")) e.count = s.value;
  }
  for (const e of by.values()) {
    const b = e.buckets;
    if (b.length === 0 || b[b.length - 1]![0] !== Infinity) throw new Error(`${f.name}${JSON.stringify(e.labels)}: no +Inf bucket`);
    for (let i = 1; i < b.length; i++)
      if (!(b[i]![0] > b[i - 1]![0]) || b[i]![1] < b[i - 1]![1]) throw new Error(`${f.name}${JSON.stringify(e.labels)}: buckets not increasing and cumulative`);
    if (b[b.length - 1]![1] !== e.count) throw new Error(`${f.name}${JSON.stringify(e.labels)}: +Inf bucket ${b[b.length - 1]![1]} != count ${e.count}`);
    if (Number.isNaN(e.sum)) throw new Error(`${f.name}${JSON.stringify(e.labels)}: no _sum`);
  }
  return [...by.values()];
}
