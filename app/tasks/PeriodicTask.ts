/**
 * `PeriodicTask`: run `execute()` every `interval` ms, with jitter, never
 * overlapping itself.
 *
 * Schedule: the first run starts `initialDelay` (+ jitter) after the task
 * starts; each next run starts `interval` + jitter after the previous run
 * *started*. A run that takes longer than that delays the next one, which
 * then starts as soon as it ends (counted in `tilth_periodic_late_total`):
 * runs never overlap and missed ticks are not made up in a burst. Jitter is
 * uniform in [0, jitter) ms, from `random`, else a PRNG seeded with `seed`,
 * else the loop's random source (seeded in simulation).
 *
 * A run that throws is logged and counted (`tilth_task_errors_total`); the
 * task keeps its schedule. On stop no new run starts; a run in progress may
 * finish until the stop deadline, when its signal aborts.
 *
 * @example
 * ```ts
 * @injectable()
 * class Cleanup extends PeriodicTask {
 *   constructor(ctx: AppContext, private db: Db) { super(ctx, { interval: 60_000, jitter: 5_000 }); }
 *   override async execute(signal: AbortSignal) { await this.db.deleteExpired({ signal }); }
 * }
 * // or, without a subclass:
 * new PeriodicTask(ctx, { name: "report", interval: 5000, execute: () => log.info("still here") });
 * ```
 * @module
 */
import { z } from "zod";
import { TilthError, describe, formatMs } from "../../core/errors.js";
import { sleep, timeout } from "../../core/time.js";
import type { AppContext } from "../App.js";
import type { Counter } from "../Metrics.js";
import { Task, type TaskOptions } from "../Service.js";
import { randomSource, type Random } from "./random.js";

export interface PeriodicOptions extends TaskOptions {
  /** ms from the start of one run to the start of the next. Default 1000. */
  interval?: number;
  /** Up to this many ms added to each wait, uniformly at random. Default 0. */
  jitter?: number;
  /** ms before the first run (jitter added). Default 0: the first run starts at once. */
  initialDelay?: number;
  /** Seed of the jitter's random source (deterministic schedules). */
  seed?: number;
  /** The random source, [0, 1); beats `seed`. */
  random?: Random;
  /** Limit of one run, ms; its signal aborts with a TimeoutError and the run counts as an error. Default: none. */
  timeout?: number;
  /** The work, when not overriding `execute()`. */
  execute?: (signal: AbortSignal) => unknown;
}

const positive = z.number().positive();
const nonneg = z.number().nonnegative();

/** Options of a PeriodicTask that the settings may set. */
export const periodicShape = { interval: positive, jitter: nonneg, initialDelay: nonneg, seed: z.number().int(), timeout: positive };

export class PeriodicTask extends Task {
  readonly interval: number;
  readonly jitter: number;
  readonly initialDelay: number;
  readonly timeoutMs: number | undefined;
  readonly #random: Random;
  readonly #fn: ((signal: AbortSignal) => unknown) | undefined;
  #runs: Counter | undefined;
  #errors: Counter | undefined;
  #late: Counter | undefined;

  constructor(ctx: AppContext, options: PeriodicOptions = {}) {
    super(ctx, options, periodicShape);
    const s = this.settings as Partial<PeriodicOptions>;
    this.interval = s.interval ?? options.interval ?? 1000;
    this.jitter = s.jitter ?? options.jitter ?? 0;
    this.initialDelay = s.initialDelay ?? options.initialDelay ?? 0;
    this.timeoutMs = s.timeout ?? options.timeout;
    this.#random = randomSource(options.random, s.seed ?? options.seed, this.loop);
    this.#fn = options.execute;
    if (!(this.interval > 0)) throw new RangeError(`task ${this.name}: interval must be > 0 ms, got ${this.interval}`);
  }

  /** One run. Override it, or pass `execute` in the options. `signal` aborts at the stop deadline (or the run's timeout). */
  execute(signal: AbortSignal): unknown {
    if (this.#fn === undefined) throw new TilthError("ERR_TASK_CLASS", `task ${this.name}: override execute() or pass an execute option`);
    return this.#fn(signal);
  }

  /** Runs started so far (all starts of the task). */
  get runs(): number {
    return this.#runs?.get({ task: this.name }) ?? 0;
  }

  /** Runs that threw. */
  get errors(): number {
    return this.#errors?.get({ task: this.name }) ?? 0;
  }

  override start(): void {
    this.#runs = this.metrics.counter("tilth_task_runs_total", "Runs of a task (periodic runs, queue attempts).");
    this.#errors = this.metrics.counter("tilth_task_errors_total", "Runs of a task that threw.");
    this.#late = this.metrics.counter("tilth_periodic_late_total", "Periodic runs that started late because the previous run overran.");
  }

  override async run(signal: AbortSignal): Promise<void> {
    const loop = this.loop;
    const labels = { task: this.name };
    let next = loop.now() + this.initialDelay + this.#jitterMs();
    for (;;) {
      const wait = next - loop.now();
      if (wait > 0) {
        try {
          await sleep(loop, wait, { signal });
        } catch {
          return; // asked to stop
        }
      }
      if (signal.aborted) return;
      const started = loop.now();
      this.#runs!.inc(labels);
      try {
        if (this.timeoutMs === undefined) await this.execute(this.cancelSignal);
        else await timeout(loop, this.timeoutMs, (s) => this.execute(s), { signal: this.cancelSignal, what: `run of task ${this.name}` });
      } catch (e) {
        if (this.cancelSignal.aborted) return; // cancelled at the stop deadline
        this.#errors!.inc(labels);
        this.log.error(`run failed: ${describe(e)}`);
      }
      next = started + this.interval + this.#jitterMs();
      const now = loop.now();
      if (next < now) {
        this.#late!.inc(labels);
        this.log.debug(`run took ${formatMs(now - started)}, longer than the interval; the next starts now`);
        next = now;
      }
    }
  }

  #jitterMs(): number {
    return this.jitter > 0 ? this.#random() * this.jitter : 0;
  }
}
