/**
 * Logging for apps: one line per record, prefixed and coloured per app, in
 * the shape
 *
 *     23:20:21.289 ping INFO tilth.app: binding to drpc+tcp://127.0.0.1:9990
 *
 * or one JSON object per line (`json: true`) for machines. Time comes from the
 * loop's wall clock, so logs in virtual time are deterministic.
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

export type Level = "debug" | "info" | "warn" | "error";
const RANK: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40 };

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

export class Logger {
  readonly app: string;
  readonly name: string;
  readonly level: Level;
  readonly #o: LoggerOptions;

  constructor(options: LoggerOptions) {
    this.#o = options;
    this.app = options.app;
    this.name = options.name ?? "tilth";
    this.level = options.level ?? "info";
  }

  /** A logger with another name, same app and output. */
  child(name: string): Logger {
    return new Logger({ ...this.#o, name });
  }

  debug(msg: string, ...args: unknown[]): void {
    this.log("debug", msg, args);
  }
  info(msg: string, ...args: unknown[]): void {
    this.log("info", msg, args);
  }
  warn(msg: string, ...args: unknown[]): void {
    this.log("warn", msg, args);
  }
  error(msg: string, ...args: unknown[]): void {
    this.log("error", msg, args);
  }

  log(level: Level, msg: string, args: unknown[] = []): void {
    if (RANK[level] < RANK[this.level]) return;
    const o = this.#o;
    const text = args.length ? `${msg} ${args.map((a) => (typeof a === "string" ? a : inspect(a, { depth: 4, breakLength: Infinity }))).join(" ")}` : msg;
    const time = o.loop.wallTime();
    let line: string;
    if (o.json) {
      line = JSON.stringify({ time: new Date(time).toISOString(), app: this.app, level, logger: this.name, msg: text });
    } else {
      const color = o.color ?? colorEnabled(process.stdout);
      const app = color ? `\x1b[${colorOf(this.app)}m${this.app}\x1b[0m` : this.app;
      line = `${clockText(time)} ${app} ${level.toUpperCase()} ${this.name}: ${text}`;
    }
    if (o.write) o.write(line, level);
    else (RANK[level] >= RANK.warn ? process.stderr : process.stdout).write(line + "\n");
  }
}
