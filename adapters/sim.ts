/// <reference types="node" preserve="true" />
/**
 * The simulation loop: virtual time, a seeded random source, and a trace of
 * every timer and message event hashed as it happens. One {@link SimLoop} is
 * the world; each simulated host (an app's process) gets a {@link HostLoop}
 * on it, a Loop of its own with its own transports (the simulated network's),
 * its own wall-clock skew, and a `kill()` that drops everything the process
 * had scheduled, as a crash does.
 *
 * A run is a seed: the same seed gives the same sequence of events and so the
 * same trace hash, run after run and machine after machine, as long as the
 * code under simulation reaches time, randomness and I/O through its loop.
 *
 * @example
 * ```ts
 * const world = new SimLoop({ seed: 7 });
 * const host = new HostLoop(world, "ping");
 * host.timer(1000, () => console.log("at", host.now()));
 * await world.advance(5000);
 * console.log(world.trace.hex());
 * ```
 * @module
 */
import { createHash, type Hash } from "node:crypto";
import { INERT_TIMER } from "../core/LoopBase.js";
import { seededRandom } from "../core/random.js";
import type { Loop, Timer } from "../core/Loop.js";
import { TransportRegistry, parseUrl, schemeOf, type Connection, type ConnectOptions, type Listener, type ListenOptions } from "../core/Transport.js";
import { TilthError } from "../core/errors.js";
import { VirtualLoop, type VirtualLoopOptions } from "./virtual.js";

/** Where a trace diverged from the one it replays. */
export interface Divergence {
  /** 1-based number of the first event that differs. */
  readonly event: number;
  /** The event the replayed trace has there (undefined: it had ended). */
  readonly expected: string | undefined;
  /** The event this run has there (undefined: this run ended first). */
  readonly actual: string | undefined;
}

/**
 * The trace of a simulated run: a SHA-256 over every event line (and every
 * message's bytes), optionally written out line by line, optionally checked
 * against an earlier trace as it goes.
 */
export class SimTrace {
  readonly #hash: Hash = createHash("sha256");
  #events = 0;
  #sink: ((line: string) => void) | undefined;
  #expected: readonly string[] | undefined;
  #divergence: Divergence | undefined;

  /** Events recorded so far. */
  get events(): number {
    return this.#events;
  }

  /** Hex SHA-256 of the events so far. */
  hex(): string {
    return this.#hash.copy().digest("hex");
  }

  /** Write each event line to `sink` (a trace file) as it happens. */
  writeTo(sink: (line: string) => void): void {
    this.#sink = sink;
  }

  /** Compare each event with `lines` (an earlier trace) as it happens; see {@link divergence}. */
  replay(lines: readonly string[]): void {
    this.#expected = lines;
  }

  /** The first event that differed from the replayed trace, or undefined. Call {@link finish} first for a run that ended early. */
  get divergence(): Divergence | undefined {
    return this.#divergence;
  }

  /** The run is over: a replayed trace with events left diverges at the first of them. */
  finish(): void {
    const e = this.#expected;
    if (e !== undefined && this.#divergence === undefined && e.length > this.#events) {
      this.#divergence = { event: this.#events + 1, expected: e[this.#events], actual: undefined };
    }
  }

  /** Record one event; `frames` (a message's bytes) go into the hash and, when tracing, a digest of them into the line. */
  record(line: string, frames?: readonly Uint8Array[]): void {
    this.#hash.update(line);
    this.#hash.update("\n");
    if (frames !== undefined) for (const f of frames) this.#hash.update(f);
    this.#events++;
    if (this.#sink === undefined && this.#expected === undefined) return;
    let full = line;
    if (frames !== undefined) {
      const h = createHash("sha1");
      for (const f of frames) h.update(f);
      full += ` #${h.digest("hex").slice(0, 12)}`;
    }
    this.#sink?.(full);
    const e = this.#expected;
    if (e !== undefined && this.#divergence === undefined && e[this.#events - 1] !== full) {
      this.#divergence = { event: this.#events, expected: e[this.#events - 1], actual: full };
    }
  }
}

export interface SimLoopOptions extends VirtualLoopOptions {
  /** The seed of every random choice in the run. Default 1. */
  seed?: number;
}

/** The world's loop: virtual time, a seeded random source, the trace. */
export class SimLoop extends VirtualLoop {
  readonly seed: number;
  readonly trace = new SimTrace();
  readonly #realStart = performance.now();

