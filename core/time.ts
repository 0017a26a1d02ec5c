/**
 * Time-bound waiting on a Loop: `sleep`, `timeout` and `deadline`.
 *
 * Every wait takes an optional `AbortSignal`; when it aborts the wait rejects
 * with the signal's reason (a CancelledError if the reason is not an Error).
 *
 * @example
 * ```ts
 * await sleep(loop, 100, { signal: task.signal });
 * const rows = await timeout(loop, 2_000, (signal) => db.query(sql, { signal }));
 * ```
 * @module
 */
import type { Loop } from "./Loop.js";
import { TimeoutError, abortReason } from "./errors.js";
import { onAbort } from "./abort.js";

export interface WaitOptions {
  signal?: AbortSignal | undefined;
}

/** Resolve after `ms` of loop time; reject with the abort reason if `signal` aborts first. */
export function sleep(loop: Loop, ms: number, options: WaitOptions = {}): Promise<void> {
  const signal = options.signal;
  if (signal === undefined) return new Promise<void>((resolve) => void loop.timer(ms, resolve));
  if (signal.aborted) return Promise.reject(abortReason(signal));
  return new Promise<void>((resolve, reject) => {
    const t = loop.timer(ms, () => {
      off();
      resolve();
    });
    const off = onAbort(signal, () => {
      t.cancel();
      reject(abortReason(signal));
    });
  });
}

export interface TimeoutOptions extends WaitOptions {
  /** Name of the operation, for the error message. */
  what?: string;
}

/**
 * Run `fn` with a signal that aborts after `ms` of loop time with a
 * TimeoutError (code ERR_TIMEOUT, `limitMs` = ms). The returned promise rejects
 * with that TimeoutError at the deadline even if `fn` ignores its signal, so a
 * caller is never held past its limit; `fn` should stop when its signal aborts.
 * An outer `signal` cancels it too, with that signal's reason.
 */
export function timeout<T>(
  loop: Loop,
  ms: number,
  fn: (signal: AbortSignal) => T | Promise<T>,
  options: TimeoutOptions = {},
): Promise<T> {
  const outer = options.signal;
  if (outer?.aborted) return Promise.reject(abortReason(outer));
  const ac = new AbortController();
  return new Promise<T>((resolve, reject) => {
    let settled = false;
    const finish = (): boolean => {
      if (settled) return false;
      settled = true;
      t.cancel();
      off();
      return true;
    };
    const t = loop.timer(ms, () => {
      const err = new TimeoutError(ms, options.what);
      if (finish()) reject(err);
      ac.abort(err);
    });
    const off = onAbort(outer, () => {
      const err = abortReason(outer!);
      if (finish()) reject(err);
      ac.abort(err);
    });
    let p: T | Promise<T>;
    try {
      p = fn(ac.signal);
    } catch (e) {
      if (finish()) reject(e);
      return;
    }
    Promise.resolve(p).then(
      (v) => {
        if (finish()) resolve(v);
      },
      (e: unknown) => {
        if (finish()) reject(e);
      },
    );
  });
}

/** Like {@link timeout}, with an absolute loop time `at` instead of a duration. */
export function deadline<T>(
  loop: Loop,
  at: number,
  fn: (signal: AbortSignal) => T | Promise<T>,
  options: TimeoutOptions = {},
): Promise<T> {
  return timeout(loop, Math.max(0, at - loop.now()), fn, options);
}
