/**
 * What `tilth bench` shows and keeps: the live line, the summary, the rate
 * steps table, the `--json` record of a run (whole histograms included) and
 * the merge of worker results.
 * @module
 */
import { Latency, type LatencyStats } from "./histogram.js";
import type { Interval, LoadResult } from "./load.js";

/** How busy the client was over the measured window. */
export interface ClientLoad {
  /** CPU time of the client process(es) over the window, in cores (1 = one core busy all the time). */
  cpu: number;
  /** Event-loop utilization of the busiest client process, 0..1. */
  elu: number;
  /** Client processes. */
  workers: number;
  /** Open loop: p99 of how late the client sent calls that had a free slot, µs (its own lateness). */
  lagP99?: number;
}

/** One interval of a run's timeline, as --json keeps it. */
export interface TimelinePoint {
  /** End of the interval, s since measuring began. */
  t: number;
  ms: number;
  calls: number;
  errors: number;
  items: number;
  /** Calls per second in the interval. */
  rate: number;
  p50: number;
  p99: number;
  max: number;
  /** The interval's whole latency histogram (µs), compressed base64. */
  histogram: string;
}

/** A run, as `--json` writes it: figures a person reads and the histograms a tool re-reads. Latency in µs. */
export interface RunRecord {
  url: string;
  method: string;
  mode: "closed" | "open";
  /** Target rate of an open loop, calls/s. */
  rate: number | null;
  connections: number;
  inFlight: number;
  workers: number;
  windowMs: number;
  calls: number;
  failed: number;
  callsPerSec: number;
  errors: Record<string, number>;
  errorSamples: Record<string, string>;
  streams: number;
  items: number;
  itemsPerSec: number;
  bytesSent: number;
  bytesReceived: number;
  latency: LatencyStats & { histogram: string };
  uncorrected: LatencyStats & { histogram: string };
  /** Open loop: how late the client sent calls against the schedule. */
  sendLag: LatencyStats | null;
  streamTime: (LatencyStats & { histogram: string }) | null;
  behind: number;
  unfinished: number;
  interrupted: boolean;
  client: ClientLoad;
  timeline: TimelinePoint[];
}

/** The `--json` file. */
export interface BenchFile {
  tool: "tilth bench";
  format: 1;
  date: string;
  /** One run, or one per rate step. */
  runs: RunRecord[];
}

const withHistogram = (l: Latency): LatencyStats & { histogram: string } => ({ ...l.stats(), histogram: l.encode() });

export function toRecord(r: LoadResult, meta: { url: string; method: string; workers: number }, client: ClientLoad): RunRecord {
  const s = r.windowMs / 1000;
  const per = (n: number): number => (s > 0 ? Math.round((n / s) * 10) / 10 : 0);
  return {
    url: meta.url,
    method: meta.method,
    mode: r.mode,
    rate: r.rate ?? null,
    connections: r.connections,
    inFlight: r.inFlight,
    workers: meta.workers,
    windowMs: Math.round(r.windowMs * 1000) / 1000,
    calls: r.calls,
    failed: r.failed,
    callsPerSec: per(r.calls),
    errors: r.errors,
    errorSamples: r.errorSamples,
    streams: r.streams,
    items: r.items,
    itemsPerSec: per(r.items),
    bytesSent: r.bytesSent,
    bytesReceived: r.bytesReceived,
    latency: withHistogram(r.latency),
    uncorrected: withHistogram(r.uncorrected),
    sendLag: r.mode === "open" ? r.sendLag.stats() : null,
    streamTime: r.streams > 0 ? withHistogram(r.streamTime) : null,
    behind: r.behind,
    unfinished: r.unfinished,
    interrupted: r.interrupted,
    client,
    timeline: r.intervals.map((i) => ({
      t: Math.round(i.t) / 1000,
      ms: Math.round(i.ms * 1000) / 1000,
      calls: i.calls,
      errors: i.errors,
      items: i.items,
      rate: i.ms > 0 ? Math.round((i.calls / i.ms) * 1e4) / 10 : 0,
      p50: i.p50,
      p99: i.p99,
      max: i.max,
      histogram: i.histogram,
    })),
  };
}

