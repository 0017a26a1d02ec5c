/**
 * Structured concurrency and lifecycles: a {@link Scope} owns the tasks it
 * spawns (as Trio's nurseries do) and the resources it opened (as Effect's
 * Scope and JavaScript's `AsyncDisposableStack` do).
 *
 * - A task is an async function given its {@link Task} handle (signal, loop).
 * - When a task fails, the scope cancels its other tasks (their signals abort
 *   with a CancelledError whose cause is the failure) and the failure reaches
 *   the scope's owner from `close()` / `scoped()`.
 * - Leaving a scope waits for every child; no task outlives its scope unless
 *   it ignores cancellation past the deadline (then it is abandoned, with a
 *   coded error and a log line naming it).
 * - Cancelling a scope aborts every child's signal with the given reason.
 * - `defer(fn)` and `use(resource)` register finalizers. They run once every
 *   task has ended, in reverse order of registration, each told how the scope
 *   ended ({@link ScopeExit}). A resource handed to a scope that is already
 *   closing is closed at once.
 *
 * Closing escalates in one way everywhere (see {@link stopWithin}):
 * graceful (`closing` aborts: stop accepting, let work finish) -> at `graceMs`
 * cancel (`signal` aborts) -> at `cancelMs` more, abandon.
 *
 * @example
 * ```ts
 * const total = await scoped(loop, async (scope) => {
 *   const a = scope.spawn((t) => fetchPart(1, t.signal));
 *   const b = scope.spawn((t) => fetchPart(2, t.signal));
 *   return (await a.join()) + (await b.join());
 * }); // if either part fails, the other is cancelled and the error is thrown here
 *
 * const scope = new Scope(loop, { name: "server", graceMs: 5_000 });
 * const listener = scope.use(await loop.listen(url)); // closed when the scope ends
 * scope.defer((exit) => log.info(`server ended: ${exit.kind}`));
 * await scope.close(); // idempotent; every caller awaits the same outcome
 * ```
 * @module
 */
import type { Loop } from "./Loop.js";
import { CancelledError, ClosedError, ScopeError, TilthError, describe, formatMs, isCancellation } from "./errors.js";
import { onAbort } from "./abort.js";
import { sleep } from "./time.js";

export interface ScopeOptions {
  /** For logs and errors. */
  name?: string;
  /** A parent signal: when it aborts, the scope is cancelled with its reason. */
  signal?: AbortSignal | undefined;
  /**
   * How long `close()` lets tasks finish before it cancels them, ms.
   * Default: no limit (close waits for its tasks, as a nursery does).
   */
  graceMs?: number;
  /** After cancelling, how long tasks may take to end before they are abandoned, ms. Default 1000. */
  cancelMs?: number;
  /** Where the line naming abandoned work goes. Default: `console.warn`. */
  log?: (line: string) => void;
}

export interface SpawnOptions {
  name?: string;
}

/** How a scope ended, as its finalizers are told. */
export type ScopeExit =
  | { readonly kind: "ok" }
  | { readonly kind: "cancelled"; readonly reason: unknown }
  | { readonly kind: "failed"; readonly error: unknown };

/** A finalizer: runs when its scope ends, after every task, told how it ended. */
export type Finalizer = (exit: ScopeExit) => void | PromiseLike<void>;

/** What `use()` takes: anything with `[Symbol.asyncDispose]()` or `close()`. */
export type Closeable = { [Symbol.asyncDispose](): PromiseLike<void> } | { close(): unknown };

export interface ScopeCloseOptions {
  /** Overrides the scope's `graceMs` for this close. */
  graceMs?: number;
  /** Overrides the scope's `cancelMs` for this close. */
  cancelMs?: number;
  /** Why: the reason tasks are cancelled with at the grace deadline. */
  reason?: unknown;
}

/** Work that ignored its cancellation past the deadline was left running. */
export class AbandonedError extends TilthError {
  constructor(what: string, cancelMs: number) {
    super("ERR_ABANDONED", `${what} ignored cancellation for ${formatMs(cancelMs)} and was abandoned (it may still be running)`, { context: { what, cancelMs } });
  }
}

