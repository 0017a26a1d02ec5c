/**
 * `tilth shell URL|APP... [--settings FILE] [--history FILE] [--log FILE]`:
 * a Node REPL with a connected client per app, bound to its name (a URL binds
 * as `api`, `api2`, ...), top-level await, tab completion of remote method
 * names (from introspection), history in a file, and `settings` in scope.
 * `--log FILE` appends every call and its answer as a JSON line.
 *
 *     ping> await ping.ping()
 *     'pong'
 * @module
 */
import { appendFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import repl, { type REPLServer } from "node:repl";
import { createInterface } from "node:readline";
import { PassThrough, Writable, type Readable } from "node:stream";
import { NodeLoop } from "../adapters/node.js";
import { loadSettings, type Settings } from "../app/Settings.js";
import { registerTransports } from "../transports/index.js";
import { RpcClient, withOptions, type Middleware } from "../rpc/index.js";
import type { MethodInfo } from "../rpc/api.js";
import { toJson } from "./call.js";
import { EXIT, UsageError, helpText, parseCommand } from "./args.js";
import { SHELL } from "./commands.js";
import { findSettings } from "./run.js";

const PROMPT = "tilth> ";

export interface ShellOptions {
  targets: string[];
  settingsFile?: string;
  historyFile?: string;
  logFile?: string;
  input: Readable;
  output: Writable;
  terminal: boolean;
}

export interface Shell {
  readonly repl: REPLServer;
  /** Names bound in scope, by target. */
  readonly bindings: Record<string, string>;
  close(): Promise<void>;
}

/** A plain object with one function per remote method, so the REPL completes method names. */
function remoteObject(client: RpcClient, methods: readonly MethodInfo[]): Record<string, unknown> {
  const o: Record<string, unknown> = {};
  for (const m of methods) {
    const f = (...args: unknown[]): unknown => client.call(m.name, args);
    Object.defineProperty(f, "name", { value: m.name });
    o[m.name] = f;
  }
  Object.defineProperty(o, "$client", { value: client, enumerable: false });
  Object.defineProperty(o, "$methods", { value: methods, enumerable: false });
  Object.defineProperty(o, "$call", { value: (method: string, ...args: unknown[]) => client.call(method, args), enumerable: false });
  return o;
}

export async function startShell(o: ShellOptions): Promise<Shell> {
  const loop = registerTransports(new NodeLoop({ name: "shell" }));
  let settings: Settings | undefined;
  const needSettings = o.targets.some((t) => !/^[a-z][a-z0-9.+-]*:\/\//i.test(t));
  if (needSettings || o.settingsFile) settings = await loadSettings(findSettings(o.settingsFile));
  const log: Middleware | undefined = o.logFile
    ? {
        before: (c) => appendFileSync(o.logFile!, `${toJson({ time: new Date(loop.wallTime()).toISOString(), dir: "call", peer: c.peer, id: c.id, method: c.method, args: c.args }, false)}\n`),
        after: (c, r) => appendFileSync(o.logFile!, `${toJson({ time: new Date(loop.wallTime()).toISOString(), dir: "result", id: c.id, method: c.method, result: r }, false)}\n`),
        error: (c, e) =>
          appendFileSync(o.logFile!, `${toJson({ time: new Date(loop.wallTime()).toISOString(), dir: "error", id: c.id, method: c.method, error: { code: (e as { code?: string }).code, message: (e as Error).message } }, false)}\n`),
      }
    : undefined;
  const clients: RpcClient[] = [];
  const scope: Record<string, unknown> = { loop, settings, withOptions };
  const bindings: Record<string, string> = {};
  let n = 0;
  for (const t of o.targets) {
    const isUrl = /^[a-z][a-z0-9.+-]*:\/\//i.test(t);
    const url = isUrl ? t : settings!.remoteUrl(t);
    const name = isUrl ? (n++ === 0 ? "api" : `api${n}`) : t.replace(/[^\w$]/g, "_");
    const client = new RpcClient(url, { loop, ...(log ? { middleware: [log] } : {}) });
    clients.push(client);
    let methods: MethodInfo[] = [];
    try {
      methods = (await client.inspect()).methods;
    } catch (e) {
      o.output.write(`(${name}: no introspection from ${url}: ${(e as Error).message}; use ${name}.$call(method, ...args))\n`);
    }
    scope[name] = remoteObject(client, methods);
    bindings[t] = name;
  }
  o.output.write(`tilth shell: ${Object.entries(bindings).map(([t, v]) => `${v} = ${t}`).join(", ")}\n`);
  const r = repl.start({ prompt: PROMPT, input: o.input, output: o.output, terminal: o.terminal, useGlobal: false, ignoreUndefined: true });
  Object.assign(r.context, scope);
  const history = o.historyFile ?? process.env.TILTH_HISTORY ?? join(homedir(), ".tilth_history");
  if (o.terminal) await new Promise<void>((resolve) => r.setupHistory(history, () => resolve()));
  let closed: Promise<void> | undefined;
  const close = (): Promise<void> => (closed ??= Promise.all(clients.map((c) => c.close())).then(() => undefined));
  r.on("exit", () => void close());
  return { repl: r, bindings, close };
}

export async function shellCommand(argv: string[]): Promise<number> {
  const p = parseCommand(SHELL, argv);
  if (p.help) {
    process.stdout.write(helpText(SHELL));
    return EXIT.ok;
  }
  const targets = p.positionals;
  const o: Partial<ShellOptions> = {};
  if (typeof p.values.settings === "string") o.settingsFile = p.values.settings;
  if (typeof p.values.history === "string") o.historyFile = p.values.history;
  if (typeof p.values.log === "string") o.logFile = p.values.log;
  if (targets.length === 0) throw new UsageError(`usage: tilth ${SHELL.usage[0]}`, "shell");
  if (process.stdin.isTTY === true) {
    const shell = await startShell({ ...o, targets, input: process.stdin, output: process.stdout, terminal: true });
    await new Promise<void>((resolve) => shell.repl.on("exit", () => resolve()));
    await shell.close();
    return 0;
  }
  // Piped input: the REPL gets one line at a time, the next only once it has
  // shown its prompt again (a REPL reading a pipe would start every line at
  // once, before the awaits of the ones above have settled).
  let failed = false;
  let waiting: (() => void) | undefined;
  const output = new Writable({
    write(chunk: Buffer, _enc, cb) {
      const text = String(chunk);
      if (text.includes("Uncaught")) failed = true;
      process.stdout.write(text, () => cb());
      if (text.endsWith(PROMPT) && waiting) {
        const w = waiting;
        waiting = undefined;
        w();
      }
    },
  });
  const input = new PassThrough();
  const ready = (): Promise<void> => new Promise((resolve) => (waiting = resolve));
  const first = ready();
  const shell = await startShell({ ...o, targets, input, output, terminal: false });
  await first;
  const lines = createInterface({ input: process.stdin, crlfDelay: Infinity });
  for await (const line of lines) {
    if (!line.trim()) continue;
    const next = ready();
    input.write(`${line}\n`);
    await next;
  }
  process.stdout.write("\n");
  shell.repl.close();
  await shell.close();
  return failed ? 1 : 0;
}