// ------------------------------------------------------------ workers

/** A LoadResult as a worker sends it to its parent: histograms as base64. */
export type WireResult = Omit<LoadResult, "latency" | "uncorrected" | "sendLag" | "clientLag" | "streamTime"> & {
  latency: string;
  sendLag: string;
  clientLag: string;
  uncorrected: string;
  streamTime: string;
};

export function toWire(r: LoadResult): WireResult {
  return {
    ...r,
    latency: r.latency.encode(),
    uncorrected: r.uncorrected.encode(),
    sendLag: r.sendLag.encode(),
    clientLag: r.clientLag.encode(),
    streamTime: r.streamTime.encode(),
  };
}

export function fromWire(w: WireResult): LoadResult {
  return {
    ...w,
    latency: Latency.decode(w.latency),
    uncorrected: Latency.decode(w.uncorrected),
    sendLag: Latency.decode(w.sendLag),
    clientLag: Latency.decode(w.clientLag),
    streamTime: Latency.decode(w.streamTime),
  };
}

const addInto = (a: Record<string, number>, b: Record<string, number>): void => {
  for (const [k, n] of Object.entries(b)) a[k] = (a[k] ?? 0) + n;
};

/** `iv` with the latency figures of `l`. */
export function withLatency(iv: Interval, l: Latency): Interval {
  const st = l.stats();
  return { ...iv, p50: st.p50, p99: st.p99, max: st.max, histogram: l.encode() };
}

/**
 * The results of several workers that ran side by side as one: counts add
 * up, histograms merge, the window is the longest, intervals merge by their
 * position in the timeline.
 */
export function mergeResults(rs: readonly LoadResult[]): LoadResult {
  const first = rs[0]!;
  const out: LoadResult = {
    ...first,
    rate: rs.every((r) => r.rate !== undefined) ? rs.reduce((n, r) => n + r.rate!, 0) : undefined,
    connections: rs.reduce((n, r) => n + r.connections, 0),
    inFlight: first.inFlight,
    windowMs: Math.max(...rs.map((r) => r.windowMs)),
    errors: {},
    errorSamples: {},
    latency: new Latency(),
    uncorrected: new Latency(),
    sendLag: new Latency(),
    clientLag: new Latency(),
    streamTime: new Latency(),
    intervals: [],
    interrupted: rs.some((r) => r.interrupted),
  };
  for (const k of ["calls", "failed", "streams", "items", "bytesSent", "bytesReceived", "behind", "unfinished"] as const) out[k] = rs.reduce((n, r) => n + r[k], 0);
  const merged: { iv: Interval; latency: Latency }[] = [];
  for (const r of rs) {
    addInto(out.errors, r.errors);
    for (const [k, m] of Object.entries(r.errorSamples)) out.errorSamples[k] ??= m;
    out.latency.add(r.latency);
    out.uncorrected.add(r.uncorrected);
    out.sendLag.add(r.sendLag);
    out.clientLag.add(r.clientLag);
    out.streamTime.add(r.streamTime);
    r.intervals.forEach((i, n) => {
      const o = (merged[n] ??= { iv: { ...i, calls: 0, errors: 0, items: 0 }, latency: new Latency() });
      o.iv.t = Math.max(o.iv.t, i.t);
      o.iv.ms = Math.max(o.iv.ms, i.ms);
      o.iv.calls += i.calls;
      o.iv.errors += i.errors;
      o.iv.items += i.items;
      o.latency.add(Latency.decode(i.histogram));
    });
  }
  out.intervals = merged.map((m) => withLatency(m.iv, m.latency));
  return out;
}

// ------------------------------------------------------------ text

/**
 * A measured latency in µs for a person, to 3 significant digits: 312 µs,
 * 1.21 ms, 2.35 s. Not formatMs (whole milliseconds, for the durations of
 * error messages): a latency table needs what is below a millisecond.
 */
export function formatUs(us: number): string {
  if (us < 1000) return `${Math.round(us)} µs`;
  const [value, unit] = us < 1e6 ? [us / 1000, "ms"] : [us / 1e6, "s"];
  return `${sig(value)} ${unit}`;
}