export interface StopPlan {
  /** What is being stopped, for the log line and the error (e.g. "task tick of app svc"). */
  what: string;
  /** Settles when the work has ended by itself. */
  ended: PromiseLike<unknown>;
  /** How long to wait for `ended` before calling `cancel`, ms (Infinity: no limit). */
  graceMs: number;
  /** Cancel the work (abort its signal, destroy its connections). */
  cancel(): void;
  /** How long to wait for `ended` after `cancel` before abandoning, ms. */
  cancelMs: number;
  /** Where the abandon line goes. */
  log?: ((line: string) => void) | undefined;
}

/** What happened to work stopped by {@link stopWithin}. */
export type StopOutcome = "ended" | "cancelled" | "abandoned";

/**
 * The one escalation of every stop in tilth: wait `graceMs` for the work to
 * end by itself (graceful), then cancel it and wait `cancelMs` more, then
 * abandon it with a log line naming it. Never rejects; says which step ended it.
 */
export async function stopWithin(loop: Loop, plan: StopPlan): Promise<StopOutcome> {
  const ended = Promise.resolve(plan.ended).then(
    () => "ended" as const,
    () => "ended" as const,
  );
  if ((await waitFor(loop, ended, plan.graceMs)) === "ended") return "ended";
  plan.cancel();
  if ((await waitFor(loop, ended, plan.cancelMs)) === "ended") return "cancelled";
  (plan.log ?? defaultLog)(`${plan.what}: ${new AbandonedError(plan.what, plan.cancelMs).message}`);
  return "abandoned";
}

/** `p`'s outcome, or "late" after `ms` (no timer when the limit is infinite or p wins). */
async function waitFor(loop: Loop, p: Promise<"ended">, ms: number): Promise<"ended" | "late"> {
  if (ms === Infinity) return p;
  if (ms <= 0) return Promise.race([p, Promise.resolve("late" as const)]);
  const stop = new AbortController();
  const late = sleep(loop, ms, { signal: stop.signal }).then(
    () => "late" as const,
    () => "late" as const,
  );
  const r = await Promise.race([p, late]);
  stop.abort();
  return r;
}

function defaultLog(line: string): void {
  console.warn(line);
}

/** Close anything `use()` takes. */
function closeResource(r: Closeable): Promise<void> {
  const d = (r as { [Symbol.asyncDispose]?: () => PromiseLike<void> })[Symbol.asyncDispose];
  return Promise.resolve(typeof d === "function" ? d.call(r) : (r as { close(): unknown }).close()).then(() => {});
}

let nextTaskId = 1;

const NOT_CANCELLED: unique symbol = Symbol("not cancelled");

/** A task spawned in a scope. */
export class Task<T = unknown> {
  readonly id: number;
  readonly scope: Scope;
  #name: string | undefined;
  #controller: AbortController | undefined = undefined;
  #cancelReason: unknown = NOT_CANCELLED;
  #state: 0 | 1 | 2 = 0; // running, fulfilled, rejected
  #result: unknown = undefined;
  /** The body's promise while it runs: join() hands it out, no promise of its own. */
  #running: Promise<T> | undefined = undefined;
  /** @internal intrusive list of the scope's running tasks */
  _prev: Task<any> | undefined = undefined;
  /** @internal */
  _next: Task<any> | undefined = undefined;
  /** @internal left running past its scope's cancel deadline */
  _abandoned = false;

  /** @internal */
  constructor(scope: Scope, name: string | undefined) {
    this.id = nextTaskId++;
    this.scope = scope;
    this.#name = name;
  }

