/**
 * A small seeded random source, so jitter and backoff are deterministic in
 * tests (and reproducible from a seed in production logs).
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

/** `random` if given, else a seeded source if `seed` is given, else Math.random. */
export function randomSource(random: Random | undefined, seed: number | undefined): Random {
  return random ?? (seed === undefined ? Math.random : seededRandom(seed));
}
