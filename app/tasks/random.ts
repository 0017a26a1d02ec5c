/**
 * The random source of tasks: jitter and backoff are deterministic in tests
 * (and reproducible from a seed in production logs). Without a source or a
 * seed, a task draws from its loop's `random()`, which a simulation seeds.
 * @module
 */
import type { Loop } from "../../core/Loop.js";
import { seededRandom, type Random } from "../../core/random.js";

export { seededRandom, type Random } from "../../core/random.js";

/** `random` if given, else a seeded source if `seed` is given, else the loop's random source. */
export function randomSource(random: Random | undefined, seed: number | undefined, loop: Loop): Random {
  return random ?? (seed === undefined ? () => loop.random() : seededRandom(seed));
}
