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

const DOC = Symbol.for("tilth.rpc.doc");
const STREAM = Symbol.for("tilth.rpc.stream");

/** Attach a doc string to a method (shown by introspection). Returns `fn`. */
export function doc<F extends (...args: any[]) => unknown>(text: string, fn: F): F {
  (fn as unknown as Record<symbol, unknown>)[DOC] = text;
  return fn;
}

/** Mark a plain function that returns an async iterable as a streaming method. */
export function streaming<F extends (...args: any[]) => AsyncIterable<unknown>>(fn: F): F {
  (fn as unknown as Record<symbol, unknown>)[STREAM] = true;
  return fn;
}

/** One exposed method, as introspection reports it. */
export interface MethodInfo {
  name: string;
  /** Parameter names, in order (`argN` where the source has a pattern). */
  params: string[];
  /** Whether the last parameter is a rest parameter. */
  rest: boolean;
  /** Parameters without a default value (the least a caller must pass). */
  required: number;
  /** Whether results stream (async generator, or marked `streaming`). */
  stream: boolean;
  doc?: string;
}

export interface ExposedMethod extends MethodInfo {
  fn: (...args: unknown[]) => unknown;
  /** Called as fn(ctx, ...args). */
  contextual: boolean;
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
        sig.params.shift();
        sig.required = Math.max(0, sig.required - 1);
      }
      const tagged = fn as unknown as Record<symbol, unknown>;
      const docText = (tagged[DOC] as string | undefined) ?? options.docs?.[name];
      const info: ExposedMethod = {
        name,
        ...sig,
        stream: fn.constructor?.name === "AsyncGeneratorFunction" || tagged[STREAM] === true,
        fn: fn.bind(api),
        contextual: ctxual,
      };
      if (docText !== undefined) info.doc = docText;
      out.set(name, info);
    }
  }
  return out;
}

/**
 * Parameter names from a function's source. Handles plain names, defaults and
 * rest; a destructuring pattern is reported as `argN`.
 */
export function parseParams(fn: Function): { params: string[]; rest: boolean; required: number } {
  const src = Function.prototype.toString.call(fn);
  let list = "";
  const arrow = /^(?:async\s*)?([A-Za-z_$][\w$]*)\s*=>/.exec(src);
  if (arrow) list = arrow[1]!;
  else {
    const open = src.indexOf("(");
    if (open < 0) return { params: [], rest: false, required: 0 };
    let depth = 0;
    let i = open;
    for (; i < src.length; i++) {
      const c = src[i];
      if (c === "(" || c === "[" || c === "{") depth++;
      else if (c === ")" || c === "]" || c === "}") {
        depth--;
        if (depth === 0) break;
      } else if (c === '"' || c === "'" || c === "`") {
        const q = c;
        for (i++; i < src.length && src[i] !== q; i++) if (src[i] === "\\") i++;
      }
    }
    list = src.slice(open + 1, i);
  }
  const parts = splitTop(list.replace(/\/\*[\s\S]*?\*\//g, "").replace(/\/\/[^\n]*/g, ""));
  const params: string[] = [];
  let rest = false;
  let required = 0;
  let seenDefault = false;
  parts.forEach((p, idx) => {
    let s = p.trim();
    if (!s) return;
    if (s.startsWith("...")) {
      rest = true;
      s = s.slice(3).trim();
    }
    const hasDefault = /^[^=]*=(?!>)/.test(s) && !s.startsWith("{") && !s.startsWith("[");
    const name = /^([A-Za-z_$][\w$]*)/.exec(s)?.[1] ?? `arg${idx}`;
    params.push(name);
    if (hasDefault || rest) seenDefault = true;
    if (!seenDefault) required++;
  });
  return { params, rest, required };
}

function splitTop(s: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let cur = "";
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!;
    if (c === "(" || c === "[" || c === "{") depth++;
    else if (c === ")" || c === "]" || c === "}") depth--;
    if (c === "," && depth === 0) {
      out.push(cur);
      cur = "";
    } else cur += c;
  }
  out.push(cur);
  return out;
}

/** Positional arguments from positional + named ones, by parameter name. */
export function bindArguments(m: MethodInfo, args: unknown[], kwargs: Record<string, unknown> | null): unknown[] | string {
  if (kwargs !== null) {
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
