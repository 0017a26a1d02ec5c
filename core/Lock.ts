/**
 * A mutual-exclusion lock for tasks: a Semaphore of one permit, FIFO fair.
 *
 * @example
 * ```ts
 * const lock = new Lock(loop);
 * await lock.use(async () => { await writeHeader(); await writeBody(); });
 * ```
 * @module
 */
import type { Loop } from "./Loop.js";
import { Semaphore } from "./Semaphore.js";

export class Lock extends Semaphore {
  constructor(loop: Loop) {
    super(loop, 1);
  }

  /** Whether some task holds the lock. */
  get locked(): boolean {
    return this.available === 0;
  }
}
