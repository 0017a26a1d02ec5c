/**
 * `tilth bench`'s figures: the verdict of --compare on runs whose intervals
 * are known, the merge of worker results, the HDR encoding round trip, the
 * text formats and the knee of rate steps.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { compareRuns, drift, judge, tCritical99, welch } from "../../cli/bench/compare.js";
import { Latency } from "../../cli/bench/histogram.js";
import type { LoadResult } from "../../cli/bench/load.js";
import { parseBench, parseDuration, parseRates, reviveBytes } from "../../cli/bench/options.js";
import { checkLoopback } from "../../cli/bench/target.js";
import { UsageError } from "../../cli/args.js";
import { breakingStep, clientLine, formatCount, withLatency, formatUs, fromWire, mergeResults, toRecord, toWire, type RunRecord } from "../../cli/bench/report.js";

/** A seeded generator (no Math.random in the project): the same samples every run. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

/** n interval rates around `mean`, uniform within ±spread. */
const samples = (n: number, mean: number, spread: number, seed: number): number[] => {
  const r = rng(seed);
  return Array.from({ length: n }, () => mean + (r() * 2 - 1) * spread);
};

test("compare: a 10% faster run with 2% interval noise is beyond noise; the same rate twice is not", () => {
  const a = samples(10, 10_000, 200, 1);
  const faster = judge(10_000, 11_000, a, samples(10, 11_000, 200, 2));
  assert.equal(faster.beyondNoise, true, faster.why);
  assert.ok(Math.abs(faster.change - 0.1) < 1e-9);
  const same = judge(10_000, 10_020, a, samples(10, 10_020, 200, 3));
  assert.equal(same.beyondNoise, false, same.why);
  assert.match(same.why, /within noise/);
  const short = judge(10_000, 20_000, a.slice(0, 3), a.slice(0, 3));
  assert.equal(short.beyondNoise, undefined);
  assert.match(short.why, /too few full intervals/);
});

test("compare: a significant difference smaller than a run's own drift is called noise", () => {
  // Each run drifts 10% from its first half to its second; over 100 intervals a 3% difference is significant.
  const ramp = (base: number): number[] => Array.from({ length: 100 }, (_, i) => base * (i < 50 ? 0.95 : 1.05) + (i % 2));
  const v = judge(10_000, 10_300, ramp(10_000), ramp(10_300));
  assert.ok(Math.abs(welch(ramp(10_000), ramp(10_300)).t) > tCritical99(198), "significant by the t-test alone");
  assert.equal(v.beyondNoise, false, v.why);
  assert.match(v.why, /below the drift within a run/);
  assert.ok(drift(ramp(10_000)) > 0.09);
});

test("compare: Welch's t and its critical values", () => {
  const { t, df } = welch([1, 2, 3, 4], [2, 3, 4, 5]);
  assert.ok(Math.abs(t - 1.095) < 0.01, `t ${t}`);
  assert.ok(Math.abs(df - 6) < 1e-9);
  assert.equal(tCritical99(6.5), 3.707);
  assert.equal(tCritical99(1000), 2.617);
  assert.equal(tCritical99(0.5), 63.657);
});

function result(calls: number, latencyMs: number[], intervals: number[][]): LoadResult {
  const latency = new Latency();
  for (const l of latencyMs) latency.recordMs(l);
  return {
    mode: "closed",
    rate: undefined,
    connections: 1,
    inFlight: 1,
    windowMs: intervals.length * 1000,
    calls,
    failed: 1,
    errors: { ERR_X: 1 },
    errorSamples: { ERR_X: "x" },
    streams: 0,
    items: 0,
    latency,
    uncorrected: latency,
    sendLag: new Latency(),
    clientLag: new Latency(),
    streamTime: new Latency(),
    bytesSent: 10,
    bytesReceived: 20,
    behind: 0,
    unfinished: 0,
    interrupted: false,
    intervals: intervals.map((ls, i) => {
      const l = new Latency();
      for (const x of ls) l.recordMs(x);
      return withLatency({ t: (i + 1) * 1000, ms: 1000, calls: ls.length, errors: 0, items: 0, p50: 0, p99: 0, max: 0, histogram: "" }, l);
    }),
  };
}

