/**
 * Seeded random numbers. Every random choice tilth makes (jitter, backoff,
 * ids) comes from its loop's `random()`; a simulated or virtual loop seeds it,
 * so a run replays exactly from its seed.
 *
 * @example
 * ```ts
 * const r = seededRandom(42);
 * const a = r(), b = r(); // the same two numbers for seed 42, every run
 * ```
 * @module
 */

/** A function giving numbers in [0, 1). */
export type Random = () => number;

/** mulberry32: a fast 32-bit PRNG; the same seed gives the same sequence. */
export function seededRandom(seed: number): Random {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** `n` random bytes drawn from `random` (ids, tokens that need no secrecy). */
export function randomBytesFrom(random: Random, n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = Math.floor(random() * 256);
  return out;
}
