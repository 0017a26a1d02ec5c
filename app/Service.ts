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
 *   signal aborts when the task is asked to stop. `run()` and `stop()` are
 *   tasks of the service's {@link Scope} (one scope from a start of the tasks
 *   to their stop): nothing a task starts is left unowned.
 * - **Stop** in reverse order, one task after the other. Each task gets
 *   `stopTimeout` (default 5 s) to stop gracefully: its `run` signal aborts,
 *   its `stop(cancelSignal)` is called, and both must end. A task that is
 *   still busy at its deadline is cancelled (its `cancelSignal` aborts with a
 *   TimeoutError) and a warning is logged; if it ignores even that for
 *   `cancelGraceMs` more, it is abandoned: an error line names what is still
 *   running (`run()`, `stop()`) and the service moves on. If abandoned work
 *   ends later, a warning says so. This is {@link stopWithin}'s escalation.
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
import { CancelledError, TilthError, TimeoutError, describe, formatMs, isCancellation } from "../core/errors.js";
import type { Loop } from "../core/Loop.js";
import { AbandonedError, Scope, stopWithin, type Task as ScopeTask } from "../core/Scope.js";
import { sleep, timeout } from "../core/time.js";
import { App, type AppContext } from "./App.js";
import { constructWithDi } from "./di.js";
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
  /** The current start of the task (a new one each time it starts). */
  #cycle: Cycle = newCycle();

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
    return this.#cycle.stopping.signal;
  }

  /** Aborts when the task is cancelled: its stop deadline passed. In-flight work may go on until then. */
  get cancelSignal(): AbortSignal {
    return this.#cycle.cancel.signal;
  }

  /** Sleep on the task's loop; rejects when the task is asked to stop. */
  sleep(ms: number): Promise<void> {
    return sleep(this.ctx.loop, ms, { signal: this.signal });
  }

  /**
   * Report that the task has failed (for failures outside `run`, e.g. a
   * server's error event). The service applies its failure policy. Ignored
   * unless the task is running.
   */
  protected fail(error: unknown): void {
    if (this.#state !== "running") return;
    this.#state = "failed";
    this.#cycle.stopping.abort(new CancelledError(`task ${this.name} failed`, error));
    if (this.#service) this.#service._taskFailed(this, error);
    else this.log.error(`failed: ${describe(error)}`);
  }

  /** @internal */
  _attach(service: Service): void {
    this.#service = service;
  }

  /**
   * @internal Start: `start()` within `startTimeout` (sooner if `signal`
   * aborts), then `run()` as a task of `scope`, the service's scope.
   */
  async _start(signal: AbortSignal, scope: Scope): Promise<void> {
    const c = (this.#cycle = newCycle(scope));
    this.#state = "starting";
    try {
      await timeout(this.loop, this.startTimeout, (limit) => this.start?.(limit), { signal, what: `start of task ${this.name}` });
    } catch (e) {
      this.#state = "failed";
      throw e;
    }
    this.#state = "running";
    if (this.run) c.run = scope.spawn(() => this.#runBody(c), { name: `run() of task ${this.name}` });
  }

  /** `run()`, never throwing: how it ended is the task's business (a failure, or a line in the log), not its scope's. */
  async #runBody(c: Cycle): Promise<void> {
    const failure = await this.#track(c, "run()", () => this.run!(c.stopping.signal));
    if (c.abandoned || this.#cycle !== c) return;
    if (!c.stopping.signal.aborted) this.fail(failure ? failure.error : new TaskEndedError(this.name));
    else if (failure && !isQuiet(failure.error)) this.log.error(`run() failed while stopping: ${describe(failure.error)}`);
  }

  /** `stop()`, never throwing: a failure is logged. */
  async #stopBody(c: Cycle): Promise<void> {
    const failure = await this.#track(c, "stop()", () => this.stop?.(c.cancel.signal));
    if (failure && !c.abandoned && !isQuiet(failure.error)) this.log.error(`stop() failed: ${describe(failure.error)}`);
  }

  /**
   * Await `body` (run() or stop()) while marking it busy; return how it
   * failed, if it did. Work given up at its stop deadline that ends after all
   * is reported, not dropped silently.
   */
  async #track(c: Cycle, what: string, body: () => unknown): Promise<{ error: unknown } | undefined> {
    let failure: { error: unknown } | undefined;
    c.busy.add(what);
    try {
      await body();
    } catch (error) {
      failure = { error };
    }
    c.busy.delete(what);
    if (c.abandoned)
      this.log.warn(`${what} ended ${formatMs(this.loop.now() - c.stopAskedAt)} after it was asked to stop (it had been abandoned)${failure ? `: ${describe(failure.error)}` : ""}`);
    return failure;
  }

  /**
   * @internal Stop: abort the run signal and call `stop()` (a task of the
   * service's scope, as `run()` is); wait for both up to `stopTimeout`, then
   * cancel and wait up to `cancelGraceMs` more, then abandon them (see
   * `stopWithin`). Never rejects. Idempotent while a stop is in progress.
   */
  _stop(reason: unknown): Promise<void> {
    if (this.#state === "idle" || this.#state === "stopped") return Promise.resolve();
    const c = this.#cycle;
    return (c.stopped ??= this.#doStop(c, reason));
  }

  async #doStop(c: Cycle, reason: unknown): Promise<void> {
    const failed = this.#state === "failed";
    this.#state = "stopping";
    c.stopAskedAt = this.loop.now();
    c.stopping.abort(reason);
    // stop() runs in the service's scope beside run() (unless that scope has ended already).
    const stop = c.scope?.isClosing === false ? c.scope.spawn(() => this.#stopBody(c), { name: `stop() of task ${this.name}` }).join() : this.#stopBody(c);
    const outcome = await stopWithin(this.loop, {
      what: `task ${this.name}`,
      ended: Promise.all([stop, c.run?.join()]),
      graceMs: this.stopTimeout,
      cancel: () => {
        this.log.warn(`did not stop within ${formatMs(this.stopTimeout)}: cancelled`);
        this.#service?._taskCancelled(this);
        c.cancel.abort(new TimeoutError(this.stopTimeout, `stop of task ${this.name}`));
      },
      cancelMs: this.cancelGraceMs,
      log: () => this.log.error(`ignored its cancellation for ${formatMs(this.cancelGraceMs)} more: abandoned (${[...c.busy].join(" and ")} still running; its work may go on)`),
    });
    if (outcome === "abandoned") c.abandoned = true;
    this.#state = failed ? "failed" : "stopped";
  }
}

/** One start of a task, to its stop: its signals and the work it runs. */
interface Cycle {
  /** Aborts when the task is asked to stop (the run signal). */
  readonly stopping: AbortController;
  /** Aborts at the stop deadline. */
  readonly cancel: AbortController;
  /** The service's scope that runs the task's run() and stop() (none before the first start). */
  readonly scope: Scope | undefined;
  run?: ScopeTask<void>;
  stopped?: Promise<void>;
  /** Which of run() and stop() are still going. */
  readonly busy: Set<string>;
  stopAskedAt: number;
  /** Left running past the cancel grace. */
  abandoned: boolean;
}

function newCycle(scope?: Scope): Cycle {
  return { stopping: new AbortController(), cancel: new AbortController(), scope, busy: new Set(), stopAskedAt: 0, abandoned: false };
}

/** Errors that say the work was stopped on purpose, not that it broke. */
function isQuiet(e: unknown): boolean {
  return isCancellation(e) || e instanceof TimeoutError;
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
  return constructWithDi<Task>(cls, ctx);
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
  /** Owns the tasks' run() and stop() from a start of the tasks to their stop (a new scope for each start). */
  #scope: Scope | undefined;
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
  /** The URLs the service's tasks serve on while they run (RpcServerTask's, port 0 resolved). */
  override servedUrls(): string[] {
    return (this.#tasks ?? []).flatMap((t) => (t as { urls?: unknown }).urls).filter((u): u is string => typeof u === "string");
  }

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
    // Abandoned work is named in the task's own log line; the scope's summary of it is for debugging.
    const scope = (this.#scope = new Scope(this.loop, { name: `service ${this.ctx.name}`, log: (line) => this.#log.debug(line) }));
    for (const t of tasks) {
      try {
        await t._start(signal, scope);
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
    // Every task has stopped or was abandoned: end their scope (at once; what is left was given up on already).
    const scope = this.#scope;
    this.#scope = undefined;
    await scope?.close({ graceMs: 0, cancelMs: 0 }).catch((e: unknown) => {
      if (!(e instanceof AbandonedError)) this.#log.error(`closing the tasks' scope failed: ${describe(e)}`);
    });
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