const sig = (x: number): string => (x >= 100 ? String(Math.round(x)) : x >= 10 ? x.toFixed(1) : x.toFixed(2));

/** 12345.6 -> "12 346". */
export function formatCount(n: number): string {
  return Math.round(n)
    .toString()
    .replace(/\B(?=(\d{3})+(?!\d))/g, " ");
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${Math.round(n)} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 1024 ** 3) return `${(n / 1024 ** 2).toFixed(1)} MiB`;
  return `${(n / 1024 ** 3).toFixed(2)} GiB`;
}

/** The live line: elapsed time, the last interval's rate, errors, p50 and p99 so far. */
export function liveLine(elapsedMs: number, last: Interval, totals: { calls: number; errors: number; items: number; latency: Latency }): string {
  const rate = last.ms > 0 ? (last.calls / last.ms) * 1000 : 0;
  const items = totals.items > 0 ? `  ${formatCount(last.ms > 0 ? (last.items / last.ms) * 1000 : 0)} items/s` : "";
  return (
    `[${(elapsedMs / 1000).toFixed(0)}s] ${formatCount(rate)} calls/s${items}  calls ${formatCount(totals.calls)}  errors ${formatCount(totals.errors)}` +
    `  p50 ${formatUs(totals.latency.at(50))}  p99 ${formatUs(totals.latency.at(99))}`
  );
}

const pct = (n: number, of: number): string => (of > 0 ? `${((n / of) * 100).toFixed(n === 0 ? 0 : 2)}%` : "0%");

function latencyLine(label: string, l: LatencyStats): string {
  return `  ${label.padEnd(11)} p50 ${formatUs(l.p50)}  p90 ${formatUs(l.p90)}  p99 ${formatUs(l.p99)}  p99.9 ${formatUs(l.p999)}  max ${formatUs(l.max)}  (mean ${formatUs(l.mean)})`;
}

/** Open loop: the client is late when calls that had a free slot left this much (µs) after their due time at p99. */
export const CLIENT_LATE_US = 1000;

/**
 * The client's load, and what it means for the figures. A closed loop's
 * client is saturated when its event loop is busy 90% of the time; an open
 * loop's event loop also waits out the last moments before each due time, so
 * its verdict comes from its own lateness instead: calls that had a free slot
 * and still left late.
 */
export function clientLine(c: ClientLoad): string {
  const who = c.workers > 1 ? `${c.workers} processes, ` : "";
  const open = c.lagP99 !== undefined;
  const line = `  client      ${who}CPU ${(c.cpu * 100).toFixed(0)}% of one core, event loop busy ${(c.elu * 100).toFixed(0)}%${open ? ` (waits for due times included), late by ${formatUs(c.lagP99!)} at p99` : ""}`;
  const saturated = open ? c.lagP99! > CLIENT_LATE_US : c.elu >= 0.9;
  if (saturated) return `${line}\n              the client could not keep up: these figures may be the client's limit, not the server's (try --workers ${c.workers + 1})`;
  return `${line} (the figures are the server's)`;
}

