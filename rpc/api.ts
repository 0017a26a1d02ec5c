/**
 * What a server exposes of an API object, and how it describes it.
 *
 * Exposed: functions found on the object itself and on its class prototypes
 * (up to, not including, Object.prototype). Never exposed: `constructor`,
 * anything of Object.prototype, `__proto__`, symbol keys, accessors, and names
 * starting with `_` unless listed in `expose`.
 *
 * @example
 * ```ts
 * class PingAPI {
 *   ping = doc("Answers pong.", async () => "pong");
 *   async add(a: number, b: number) { return a + b; }
 *   async *count(n: number) { for (let i = 0; i < n; i++) yield i; }
 *   _secret() {}                                   // not exposed
 * }
 * ```
 * @module
 */

import { excerpt } from "../core/errors.js";
import { isContextual } from "./context.js";
import type { MethodStats } from "./stats.js";
import { validationOf, type MethodSchema, type Validation } from "./validate.js";

const DOC = Symbol.for("tilth.rpc.doc");
const STREAM = Symbol.for("tilth.rpc.stream");

/** Attach a doc string to a method (shown by introspection). Returns `fn`. */
export function doc<F extends (...args: any[]) => unknown>(text: string, fn: F): F {
  (fn as unknown as Record<symbol, unknown>)[DOC] = text;
  return fn;
}

/** Mark a plain function that returns an async iterable (or a generator) as a streaming method. */
export function streaming<F extends (...args: any[]) => AsyncIterable<unknown> | Generator<unknown>>(fn: F): F {
  (fn as unknown as Record<symbol, unknown>)[STREAM] = true;
  return fn;
}

/**
 * Declare a function's parameter names (and literal defaults) for
 * introspection, where its source does not show them: minified or
 * transpiled code, a bound or native function. Returns `fn`.
 *
 * @example
 * ```ts
 * const api = { join: params(["a", "b", "sep"], (a: string, b: string, sep = ", ") => a + sep + b) };
 * ```
 */
export function params<F extends (...args: any[]) => unknown>(names: readonly string[], fn: F, defaults: Readonly<Record<string, unknown>> = {}): F {
  (fn as unknown as Record<symbol, unknown>)[PARAMS] = { names: [...names], defaults: { ...defaults } };
  return fn;
}

const PARAMS = Symbol.for("tilth.rpc.params");

/** One exposed method, as introspection reports it. */
export interface MethodInfo {
  name: string;
  /**
   * Parameter names, in order (`argN` where the source has a destructuring
   * pattern). Empty when they are unknown: see `unknownParams`.
   */
  params: string[];
  /** Whether the last parameter is a rest parameter. */
  rest: boolean;
  /** Parameters without a default value (the least a caller must pass). */
  required: number;
  /** Default values that are literals (strings, numbers, booleans, null), by parameter name. */
  defaults?: Record<string, unknown>;
  /**
   * Set when the parameters could not be read reliably from the function's
   * source (a bound or native function, or a source that disagrees with the
   * function's arity): why. `params` is then empty, `required` is the
   * function's `length`, and any number of arguments is accepted.
   */
  unknownParams?: string;
  /** Whether results stream (async generator, or marked `streaming`). */
  stream: boolean;
  doc?: string;
  /** For a method declared with `validated`: the JSON Schema of each parameter and of the result. */
  schema?: MethodSchema;
}

export interface ExposedMethod extends MethodInfo {
  fn: (...args: unknown[]) => unknown;
  /** Called as fn(ctx, ...args). */
  contextual: boolean;
  /** Where the server records the method's calls (its `stats` option). */
  stats?: MethodStats | undefined;
  /** The argument check of a method declared with `validated`. */
  validate?: Validation;
}

export interface ExposeOptions {
  /** Names starting with `_` to expose anyway. */
  expose?: readonly string[];
  /** Doc strings by method name (in addition to `doc()`). */
  docs?: Readonly<Record<string, string>>;
}

const FORBIDDEN = new Set(["constructor", "__proto__", "__defineGetter__", "__defineSetter__", "__lookupGetter__", "__lookupSetter__"]);

