/**
 * Command lines: each command declares its options once, and from that
 * declaration come the parsing (node:util parseArgs), `--help` and
 * `tilth help CMD`, and the suggestions for a mistyped option or command.
 * Exit codes are in {@link EXIT} and docs/operators.md.
 * @module
 */
import { readFileSync } from "node:fs";
import { parseArgs, styleText } from "node:util";
import { colorEnabled } from "../app/Logger.js";
import { suggest } from "../core/suggest.js";

export { editDistance, suggest } from "../core/suggest.js";

/**
 * The exit codes of `tilth`, as docs/operators.md lists them. Scripts rely
 * on them: keep them.
 */
export const EXIT = {
  ok: 0,
  /** A runtime failure: a remote error, an app that failed, a stop that had to give up. */
  failed: 1,
  /** A usage or settings mistake: the command line or the settings file is wrong. */
  usage: 2,
  /** `tilth run --status`: an app is not running. */
  notRunning: 3,
  /** Interrupted (Ctrl-C, SIGINT) before the command finished. */
  interrupted: 130,
} as const;

/** A mistake on the command line (exit 2). */
export class UsageError extends Error {
  /** The command whose usage to point at. */
  readonly command: string | undefined;
  constructor(message: string, command?: string) {
    super(message);
    this.command = command;
  }
}

export interface OptionSpec {
  type: "string" | "boolean";
  short?: string;
  multiple?: boolean;
  /** The value's name in the help, e.g. FILE. */
  value?: string;
  help: string;
  /** Not listed in the help (used between the runner and its children). */
  hidden?: boolean;
}

export interface CommandSpec {
  name: string;
  /** One line, for `tilth help`. */
  summary: string;
  /** The usage lines, without the leading "tilth ". */
  usage: string[];
  /** Paragraphs after the usage. */
  description?: string;
  options: Record<string, OptionSpec>;
  /** Example command lines with a comment each: [command, what it does]. */
  examples: Array<[string, string]>;
  /**
   * An option that is not declared, `--name` or `--name=value`: true when the
   * command takes it as it is (tilth run's `--APP.OPTION=VALUE`).
   */
  acceptsOption?: (raw: string) => boolean;
  /**
   * After this many positionals, unknown options are arguments (tilth call's
   * `-1` or `--flag` passed to a remote method).
   */
  positionalsBeforeArgs?: number;
}

export interface Parsed {
  values: Record<string, string | boolean | string[] | undefined>;
  positionals: string[];
  /** Undeclared options the command accepted (`acceptsOption`), as written. */
  extra: string[];
  help: boolean;
}

const HELP: OptionSpec = { type: "boolean", short: "h", help: "show this help" };

/** " (did you mean X?)" or "". */
export function didYouMean(word: string, candidates: readonly string[], show: (c: string) => string = (c) => c): string {
  const s = suggest(word, candidates);
  return s === undefined ? "" : ` (did you mean ${show(s)}?)`;
}

/** Parse `argv` (after the command name) by `spec`. Throws UsageError for an unknown option, naming the closest known one. */
export function parseCommand(spec: CommandSpec, argv: string[]): Parsed {
  const options: Record<string, OptionSpec> = { ...spec.options, help: HELP };
  const { tokens } = parseArgs({ args: argv, options, strict: false, allowPositionals: true, tokens: true });
  const values: Parsed["values"] = {};
  const positionals: string[] = [];
  const extra: string[] = [];
  const asArgument = new Set<number>(); // argv indexes taken as arguments, once each (a group "-1.5" is several tokens)
  for (const t of tokens) {
    if (t.kind === "option-terminator") continue; // what follows comes as positionals
    if (t.kind === "positional") {
      positionals.push(t.value);
      continue;
    }
    const known = options[t.name];
    const names = Object.keys(options).map((n) => `--${n}`);
    if (spec.positionalsBeforeArgs !== undefined && positionals.length >= spec.positionalsBeforeArgs && !known) {
      // An argument, unless it reads as a typo of an option.
      const typo = t.rawName.startsWith("--") ? suggest(t.rawName, names) : undefined;
      if (typo !== undefined && !asArgument.has(t.index))
        throw new UsageError(`unknown option ${t.rawName} for "tilth ${spec.name}" (did you mean ${typo}? after --, it is passed as an argument)`, spec.name);
      if (!asArgument.has(t.index)) positionals.push(argv[t.index]!);
      asArgument.add(t.index);
      continue;
    }
    if (!known) {
      const raw = argv[t.index]!;
      if (spec.acceptsOption?.(raw)) {
        extra.push(raw);
        continue;
      }
      throw new UsageError(`unknown option ${t.rawName} for "tilth ${spec.name}"${didYouMean(t.rawName, names)}`, spec.name);
    }
    if (known.type === "string" && t.value === undefined) throw new UsageError(`${t.rawName} needs a value${known.value ? ` (${known.value})` : ""}`, spec.name);
    if (known.type === "boolean" && t.inlineValue) throw new UsageError(`${t.rawName} takes no value`, spec.name);
    const v = known.type === "boolean" ? true : t.value!;
    if (known.multiple) ((values[t.name] ??= []) as string[]).push(v as string);
    else values[t.name] = v;
  }
  return { values, positionals, extra, help: values.help === true };
}

/** Styling for one stream: bold and colours through styleText when the stream shows them (NO_COLOR, FORCE_COLOR, a terminal). */
export function styler(stream: NodeJS.WriteStream): (format: Parameters<typeof styleText>[0], text: string) => string {
  const on = colorEnabled(stream);
  return (format, text) => (on ? styleText(format, text) : text);
}

/** The help of one command: usage, description, options, examples. */
export function helpText(spec: CommandSpec, style = styler(process.stdout)): string {
  const lines: string[] = [];
  lines.push(`${style("bold", "usage:")}`);
  for (const u of spec.usage) lines.push(`  tilth ${u}`);
  lines.push("", spec.summary);
  if (spec.description) lines.push("", spec.description);
  const opts = Object.entries({ ...spec.options, help: HELP }).filter(([, o]) => !o.hidden);
  const left = opts.map(([n, o]) => `${o.short ? `-${o.short}, ` : "    "}--${n}${o.value ? ` ${o.value}` : ""}`);
  const w = Math.max(...left.map((l) => l.length));
  lines.push("", style("bold", "options:"));
  opts.forEach(([, o], i) => lines.push(`  ${left[i]!.padEnd(w)}  ${o.help}`));
  lines.push("", style("bold", "examples:"));
  for (const [cmd, what] of spec.examples) lines.push(`  ${style("cyan", `tilth ${cmd}`)}`, `      ${what}`);
  return `${lines.join("\n")}\n`;
}

/** tilth's version, from its package.json. */
export function version(): string {
  const pkg = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version: string };
  return pkg.version;
}
