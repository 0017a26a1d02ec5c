/**
 * AbortSignal plumbing, done as undici does it: check `aborted` first, add the
 * listener, always remove it, pass `signal.reason` on.
 * @internal
 */

/** Call `fn(reason)` once when `signal` aborts; returns the function that removes the listener. */
export function onAbort(signal: AbortSignal | undefined, fn: (reason: unknown) => void): () => void {
  if (signal === undefined) return noop;
  const listener = (): void => fn(signal.reason);
  signal.addEventListener("abort", listener, { once: true });
  return () => signal.removeEventListener("abort", listener);
}

export function noop(): void {}
