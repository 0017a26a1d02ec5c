/**
 * `tilth call` and `tilth inspect`: the remote API from the shell.
 *
 *     tilth call URL|APP METHOD [ARG...] [--json] [--raw] [--timeout MS] [--settings FILE]
 *     tilth inspect URL|APP [--json] [--settings FILE]
 *
 * Arguments parse as JSON where they are valid JSON (integers beyond 2^53
 * exact, as BigInt), else they are strings (`--json` makes invalid JSON an
 * error). Results print as JSON: indented on a terminal, one line when
 * piped, bytes as hex or base64 (`--raw` writes them); a stream prints one
 * item per line, and Ctrl-C cancels it on the server. A remote error exits 1
 * with its name, code and message on stderr.
 * @module
 */
import { randomBytes } from "node:crypto";
import { NodeLoop } from "../adapters/node.js";
import { CancelledError, formatMs, isTilthError } from "../core/errors.js";
import { sleep } from "../core/time.js";
import { loadSettings } from "../app/Settings.js";
import { registerTransports } from "../transports/index.js";
import { RemoteError, RpcClient } from "../rpc/index.js";
import type { MethodInfo } from "../rpc/api.js";
import { EXIT, UsageError, helpText, parseCommand, type CommandSpec } from "./args.js";
import { CALL, INSPECT } from "./commands.js";
import { findSettings } from "./run.js";

interface CallArgs {
  target: string;
  method?: string;
  args: string[];
  json: boolean;
  raw: boolean;
  timeout?: number;
  settings?: string;
  help: boolean;
}

function parse(spec: CommandSpec, argv: string[], needMethod: boolean): CallArgs {
  const p = parseCommand(spec, argv);
  const v = p.values;
  const a: CallArgs = { target: "", args: [], json: v.json === true, raw: v.raw === true, help: p.help };
  if (v.timeout !== undefined) {
    const ms = Number(v.timeout);
    if (!(ms > 0)) throw new UsageError("--timeout needs a number of milliseconds", spec.name);
    a.timeout = ms;
  }
  if (typeof v.settings === "string") a.settings = v.settings;
  if (p.help) return a;
  const pos = p.positionals;
  if (pos.length < (needMethod ? 2 : 1)) throw new UsageError(`usage: tilth ${spec.usage[0]}`, spec.name);
  a.target = pos[0]!;
  if (needMethod) a.method = pos[1]!;
  a.args = pos.slice(needMethod ? 2 : 1);
  return a;
}

/** An RPC URL as given, or the remote URL of an app named in the settings. */
export async function resolveTarget(target: string, settingsFile: string | undefined): Promise<string> {
  if (/^[a-z][a-z0-9.+-]*:\/\//i.test(target)) return target;
  const settings = await loadSettings(findSettings(settingsFile));
  return settings.remoteUrl(target);
}

/** An argument: JSON where it is valid JSON (integers beyond 2^53 as exact BigInt), else the string itself (an error when `strict`). */
export function parseArg(s: string, strict: boolean): unknown {
  try {
    return parseJsonExact(s);
  } catch (e) {
    if (strict) throw new UsageError(`argument is not valid JSON: ${s} (${(e as Error).message})`, "call");
    return s;
  }
}

/** A nonce no string of a value can contain by chance (not timing or simulation state: no need for the loop's source). */
const nonce = (): string => randomBytes(8).toString("hex");

/** JSON.parse, except that integers a double cannot hold exactly become BigInt. */
export function parseJsonExact(text: string): unknown {
  const big: bigint[] = [];
  const mark = `@@tilth-bigint-${nonce()}-`;
  // Integer literals outside strings that are not safe integers: swapped for marker strings, revived as BigInt.
  const swapped = text.replace(/"(?:[^"\\]|\\.)*"|-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?/g, (tok) => {
    if (tok.startsWith('"') || !/^-?\d+$/.test(tok) || Number.isSafeInteger(Number(tok))) return tok;
    big.push(BigInt(tok));
    return `"${mark}${big.length - 1}"`;
  });
  if (big.length === 0) return JSON.parse(text);
  return JSON.parse(swapped, (_k, v: unknown) => (typeof v === "string" && v.startsWith(mark) ? big[Number(v.slice(mark.length))] : v));
}

