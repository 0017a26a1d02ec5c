/**
 * Services and tasks (the successors of sparts' VService and VTask): a
 * {@link Service} is an {@link App} made of a list of {@link Task}s with a
 * lifecycle.
 *
 * - **Start** in list order. Each task's `start()` has a deadline
 *   (`startTimeout`, default 10 s). If a task cannot start, the tasks already
 *   started are stopped in reverse order and the service does not start
 *   (`startApp` rejects with `ERR_APP_START`).
 * - **Run**: a task's optional `run(signal)` is its long-running body; the
 *   signal aborts when the task is asked to stop.
 * - **Stop** in reverse order, one task after the other. Each task gets
 *   `stopTimeout` (default 5 s) to stop gracefully: its `run` signal aborts,
 *   its `stop(cancelSignal)` is called, and both must end. A task that is
 *   still busy at its deadline is cancelled (its `cancelSignal` aborts with a
 *   TimeoutError) and a warning is logged; if it ignores even that for
 *   `cancelGraceMs` more, an error is logged and the service moves on.
 * - **Failure** of a task (its `run` throws or returns early, or it calls
 *   `fail()`) is logged, counted (`tilth_task_failures_total`), shows on
 *   `/health`, and is handled by the service's `failurePolicy`:
 *   - `"restart"` (default): every task is stopped (reverse order) and the
 *     service's `serve()` throws a `TaskFailedError`, so the app's runloop
 *     starts all the tasks again after its backoff (doubling while the
 *     service keeps failing soon after a start; never a tight crash loop).
 *   - `"continue"`: only the failed task is stopped; the others keep running
 *     and `/health` answers 503 until the service is restarted.
 *
 * Options: a task named `tick` reads its options from the app's settings
 * under `options.tick` (validated; a mistake names the file, app and key).
 * Precedence: the options given in code < the settings file < environment
 * (`TILTH__APPS__SVC__OPTIONS__TICK__INTERVAL=5000`) < the command line
 * (`tilth run svc --set svc.tick.interval=5000`).
 *
 * @example
 * ```ts
 * @injectable()
 * class Tick extends PeriodicTask {
 *   constructor(ctx: AppContext) { super(ctx, { interval: 1000, jitter: 100 }); }
 *   override async execute(signal: AbortSignal) { this.log.info("tick"); }
 * }
 *
 * class Worker extends Service {
 *   static override tasks = [HttpTask, Tick];
 * }
 * // settings: { apps: { worker: { class: "./worker.js#Worker", options: { tick: { interval: 5000 } } } } }
 * ```
 * @module
 */
import "reflect-metadata";
import { z } from "zod";
import { Event } from "../core/Event.js";
import { CancelledError, TilthError, TimeoutError, describe, isCancellation } from "../core/errors.js";
import type { Loop } from "../core/Loop.js";
import { sleep } from "../core/time.js";
import { App, type AppContext } from "./App.js";
import type { Logger } from "./Logger.js";
import { Metrics } from "./Metrics.js";
import { SettingsError, type Problem } from "./Settings.js";

/** Where a task is in its lifecycle. `/health` is 200 only while every task is `running`. */
export type TaskState = "idle" | "starting" | "running" | "stopping" | "stopped" | "failed";

/** Options every task takes (in code, or in the settings under `options.<task name>`). */
export interface TaskOptions {
  /** The task's name: in logs, metrics, `/health`, and the key of its options in the settings. */
  name?: string;
  /** How long `start()` may take, ms. Default 10 000. */
  startTimeout?: number;
  /** How long a graceful stop may take before the task is cancelled, ms. Default 5000. */
  stopTimeout?: number;
  /** After a cancellation, how long the task may take to notice it before the service gives up on it, ms. Default 1000. */
  cancelGraceMs?: number;
}

const ms = z.number().nonnegative();

/** The settings shape of {@link TaskOptions} (`name` is code-only: it is the key). */
export const taskOptionsShape = { startTimeout: ms, stopTimeout: ms, cancelGraceMs: ms } satisfies z.ZodRawShape;

/** A task class the service constructs: through the app's DI container when decorated, else `new Cls(ctx)`. */
export type TaskClass = new (ctx: AppContext, ...rest: never[]) => Task;

/** A task failed while the service ran. `task` names it; `cause` is what it threw. */
export class TaskFailedError extends TilthError {
  readonly task: string;
  constructor(task: string, cause: unknown) {
    super("ERR_TASK_FAILED", `task ${task} failed: ${describe(cause)}`, { cause, context: { task }, retryable: true });
    this.task = task;
  }
}

