/**
 * `tilth bench`'s command line: its spec (options, help, examples) and the
 * parsing into {@link BenchOptions}, with every bound checked.
 * @module
 */
import { readFileSync, statSync } from "node:fs";
import { TilthError } from "../../core/errors.js";
import { UsageError, parseCommand } from "../args.js";
import { parseArg, parseJsonExact } from "../call.js";
import { BENCH } from "./spec.js";

export { BENCH };

/** Every bound of a run's options. */
export const LIMITS = {
  connections: 10_000,
  slots: 1_000_000,
  rate: 10_000_000,
  rateSteps: 100,
  durationMs: 24 * 3600_000,
  calls: 1_000_000_000,
  workers: 64,
  argLists: 100_000,
  argsFileBytes: 64 * 1024 * 1024,
} as const;

export const DEFAULTS = { connections: 1, inFlight: 10, openInFlight: 1000, durationMs: 10_000, calls: 100_000_000, warmupMs: 1000, timeoutMs: 10_000 } as const;

export interface BenchOptions {
  target: string;
  method: string;
  argLists: unknown[][];
  connections: number;
  inFlight: number;
  /** One rate per step; empty for a closed loop. */
  rates: number[];
  durationMs: number;
  maxCalls: number;
  warmupMs: number;
  timeoutMs: number;
  workers: number;
  json?: string;
  html?: string;
  svg?: string;
  allowRemote: boolean;
  live: boolean;
  settings?: string;
  /** Set in a worker process: its index and the number of workers. */
  worker?: { index: number; of: number };
}

export type Parsed = { help: true } | { help: false; compare: [string, string] } | { help: false; compare?: undefined; options: BenchOptions };

/** A file `tilth bench` reads is not what it should be. */
export class BenchFileError extends TilthError {
  constructor(file: string, problem: string) {
    super("ERR_BENCH_FILE", `${file}: ${problem}`, { context: { file } });
  }
}

const bad = (msg: string): UsageError => new UsageError(msg, "bench");

function int(v: unknown, name: string, min: number, max: number): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min || n > max) throw bad(`--${name} needs a whole number from ${min} to ${max}, not ${String(v)}`);
  return n;
}

/** A duration: `250ms`, `10s`, `2m`, or a bare number of seconds. */
export function parseDuration(v: string, name: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(v.trim());
  if (!m) throw bad(`--${name} needs a duration such as 500ms, 10s or 2m, not ${v}`);
  const ms = Number(m[1]) * (m[2] === "ms" ? 1 : m[2] === "m" ? 60_000 : 1000);
  if (ms > LIMITS.durationMs) throw bad(`--${name} is at most 24 h`);
  return ms;
}

/** `R` or `R1:R2:STEP` (R2 included when the steps land on it). */
export function parseRates(v: string): number[] {
  const parts = v.split(":");
  const num = (s: string): number => {
    const n = Number(s);
    if (!(n > 0 && n <= LIMITS.rate)) throw bad(`--rate needs calls per second above 0 and at most ${LIMITS.rate}, not ${s}`);
    return n;
  };
  if (parts.length === 1) return [num(parts[0]!)];
  if (parts.length !== 3) throw bad(`--rate is R or R1:R2:STEP, not ${v}`);
  const [a, b, step] = parts.map(num) as [number, number, number];
  if (b < a) throw bad(`--rate ${v}: the last rate is below the first`);
  const n = Math.floor((b - a) / step + 1e-9) + 1;
  if (n > LIMITS.rateSteps) throw bad(`--rate ${v} makes ${n} steps; at most ${LIMITS.rateSteps}`);
  return Array.from({ length: n }, (_, i) => Math.round((a + i * step) * 1000) / 1000);
}

/**
 * Bytes written as `tilth call` prints them: an object whose one key is
 * `$hex` or `$base64` becomes a Buffer, anywhere in a value.
 */
export function reviveBytes(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(reviveBytes);
  if (v === null || typeof v !== "object") return v;
  const keys = Object.keys(v);
  const o = v as Record<string, unknown>;
  if (keys.length === 1 && typeof o.$hex === "string") {
    if (!/^(?:[0-9a-f]{2})*$/i.test(o.$hex)) throw bad(`{"$hex": ...} needs an even number of hex digits`);
    return Buffer.from(o.$hex, "hex");
  }
  if (keys.length === 1 && typeof o.$base64 === "string") return Buffer.from(o.$base64, "base64");
  return Object.fromEntries(keys.map((k) => [k, reviveBytes(o[k])]));
}