/** The methods of `api` a server may call, by name, bound to `api`. */
export function exposedMethods(api: object, options: ExposeOptions = {}): Map<string, ExposedMethod> {
  const out = new Map<string, ExposedMethod>();
  const allowUnderscore = new Set(options.expose ?? []);
  for (let o: object | null = api; o !== null && o !== Object.prototype && o !== Function.prototype; o = Object.getPrototypeOf(o)) {
    for (const name of Object.getOwnPropertyNames(o)) {
      if (out.has(name) || FORBIDDEN.has(name) || name in Object.prototype) continue;
      if (name.startsWith("_") && !allowUnderscore.has(name)) continue;
      const d = Object.getOwnPropertyDescriptor(o, name)!;
      if (typeof d.value !== "function") continue; // accessors and data are not methods
      const fn = d.value as (...args: unknown[]) => unknown;
      const sig = parseParams(fn);
      const ctxual = isContextual(fn);
      if (ctxual) {
        const ctxName = sig.params.shift();
        if (ctxName !== undefined && sig.defaults) delete sig.defaults[ctxName];
        sig.required = Math.max(0, sig.required - 1);
      }
      const tagged = fn as unknown as Record<symbol, unknown>;
      const docText = (tagged[DOC] as string | undefined) ?? options.docs?.[name];
      const stream = fn.constructor?.name === "AsyncGeneratorFunction" || fn.constructor?.name === "GeneratorFunction" || tagged[STREAM] === true;
      const info: ExposedMethod = { name, ...sig, stream, fn: fn.bind(api), contextual: ctxual };
      if (docText !== undefined) info.doc = docText;
      const v = validationOf(fn);
      if (v !== undefined) {
        info.validate = v;
        info.schema = v.schema;
        info.required = Math.min(info.required, v.required);
        const check = v.result;
        if (check !== undefined && !stream) {
          const bound = info.fn;
          info.fn = (...args) => {
            const r = bound(...args);
            return r instanceof Promise ? r.then(check) : check(r);
          };
        }
      }
      out.set(name, info);
    }
  }
  return out;
}

/** The signature introspection reports for a function. */
export interface Signature {
  params: string[];
  rest: boolean;
  required: number;
  defaults?: Record<string, unknown>;
  unknownParams?: string;
}

/**
 * Parameter names from a function's source: plain names, defaults (their
 * value when it is a literal) and rest; a destructuring pattern is reported
 * as `argN`. Nothing is invented: when the source cannot be read reliably (a
 * bound or native function, a parameter list that does not match
 * `fn.length`), the answer says so in `unknownParams` and lists no names.
 * Names declared with {@link params} win over the source.
 */
export function parseParams(fn: Function): Signature {
  const declared = (fn as unknown as Record<symbol, { names: string[]; defaults: Record<string, unknown> } | undefined>)[PARAMS];
  if (declared) {
    const required = Math.min(fn.length, declared.names.length);
    return { params: declared.names, rest: false, required, ...(Object.keys(declared.defaults).length ? { defaults: declared.defaults } : {}) };
  }
  const unknown = (why: string): Signature => ({ params: [], rest: true, required: fn.length, unknownParams: why });
  const src = Function.prototype.toString.call(fn);
  if (/\{\s*\[native code\]\s*\}\s*$/.test(src)) return unknown("a bound or native function has no readable source");
  const list = paramList(src);
  if (list === undefined) return unknown("the function's source could not be parsed");
  const parts = splitTop(list);
  if (parts.length > 0 && parts[parts.length - 1]!.trim() === "") parts.pop(); // a trailing comma
  const names: string[] = [];
  const defaults: Record<string, unknown> = {};
  let rest = false;
  let required = 0;
  let seenDefault = false;
  for (const [idx, part] of parts.entries()) {
    let s = part.trim();
    if (s.startsWith("...")) {
      rest = true;
      s = s.slice(3).trim();
    }
    const eq = topLevelEquals(s);
    const target = (eq < 0 ? s : s.slice(0, eq)).trim();
    const name = /^[A-Za-z_$][\w$]*$/.test(target) ? target : `arg${idx}`;
    names.push(name);
    if (eq >= 0) {
      const value = literal(s.slice(eq + 1).trim());
      if (value.ok) defaults[name] = value.value;
    }
    if (eq >= 0 || rest) seenDefault = true;
    if (!seenDefault) required++;
  }
  // fn.length counts the parameters before the first default or rest one: a reading that disagrees is wrong.
  if (required !== fn.length) return unknown(`the source shows ${required} required parameter(s) but the function takes ${fn.length}`);
  return { params: names, rest, required, ...(Object.keys(defaults).length ? { defaults } : {}) };
}

