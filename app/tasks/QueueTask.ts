/**
 * `QueueTask<T>`: a bounded queue of items handled by N workers, with
 * retries and a final failure hook.
 *
 * - **Bounded, with backpressure**: `submit(item)` waits while the queue
 *   holds `capacity` items (pass a `signal` to give up). `trySubmit(item)`
 *   never waits: when the queue is full it throws `QueueFullError`
 *   (`ERR_QUEUE_FULL`, retryable), so an RPC handler can refuse work at once.
 *   Both throw `ClosedError` (`ERR_CLOSED`) while the task is not running.
 * - **Retries with backoff**: an attempt that throws is retried up to
 *   `retries` times, waiting `backoff` ms, then twice that, up to
 *   `maxBackoff` (the worker holds the item meanwhile, so a failing backend
 *   slows intake instead of growing a second queue). `retryIf` may refuse a
 *   retry; cancellation is never retried.
 * - **Final failure**: an item out of attempts, or still queued when the
 *   task is cancelled, goes to `onFailure(item, error, attempts)` (default:
 *   logged). Nothing is dropped silently.
 * - **Stop**: intake closes (waiting submitters get ClosedError); with
 *   `drain` (default) the workers finish the queued items until the stop
 *   deadline, when in-flight attempts are cancelled and the rest go to
 *   `onFailure` with a CancelledError.
 *
 * @example
 * ```ts
 * @injectable()
 * class Deliver extends QueueTask<Mail> {
 *   constructor(ctx: AppContext, private smtp: Smtp) { super(ctx, { workers: 4, capacity: 1000, retries: 5 }); }
 *   override async handle(mail: Mail, signal: AbortSignal) { await this.smtp.send(mail, { signal }); }
 *   override onFailure(mail: Mail, error: unknown) { this.log.error(`gave up on ${mail.to}`, error); }
 * }
 * await service.task(Deliver).submit({ to: "a@example.com" }); // waits while the queue is full
 * ```
 * @module
 */
import { z } from "zod";
import { Channel } from "../../core/Channel.js";
import { CancelledError, ClosedError, TilthError, describe, formatMs, isCancellation } from "../../core/errors.js";
import { scoped } from "../../core/Scope.js";
import { sleep, timeout, type WaitOptions } from "../../core/time.js";
import type { AppContext } from "../App.js";
import type { Counter } from "../Metrics.js";
import { Task, type TaskOptions } from "../Service.js";

/** The queue is full: `trySubmit` refused the item. Retryable (later, or elsewhere). */
export class QueueFullError extends TilthError {
  constructor(task: string, capacity: number) {
    super("ERR_QUEUE_FULL", `queue ${task} is full (${capacity} items)`, { retryable: true, context: { task, capacity } });
  }
}

export interface QueueOptions<T> extends TaskOptions {
  /** Items the queue holds (waiting, not yet handled). Default 100. */
  capacity?: number;
  /** Items handled at once. Default 1. */
  workers?: number;
  /** Retries after the first attempt. Default 3. */
  retries?: number;
  /** Wait before the first retry, ms; doubles each retry. Default 100. */
  backoff?: number;
  /** Longest wait between retries, ms. Default 10 000. */
  maxBackoff?: number;
  /** Limit of one attempt, ms (a TimeoutError counts as a failed attempt). Default: none. */
  timeout?: number;
  /** On stop, handle the queued items (until the stop deadline) instead of dropping them to `onFailure`. Default true. */
  drain?: boolean;
  /** Handle one item, when not overriding `handle()`. */
  handle?: (item: T, signal: AbortSignal, attempt: number) => unknown;
  /** The final failure hook, when not overriding `onFailure()`. */
  onFailure?: (item: T, error: unknown, attempts: number) => unknown;
  /** Whether an error may be retried. Default: every error but a cancellation. */
  retryIf?: (error: unknown) => boolean;
}

const int = z.number().int();
/** Options of a QueueTask that the settings may set. */
export const queueShape = {
  capacity: int.nonnegative(),
  workers: int.positive(),
  retries: int.nonnegative(),
  backoff: z.number().nonnegative(),
  maxBackoff: z.number().nonnegative(),
  timeout: z.number().positive(),
  drain: z.boolean(),
};

export class QueueTask<T> extends Task {
  readonly capacity: number;
  readonly workers: number;
  readonly retries: number;
  readonly backoff: number;
  readonly maxBackoff: number;
  readonly timeoutMs: number | undefined;
  readonly drain: boolean;
  readonly #o: QueueOptions<T>;
  #ch: Channel<T> | undefined;
  #active = 0;
  #c: { runs: Counter; errors: Counter; items: Counter; retries: Counter } | undefined;

  constructor(ctx: AppContext, options: QueueOptions<T> = {}) {
    super(ctx, options, queueShape);
    const s = this.settings as Partial<QueueOptions<T>>;
    this.capacity = s.capacity ?? options.capacity ?? 100;
    this.workers = s.workers ?? options.workers ?? 1;
    this.retries = s.retries ?? options.retries ?? 3;
    this.backoff = s.backoff ?? options.backoff ?? 100;
    this.maxBackoff = s.maxBackoff ?? options.maxBackoff ?? 10_000;
    this.timeoutMs = s.timeout ?? options.timeout;
    this.drain = s.drain ?? options.drain ?? true;
    this.#o = options;
  }

