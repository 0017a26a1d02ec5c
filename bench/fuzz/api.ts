/**
 * The API the fuzzed servers (and the soak server) expose: small handlers
 * whose every input is bounded, so that whatever a fuzzed call asks, the
 * handler's own work stays small and any trouble is the framework's.
 */
import type { Loop } from "../../core/Loop.js";
import { sleep } from "../../core/time.js";
import { contextual, RpcError, type CallContext } from "../../rpc/index.js";

/** A number in [lo, hi]; anything else (NaN, not a number) is `lo`. */
export function clamp(x: unknown, lo: number, hi: number): number {
  return typeof x === "number" && x >= lo ? Math.min(x, hi) : lo;
}

/** Longest wait a call may ask for, ms. */
export const MAX_WAIT_MS = 60_000;

/**
 * The classes of values in `v` outside the plain value model (nil, booleans,
 * numbers, BigInt, strings, Buffer/Uint8Array, arrays, plain objects) and
 * outside what every MessagePack peer knows (timestamps, undefined); at most
 * `max` names, and a bounded walk (cycles end it).
 */
export function foreignTypes(v: unknown, max = 5): string[] {
  const found = new Set<string>();
  let budget = 10_000;
  const walk = (x: unknown, depth: number): void => {
    if (typeof x !== "object" || x === null || x instanceof Date || depth > 100 || --budget < 0 || found.size >= max) return;
    if (x instanceof Uint8Array && (x.constructor === Buffer || x.constructor === Uint8Array)) return;
    if (Array.isArray(x)) {
      for (const y of x) walk(y, depth + 1);
      return;
    }
    const proto = Object.getPrototypeOf(x) as object | null;
    if (proto !== Object.prototype && proto !== null) {
      found.add((x as object).constructor?.name ?? "object");
      return;
    }
    for (const y of Object.values(x)) walk(y, depth + 1);
  };
  walk(v, 0);
  return [...found];
}

export function fuzzApi(loop: Loop) {
  return {
    /** The control client's call: answers its argument. */
    control: (n: unknown) => n,
    ping: () => "pong",
    echo: (x: unknown) => x,
    /** The classes outside the plain value model that reached this handler. */
    types: (x: unknown) => foreignTypes(x),
    add: (a: unknown, b: unknown) => (typeof a === "number" && typeof b === "number" ? a + b : null),
    greet: (name: unknown, greeting: unknown = "hello") => `${String(greeting).slice(0, 64)}, ${String(name).slice(0, 64)}`,
    async *count(n: unknown): AsyncGenerator<number> {
      const k = clamp(n, 0, 1000);
      for (let i = 0; i < k; i++) yield i;
    },
    wait: contextual(async (ctx: CallContext, ms: unknown) => {
      await sleep(loop, clamp(ms, 0, MAX_WAIT_MS), { signal: ctx.signal });
      return "waited";
    }),
    fail: () => {
      throw new RpcError("ERR_FUZZ_PLANNED", "a planned failure", { data: { planned: true } });
    },
    blob: (n: unknown) => Buffer.alloc(clamp(n, 0, 1 << 20), 0x61),
  };
}

export type FuzzApi = ReturnType<typeof fuzzApi>;
