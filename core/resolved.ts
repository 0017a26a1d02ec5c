/**
 * `RESOLVED`: one settled promise, shared by the whole process.
 *
 * A method with nothing to wait for (a `drain()` with room, a `close()` that
 * already ran) returns it instead of allocating a promise per call, and
 * `RESOLVED.then(f)` runs `f` on a microtask: a promise reaction, which on
 * Node 20 is cheaper than `queueMicrotask` (that one wraps every callback in
 * an AsyncResource).
 *
 * @example
 * ```ts
 * import { RESOLVED } from "tilth/core";
 * drain(): Promise<void> {
 *   return this.buffered < this.highWaterMark ? RESOLVED : this.#drained();
 * }
 * ```
 * @module
 */

/** A promise that has resolved with `undefined`; share it, never wrap it. */
export const RESOLVED: Promise<void> = Promise.resolve();