/** `run()` of a task returned while the task was supposed to be running. */
export class TaskEndedError extends TilthError {
  constructor(task: string) {
    super("ERR_TASK_ENDED", `run() of task ${task} returned before the task was stopped`, { context: { task } });
  }
}

/** "HttpTask" -> "http", "DeliverTask" -> "deliver", "Tick" -> "tick". */
export function defaultTaskName(className: string): string {
  const base = className.replace(/Task$/, "") || className;
  return base.charAt(0).toLowerCase() + base.slice(1);
}

/**
 * The settings of task `name` (the app's `options[name]`), validated against
 * `shape` (every key optional, unknown keys refused). Throws a SettingsError
 * naming the file, the app and the key of each mistake.
 */
export function taskSettings<S extends z.ZodRawShape>(ctx: AppContext, name: string, shape: S): Partial<z.infer<z.ZodObject<S>>> {
  const raw = ctx.options[name];
  if (raw === undefined) return {};
  const file = ctx.settings.file;
  const r = z.object(shape).partial().strict().safeParse(raw);
  if (r.success) return r.data as Partial<z.infer<z.ZodObject<S>>>;
  const problems: Problem[] = r.error.issues.map((i) => ({
    file,
    app: ctx.name,
    key: ["options", name, ...i.path.map(String)].join("."),
    message: i.code === "unrecognized_keys" ? `unknown option(s) ${i.keys.map((k) => `"${k}"`).join(", ")} of task ${name} (known: ${Object.keys(shape).join(", ")})` : i.message,
  }));
  throw new SettingsError(problems);
}

/**
 * A unit of a {@link Service}. Subclasses implement any of `start`, `run`
 * and `stop`; tasks are constructed with the app's context (by DI when the
 * class is `@injectable()`), so they can take clients, the loop or the
 * logger in their constructor as apps do.
 *
 * A task may be started again after a stop (when its service restarts):
 * `start()` sets up fresh state.
 */
export abstract class Task {
  readonly ctx: AppContext;
  readonly name: string;
  readonly startTimeout: number;
  readonly stopTimeout: number;
  readonly cancelGraceMs: number;
  #state: TaskState = "idle";
  #service: Service | undefined;
  #metrics: Metrics | undefined;
  #log: Logger | undefined;
  #stopping = new AbortController();
  #cancel = new AbortController();
  #running: Promise<void> | undefined;
  #stopped: Promise<void> | undefined;

  /**
   * @param options code defaults; the settings (`options.<name>`) override them.
   * @param shape the settings shape of the subclass's own options (zod), merged with {@link taskOptionsShape}.
   */
  constructor(ctx: AppContext, options: TaskOptions = {}, shape: z.ZodRawShape = {}) {
    this.ctx = ctx;
    this.name = options.name ?? defaultTaskName(this.constructor.name);
    const s = taskSettings(ctx, this.name, { ...taskOptionsShape, ...shape }) as Record<string, unknown>;
    this.settings = s;
    this.startTimeout = (s.startTimeout as number | undefined) ?? options.startTimeout ?? 10_000;
    this.stopTimeout = (s.stopTimeout as number | undefined) ?? options.stopTimeout ?? 5000;
    this.cancelGraceMs = (s.cancelGraceMs as number | undefined) ?? options.cancelGraceMs ?? 1000;
  }

  /** This task's validated settings (`options.<name>`), for subclasses to merge over their code defaults. */
  protected readonly settings: Record<string, unknown>;

  /** Set up; resolve when the task is ready (listening, connected). Throwing keeps the service from starting. */
  start?(signal: AbortSignal): Promise<void> | void;

  /**
   * The long-running body, started once `start()` resolved. `signal` aborts
   * when the task is asked to stop: return soon after. Throwing (or
   * returning before the stop) is a failure of the task.
   */
  run?(signal: AbortSignal): Promise<void>;

  /**
   * Stop gracefully (close servers, drain queues). Called after the `run`
   * signal aborted, also after a failed or timed-out start (so it must cope
   * with a half-started task). `cancelSignal` aborts at the stop deadline.
   */
  stop?(cancelSignal: AbortSignal): Promise<void> | void;

  get state(): TaskState {
    return this.#state;
  }

  get loop(): Loop {
    return this.ctx.loop;
  }

