/**
 * A small seeded pseudo-random source (mulberry32): the same seed gives the
 * same sequence on every run and every machine, so a simulated network's
 * losses, duplicates and reorderings replay exactly. Not for cryptography.
 *
 * @example
 * ```ts
 * const rand = seededRandom(42);
 * const lost = rand() < 0.1; // a number in [0, 1)
 * ```
 * @module
 */

/** A function giving numbers in [0, 1), the same sequence for the same `seed` (an integer; its low 32 bits count). */
export function seededRandom(seed: number): () => number {
  if (typeof seed !== "number" || !Number.isFinite(seed)) throw new RangeError(`a seed must be a finite number, got ${String(seed)}`);
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