/** The summary of one run. */
export function summary(r: RunRecord): string {
  const lines: string[] = [];
  const load = r.mode === "open" ? `open loop at ${formatCount(r.rate!)} calls/s (at most ${r.inFlight} in flight per connection)` : `closed loop, ${r.inFlight} in flight per connection`;
  lines.push(`tilth bench ${r.url} ${r.method}: ${load}, ${r.connections} connection${r.connections === 1 ? "" : "s"}${r.interrupted ? " (interrupted)" : ""}`);
  lines.push("");
  lines.push(`  calls       ${formatCount(r.calls)} in ${(r.windowMs / 1000).toFixed(2)} s = ${formatCount(r.callsPerSec)} calls/s, errors ${formatCount(r.failed)} (${pct(r.failed, r.calls)})`);
  if (r.streams > 0) {
    lines.push(`  streams     ${formatCount(r.streams)} streams, ${formatCount(r.items)} items = ${formatCount(r.itemsPerSec)} items/s`);
    lines.push(latencyLine("first item", r.latency));
    if (r.streamTime) lines.push(latencyLine("whole", r.streamTime));
  } else if (r.latency.count > 0) lines.push(latencyLine("latency", r.latency));
  if (r.mode === "open" && r.uncorrected.count > 0) {
    lines.push(latencyLine("from send", r.uncorrected) + "  (not corrected: what a closed loop would report)");
    if (r.sendLag) lines.push(`  send lag    p50 ${formatUs(r.sendLag.p50)}  p99 ${formatUs(r.sendLag.p99)}  max ${formatUs(r.sendLag.max)}  (how late calls left against the schedule: a stalled server, or a busy client)`);
  }
  const s = r.windowMs / 1000;
  if (s > 0) lines.push(`  bytes       sent ${formatBytes(r.bytesSent / s)}/s, received ${formatBytes(r.bytesReceived / s)}/s`);
  const codes = Object.entries(r.errors).sort((a, b) => b[1] - a[1]);
  if (codes.length) {
    lines.push("  errors");
    const w = Math.max(...codes.map(([c]) => c.length));
    for (const [code, n] of codes) lines.push(`    ${code.padEnd(w)}  ${formatCount(n).padStart(9)}  ${(r.errorSamples[code] ?? "").slice(0, 120)}`);
  }
  if (r.behind > 0) lines.push(`  behind      ${formatCount(r.behind)} calls were due and never sent: every slot was busy (raise --in-flight, or the server cannot keep this rate)`);
  if (r.unfinished > 0) lines.push(`  unfinished  ${formatCount(r.unfinished)} calls were still in flight at the end and were cancelled (not counted)`);
  lines.push(clientLine(r.client));
  return `${lines.join("\n")}\n`;
}

/** A table of rate steps, and where latency broke. */
export function stepsTable(runs: readonly RunRecord[]): string {
  const head = ["rate", "calls/s", "p50", "p90", "p99", "p99.9", "max", "errors", "behind"];
  const rows = runs.map((r) => [
    `${formatCount(r.rate ?? 0)}/s`,
    formatCount(r.callsPerSec),
    formatUs(r.latency.p50),
    formatUs(r.latency.p90),
    formatUs(r.latency.p99),
    formatUs(r.latency.p999),
    formatUs(r.latency.max),
    formatCount(r.failed),
    formatCount(r.behind),
  ]);
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((x) => x[i]!.length)));
  const line = (x: string[]): string => `  ${x.map((c, i) => c.padStart(w[i]!)).join("  ")}`;
  const out = [line(head), line(w.map((n) => "-".repeat(n))), ...rows.map(line)];
  const k = breakingStep(runs);
  out.push("", k === undefined ? "  latency held at every step" : `  latency breaks at ${formatCount(runs[k]!.rate ?? 0)} calls/s: ${breakReason(runs, k)}`);
  return `${out.join("\n")}\n`;
}

/**
 * The first step where the server no longer keeps up: it did less than 95%
 * of the target rate, fell behind, failed calls, or its p99 grew past ten
 * times the first step's (and past 1 ms).
 */
export function breakingStep(runs: readonly RunRecord[]): number | undefined {
  const base = runs[0]?.latency.p99 ?? 0;
  for (let k = 0; k < runs.length; k++) {
    if (breakReason(runs, k, base) !== "") return k;
  }
  return undefined;
}

function breakReason(runs: readonly RunRecord[], k: number, base = runs[0]?.latency.p99 ?? 0): string {
  const r = runs[k]!;
  const why: string[] = [];
  if (r.rate !== null && r.callsPerSec < 0.95 * r.rate) why.push(`${formatCount(r.callsPerSec)} calls/s done of ${formatCount(r.rate)}`);
  if (r.behind > 0) why.push(`${formatCount(r.behind)} calls behind`);
  if (r.failed > 0) why.push(`${formatCount(r.failed)} errors`);
  if (k > 0 && r.latency.p99 > Math.max(10 * base, 1000)) why.push(`p99 ${formatUs(r.latency.p99)} against ${formatUs(base)} at the first step`);
  return why.join(", ");
}
