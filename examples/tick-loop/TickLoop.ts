/**
 * A Loop driven by a host that calls `tick(time)`: a game loop at 60 Hz, a
 * render loop, an embedded scheduler, a fixed-step simulation. The whole
 * adapter is the three hooks LoopBase asks for, answered from the tick:
 *
 * - `now()` is the time of the last tick, as the host reports it (a frame
 *   time), held so that it never goes back;
 * - `requestTurn()` notes that a turn is wanted, and the next tick runs it;
 * - `wakeAt(deadline)` notes the earliest timer, and the first tick at or
 *   past it calls `wake()`.
 *
 * It reads no clock and arms no host timer: time comes in with each tick,
 * and the host decides when ticks happen (and how long the process lives, so
 * `ref` means nothing here). Each tick runs at most one turn and then
 * returns to the host, so the promise continuations of that turn run before
 * the next tick. docs/core.md ("Writing an adapter") explains each duty;
 * test/adapters/tick-loop.test.ts runs tilth's Loop conformance suite on it.
 *
 * @example
 * ```ts
 * import { sleep } from "tilth/core";
 * import { TickLoop } from "./TickLoop.js";
 *
 * const loop = new TickLoop({ wallOrigin: engine.epochAtStart });
 * engine.onFrame((frameTimeMs) => loop.tick(frameTimeMs)); // 60 times a second
 * await sleep(loop, 500); // resumes on the first frame at or past 500 ms
 * ```
 * @module
 */
import { LoopBase, type LoopOptions } from "../../core/LoopBase.js";

export interface TickLoopOptions extends LoopOptions {
  /** The host's time at the start, in ms (the first tick's time, say). Default 0. */
  start?: number;
}

export class TickLoop extends LoopBase {
  #now: number;
  #turnWanted = false;
  #wakeAt: number | undefined;

  constructor(options: TickLoopOptions = {}) {
    super({ name: "tick", ...options });
    this.#now = options.start ?? 0;
  }

  now(): number {
    return this.#now;
  }

  /**
   * One frame of the host at `time` (ms on the host's clock; a time earlier
   * than the last is taken as the last). Runs one turn if one is wanted or a
   * timer is due, and returns.
   */
  tick(time: number): void {
    if (time > this.#now) this.#now = time;
    const due = this.#wakeAt !== undefined && this.#wakeAt <= this.#now;
    if (!due && !this.#turnWanted) return;
    // Cleared before the turn: the turn may ask for the next one.
    this.#turnWanted = false;
    if (due) {
      this.#wakeAt = undefined;
      this.wake(); // fires the due timers, then runs posts: one turn either way
    } else this.runTurn();
  }

  protected requestTurn(): void {
    this.#turnWanted = true;
  }

  protected wakeAt(deadline: number | undefined): void {
    this.#wakeAt = deadline;
  }
}
