/**
 * `onAbort`: AbortSignal plumbing done as undici does it. The caller checks
 * `signal.aborted` first; `onAbort` adds the listener, passes `signal.reason`
 * on, and returns the undo that always removes it.
 *
 * @example
 * ```ts
 * import { onAbort } from "tilth/core";
 * function wait(signal?: AbortSignal): Promise<void> {
 *   if (signal?.aborted) return Promise.reject(signal.reason);
 *   return new Promise((resolve, reject) => {
 *     const off = onAbort(signal, (reason) => reject(reason));
 *     later(() => { off(); resolve(); }); // settled first: remove the listener
 *   });
 * }
 * ```
 * @module
 */

/**
 * Call `fn(reason)` once when `signal` aborts; returns the function that
 * removes the listener (call it when the wait ends another way). An undefined
 * signal costs nothing. A signal that has already aborted does not call `fn`:
 * check `signal.aborted` first.
 */
export function onAbort(signal: AbortSignal | undefined, fn: (reason: unknown) => void): () => void {
  if (signal === undefined) return noop;
  const listener = (): void => fn(signal.reason);
  signal.addEventListener("abort", listener, { once: true });
  return () => signal.removeEventListener("abort", listener);
}

function noop(): void {}
