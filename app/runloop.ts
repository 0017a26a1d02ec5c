/**
 * `runloop`: run an app's `serve()` and restart it when it crashes, with
 * backoff. A crash soon after a start (within `healthyAfterMs`) doubles the
 * wait before the next start, up to `maxBackoffMs`; a crash after a healthy
 * run starts again after `backoffMs`. Every crash is logged with why and when
 * the next start is. Never a tight crash loop.
 * @module
 */
import type { Loop } from "../core/Loop.js";
import { describe, formatMs } from "../core/errors.js";
import { sleep } from "../core/time.js";
import type { Logger } from "./Logger.js";

export interface RunloopOptions {
  /** First wait before a restart, ms. Default 1000. */
  backoffMs?: number;
  /** Longest wait, ms. Default 60 000. */
  maxBackoffMs?: number;
  /** A run this long counts as healthy and resets the backoff, ms. Default 30 000. */
  healthyAfterMs?: number;
}

/** Resolves when `serve` returns normally or `signal` aborts; never rejects for a crash. */
export async function runloop(
  loop: Loop,
  log: Logger,
  serve: (signal: AbortSignal) => Promise<void>,
  signal: AbortSignal,
  options: RunloopOptions = {},
): Promise<{ restarts: number }> {
  const base = options.backoffMs ?? 1000;
  const max = options.maxBackoffMs ?? 60_000;
  const healthy = options.healthyAfterMs ?? 30_000;
  let backoff = base;
  let restarts = 0;
  for (;;) {
    const started = loop.now();
    try {
      await serve(signal);
      return { restarts };
    } catch (e) {
      if (signal.aborted) return { restarts };
      const ran = loop.now() - started;
      if (ran >= healthy) backoff = base;
      log.error(`serve() crashed after ${formatMs(ran)}: ${describe(e)}; restarting in ${formatMs(backoff)}`);
      try {
        await sleep(loop, backoff, { signal });
      } catch {
        return { restarts };
      }
      restarts++;
      if (ran < healthy) backoff = Math.min(max, backoff * 2);
    }
  }
}
