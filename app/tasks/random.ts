/**
 * A small seeded random source, so jitter and backoff are deterministic in
 * tests (and reproducible from a seed in production logs).
 * @module
 */
import { seededRandom as prng } from "../../adapters/prng.js";

/** A function giving numbers in [0, 1). */
export type Random = () => number;

/** mulberry32: a fast 32-bit PRNG; the same seed gives the same sequence (adapters/prng.ts). */
export const seededRandom: (seed: number) => Random = prng;

/** `random` if given, else a seeded source if `seed` is given, else Math.random. */
export function randomSource(random: Random | undefined, seed: number | undefined): Random {
  return random ?? (seed === undefined ? Math.random : seededRandom(seed));
}