  constructor(options: SimLoopOptions = {}) {
    const seed = options.seed ?? 1;
    super({ name: "sim", stallWarningMs: 0, ...options, random: seededRandom(seed) });
    this.seed = seed;
  }

  /** The time for a trace line: virtual ms, to the microsecond. */
  stamp(): string {
    return String(Math.round(this.now() * 1000) / 1000);
  }

  /** Real milliseconds since this loop was made (how long a simulation took). */
  realElapsedMs(): number {
    return performance.now() - this.#realStart;
  }
}

class HostTimer implements Timer {
  readonly #inner: Timer;
  readonly #owner: Set<HostTimer>;

  constructor(world: SimLoop, owner: Set<HostTimer>, ms: number, fire: () => void) {
    this.#owner = owner;
    this.#inner = world.timer(ms, () => {
      owner.delete(this);
      fire();
    });
    owner.add(this);
  }

  get deadline(): number {
    return this.#inner.deadline;
  }

  get pending(): boolean {
    return this.#inner.pending;
  }

  cancel(): void {
    this.#inner.cancel();
    this.#owner.delete(this);
  }

  unref(): this {
    this.#inner.unref();
    return this;
  }

  ref(): this {
    this.#inner.ref();
    return this;
  }
}

/** An operation on a host that has crashed. */
export class HostDownError extends TilthError {
  constructor(host: string) {
    super("ERR_SIM_HOST_DOWN", `simulated host "${host}" has crashed`, { context: { host } });
  }
}

/**
 * One simulated host (an app's process) on the world's loop: the world's
 * clock and random source, the host's own wall-clock skew and transports, and
 * its timers counted apart. `kill()` is a crash: its timers never fire, its
 * posts never run.
 */
export class HostLoop implements Loop {
  readonly name: string;
  readonly world: SimLoop;
  readonly transports = new TransportRegistry();
  /** Added to the world's wall clock: this host's clock is off by this much. */
  skewMs: number;
  readonly #timers = new Set<HostTimer>();
  #alive = true;
  #timerSeq = 0;

  constructor(world: SimLoop, name: string, options: { skewMs?: number } = {}) {
    this.world = world;
    this.name = name;
    this.skewMs = options.skewMs ?? 0;
  }

  /** False once `kill()` ran. */
  get alive(): boolean {
    return this.#alive;
  }

  now(): number {
    return this.world.now();
  }

  wallTime(): number {
    return this.world.wallTime() + this.skewMs;
  }

  random(): number {
    return this.world.random();
  }

  get budget(): number {
    return this.world.budget;
  }

  get pendingTimers(): number {
    return this.#timers.size;
  }

  post(fn: () => void): void {
    if (!this.#alive) return;
    this.world.post(() => {
      if (this.#alive) fn();
    });
  }

  timer(ms: number, fn: () => void): Timer {
    if (typeof ms !== "number" || ms !== ms) throw new RangeError(`loop.timer: the delay must be a number of ms, got ${String(ms)}`);
    if (!this.#alive || ms === Infinity) return INERT_TIMER;
    const seq = this.#timerSeq++;
    const trace = this.world.trace;
    return new HostTimer(this.world, this.#timers, ms, () => {
      if (!this.#alive) return;
      trace.record(`${this.world.stamp()} ${this.name} timer ${seq}`);
      fn();
    });
  }

  cooperate(): Promise<void> | undefined {
    return this.world.cooperate();
  }

  async connect(url: string | URL, options: ConnectOptions = {}): Promise<Connection> {
    if (!this.#alive) throw new HostDownError(this.name);
    const u = parseUrl(url);
    return this.transports.get(schemeOf(u)).connect(this, u, options);
  }

  async listen(url: string | URL, options: ListenOptions = {}): Promise<Listener> {
    if (!this.#alive) throw new HostDownError(this.name);
    const u = parseUrl(url);
    return this.transports.get(schemeOf(u)).listen(this, u, options);
  }

  /** Crash: every pending timer is dropped, and nothing scheduled on this host runs again. */
  kill(): void {
    this.#alive = false;
    for (const t of [...this.#timers]) t.cancel();
  }
}
