/**
 * Logging for apps: one line per record, prefixed and coloured per app, in
 * the shape
 *
 *     23:20:21.289 ping INFO tilth.app: binding to drpc+tcp://127.0.0.1:9990
 *
 * or one JSON object per line (`json: true`) for machines, shaped like pino's:
 * `{"level":30,"time":1733526021289,"app":"ping","name":"tilth.app","msg":"..."}`
 * (level numbers as pino's: trace 10 ... fatal 60; a child's bindings as
 * keys; during a traced call, `trace_id` and `span_id`). Time comes from the
 * loop's wall clock, so logs in virtual time are deterministic. An app may
 * hand its own pino instance (or anything of the {@link LoggerLike} shape)
 * as `sink`: every record goes to it instead. See docs/tracing.md.
 *
 * @example
 * ```ts
 * const log = new Logger({ app: "ping", loop });
 * log.child("tilth.app").info("binding to", url);
 * ```
 * @module
 */
import { inspect } from "node:util";
import type { Loop } from "../core/Loop.js";
import { traceIds } from "../rpc/tracing.js";

export type Level = "trace" | "debug" | "info" | "warn" | "error" | "fatal";
/** Level numbers, as pino's. */
export const LEVELS: Record<Level, number> = { trace: 10, debug: 20, info: 30, warn: 40, error: 50, fatal: 60 };
const RANK = LEVELS;

type LogFn = { (msg: string, ...args: unknown[]): void; (obj: object, msg?: string, ...args: unknown[]): void };

/**
 * What a logger must do to take tilth's records: a pino instance has this
 * shape (levels `trace` to `fatal`, each taking an object of fields and a
 * message; `child(bindings)`).
 */
export interface LoggerLike {
  trace: LogFn;
  debug: LogFn;
  info: LogFn;
  warn: LogFn;
  error: LogFn;
  fatal: LogFn;
  child(bindings: Record<string, unknown>): LoggerLike;
}

export interface LogRecord {
  time: number;
  app: string;
  level: Level;
  logger: string;
  msg: string;
  fields?: Record<string, unknown>;
}

export interface LoggerOptions {
  /** App name shown on every line. */
  app: string;
  loop: Loop;
  /** Logger name (dotted). Default `tilth`. */
  name?: string;
  /** Lowest level written. Default `info`. */
  level?: Level;
  /** JSON lines instead of text. */
  json?: boolean;
  /** Colour the app prefix (default: {@link colorEnabled} for stdout: a terminal, unless NO_COLOR; FORCE_COLOR forces). */
  color?: boolean;
  /** Where lines go. Default: process.stderr for warn/error, process.stdout otherwise. */
  write?: (line: string, level: Level) => void;
  /** A logger of the app's own (a pino instance): every record goes to it, with the bindings, instead of a line written here. */
  sink?: LoggerLike;
  /** @internal bindings of a child */
  bindings?: Record<string, unknown>;
}

const COLORS = [36, 32, 33, 35, 34, 96, 92, 93, 95, 94];

/**
 * Whether to write colours to `stream`: FORCE_COLOR (other than "0" or
 * "false") says yes, NO_COLOR (non-empty) says no, else only a terminal that
 * shows colours gets them.
 */
export function colorEnabled(stream: { isTTY?: boolean; hasColors?: () => boolean }, env: NodeJS.ProcessEnv = process.env): boolean {
  const force = env.FORCE_COLOR;
  if (force !== undefined && force !== "0" && force !== "false") return true;
  if (env.NO_COLOR !== undefined && env.NO_COLOR !== "") return false;
  if (force !== undefined) return false;
  return stream.isTTY === true && (stream.hasColors?.() ?? true);
}

/** A stable colour per app name. */
export function colorOf(app: string): number {
  let h = 0;
  for (let i = 0; i < app.length; i++) h = (h * 31 + app.charCodeAt(i)) >>> 0;
  return COLORS[h % COLORS.length]!;
}

function pad(n: number, w = 2): string {
  return String(n).padStart(w, "0");
}