test("workers: results merge (counts add, histograms merge, intervals by position) through the wire form", () => {
  const a = result(3, [1, 2, 3], [[1, 2], [3]]);
  const b = result(2, [100, 200], [[100], [200]]);
  const m = mergeResults([fromWire(toWire(a)), fromWire(toWire(b))]);
  assert.equal(m.calls, 5);
  assert.equal(m.failed, 2);
  assert.deepEqual(m.errors, { ERR_X: 2 });
  assert.equal(m.connections, 2);
  assert.equal(m.latency.count, 5);
  assert.ok(Math.abs(m.latency.at(100) - 200_000) <= 200, "µs, to 3 significant digits");
  assert.equal(m.bytesReceived, 40);
  assert.deepEqual(m.intervals.map((i) => [i.calls, Latency.decode(i.histogram).count]), [
    [3, 3],
    [2, 2],
  ]);
  const rec = toRecord(m, { url: "drpc+tcp://127.0.0.1:1", method: "m", workers: 2 }, { cpu: 1.5, elu: 0.5, workers: 2 });
  assert.equal(rec.callsPerSec, 2.5);
  assert.equal(Latency.decode(rec.latency.histogram).count, 5, "the --json histogram decodes back");
  assert.equal(rec.timeline[0]!.rate, 3);
});

test("compare runs: throughput judged on full intervals only", () => {
  const iv = (rate: number, n: number, seed: number): number[][] => samples(n, rate, rate * 0.02, seed).map((r) => Array.from({ length: Math.round(r) }, () => 1));
  const a = toRecord(result(0, [1], iv(100, 8, 4)), { url: "u", method: "m", workers: 1 }, { cpu: 0, elu: 0, workers: 1 });
  const b = toRecord(result(0, [1], iv(150, 8, 5)), { url: "u", method: "m", workers: 1 }, { cpu: 0, elu: 0, workers: 1 });
  a.timeline[0]!.ms = 1024; // a late first tick: still a full interval
  a.timeline[1]!.ms = 976;
  a.callsPerSec = 100;
  b.callsPerSec = 150;
  a.timeline.push({ ...a.timeline[0]!, ms: 2, calls: 0 }); // the last, partial interval
  const c = compareRuns(a, b, "x");
  assert.equal(c.rate.beyondNoise, true, c.rate.why);
  const same = compareRuns(a, a, "x");
  assert.equal(same.rate.beyondNoise, false);
  assert.match(same.rate.why, /within noise/);
});