  /** Handle one item. Override it, or pass `handle`. `signal` aborts at the stop deadline (or the attempt's timeout). */
  handle(item: T, signal: AbortSignal, attempt: number): unknown {
    if (this.#o.handle === undefined) throw new TilthError("ERR_TASK_CLASS", `task ${this.name}: override handle() or pass a handle option`);
    return this.#o.handle(item, signal, attempt);
  }

  /** Called once for an item that will not be handled: out of attempts, or cancelled. Default: log it. */
  onFailure(item: T, error: unknown, attempts: number): unknown {
    if (this.#o.onFailure) return this.#o.onFailure(item, error, attempts);
    this.log.error(`item dropped after ${attempts} attempt${attempts === 1 ? "" : "s"}: ${describe(error)}`);
    return undefined;
  }

  /** Whether `error` may be retried. */
  retryIf(error: unknown): boolean {
    if (isCancellation(error)) return false;
    return this.#o.retryIf ? this.#o.retryIf(error) : true;
  }

  /** Items waiting in the queue. */
  get depth(): number {
    return this.#ch?.size ?? 0;
  }

  /** Items being handled now. */
  get active(): number {
    return this.#active;
  }

  /** Items handled successfully (all starts of the task). */
  get done(): number {
    return this.#c?.items.get({ task: this.name, outcome: "done" }) ?? 0;
  }

  /** Items given to `onFailure`. */
  get failed(): number {
    return this.#c?.items.get({ task: this.name, outcome: "failed" }) ?? 0;
  }

  /** Queue `item`, waiting while the queue is full. Rejects with ClosedError while the task is not running. */
  submit(item: T, options?: WaitOptions): Promise<void> {
    const ch = this.#ch;
    if (ch === undefined || this.state !== "running" || ch.closed) return Promise.reject(this.#notRunning());
    return ch.send(item, options);
  }

  /** Queue `item` or throw at once: QueueFullError when full, ClosedError while the task is not running. */
  trySubmit(item: T): void {
    const ch = this.#ch;
    if (ch === undefined || this.state !== "running" || ch.closed) throw this.#notRunning();
    if (!ch.trySend(item)) throw new QueueFullError(this.name, this.capacity);
  }

  #notRunning(): ClosedError {
    return new ClosedError(`queue ${this.name} is not running (${this.state})`, { context: { task: this.name } });
  }

  override start(): void {
    if (this.#c === undefined) {
      const m = this.metrics;
      this.#c = {
        runs: m.counter("tilth_task_runs_total", "Runs of a task (periodic runs, queue attempts)."),
        errors: m.counter("tilth_task_errors_total", "Runs of a task that threw."),
        items: m.counter("tilth_queue_items_total", "Items a queue finished, by outcome (done, failed)."),
        retries: m.counter("tilth_queue_retries_total", "Attempts retried after a failure."),
      };
      m.gauge("tilth_queue_depth", "Items waiting in a queue.", () => [[{ task: this.name }, this.depth]]);
      m.gauge("tilth_queue_active", "Items being handled.", () => [[{ task: this.name }, this.#active]]);
    }
    this.#ch = new Channel<T>(this.loop, this.capacity);
  }

  override async run(signal: AbortSignal): Promise<void> {
    const ch = this.#ch!;
    const cancel = this.cancelSignal;
    // Asked to stop: close intake. Workers drain what is queued (or not), until cancelled.
    const closeIntake = (): void => ch.close();
    signal.addEventListener("abort", closeIntake, { once: true });
    try {
      await scoped(this.loop, (scope) => {
        for (let i = 0; i < this.workers; i++) scope.spawn(() => this.#worker(ch, signal, cancel), { name: `${this.name}-worker-${i}` });
      });
    } finally {
      signal.removeEventListener("abort", closeIntake);
    }
    // What is left was never attempted: report each item.
    const why = new CancelledError(`queue ${this.name} stopped before the item was handled`, cancel.aborted ? cancel.reason : signal.reason);
    for (let r = ch.tryRecv(); r !== undefined; r = ch.tryRecv()) await this.#final(r.value, why, 0);
  }

  async #worker(ch: Channel<T>, stopping: AbortSignal, cancel: AbortSignal): Promise<void> {
    for (;;) {
      if (cancel.aborted || (!this.drain && stopping.aborted)) return;
      let r: IteratorResult<T, undefined>;
      try {
        r = await ch.next({ signal: cancel });
      } catch {
        return; // cancelled while waiting
      }
      if (r.done) return;
      this.#active++;
      try {
        await this.#process(r.value, cancel);
      } finally {
        this.#active--;
      }
    }
  }

  async #process(item: T, cancel: AbortSignal): Promise<void> {
    const c = this.#c!;
    const labels = { task: this.name };
    for (let attempt = 1; ; attempt++) {
      c.runs.inc(labels);
      try {
        if (this.timeoutMs === undefined) await this.handle(item, cancel, attempt);
        else await timeout(this.loop, this.timeoutMs, (s) => this.handle(item, s, attempt), { signal: cancel, what: `attempt ${attempt} of task ${this.name}` });
        c.items.inc({ ...labels, outcome: "done" });
        return;
      } catch (e) {
        c.errors.inc(labels);
        if (cancel.aborted || attempt > this.retries || !this.retryIf(e)) return this.#final(item, e, attempt);
        const wait = Math.min(this.maxBackoff, this.backoff * 2 ** (attempt - 1));
        c.retries.inc(labels);
        this.log.warn(`attempt ${attempt} of ${this.retries + 1} failed: ${describe(e)}; retrying in ${formatMs(wait)}`);
        try {
          await sleep(this.loop, wait, { signal: cancel });
        } catch (c2) {
          return this.#final(item, c2, attempt);
        }
      }
    }
  }

  async #final(item: T, error: unknown, attempts: number): Promise<void> {
    this.#c!.items.inc({ task: this.name, outcome: "failed" });
    try {
      await this.onFailure(item, error, attempts);
    } catch (e) {
      this.log.error(`onFailure threw: ${describe(e)}`);
    }
  }
}