/** Format a wall-clock time as local HH:MM:SS.mmm. */
export function clockText(ms: number): string {
  const d = new Date(ms);
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}

export class Logger implements LoggerLike {
  readonly app: string;
  readonly name: string;
  readonly level: Level;
  readonly #o: LoggerOptions;
  /** The sink's child for this logger's name and bindings. */
  #sink: LoggerLike | undefined;

  constructor(options: LoggerOptions) {
    this.#o = options;
    this.app = options.app;
    this.name = options.name ?? "tilth";
    this.level = options.level ?? "info";
  }

  /** A logger with another name (a string), or with more bindings (fields on every record, as pino's `child`); same app and output. */
  child(nameOrBindings: string | Record<string, unknown>): Logger {
    if (typeof nameOrBindings === "string") return new Logger({ ...this.#o, name: nameOrBindings });
    return new Logger({ ...this.#o, bindings: { ...this.#o.bindings, ...nameOrBindings } });
  }

  trace(msg: string | object, ...args: unknown[]): void {
    this.#at("trace", msg, args);
  }
  fatal(msg: string | object, ...args: unknown[]): void {
    this.#at("fatal", msg, args);
  }

  /** pino's form `(fields, msg, ...args)` or tilth's `(msg, ...args)`. */
  #at(level: Level, msg: string | object, args: unknown[]): void {
    if (typeof msg === "string") this.log(level, msg, args);
    else this.log(level, typeof args[0] === "string" ? args[0] : "", args.slice(1), msg as Record<string, unknown>);
  }

  debug(msg: string | object, ...args: unknown[]): void {
    this.#at("debug", msg, args);
  }
  info(msg: string | object, ...args: unknown[]): void {
    this.#at("info", msg, args);
  }
  warn(msg: string | object, ...args: unknown[]): void {
    this.#at("warn", msg, args);
  }
  error(msg: string | object, ...args: unknown[]): void {
    this.#at("error", msg, args);
  }

  log(level: Level, msg: string, args: unknown[] = [], fields?: Record<string, unknown>): void {
    if (RANK[level] < RANK[this.level]) return;
    const o = this.#o;
    const text = args.length ? `${msg} ${args.map((a) => (typeof a === "string" ? a : inspect(a, { depth: 4, breakLength: Infinity }))).join(" ")}` : msg;
    // During a traced call (tracing() with an active span): its ids, as OpenTelemetry's log fields.
    const ids = traceIds();
    if (o.sink !== undefined) {
      const sink = (this.#sink ??= o.sink.child({ app: this.app, name: this.name, ...o.bindings }));
      const rec = ids === undefined ? fields : { ...fields, trace_id: ids.traceId, span_id: ids.spanId };
      if (rec === undefined) sink[level](text);
      else sink[level](rec, text);
      return;
    }
    const time = o.loop.wallTime();
    let line: string;
    if (o.json) {
      const rec: Record<string, unknown> = { level: LEVELS[level], time, app: this.app, name: this.name, ...o.bindings, ...fields };
      if (ids !== undefined) {
        rec.trace_id = ids.traceId;
        rec.span_id = ids.spanId;
      }
      rec.msg = text;
      line = JSON.stringify(rec);
    } else {
      const color = o.color ?? colorEnabled(process.stdout);
      const app = color ? `\x1b[${colorOf(this.app)}m${this.app}\x1b[0m` : this.app;
      const extra = { ...o.bindings, ...fields };
      const more = Object.keys(extra).length > 0 ? ` ${inspect(extra, { depth: 4, breakLength: Infinity })}` : "";
      const trace = ids === undefined ? "" : ` trace_id=${ids.traceId} span_id=${ids.spanId}`;
      line = `${clockText(time)} ${app} ${level.toUpperCase()} ${this.name}: ${text}${more}${trace}`;
    }
    if (o.write) o.write(line, level);
    else (RANK[level] >= RANK.warn ? process.stderr : process.stdout).write(line + "\n");
  }
}
