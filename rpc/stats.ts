/**
 * What a server records about its calls, for metrics. The server asks once
 * per method for a {@link MethodStats} and tells it of every call's end: one
 * call, one `end()`, with no label object or clock reading of its own (the
 * duration comes from the loop's clock the engine reads anyway).
 * `app/Metrics` implements it with Prometheus histograms; a server without
 * `stats` records nothing.
 * @module
 */

/** The recording of one method's calls. */
export interface MethodStats {
  /**
   * A call ended. `code`: undefined on success, else the error code it ended
   * with (`ERR_CANCELLED` when the client cancelled, ...); `ms`: from its
   * arrival to its answer, in loop milliseconds; `items`: stream items sent.
   */
  end(code: string | undefined, ms: number, items: number): void;
}

/** Per-call recording of a server (the `stats` option of `RpcServer`). */
export interface ServerStats {
  /** The recording of `method`'s calls (asked once per method, when the server starts). */
  method(method: string): MethodStats;
}

/** The code a call's error is counted under: its `code` when it has a string one, else `ERR_REMOTE` (what the caller sees of a plain throw). */
export function outcomeCode(e: unknown): string {
  const code = (e as { code?: unknown } | null | undefined)?.code;
  return typeof code === "string" && code.length > 0 && code.length <= 64 ? code : "ERR_REMOTE";
}
