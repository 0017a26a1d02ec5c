/// <reference types="node" preserve="true" />
/**
 * The default Loop: Node's own libuv loop. Posted callbacks run in batches of
 * up to `budget` per `setImmediate` turn; all timers share one host timeout
 * armed for the earliest deadline, so scheduling and cancelling a timer costs a
 * heap operation rather than a libuv timer.
 *
 * @example
 * ```ts
 * import { NodeLoop } from "tilth/adapters/node";
 * const loop = new NodeLoop({ name: "main" });
 * loop.timer(10, () => console.log("10 ms later"));
 * ```
 * @module
 */
import { performance } from "node:perf_hooks";
import { LoopBase, type LoopOptions } from "../core/LoopBase.js";

export class NodeLoop extends LoopBase {
  #timeout: NodeJS.Timeout | undefined;
  #immediate: NodeJS.Immediate | undefined;
  #deadline: number | undefined;
  readonly #runTurn = (): void => this.runTurn();
  readonly #wake = (): void => {
    this.#timeout = undefined;
    this.#immediate = undefined;
    this.#deadline = undefined;
    this.wake();
  };

  constructor(options: LoopOptions = {}) {
    // A real host: its random source is the engine's, seeded by the OS.
    super({ name: "node", random: Math.random, ...options });
  }

  now(): number {
    return performance.now();
  }

  #elu: ReturnType<typeof performance.eventLoopUtilization> | undefined;

  /** Node's event-loop utilisation since the previous call (the first: since the process started). */
  utilization(): number {
    const now = performance.eventLoopUtilization();
    const u = this.#elu === undefined ? now.utilization : performance.eventLoopUtilization(now, this.#elu).utilization;
    this.#elu = now;
    return u;
  }

  override wallTime(): number {
    return Date.now();
  }

  protected requestTurn(): void {
    setImmediate(this.#runTurn);
  }

  protected wakeAt(deadline: number | undefined, ref: boolean): void {
    if (deadline !== undefined && deadline === this.#deadline) {
      // Same wake-up, only its hold on the process changes: no new libuv timer.
      const h = this.#timeout ?? this.#immediate;
      if (h !== undefined) {
        if (ref) h.ref();
        else h.unref();
        return;
      }
    }
    this.#deadline = deadline;
    if (this.#timeout !== undefined) {
      clearTimeout(this.#timeout);
      this.#timeout = undefined;
    }
    if (this.#immediate !== undefined) {
      clearImmediate(this.#immediate);
      this.#immediate = undefined;
    }
    if (deadline === undefined) return;
    // Node's timers have 1 ms resolution; round up so we never wake early
    // and spin. A due deadline runs on the next check phase instead.
    const ms = Math.ceil(deadline - this.now());
    if (ms <= 0) {
      this.#immediate = setImmediate(this.#wake);
      if (!ref) this.#immediate.unref();
      return;
    }
    this.#timeout = setTimeout(this.#wake, ms);
    if (!ref) this.#timeout.unref();
  }
}
