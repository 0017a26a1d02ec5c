/**
 * The Loop contract: the one interface every host loop implements.
 *
 * A Loop gives a clock (`now`), a way to run code on a later turn (`post`),
 * one-shot timers (`timer`), and sockets by URL (`connect`, `listen`) through
 * the transports it owns. Everything in tilth reaches time and I/O through a
 * Loop, which is why the same service runs on Node's loop, in virtual time, or
 * on an RxJS scheduler unchanged.
 *
 * @example
 * ```ts
 * import { NodeLoop } from "tilth/adapters/node";
 * const loop = new NodeLoop();
 * const t = loop.timer(100, () => console.log("fired at", loop.now()));
 * loop.post(() => t.cancel()); // changed our mind
 * ```
 * @module
 */
import type { Connection, ConnectOptions, Listener, ListenOptions, TransportRegistry } from "./Transport.js";

/** A pending one-shot timer. */
export interface Timer {
  /** Loop time at which it fires. */
  readonly deadline: number;
  /** Whether it is still pending (not fired, not cancelled). */
  readonly pending: boolean;
  /** Stop it from firing. Idempotent; harmless after it fired. */
  cancel(): void;
  /** Let the host process exit while this timer is pending. */
  unref(): this;
  /** Undo `unref()`. */
  ref(): this;
}

/** The loop contract. */
export interface Loop {
  /** A name for logs. */
  readonly name: string;
  /** Monotonic milliseconds of this loop (virtual in simulated loops). */
  now(): number;
  /**
   * Wall-clock milliseconds since the Unix epoch, for log lines and
   * timestamps a person reads; never for measuring durations (use `now`).
   * Virtual loops give a virtual wall clock.
   */
  wallTime(): number;
  /**
   * Run `fn` on a later turn, never synchronously. Posted callbacks run in
   * FIFO order, at most `budget` of them per turn before pending I/O gets its
   * turn.
   */
  post(fn: () => void): void;
  /**
   * Run `fn` once, `ms` milliseconds from now. 0 or less (-Infinity too): on a
   * coming turn. `Infinity`: never (an inert timer, `pending` false). Any
   * finite delay works, also one beyond what the host's own timers take
   * (2^31-1 ms for `setTimeout`): it is reached in hops. NaN or a value that
   * is not a number: a RangeError.
   */
  timer(ms: number, fn: () => void): Timer;
  /**
   * The cooperative budget check for code that completes work synchronously
   * (a channel with items ready, a lock that is free). Returns `undefined`
   * while the budget lasts; once `budget` such steps ran without the loop
   * getting a turn, returns a promise that resolves on a later turn. Await it
   * when it is not undefined: `const y = loop.cooperate(); if (y) await y;`.
   */
  cooperate(): Promise<void> | undefined;
  /** How many ready callbacks run per turn, and ready steps between forced yields. */
  readonly budget: number;
  /**
   * A number in [0, 1) from this loop's random source: every random choice in
   * tilth (jitter, backoff, ids) draws here, so a virtual or simulated loop,
   * seeded, replays exactly. Not for secrets (tokens, keys): use node:crypto.
   */
  random(): number;
  /** Timers pending on this loop (for tests and leak checks). */
  readonly pendingTimers: number;
  /**
   * The share of time the host loop was busy (not waiting for I/O or timers)
   * since the previous call, in [0, 1]; the first call measures from the
   * loop's start. Optional: a loop that cannot tell (virtual time) leaves it
   * out, and the utilisation metric with it.
   */
  utilization?(): number;

  /** The transports this loop resolves URL schemes with. */
  readonly transports: TransportRegistry;
  /** Open a message connection to `url` through the transport of its scheme. */
  connect(url: string | URL, options?: ConnectOptions): Promise<Connection>;
  /** Listen on `url` through the transport of its scheme. */
  listen(url: string | URL, options?: ListenOptions): Promise<Listener>;
}

/**
 * The default cooperative budget: 1024 ready callbacks per turn.
 *
 * Why 1024: one host turn (a setImmediate) costs about 1.6 µs on the machines
 * we measure on, a trivial posted callback about 0.05 µs. At 1024 callbacks per
 * turn the turn's own cost is amortised below 3% of trivial work, while a turn
 * of realistic callbacks (about 1 µs each) keeps I/O waiting at most about 1 ms.
 * Effect yields after 2048 operations and libuv runs pending callbacks at most
 * 8 times per turn; 1024 sits between, favouring I/O latency.
 */
export const DEFAULT_BUDGET = 1024;