/** A JSON file of at most `maxBytes` (its size checked before it is read), parsed by `parse`; BenchFileError when it is not. */
export function readJsonFile(file: string, maxBytes: number, parse: (text: string) => unknown = JSON.parse): unknown {
  let text: string;
  try {
    const size = statSync(file).size;
    if (size > maxBytes) throw new BenchFileError(file, `is larger than ${maxBytes} bytes`);
    text = readFileSync(file, "utf8");
  } catch (e) {
    if (e instanceof BenchFileError) throw e;
    throw new BenchFileError(file, `cannot be read (${(e as Error).message})`);
  }
  try {
    return parse(text);
  } catch (e) {
    throw new BenchFileError(file, `is not valid JSON (${(e as Error).message})`);
  }
}

/** Argument lists from a JSON file: an array of arrays, used in turn. Bounded in size. */
export function readArgLists(file: string): unknown[][] {
  const v = readJsonFile(file, LIMITS.argsFileBytes, parseJsonExact);
  if (!Array.isArray(v) || v.length === 0 || !v.every(Array.isArray)) throw new BenchFileError(file, "must hold a non-empty JSON array of argument lists, e.g. [[1, 2], [3, 4]]");
  if (v.length > LIMITS.argLists) throw new BenchFileError(file, `holds ${v.length} argument lists; at most ${LIMITS.argLists}`);
  return (v as unknown[][]).map((args) => args.map(reviveBytes));
}

export function parseBench(argv: string[]): Parsed {
  const p = parseCommand(BENCH, argv);
  if (p.help) return { help: true };
  const v = p.values;
  const pos = p.positionals;
  if (v.compare === true) {
    if (pos.length !== 2) throw bad("usage: tilth bench --compare A.json B.json");
    return { help: false, compare: [pos[0]!, pos[1]!] };
  }
  if (pos.length < 2) throw bad(`usage: tilth ${BENCH.usage[0]}`);
  const str = (k: string): string | undefined => (typeof v[k] === "string" ? (v[k] as string) : undefined);
  const rates = str("rate") === undefined ? [] : parseRates(str("rate")!);
  const connections = int(v.connections, "connections", 1, LIMITS.connections) ?? DEFAULTS.connections;
  const inFlight = int(v["in-flight"], "in-flight", 1, LIMITS.slots) ?? (rates.length ? DEFAULTS.openInFlight : DEFAULTS.inFlight);
  if (connections * inFlight > LIMITS.slots) throw bad(`--connections × --in-flight is at most ${LIMITS.slots}`);
  const workers = int(v.workers, "workers", 1, LIMITS.workers) ?? 1;
  if (workers > connections) throw bad(`--workers ${workers} needs at least as many --connections (each worker opens its own)`);
  if (str("args") !== undefined && pos.length > 2) throw bad("give arguments on the command line or with --args FILE, not both");
  const o: BenchOptions = {
    target: pos[0]!,
    method: pos[1]!,
    argLists: str("args") !== undefined ? readArgLists(str("args")!) : [pos.slice(2).map((a) => reviveBytes(parseArg(a, false)))],
    connections,
    inFlight,
    rates,
    durationMs: str("duration") !== undefined ? parseDuration(str("duration")!, "duration") : DEFAULTS.durationMs,
    maxCalls: int(v.calls, "calls", 1, LIMITS.calls) ?? DEFAULTS.calls,
    warmupMs: str("warmup") !== undefined ? parseDuration(str("warmup")!, "warmup") : DEFAULTS.warmupMs,
    timeoutMs: int(v.timeout, "timeout", 1, LIMITS.durationMs) ?? DEFAULTS.timeoutMs,
    workers,
    allowRemote: v["allow-remote"] === true,
    live: v.live === true,
  };
  if (o.durationMs <= 0) throw bad("--duration must be above 0");
  for (const k of ["json", "html", "svg", "settings"] as const) if (str(k) !== undefined) o[k] = str(k)!;
  const w = str("worker");
  if (w !== undefined) {
    const m = /^(\d+)\/(\d+)$/.exec(w);
    if (!m) throw bad("--worker is I/K");
    o.worker = { index: Number(m[1]), of: Number(m[2]) };
  }
  return { help: false, options: o };
}