  get name(): string {
    return (this.#name ??= `task-${this.id}`);
  }

  /** The loop the task runs on. */
  get loop(): Loop {
    return this.scope.loop;
  }

  /**
   * Aborts when the task is cancelled (by `cancel()`, its scope, or a failing
   * sibling), with the reason. Created on first use, so tasks that never look
   * at it cost no AbortController.
   */
  get signal(): AbortSignal {
    if (this.#controller === undefined) {
      this.#controller = new AbortController();
      if (this.#cancelReason !== NOT_CANCELLED) this.#controller.abort(this.#cancelReason);
    }
    return this.#controller.signal;
  }

  /** Whether cancellation was requested. */
  get cancelled(): boolean {
    return this.#cancelReason !== NOT_CANCELLED;
  }

  /** Whether the task has finished. */
  get done(): boolean {
    return this.#state !== 0;
  }

  /** Request cancellation: abort the task's signal with `reason`. Idempotent. */
  cancel(reason: unknown = new CancelledError(`task ${this.name} cancelled`)): void {
    if (this.#cancelReason !== NOT_CANCELLED || this.#state !== 0) return;
    this.#cancelReason = reason;
    this.#controller?.abort(reason);
  }

  /** The task's result; rejects with its error. The scope still reports a failure even if join() is awaited. */
  join(): Promise<T> {
    if (this.#state === 1) return Promise.resolve(this.#result as T);
    if (this.#state === 2) return Promise.reject(this.#result);
    // The scope subscribed to this promise first, so by the time a joiner
    // resumes, the task is already marked done and the scope has its result.
    return this.#running!;
  }

  /** Sleep on the task's loop, cancelled with the task. */
  sleep(ms: number): Promise<void> {
    return sleep(this.scope.loop, ms, { signal: this.signal });
  }

  /** @internal */
  _start(p: Promise<T>): void {
    this.#running = p;
  }

  /** @internal */
  _settle(ok: boolean, v: unknown): void {
    this.#state = ok ? 1 : 2;
    this.#result = v;
    this.#running = undefined;
  }

  /** @internal whether `e` is this task's own cancellation */
  _isOwnCancellation(e: unknown): boolean {
    return this.#cancelReason !== NOT_CANCELLED && (e === this.#cancelReason || isCancellation(e));
  }
}

/** A scope owning tasks and resources. Prefer {@link scoped}, which closes it for you. */
export class Scope implements AsyncDisposable {
  readonly loop: Loop;
  readonly name: string;
  readonly #controller = new AbortController();
  #closingController: AbortController | undefined;
  /** Running tasks, as an intrusive doubly linked list: O(1) add and remove, no hashing. */
  #head: Task<any> | undefined = undefined;
  #size = 0;
  readonly #errors: unknown[] = [];
  /** Closing or closed: no new tasks; new resources are closed at once. */
  #closed = false;
  #closing: Promise<void> | undefined;
  /** The reason once cancelled (a plain field: cheaper on spawn than signal.aborted). */
  #cancelReason: unknown = NOT_CANCELLED;
  #idle: (() => void) | undefined;
  #idlePromise: Promise<void> | undefined;
  /** Finalizers in registration order (a Set: O(1) removal by the undo function). */
  readonly #finalizers = new Set<Finalizer>();
  #resources: Map<Closeable, Finalizer> | undefined;
  readonly #unlink: () => void;
  readonly #graceMs: number;
  readonly #cancelMs: number;
  readonly #log: ((line: string) => void) | undefined;

  constructor(loop: Loop, options: ScopeOptions = {}) {
    this.loop = loop;
    this.name = options.name ?? "scope";
    this.#graceMs = options.graceMs ?? Infinity;
    this.#cancelMs = options.cancelMs ?? 1000;
    this.#log = options.log;
    const parent = options.signal;
    if (parent?.aborted) {
      this.#unlink = () => {};
      this.cancel(parent.reason);
    } else {
      this.#unlink = onAbort(parent, (r) => this.cancel(r));
    }
  }

  /** Aborts when the scope is cancelled. */
  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  /**
   * Aborts when the scope begins to close (or is cancelled): the graceful
   * step. Long-lived work watches it to stop taking new work and finish what
   * it has; `signal` aborts later, if the grace period runs out.
   */
  get closing(): AbortSignal {
    if (this.#closingController === undefined) {
      this.#closingController = new AbortController();
      if (this.#closed) this.#closingController.abort(new ClosedError(`scope ${this.name} is closing`));
      else if (this.#cancelReason !== NOT_CANCELLED) this.#closingController.abort(this.#cancelReason);
    }
    return this.#closingController.signal;
  }

  /** Whether `close()` has begun. */
  get isClosing(): boolean {
    return this.#closed;
  }

  /** Tasks still running. */
  get size(): number {
    return this.#size;
  }

  /** Failures recorded so far. */
  get errors(): readonly unknown[] {
    return this.#errors;
  }

  /** The names of the tasks still running (for status reports and abandon lines). */
  taskNames(): string[] {
    const names: string[] = [];
    for (let t = this.#head; t !== undefined; t = t._next) names.push(t.name);
    return names;
  }

  /**
   * Start `fn` as a task of this scope. Like calling an async function, the
   * task starts at once and runs until its first `await` before `spawn`
   * returns, every time. Throws ClosedError once the scope is closing.
   */
  spawn<T>(fn: (task: Task<T>) => T | Promise<T>, options?: SpawnOptions): Task<T> {
    if (this.#closed) throw new ClosedError(`scope ${this.name} is closed; cannot spawn`);
    const task = new Task<T>(this, options?.name);
    const head = this.#head;
    if (head !== undefined) {
      task._next = head;
      head._prev = task;
    }
    this.#head = task;
    this.#size++;
    if (this.#cancelReason !== NOT_CANCELLED) task.cancel(this.#cancelReason);
    let r: T | Promise<T>;
    try {
      r = fn(task);
    } catch (e) {
      this.#finish(task, false, e);
      return task;
    }
    if (r instanceof Promise) {
      task._start(r);
      void this.#watch(task, r);
    }
    else this.#finish(task, true, r);
    return task;
  }

  /**
   * Register a finalizer, run when the scope ends (after its tasks, in reverse
   * order of registration, told how the scope ended). Returns a function that
   * removes it again (for a resource that closed by itself). On a scope that
   * is already closing, `fn` runs at once and ClosedError is thrown.
   */
  defer(fn: Finalizer): () => void {
    if (this.#closed) {
      void this.#late(fn);
      throw new ClosedError(`scope ${this.name} is closing; the finalizer ran at once`);
    }
    this.#finalizers.add(fn);
    return () => void this.#finalizers.delete(fn);
  }

  /**
   * Own `resource`: it is closed (`[Symbol.asyncDispose]()`, else `close()`)
   * when the scope ends. Returns it. On a scope that is already closing the
   * resource is closed at once and ClosedError is thrown: so a resource that
   * finished opening after its owner began to close never outlives it.
   */
  use<R extends Closeable>(resource: R): R {
    const fin: Finalizer = () => {
      this.#resources?.delete(resource);
      return closeResource(resource);
    };
    this.defer(fin);
    (this.#resources ??= new Map()).set(resource, fin);
    return resource;
  }

  /** Stop owning `resource` (it closed by itself, or its ownership moved): it will not be closed by this scope. */
  release(resource: Closeable): void {
    const fin = this.#resources?.get(resource);
    if (fin === undefined) return;
    this.#resources!.delete(resource);
    this.#finalizers.delete(fin);
  }

  /**
   * A scope inside this one: cancelled with it, closed gracefully when this
   * one closes, and waited for by this one's close. Closing the child early
   * (a session that ended) takes it out of this scope.
   */
  child(options: Omit<ScopeOptions, "signal"> = {}): Scope {
    if (this.#closed) throw new ClosedError(`scope ${this.name} is closed; cannot open a child scope`);
    const c = new Scope(this.loop, {
      ...(this.#log ? { log: this.#log } : {}),
      ...options,
      signal: this.#controller.signal,
    });
    const off = onAbort(this.closing, () => void c.close().catch(() => {}));
    this.spawn(
      async () => {
        try {
          await c.#ended();
        } finally {
          off();
        }
      },
      { name: `scope ${c.name}` },
    );
    return c;
  }

  /** Resolves once `close()` has run to the end (rejects with its failure). */
  #ended(): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const wait = (): void => {
        if (this.#closing) this.#closing.then(resolve, reject);
        else this.#onClose.push(wait);
      };
      wait();
    });
  }
  readonly #onClose: (() => void)[] = [];

  /** Cancel every task of the scope with `reason`. Idempotent. */
  cancel(reason: unknown = new CancelledError(`scope ${this.name} cancelled`)): void {
    if (this.#cancelReason !== NOT_CANCELLED) return;
    this.#cancelReason = reason;
    this.#closingController?.abort(reason);
    this.#controller.abort(reason);
    for (let t = this.#head; t !== undefined; t = t._next) t.cancel(reason);
  }

  /**
   * End the scope: stop accepting tasks and abort `closing`; wait for every
   * task (for `graceMs`, then cancel them and wait `cancelMs` more, then
   * abandon them with an AbandonedError and a log line); run the finalizers
   * in reverse order; throw what failed: the one error, or a ScopeError
   * holding several. Idempotent and safe to call concurrently: every caller
   * awaits the same outcome (the first caller's options apply).
   */
  close(options: ScopeCloseOptions = {}): Promise<void> {
    if (this.#closing === undefined) {
      this.#closing = this.#close(options);
      for (const w of this.#onClose.splice(0)) w();
    }
    return this.#closing;
  }

  async #close(o: ScopeCloseOptions): Promise<void> {
    this.#closed = true;
    this.#closingController?.abort(new ClosedError(`scope ${this.name} is closing`));
    // close() hands out its promise before any task or finalizer is touched.
    await undefined;
    if (this.#size > 0) {
      const graceMs = o.graceMs ?? this.#graceMs;
      const cancelMs = o.cancelMs ?? this.#cancelMs;
      const names = (): string => this.taskNames().join(", ");
      const outcome = await stopWithin(this.loop, {
        what: `scope ${this.name}`,
        ended: this.#whenIdle(),
        graceMs,
        cancel: () => this.cancel(o.reason ?? new CancelledError(`scope ${this.name} closing: its grace period of ${formatMs(graceMs)} is over`)),
        cancelMs,
        log: (line) => (this.#log ?? defaultLog)(`${line}; tasks still running: ${names()}`),
      });
      if (outcome === "abandoned") {
        const e = new AbandonedError(`scope ${this.name} (tasks: ${names()})`, cancelMs);
        this.#abandon();
        this.#errors.push(e);
      }
    }
    const errors = this.#errors;
    const exit: ScopeExit =
      errors.length > 0 ? { kind: "failed", error: errors.length === 1 ? errors[0] : new ScopeError([...errors]) }
      : this.#cancelReason !== NOT_CANCELLED ? { kind: "cancelled", reason: this.#cancelReason }
      : { kind: "ok" };
    const fins = [...this.#finalizers].reverse();
    this.#finalizers.clear();
    for (const fin of fins) {
      try {
        await fin(exit);
      } catch (e) {
        errors.push(e);
      }
    }
    this.#unlink();
    if (errors.length === 1) throw errors[0];
    if (errors.length > 1) throw new ScopeError([...errors]);
  }

  /** A finalizer registered on a scope already closing: run now, failures go to the log. */
  async #late(fn: Finalizer): Promise<void> {
    try {
      await fn({ kind: "cancelled", reason: new ClosedError(`scope ${this.name} is closing`) });
    } catch (e) {
      (this.#log ?? defaultLog)(`scope ${this.name}: closing a resource opened while the scope closed failed: ${describe(e)}`);
    }
  }

  #whenIdle(): Promise<void> {
    if (this.#size === 0) return Promise.resolve();
    return (this.#idlePromise ??= new Promise<void>((resolve) => (this.#idle = resolve)));
  }

  /** Forget the tasks still running: their late results are ignored. */
  #abandon(): void {
    for (let t = this.#head; t !== undefined; ) {
      const next = t._next;
      t._prev = t._next = undefined;
      t._abandoned = true;
      t = next;
    }
    this.#head = undefined;
    this.#size = 0;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  /** Record a failure of the owner's body (used by `scoped`). */
  fail(error: unknown): void {
    this.#errors.push(error);
    this.cancel(new CancelledError(`scope ${this.name} failed`, error));
  }

  // An async method rather than p.then(onOk, onErr): no closures per task.
  async #watch(task: Task<any>, p: Promise<unknown>): Promise<void> {
    let v: unknown;
    try {
      v = await p;
    } catch (e) {
      this.#finish(task, false, e);
      return;
    }
    this.#finish(task, true, v);
  }

  #finish(task: Task<any>, ok: boolean, v: unknown): void {
    if (task._abandoned) {
      task._settle(ok, v);
      return;
    }
    const prev = task._prev;
    const next = task._next;
    if (prev !== undefined) prev._next = next;
    else this.#head = next;
    if (next !== undefined) next._prev = prev;
    task._prev = task._next = undefined;
    this.#size--;
    task._settle(ok, v);
    if (!ok && !task._isOwnCancellation(v)) {
      this.#errors.push(v);
      this.cancel(new CancelledError(`sibling task ${task.name} failed`, v));
    }
    if (this.#size === 0 && this.#idle !== undefined) {
      const idle = this.#idle;
      this.#idle = undefined;
      this.#idlePromise = undefined;
      idle();
    }
  }
}

/**
 * Run `body` with a new scope and close it: waits for every task the body
 * spawned, and throws the body's error or the tasks' failures.
 */
export async function scoped<T>(loop: Loop, body: (scope: Scope) => T | Promise<T>, options?: ScopeOptions): Promise<T> {
  const scope = new Scope(loop, options);
  let value: T | undefined;
  try {
    value = await body(scope);
  } catch (e) {
    scope.fail(e);
  }
  await scope.close();
  return value as T;
}
