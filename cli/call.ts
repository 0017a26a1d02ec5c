/**
 * `tilth call` and `tilth inspect`: the remote API from the shell.
 *
 *     tilth call URL|APP METHOD [ARG...] [--json] [--timeout MS] [--settings FILE]
 *     tilth inspect URL|APP [--json] [--settings FILE]
 *
 * Arguments parse as JSON where they are valid JSON, else they are strings
 * (`--json` makes invalid JSON an error). Results print as JSON: indented on a
 * terminal, one line when piped; a stream prints one item per line, and
 * Ctrl-C cancels it on the server. A remote error exits 1 with its name, code
 * and message on stderr.
 * @module
 */
import { randomBytes } from "node:crypto";
import { NodeLoop } from "../adapters/node.js";
import { CancelledError, isTilthError } from "../core/errors.js";
import { loadSettings } from "../app/Settings.js";
import { registerTransports } from "../transports/index.js";
import { RemoteError, RpcClient } from "../rpc/index.js";
import type { MethodInfo } from "../rpc/api.js";
import { UsageError, findSettings } from "./run.js";

interface CallArgs {
  target: string;
  method?: string;
  args: string[];
  json: boolean;
  timeout?: number;
  settings?: string;
}

function parse(argv: string[], needMethod: boolean): CallArgs {
  const pos: string[] = [];
  const a: CallArgs = { target: "", args: [], json: false };
  for (let i = 0; i < argv.length; i++) {
    const x = argv[i]!;
    if (x === "--json") a.json = true;
    else if (x === "--timeout") {
      const v = Number(argv[++i]);
      if (!(v > 0)) throw new UsageError("--timeout needs a number of milliseconds");
      a.timeout = v;
    } else if (x === "--settings" || x === "-s") a.settings = argv[++i];
    else if (x === "--") pos.push(...argv.slice(i + 1)), (i = argv.length);
    else if (x.startsWith("--") && pos.length < (needMethod ? 2 : 1)) throw new UsageError(`unknown option ${x}`);
    else pos.push(x);
  }
  if (pos.length < (needMethod ? 2 : 1)) throw new UsageError(needMethod ? "usage: tilth call URL|APP METHOD [ARG...]" : "usage: tilth inspect URL|APP");
  a.target = pos[0]!;
  if (needMethod) a.method = pos[1]!;
  a.args = pos.slice(needMethod ? 2 : 1);
  return a;
}

/** An RPC URL as given, or the remote URL of an app named in the settings. */
async function resolveTarget(target: string, settingsFile: string | undefined): Promise<string> {
  if (/^[a-z][a-z0-9.+-]*:\/\//i.test(target)) return target;
  const settings = await loadSettings(findSettings(settingsFile));
  return settings.remoteUrl(target);
}

export function parseArg(s: string, strict: boolean): unknown {
  try {
    return JSON.parse(s);
  } catch (e) {
    if (strict) throw new UsageError(`argument is not valid JSON: ${s} (${(e as Error).message})`);
    return s;
  }
}

/** JSON with BigInt kept exact and bytes shown as base64. */
export function toJson(v: unknown, pretty: boolean): string {
  const big: string[] = [];
  // A nonce no string in the value can contain by chance (not timing or simulation state: no need for the loop's source).
  const mark = `@@tilth-bigint-${randomBytes(8).toString("hex")}-`;
  const text = JSON.stringify(
    v,
    (_k, x: unknown) => {
      if (typeof x === "bigint") {
        big.push(x.toString());
        return `${mark}${big.length - 1}`;
      }
      if (x instanceof Uint8Array) return { $bytes: Buffer.from(x).toString("base64") };
      return x;
    },
    pretty ? 2 : undefined,
  );
  if (big.length === 0) return text ?? "null";
  return text.replace(new RegExp(`"${mark}(\\d+)"`, "g"), (_m, i: string) => big[Number(i)]!);
}

function reportRemote(e: unknown): number {
  if (e instanceof RemoteError) {
    process.stderr.write(`${e.remoteName} [${e.code}]: ${e.message}\n`);
    return 1;
  }
  if (isTilthError(e)) {
    process.stderr.write(`${e.name} [${e.code}]: ${e.message}\n`);
    return 1;
  }
  throw e;
}

export async function callCommand(argv: string[]): Promise<number> {
  const a = parse(argv, true);
  const url = await resolveTarget(a.target, a.settings);
  const loop = registerTransports(new NodeLoop({ name: "call" }));
  const client = new RpcClient(url, { loop, ...(a.timeout ? { timeout: a.timeout } : {}) });
  const pretty = process.stdout.isTTY === true;
  const ac = new AbortController();
  const onInt = (): void => ac.abort(new CancelledError("interrupted (SIGINT)"));
  process.once("SIGINT", onInt);
  try {
    const call = client.call(a.method!, a.args.map((x) => parseArg(x, a.json)), { signal: ac.signal, ...(a.timeout ? { timeout: a.timeout } : {}) });
    const result: unknown = await call;
    if (result !== null && typeof result === "object" && Symbol.asyncIterator in result && !Array.isArray(result)) {
      for await (const item of result as AsyncIterable<unknown>) process.stdout.write(`${toJson(item, false)}\n`);
    } else process.stdout.write(`${toJson(result, pretty)}\n`);
    return 0;
  } catch (e) {
    if (ac.signal.aborted) {
      process.stderr.write("interrupted\n");
      return 130;
    }
    return reportRemote(e);
  } finally {
    process.off("SIGINT", onInt);
    await client.close();
  }
}

export async function inspectCommand(argv: string[]): Promise<number> {
  const a = parse(argv, false);
  const url = await resolveTarget(a.target, a.settings);
  const loop = registerTransports(new NodeLoop({ name: "inspect" }));
  const client = new RpcClient(url, { loop, ...(a.timeout ? { timeout: a.timeout } : {}) });
  try {
    const { methods } = await client.inspect();
    if (a.json) {
      process.stdout.write(`${toJson({ url, methods }, process.stdout.isTTY === true)}\n`);
      return 0;
    }
    process.stdout.write(formatMethods(url, methods));
    return 0;
  } catch (e) {
    return reportRemote(e);
  } finally {
    await client.close();
  }
}

/** A table: method(signature), kind, doc. */
export function formatMethods(url: string, methods: readonly MethodInfo[]): string {
  const rows = methods.map((m) => {
    const params = m.params.map((p, i) => (i >= m.required && !(m.rest && i === m.params.length - 1) ? `${p}?` : m.rest && i === m.params.length - 1 ? `...${p}` : p));
    return [`${m.name}(${params.join(", ")})`, m.stream ? "stream" : "call", m.doc ?? ""];
  });
  const head = ["method", "kind", "doc"];
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (r: string[]): string => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(w[i]!))).join("  ").trimEnd();
  return `${url}\n\n${line(head)}\n${line(w.map((n) => "-".repeat(n)))}\n${rows.map(line).join("\n")}\n`;
}