/** Where a string, template or comment starting at `i` ends (the index after it), or `i` when none starts there. */
function skipQuoted(src: string, i: number): number {
  const c = src[i];
  if (c === '"' || c === "'" || c === "`") {
    for (let j = i + 1; j < src.length; j++) {
      if (src[j] === "\\") j++;
      else if (src[j] === c) return j + 1;
    }
    return src.length;
  }
  if (c === "/" && src[i + 1] === "/") {
    const nl = src.indexOf("\n", i);
    return nl < 0 ? src.length : nl;
  }
  if (c === "/" && src[i + 1] === "*") {
    const end = src.indexOf("*/", i + 2);
    return end < 0 ? src.length : end + 2;
  }
  return i;
}

/** The text of the parameter list of a function's source (comments removed), or undefined. */
function paramList(src: string): string | undefined {
  const arrow = /^(?:async\s*)?([A-Za-z_$][\w$]*)\s*=>/.exec(src);
  if (arrow) return arrow[1]!;
  let i = 0;
  // The first "(" that is not inside a string or comment (a method's quoted name, `async /* c */ (`).
  while (i < src.length && src[i] !== "(") {
    const j = skipQuoted(src, i);
    i = j > i ? j : i + 1;
  }
  if (i >= src.length) return undefined;
  let depth = 0;
  let out = "";
  for (let k = i; k < src.length; ) {
    const j = skipQuoted(src, k);
    if (j > k) {
      if (src[k] !== "/") out += src.slice(k, j); // strings stay, comments go
      k = j;
      continue;
    }
    const c = src[k]!;
    if (c === "(" || c === "[" || c === "{") depth++;
    else if (c === ")" || c === "]" || c === "}") {
      depth--;
      if (depth === 0) return out.slice(1);
    }
    out += c;
    k++;
  }
  return undefined;
}

/** Split at the commas outside brackets, strings and templates. */
function splitTop(s: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let cur = "";
  for (let i = 0; i < s.length; ) {
    const j = skipQuoted(s, i);
    if (j > i) {
      cur += s.slice(i, j);
      i = j;
      continue;
    }
    const c = s[i]!;
    if (c === "(" || c === "[" || c === "{") depth++;
    else if (c === ")" || c === "]" || c === "}") depth--;
    if (c === "," && depth === 0) {
      out.push(cur);
      cur = "";
    } else cur += c;
    i++;
  }
  out.push(cur);
  return out;
}

/** The index of a parameter's default `=` (outside brackets and strings, not `=>` or `==`), or -1. */
function topLevelEquals(s: string): number {
  let depth = 0;
  for (let i = 0; i < s.length; ) {
    const j = skipQuoted(s, i);
    if (j > i) {
      i = j;
      continue;
    }
    const c = s[i]!;
    if (c === "(" || c === "[" || c === "{") depth++;
    else if (c === ")" || c === "]" || c === "}") depth--;
    else if (c === "=" && depth === 0 && s[i + 1] !== ">" && s[i + 1] !== "=") return i;
    i++;
  }
  return -1;
}

/** The value of a literal default (a string, number, boolean or null), or not ok. */
function literal(text: string): { ok: true; value: unknown } | { ok: false } {
  if (text === "undefined") return { ok: false };
  if (/^'(?:[^'\\]|\\.)*'$/.test(text)) text = `"${text.slice(1, -1).replace(/\\'/g, "'").replace(/"/g, '\\"')}"`;
  if (/^`[^`$\\]*`$/.test(text)) text = JSON.stringify(text.slice(1, -1));
  try {
    const value: unknown = JSON.parse(text);
    return value === null || typeof value !== "object" ? { ok: true, value } : { ok: false };
  } catch {
    return { ok: false };
  }
}

/** Positional arguments from positional + named ones, by parameter name. */
export function bindArguments(m: MethodInfo, args: unknown[], kwargs: Record<string, unknown> | null): unknown[] | string {
  if (kwargs !== null) {
    if (m.unknownParams !== undefined && Object.keys(kwargs).length > 0)
      return `${m.name}()'s parameter names are unknown (${m.unknownParams}): pass its arguments by position`;
    const out = [...args];
    for (const [k, v] of Object.entries(kwargs)) {
      const i = m.params.indexOf(k);
      if (i < 0 || (m.rest && i === m.params.length - 1)) return `unknown named argument ${excerpt(k)} (parameters: ${m.params.join(", ") || "none"})`;
      if (i < args.length) return `argument ${excerpt(k)} given both by position and by name`;
      out[i] = v;
    }
    args = out;
  }
  if (args.length < m.required) return `${m.name}() takes at least ${m.required} argument(s) (${m.params.slice(0, m.required).join(", ")}), got ${args.length}`;
  if (!m.rest && args.length > m.params.length) return `${m.name}() takes at most ${m.params.length} argument(s), got ${args.length}`;
  return args;
}