test("the client's verdict: a busy event loop in a closed loop, its own lateness in an open loop", () => {
  assert.match(clientLine({ cpu: 0.5, elu: 0.5, workers: 1 }), /\(the figures are the server's\)$/);
  assert.match(clientLine({ cpu: 0.95, elu: 0.95, workers: 1 }), /could not keep up: .*try --workers 2/);
  assert.match(clientLine({ cpu: 0.9, elu: 1, workers: 2, lagP99: 20 }), /late by 20 µs at p99 \(the figures are the server's\)$/);
  assert.match(clientLine({ cpu: 0.9, elu: 1, workers: 2, lagP99: 5000 }), /could not keep up: .*try --workers 3/);
});

test("formats and parsing: durations, rate steps, µs, counts", () => {
  assert.equal(formatUs(312), "312 µs");
  assert.equal(formatUs(1210), "1.21 ms");
  assert.equal(formatUs(45_600), "45.6 ms");
  assert.equal(formatUs(2_350_000), "2.35 s");
  assert.equal(formatCount(1234567.4), "1 234 567");
  assert.equal(parseDuration("250ms", "d"), 250);
  assert.equal(parseDuration("10", "d"), 10_000);
  assert.equal(parseDuration("2m", "d"), 120_000);
  assert.deepEqual(parseRates("1000:5000:1000"), [1000, 2000, 3000, 4000, 5000]);
  assert.deepEqual(parseRates("0.5"), [0.5]);
  assert.throws(() => parseRates("5:1:1"), /below the first/);
  assert.deepEqual(reviveBytes([{ $hex: "00ff" }, { a: { $base64: "AQI=" } }, { $hex: "00", other: 1 }]), [Buffer.from([0, 255]), { a: Buffer.from([1, 2]) }, { $hex: "00", other: 1 }]);
  assert.throws(() => reviveBytes({ $hex: "abc" }), /even number of hex digits/);
});

test("rate steps: latency breaks at the first step that falls behind, fails, or whose p99 grows tenfold", () => {
  const step = (rate: number, done: number, p99: number, failed = 0): RunRecord =>
    ({ rate, callsPerSec: done, behind: 0, failed, latency: { p99 } }) as unknown as RunRecord;
  assert.equal(breakingStep([step(100, 100, 500), step(200, 200, 600), step(300, 300, 700)]), undefined);
  assert.equal(breakingStep([step(100, 100, 500), step(200, 200, 600), step(300, 250, 700)]), 2);
  assert.equal(breakingStep([step(100, 100, 500), step(200, 200, 6000), step(300, 300, 700)]), 1);
  assert.equal(breakingStep([step(100, 100, 500), step(200, 200, 600, 3)]), 1);
});

test("bounds: every option has a limit, and a mistake is a usage error", () => {
  const cases: Array<[string[], RegExp]> = [
    [["--calls", "0"], /--calls needs a whole number from 1 to 1000000000/],
    [["--duration", "25h"], /--duration needs a duration/],
    [["--duration", "1441m"], /--duration is at most 24 h/],
    [["--rate", "1:1000:1"], /makes 1000 steps; at most 100/],
    [["--rate", "0"], /--rate needs calls per second above 0/],
    [["-c", "1000", "-m", "10000"], /--connections × --in-flight is at most 1000000/],
    [["--workers", "3", "-c", "2"], /--workers 3 needs at least as many --connections/],
    [["--workers", "65", "-c", "100"], /--workers needs a whole number from 1 to 64/],
    [["--timeout", "-1"], /--timeout needs a whole number/],
    [["--conections", "2"], /unknown option --conections .*did you mean --connections/],
  ];
  for (const [extra, msg] of cases) assert.throws(() => parseBench(["drpc+tcp://127.0.0.1:1", "echo", ...extra]), (e: unknown) => e instanceof UsageError && msg.test(e.message), extra.join(" "));
  const p = parseBench(["drpc+tcp://127.0.0.1:1", "echo", "1", "x"]);
  assert.ok(!p.help && !p.compare);
  if (!p.help && !p.compare) {
    assert.deepEqual(p.options.argLists, [[1, "x"]]);
    assert.equal(p.options.durationMs, 10_000, "bounded by default");
    assert.equal(p.options.maxCalls, 100_000_000);
    assert.equal(p.options.inFlight, 10);
  }
  const open = parseBench(["drpc+tcp://127.0.0.1:1", "echo", "--rate", "5"]);
  assert.ok(!open.help && !open.compare && open.options.inFlight === 1000, "an open loop's in-flight default is a cap");
});

test("safety: loopback targets pass, every other host is refused with ERR_BENCH_NOT_LOOPBACK", () => {
  for (const ok of ["drpc+tcp://127.0.0.1:1", "drpc+tcp://127.8.9.1:1", "drpc+tcp://[::1]:1", "drpc+tcp://localhost:1", "drpc+inproc://x", "drpc+local://x", "drpc+ipc:///tmp/x.sock", "zrpc+tcp://127.0.0.1:1", "zrpc+ipc:///tmp/z.sock"])
    assert.doesNotThrow(() => checkLoopback(ok), ok);
  for (const bad of ["drpc+tcp://10.1.2.3:9990", "zrpc+tcp://example.com:4242", "drpc+tls://[2001:db8::1]:9990", "drpc+tcp://127.0.0.1.example.com:1", "drpc+tcp://0.0.0.0:1"])
    assert.throws(() => checkLoopback(bad), (e: unknown) => (e as { code?: string }).code === "ERR_BENCH_NOT_LOOPBACK", bad);
});