/** Bytes up to this length are shown as hex, longer ones as base64. */
const HEX_UP_TO = 32;

/**
 * JSON with BigInt kept exact and bytes shown readably: `{"$hex": "..."}`
 * up to 32 bytes, `{"$base64": "..."}` beyond. `onBytes` is told when bytes
 * were shown that way.
 */
export function toJson(v: unknown, pretty: boolean, onBytes?: () => void): string {
  const big: string[] = [];
  const mark = `@@tilth-bigint-${nonce()}-`;
  const text = JSON.stringify(
    v,
    function (this: Record<string, unknown>, k: string, x: unknown) {
      const raw = this[k]; // before toJSON: a Buffer would otherwise arrive as {"type":"Buffer","data":[...]}
      if (typeof raw === "bigint") {
        big.push(raw.toString());
        return `${mark}${big.length - 1}`;
      }
      if (raw instanceof Uint8Array) {
        onBytes?.();
        const b = Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength);
        return b.length <= HEX_UP_TO ? { $hex: b.toString("hex") } : { $base64: b.toString("base64") };
      }
      return x;
    },
    pretty ? 2 : undefined,
  );
  if (big.length === 0) return text ?? "null";
  return text.replace(new RegExp(`"${mark}(\\d+)"`, "g"), (_m, i: string) => big[Number(i)]!);
}

/** What `tilth call` writes for one result or stream item. */
function output(v: unknown, a: CallArgs, pretty: boolean, noteBytes: () => void): string | Uint8Array {
  if (a.raw && v instanceof Uint8Array) return v;
  if (a.raw && typeof v === "string") return v;
  return `${toJson(v, pretty, noteBytes)}\n`;
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
  const a = parse(CALL, argv, true);
  if (a.help) {
    process.stdout.write(helpText(CALL));
    return EXIT.ok;
  }
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
    let noted = false;
    const noteBytes = (): void => {
      if (noted) return;
      noted = true;
      process.stderr.write(`note: bytes are shown as {"$hex": ...} up to ${HEX_UP_TO} bytes, else {"$base64": ...}; --raw writes them as they are\n`);
    };
    if (result !== null && typeof result === "object" && Symbol.asyncIterator in result && !Array.isArray(result)) {
      for await (const item of result as AsyncIterable<unknown>) process.stdout.write(output(item, a, false, noteBytes));
    } else process.stdout.write(output(result, a, pretty, noteBytes));
    return EXIT.ok;
  } catch (e) {
    if (ac.signal.aborted) {
      process.stderr.write("interrupted\n");
      return EXIT.interrupted;
    }
    return reportRemote(e);
  } finally {
    process.off("SIGINT", onInt);
    await client.close();
  }
}

export async function inspectCommand(argv: string[]): Promise<number> {
  const a = parse(INSPECT, argv, false);
  if (a.help) {
    process.stdout.write(helpText(INSPECT));
    return EXIT.ok;
  }
  const url = await resolveTarget(a.target, a.settings);
  const loop = registerTransports(new NodeLoop({ name: "inspect" }));
  const client = new RpcClient(url, { loop, ...(a.timeout ? { timeout: a.timeout } : {}) });
  try {
    const { methods } = await client.inspect();
    const instances = await listInstances(client, loop);
    if (a.json) {
      process.stdout.write(`${toJson({ url, methods, ...(instances ? { instances } : {}) }, process.stdout.isTTY === true)}\n`);
      return 0;
    }
    process.stdout.write(formatMethods(url, methods));
    if (instances) process.stdout.write(`\n${formatInstances(instances)}`);
    return 0;
  } catch (e) {
    return reportRemote(e);
  } finally {
    await client.close();
  }
}

/** One instance of a service, as `tilth inspect` lists it. */
export interface InstanceRow {
  id: string;
  host: string;
  pid: number | undefined;
  uptimeMs: number | undefined;
  /** Calls in flight on it (from every client), as it reports them. */
  callsInFlight: number | undefined;
}

/**
 * The instances of a service behind a group URL (drpc+nats://…/SERVICE), as
 * each announced itself when it answered discovery: id, host, pid, start
 * time and calls in flight (the debug API is off on NATS listeners, so this
 * is what there is); none for a URL of one endpoint.
 */