  /** A logger named after the task. */
  get log(): Logger {
    return (this.#log ??= this.ctx.log.child(this.name));
  }

  /** The service this task belongs to (set when the service creates its tasks). */
  get service(): Service | undefined {
    return this.#service;
  }

  /** The service's metrics (a private registry for a task used alone). */
  get metrics(): Metrics {
    return this.#service?.metrics ?? (this.#metrics ??= new Metrics());
  }

  /** Aborts when the task is asked to stop (the signal `run` gets). */
  get signal(): AbortSignal {
    return this.#stopping.signal;
  }

  /** Aborts when the task is cancelled: its stop deadline passed. In-flight work may go on until then. */
  get cancelSignal(): AbortSignal {
    return this.#cancel.signal;
  }

  /** Sleep on the task's loop; rejects when the task is asked to stop. */
  sleep(ms: number): Promise<void> {
    return sleep(this.ctx.loop, ms, { signal: this.#stopping.signal });
  }

  /**
   * Report that the task has failed (for failures outside `run`, e.g. a
   * server's error event). The service applies its failure policy. Ignored
   * unless the task is running.
   */
  protected fail(error: unknown): void {
    if (this.#state !== "running") return;
    this.#state = "failed";
    this.#stopping.abort(new CancelledError(`task ${this.name} failed`, error));
    if (this.#service) this.#service._taskFailed(this, error);
    else this.log.error(`failed: ${describe(error)}`);
  }

  /** @internal */
  _attach(service: Service): void {
    this.#service = service;
  }

  /** @internal Start: `start()` within `startTimeout`, then `run()` in the background. */
  async _start(signal: AbortSignal): Promise<void> {
    this.#stopping = new AbortController();
    this.#cancel = new AbortController();
    this.#running = undefined;
    this.#stopped = undefined;
    this.#state = "starting";
    const stopping = this.#stopping;
    // The start is abandoned when the service stops meanwhile, or at its deadline.
    const limit = new AbortController();
    const onOuter = (): void => limit.abort(signal.reason);
    signal.addEventListener("abort", onOuter, { once: true });
    const t = this.loop.timer(this.startTimeout, () => limit.abort(new TimeoutError(this.startTimeout, `start of task ${this.name}`)));
    try {
      if (signal.aborted) throw signal.reason;
      const p = Promise.resolve(this.start?.(limit.signal));
      await Promise.race([p, abortPromise(limit.signal)]);
    } catch (e) {
      this.#state = "failed";
      throw e;
    } finally {
      t.cancel();
      signal.removeEventListener("abort", onOuter);
      limit.abort(); // nothing waits on it any more
    }
    this.#state = "running";
    if (this.run) {
      const run = this.run.bind(this);
      this.#running = (async () => run(stopping.signal))().then(
        () => {
          if (this.#stopping === stopping && !stopping.signal.aborted) this.fail(new TaskEndedError(this.name));
        },
        (e: unknown) => {
          if (this.#stopping !== stopping) return;
          if (!stopping.signal.aborted) this.fail(e);
          else if (!isCancellation(e) && !(e instanceof TimeoutError)) this.log.error(`run() failed while stopping: ${describe(e)}`);
        },
      );
    }
  }

  /**
   * @internal Stop: abort the run signal, call `stop()`, wait for both up to
   * `stopTimeout`; then cancel and wait up to `cancelGraceMs` more. Never
   * rejects. Idempotent while a stop is in progress.
   */
  _stop(reason: unknown): Promise<void> {
    if (this.#state === "idle" || this.#state === "stopped") return Promise.resolve();
    return (this.#stopped ??= this.#doStop(reason));
  }

  async #doStop(reason: unknown): Promise<void> {
    const failed = this.#state === "failed";
    this.#state = "stopping";
    this.#stopping.abort(reason);
    const cancel = this.#cancel;
    const deadline = this.loop.timer(this.stopTimeout, () => cancel.abort(new TimeoutError(this.stopTimeout, `stop of task ${this.name}`)));
    let stopP: Promise<void>;
    try {
      stopP = Promise.resolve(this.stop?.(cancel.signal));
    } catch (e) {
      stopP = Promise.reject(e);
    }
    const stopErr = stopP.then(
      () => undefined,
      (e: unknown) => e,
    );
    const ended = Promise.all([stopErr, this.#running]).then(([e]) => ({ e }));
    const cancelled = abortPromise(cancel.signal).catch(() => "deadline" as const);
    let r = await Promise.race([ended, cancelled]);
    deadline.cancel();
    if (r === "deadline") {
      this.log.warn(`did not stop within ${this.stopTimeout} ms: cancelled`);
      this.#service?._taskCancelled(this);
      const grace = new AbortController();
      const late = sleep(this.loop, this.cancelGraceMs, { signal: grace.signal }).then(
        () => "late" as const,
        () => "late" as const,
      );
      const r2 = await Promise.race([ended, late]);
      grace.abort();
      if (r2 === "late") this.log.error(`ignored its cancellation for ${this.cancelGraceMs} ms more: abandoned (its work may still be running)`);
      else r = r2;
    }
    if (typeof r === "object" && r.e !== undefined && !isCancellation(r.e) && !(r.e instanceof TimeoutError)) this.log.error(`stop() failed: ${describe(r.e)}`);
    this.#state = failed ? "failed" : "stopped";
  }
}

/** A promise that rejects with the signal's reason when it aborts (never settles otherwise). */
function abortPromise(signal: AbortSignal): Promise<never> {
  return new Promise<never>((_, reject) => {
    if (signal.aborted) reject(signal.reason);
    else signal.addEventListener("abort", () => reject(signal.reason), { once: true });
  });
}

/** What a service does when one of its tasks fails. See the module doc. */
export type FailurePolicy = "restart" | "continue";

/** The `/health` answer. */
export interface Health {
  status: "ok" | "unavailable";
  service: string;
  tasks: Record<string, TaskState>;
}

/** Construct a task class: through DI when it is decorated (`@injectable`), else `new Cls(ctx)`. */
function constructTask(cls: TaskClass, ctx: AppContext): Task {
  const decorated = Reflect.getMetadata("design:paramtypes", cls) !== undefined;
  if (decorated && ctx.container) return ctx.container.resolve(cls as unknown as new (...a: any[]) => Task);
  return new (cls as new (ctx: AppContext) => Task)(ctx);
}

/**
 * An app made of tasks. List the task classes in `static tasks` (in start
 * order), or override `createTasks()` to build them in code. Put the
 * `HttpTask` first: it starts first and stops last, so `/health` answers
 * while the other tasks start and stop.
 */
export abstract class Service extends App {
  /** The task classes, in start order. */
  static tasks: readonly TaskClass[] = [];
  /** What happens when a task fails; the app's `options.failurePolicy` overrides it. */
  static failurePolicy: FailurePolicy = "restart";

  /** Counters and gauges of this service (served by `HttpTask` on `/metrics`). */
  readonly metrics = new Metrics();
  #tasks: Task[] | undefined;
  #failure: { task: Task; error: unknown } | undefined;
  readonly #failed = new Event();
  #started = false;
  readonly #isolated = new Set<Promise<void>>();
  #svcLog: Logger | undefined;

  constructor(ctx: AppContext) {
    super(ctx);
    this.metrics.gauge("tilth_task_up", "1 while the task is running, else 0.", () => (this.#tasks ?? []).map((t) => [{ task: t.name }, t.state === "running" ? 1 : 0] as const));
  }

  /** Build the tasks, in start order: classes (constructed by DI) or instances. Called once. Default: `static tasks`. */
  protected createTasks(): readonly (Task | TaskClass)[] {
    return (this.constructor as typeof Service).tasks;
  }

  /** Called when a task fails, after it was logged and counted (a hook for alerts). */
  protected taskFailed?(task: Task, error: unknown): void;

  /** The tasks, in start order. */
  get tasks(): readonly Task[] {
    return (this.#tasks ??= this.#create());
  }

  /** A task by name or class. Throws ERR_NO_TASK if there is none. */
  task<T extends Task>(which: string | (abstract new (...a: never[]) => T)): T {
    const t = this.tasks.find((x) => (typeof which === "string" ? x.name === which : x instanceof which));
    if (t === undefined)
      throw new TilthError("ERR_NO_TASK", `service ${this.ctx.name} has no task ${typeof which === "string" ? which : which.name} (tasks: ${this.tasks.map((x) => x.name).join(", ")})`);
    return t as T;
  }

  get failurePolicy(): FailurePolicy {
    const o = this.ctx.options.failurePolicy;
    if (o === undefined) return (this.constructor as typeof Service).failurePolicy;
    if (o === "restart" || o === "continue") return o;
    throw new SettingsError([{ file: this.ctx.settings.file, app: this.ctx.name, key: "options.failurePolicy", message: `expected "restart" or "continue", got ${JSON.stringify(o)}` }]);
  }

  /** Every task's state; `ok` only while every task is running. */
  health(): Health {
    const tasks: Record<string, TaskState> = {};
    let ok = true;
    for (const t of this.tasks) {
      tasks[t.name] = t.state;
      if (t.state !== "running") ok = false;
    }
    return { status: ok ? "ok" : "unavailable", service: this.ctx.name, tasks };
  }

  get #log(): Logger {
    return (this.#svcLog ??= this.ctx.log.child("tilth.service"));
  }

  #create(): Task[] {
    const c = this.ctx.container;
    if (c) {
      c.register(Metrics, { useValue: this.metrics });
      c.register(Service as unknown as new () => Service, { useValue: this });
    }
    const tasks = this.createTasks().map((x) => (x instanceof Task ? x : constructTask(x, this.ctx)));
    const seen = new Set<string>();
    for (const t of tasks) {
      if (!(t instanceof Task)) throw new TilthError("ERR_TASK_CLASS", `service ${this.ctx.name}: a task is not a Task`);
      if (seen.has(t.name)) throw new TilthError("ERR_TASK_NAME", `service ${this.ctx.name} has two tasks named "${t.name}"; give one a name option`);
      seen.add(t.name);
      t._attach(this);
    }
    void this.failurePolicy; // validate the setting now
    return tasks;
  }

  /** Start every task in order (before `serve()`); on a failure stop those started, in reverse order. */
  override async start(signal: AbortSignal): Promise<void> {
    void this.tasks;
    await this.#startAll(signal);
  }

  /** Wait for the app to stop or a task to fail; stop every task in reverse order. */
  override async serve(signal: AbortSignal): Promise<void> {
    if (!this.#started) await this.#startAll(signal); // again, after a restart
    await this.#failed.wait({ signal }).catch(() => undefined);
    const failure = this.#failure;
    const reason = signal.aborted ? signal.reason : new CancelledError(`task ${failure?.task.name} failed`, failure?.error);
    await this.#stopAll(reason);
    if (!signal.aborted && failure) throw new TaskFailedError(failure.task.name, failure.error);
  }

  /** Make sure every task is stopped (normally `serve()` has done it). */
  override async stop(): Promise<void> {
    await this.#stopAll(new CancelledError("service stopping"));
  }

  async #startAll(signal: AbortSignal): Promise<void> {
    this.#failure = undefined;
    this.#failed.clear();
    const tasks = this.tasks;
    for (const t of tasks) {
      try {
        await t._start(signal);
        this.#log.debug(`started task ${t.name}`);
      } catch (e) {
        const why = signal.aborted ? "the service is stopping" : describe(e);
        this.#log.error(`task ${t.name} cannot start: ${why}`);
        await t._stop(new CancelledError(`task ${t.name} cannot start`, e));
        await this.#stopAll(new CancelledError(`task ${t.name} cannot start`, e));
        throw new TilthError("ERR_TASK_START", `task ${t.name} cannot start: ${why}`, { cause: e, context: { task: t.name } });
      }
    }
    this.#started = true;
    this.#log.info(`started ${tasks.length} task${tasks.length === 1 ? "" : "s"}: ${tasks.map((t) => t.name).join(", ")}`);
  }

  async #stopAll(reason: unknown): Promise<void> {
    const tasks = this.#tasks ?? [];
    const any = tasks.some((t) => t.state !== "idle" && t.state !== "stopped");
    for (const t of [...tasks].reverse()) await t._stop(reason);
    await Promise.all(this.#isolated);
    if (this.#started && any) this.#log.info("stopped every task");
    this.#started = false;
  }

  /** @internal A task failed: log, count, apply the policy. */
  _taskFailed(task: Task, error: unknown): void {
    this.metrics.counter("tilth_task_failures_total", "Times a task failed.").inc({ task: task.name });
    const policy = this.failurePolicy;
    this.#log.error(
      `task ${task.name} failed: ${describe(error)}; ${policy === "restart" ? "stopping every task, the service restarts" : "stopping it, the others go on (failurePolicy: continue)"}`,
    );
    try {
      this.taskFailed?.(task, error);
    } catch (e) {
      this.#log.error(`taskFailed hook threw: ${describe(e)}`);
    }
    if (policy === "continue") {
      const p = task._stop(new CancelledError(`task ${task.name} failed`, error)).finally(() => this.#isolated.delete(p));
      this.#isolated.add(p);
    } else if (this.#failure === undefined) {
      this.#failure = { task, error };
      this.#failed.set();
    }
  }

  /** @internal A task missed its stop deadline. */
  _taskCancelled(task: Task): void {
    this.metrics.counter("tilth_task_cancelled_total", "Times a task was cancelled at its stop deadline.").inc({ task: task.name });
  }
}
