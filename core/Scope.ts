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

/** A scope owning tasks. Prefer {@link scoped}, which closes it for you. */
export class Scope implements AsyncDisposable {
  readonly loop: Loop;
  readonly name: string;
  readonly #controller = new AbortController();
  /** Running tasks, as an intrusive doubly linked list: O(1) add and remove, no hashing. */
  #head: Task<any> | undefined = undefined;
  #size = 0;
  readonly #errors: unknown[] = [];
  #closed = false;
  /** The reason once cancelled (a plain field: cheaper on spawn than signal.aborted). */
  #cancelReason: unknown = NOT_CANCELLED;
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
    return this.#size;
  }

  /** Failures recorded so far. */
  get errors(): readonly unknown[] {
    return this.#errors;
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

  /** Cancel every task of the scope with `reason`. Idempotent. */
  cancel(reason: unknown = new CancelledError(`scope ${this.name} cancelled`)): void {
    if (this.#cancelReason !== NOT_CANCELLED) return;
    this.#cancelReason = reason;
    this.#controller.abort(reason);
    for (let t = this.#head; t !== undefined; t = t._next) t.cancel(reason);
  }

  /**
   * Stop accepting tasks, wait for every task to finish, and throw what failed:
   * the one error, or a ScopeError holding several. Idempotent.
   */
  async close(): Promise<void> {
    this.#closed = true;
    if (this.#size > 0) await new Promise<void>((resolve) => (this.#idle = resolve));
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