async function listInstances(client: RpcClient, loop: NodeLoop): Promise<InstanceRow[] | undefined> {
  if (client.endpoints().length === 0) return undefined;
  // The others answer discovery within moments of the first: give them a moment.
  await sleep(loop, 250);
  for (let i = 0; i < 20 && client.endpoints().some((e) => !e.ready && !e.leaving); i++) await sleep(loop, 25);
  return client.endpoints().map((e) => {
    const startedAt = typeof e.info.startedAt === "number" ? e.info.startedAt : undefined;
    return {
      id: e.id,
      host: typeof e.info.host === "string" ? e.info.host : "?",
      pid: typeof e.info.pid === "number" ? e.info.pid : undefined,
      uptimeMs: startedAt === undefined ? undefined : Math.max(0, Math.round(loop.wallTime() - startedAt)),
      callsInFlight: typeof e.info.callsInFlight === "number" ? e.info.callsInFlight : undefined,
    };
  });
}

/** A table: instance, host, pid, uptime, calls in flight. */
export function formatInstances(rows: readonly InstanceRow[]): string {
  const cells = rows.map((r) => [r.id, r.host, String(r.pid ?? "?"), r.uptimeMs === undefined ? "?" : formatMs(r.uptimeMs), String(r.callsInFlight ?? "?")]);
  const head = ["instance", "host", "pid", "uptime", "calls in flight"];
  const w = head.map((h, i) => Math.max(h.length, ...cells.map((r) => r[i]!.length)));
  const line = (r: string[]): string => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(w[i]!))).join("  ").trimEnd();
  return `${rows.length} instance${rows.length === 1 ? "" : "s"}\n\n${line(head)}\n${line(w.map((n) => "-".repeat(n)))}\n${cells.map(line).join("\n")}\n`;
}

/** A short type for a JSON Schema: `number`, `string[]`, `"a" | "b"`, `object`; `?` when it says nothing known. */
export function schemaType(s: unknown, depth = 0): string {
  if (typeof s !== "object" || s === null || depth > 4) return "?";
  const j = s as { type?: unknown; items?: unknown; enum?: unknown; const?: unknown; anyOf?: unknown; oneOf?: unknown };
  if (j.const !== undefined) return toJson(j.const, false);
  if (Array.isArray(j.enum)) return j.enum.map((v) => toJson(v, false)).join(" | ");
  const alts = Array.isArray(j.anyOf) ? j.anyOf : Array.isArray(j.oneOf) ? j.oneOf : undefined;
  if (alts) return alts.map((a) => schemaType(a, depth + 1)).join(" | ");
  if (j.type === "array") return j.items === undefined ? "array" : `${schemaType(j.items, depth + 1)}[]`;
  if (j.type === "integer") return "integer";
  if (typeof j.type === "string") return j.type;
  if (Array.isArray(j.type)) return j.type.join(" | ");
  return "?";
}

/** A table: method(signature), kind, doc. Validated methods show their parameters' and result's types. */
export function formatMethods(url: string, methods: readonly MethodInfo[]): string {
  const rows = methods.map((m) => {
    const params = m.params.map((p, i) => {
      const t = m.schema?.params[i] === undefined ? "" : `: ${schemaType(m.schema.params[i])}`;
      if (m.rest && i === m.params.length - 1) return `...${p}${t}`;
      if (m.defaults && p in m.defaults) return `${p}${t} = ${toJson(m.defaults[p], false)}`;
      return i >= m.required ? `${p}?${t}` : `${p}${t}`;
    });
    const result = m.schema?.result === undefined ? "" : ` -> ${schemaType(m.schema.result)}`;
    // Parameters the server could not read: said so, none made up.
    const signature = m.unknownParams !== undefined ? `${m.name}(?)${result}` : `${m.name}(${params.join(", ")})${result}`;
    const note = m.unknownParams !== undefined ? `(parameters unknown: ${m.unknownParams}; at least ${m.required} argument(s))` : "";
    return [signature, m.stream ? "stream" : "call", [m.doc, note].filter(Boolean).join(" ")];
  });
  const head = ["method", "kind", "doc"];
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (r: string[]): string => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(w[i]!))).join("  ").trimEnd();
  return `${url}\n\n${line(head)}\n${line(w.map((n) => "-".repeat(n)))}\n${rows.map(line).join("\n")}\n`;
}
