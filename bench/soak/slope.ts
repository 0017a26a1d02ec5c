/**
 * The soak run's memory trend: a least-squares slope over its samples.
 */
const MiB = 1024 * 1024;

export interface Sample {
  /** Seconds since the load began. */
  t: number;
  rss: number;
  heapUsed: number;
}

/** Least-squares slope of `y` over `x`; undefined with fewer than two distinct x. */
export function slope(points: readonly [number, number][]): number | undefined {
  const n = points.length;
  if (n < 2) return undefined;
  const mx = points.reduce((s, [x]) => s + x, 0) / n;
  const my = points.reduce((s, [, y]) => s + y, 0) / n;
  let sxy = 0;
  let sxx = 0;
  for (const [x, y] of points) {
    sxy += (x - mx) * (y - my);
    sxx += (x - mx) ** 2;
  }
  return sxx === 0 ? undefined : sxy / sxx;
}

/**
 * Slopes of RSS and heap in MiB per hour, over the samples after the first
 * interval (taken every `intervalSeconds`: the first, at the end of the
 * first interval, is warm-up and left out, whatever its timer's jitter).
 */
export function slopes(samples: readonly Sample[], intervalSeconds: number): { rss: number | undefined; heap: number | undefined; points: number } {
  const after = samples.filter((s) => s.t > 1.5 * intervalSeconds);
  const per = (f: (s: Sample) => number): number | undefined => slope(after.map((s) => [s.t / 3600, f(s) / MiB]));
  return { rss: per((s) => s.rss), heap: per((s) => s.heapUsed), points: after.length };
}
