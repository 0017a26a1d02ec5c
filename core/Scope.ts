/**
 * Structured concurrency: a {@link Scope} owns the tasks it spawns, as Trio's
 * nurseries do.
 *
 * - A task is an async function given its {@link Task} handle (signal, loop).
 * - When a task fails, the scope cancels its other tasks (their signals abort
 *   with a CancelledError whose cause is the failure) and the failure reaches
 *   the scope's owner from `close()` / `scoped()`.
 * - Leaving a scope waits for every child; no task outlives its scope.
 * - Cancelling a scope aborts every child's signal with the given reason.
 *
 * @example
 * ```ts
 * const total = await scoped(loop, async (scope) => {
 *   const a = scope.spawn((t) => fetchPart(1, t.signal));
 *   const b = scope.spawn((t) => fetchPart(2, t.signal));
 *   return (await a.join()) + (await b.join());
 * }); // if either part fails, the other is cancelled and the error is thrown here
 * ```
 * @module
 */
import type { Loop } from "./Loop.js";
import { CancelledError, ClosedError, ScopeError, isCancellation } from "./errors.js";
import { onAbort } from "./internal/abort.js";
import { sleep } from "./time.js";

export interface ScopeOptions {
  /** For logs and errors. */
  name?: string;
  /** A parent signal: when it aborts, the scope is cancelled with its reason. */
  signal?: AbortSignal | undefined;
}

export interface SpawnOptions {
  name?: string;
}

const RESOLVED = Promise.resolve();
let nextTaskId = 1;

/** A task spawned in a scope. */
export class Task<T = unknown> {
  readonly id: number;
  readonly name: string;
  readonly scope: Scope;
  #controller: AbortController | undefined;
  #cancelled = false;
  #cancelReason: unknown;
  #state: 0 | 1 | 2 = 0; // running, fulfilled, rejected
  #value: T | undefined;
  #error: unknown;
  #waiters: { resolve: (v: T) => void; reject: (e: unknown) => void }[] | undefined;

  /** @internal */
  constructor(scope: Scope, name: string | undefined) {
    this.id = nextTaskId++;
    this.scope = scope;
    this.name = name ?? `task-${this.id}`;
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
      if (this.#cancelled) this.#controller.abort(this.#cancelReason);
    }
    return this.#controller.signal;
  }

  /** Whether cancellation was requested. */
  get cancelled(): boolean {
    return this.#cancelled;
  }

  /** Whether the task has finished. */
  get done(): boolean {
    return this.#state !== 0;
  }

  /** Request cancellation: abort the task's signal with `reason`. Idempotent. */
  cancel(reason: unknown = new CancelledError(`task ${this.name} cancelled`)): void {
    if (this.#cancelled || this.#state !== 0) return;
    this.#cancelled = true;
    this.#cancelReason = reason;
    this.#controller?.abort(reason);
  }

  /** The task's result; rejects with its error. The scope still reports a failure even if join() is awaited. */
  join(): Promise<T> {
    if (this.#state === 1) return Promise.resolve(this.#value as T);
    if (this.#state === 2) return Promise.reject(this.#error);
    return new Promise<T>((resolve, reject) => (this.#waiters ??= []).push({ resolve, reject }));
  }

  /** Sleep on the task's loop, cancelled with the task. */
  sleep(ms: number): Promise<void> {
    return sleep(this.scope.loop, ms, { signal: this.signal });
  }

  /** @internal */
  _settle(ok: boolean, v: unknown): void {
    this.#state = ok ? 1 : 2;
    if (ok) this.#value = v as T;
    else this.#error = v;
    const w = this.#waiters;
    if (w === undefined) return;
    this.#waiters = undefined;
    for (const x of w) ok ? x.resolve(v as T) : x.reject(v);
  }

  /** @internal whether `e` is this task's own cancellation */
  _isOwnCancellation(e: unknown): boolean {
    return this.#cancelled && (e === this.#cancelReason || isCancellation(e));
  }
}

/** A scope owning tasks. Prefer {@link scoped}, which closes it for you. */
export class Scope implements AsyncDisposable {
  readonly loop: Loop;
  readonly name: string;
  readonly #controller = new AbortController();
  readonly #children = new Set<Task<any>>();
  readonly #errors: unknown[] = [];
  #closed = false;
  #idle: (() => void) | undefined;
  readonly #unlink: () => void;

  constructor(loop: Loop, options: ScopeOptions = {}) {
    this.loop = loop;
    this.name = options.name ?? "scope";
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

  /** Tasks still running. */
  get size(): number {
    return this.#children.size;
  }

  /** Failures recorded so far. */
  get errors(): readonly unknown[] {
    return this.#errors;
  }

  /**
   * Start `fn` as a task of this scope, on a coming microtask (never
   * synchronously). Throws ClosedError once the scope is closing.
   */
  spawn<T>(fn: (task: Task<T>) => T | Promise<T>, options?: SpawnOptions): Task<T> {
    if (this.#closed) throw new ClosedError(`scope ${this.name} is closed; cannot spawn`);
    const task = new Task<T>(this, options?.name);
    this.#children.add(task);
    if (this.#controller.signal.aborted) task.cancel(this.#controller.signal.reason);
    RESOLVED.then(() => fn(task)).then(
      (v) => this.#finish(task, true, v),
      (e: unknown) => this.#finish(task, false, e),
    );
    return task;
  }

  /** Cancel every task of the scope with `reason`. Idempotent. */
  cancel(reason: unknown = new CancelledError(`scope ${this.name} cancelled`)): void {
    if (this.#controller.signal.aborted) return;
    this.#controller.abort(reason);
    for (const t of this.#children) t.cancel(reason);
  }

  /**
   * Stop accepting tasks, wait for every task to finish, and throw what failed:
   * the one error, or a ScopeError holding several. Idempotent.
   */
  async close(): Promise<void> {
    this.#closed = true;
    if (this.#children.size > 0) await new Promise<void>((resolve) => (this.#idle = resolve));
    this.#unlink();
    const errors = this.#errors;
    if (errors.length === 1) throw errors[0];
    if (errors.length > 1) throw new ScopeError([...errors]);
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  /** Record a failure of the owner's body (used by `scoped`). */
  fail(error: unknown): void {
    this.#errors.push(error);
    this.cancel(new CancelledError(`scope ${this.name} failed`, error));
  }

  #finish(task: Task<any>, ok: boolean, v: unknown): void {
    this.#children.delete(task);
    task._settle(ok, v);
    if (!ok && !task._isOwnCancellation(v)) {
      this.#errors.push(v);
      this.cancel(new CancelledError(`sibling task ${task.name} failed`, v));
    }
    if (this.#children.size === 0 && this.#idle !== undefined) {
      const idle = this.#idle;
      this.#idle = undefined;
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
