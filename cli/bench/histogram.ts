/**
 * Latency histograms of `tilth bench`: HDR histograms (hdr-histogram-js) of
 * microseconds, 3 significant digits from 1 µs to one hour, in fixed memory
 * whatever the number of calls. They merge across worker processes and
 * travel as compressed base64 (the `--json` file keeps the whole histogram).
 * @module
 */
import hdr, { type Histogram } from "hdr-histogram-js";

/** Values above this (one hour, in µs) are recorded as this. */
export const HIGHEST_US = 3_600_000_000;

/** Percentiles every summary shows, in this order. */
export const PERCENTILES = [50, 90, 99, 99.9] as const;

/** What a summary keeps of a histogram, in µs. */
export interface LatencyStats {
  count: number;
  min: number;
  mean: number;
  stddev: number;
  p50: number;
  p90: number;
  p99: number;
  p999: number;
  max: number;
}

/** A histogram of durations in µs. */
export class Latency {
  readonly h: Histogram;

  constructor(h?: Histogram) {
    this.h = h ?? hdr.build({ bitBucketSize: 64, lowestDiscernibleValue: 1, highestTrackableValue: HIGHEST_US, numberOfSignificantValueDigits: 3, useWebAssembly: false });
  }

  /** Record a duration in ms (loop time), kept in µs: at least 1, at most an hour. */
  recordMs(ms: number): void {
    const us = Math.round(ms * 1000);
    this.h.recordValue(us < 1 ? 1 : us > HIGHEST_US ? HIGHEST_US : us);
  }

  get count(): number {
    return this.h.totalCount;
  }

  /** The value at percentile `p` (0..100), µs; 0 when empty. */
  at(p: number): number {
    return this.h.totalCount === 0 ? 0 : this.h.getValueAtPercentile(p);
  }

  add(other: Latency): void {
    this.h.add(other.h);
  }

  reset(): void {
    this.h.reset();
  }

  stats(): LatencyStats {
    const h = this.h;
    const empty = h.totalCount === 0;
    const max = empty ? 0 : h.maxValue;
    // A percentile is the top of its bucket: never shown above the largest value recorded.
    const at = (p: number): number => Math.min(this.at(p), max);
    return {
      count: h.totalCount,
      min: empty ? 0 : h.minNonZeroValue,
      mean: empty ? 0 : Math.round(h.mean * 10) / 10,
      stddev: empty ? 0 : Math.round(h.stdDeviation * 10) / 10,
      p50: at(50),
      p90: at(90),
      p99: at(99),
      p999: at(99.9),
      max,
    };
  }

  /** The whole histogram, compressed, as base64 (HdrHistogram's own encoding: other HDR tools read it). */
  encode(): string {
    return hdr.encodeIntoCompressedBase64(this.h);
  }

  static decode(base64: string): Latency {
    const into = new Latency();
    into.h.add(hdr.decodeFromCompressedBase64(base64, 64, false));
    return into;
  }

  /** Points of the percentile curve for a plot: [percentile, µs], up to `max`. */
  curve(): Array<[number, number]> {
    if (this.h.totalCount === 0) return [];
    const out: Array<[number, number]> = [];
    for (const p of [0, 10, 25, 50, 75, 90, 95, 99, 99.5, 99.9, 99.95, 99.99, 99.999]) out.push([p, this.at(p)]);
    out.push([100, this.h.maxValue]);
    return out;
  }
}
