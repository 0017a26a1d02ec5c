/**
 * The settings file: apps defined by name, each with its class, bind URL(s),
 * remote URL and options. See docs/settings.md.
 *
 * ```json
 * {
 *   "apps": {
 *     "ping": { "class": "./apps.js#PingApp", "bind": "drpc+tcp://127.0.0.1:9990" },
 *     "long_running": { "class": "./apps.js#LongRunningApp", "uses": ["ping"], "options": { "interval": 1000 } }
 *   }
 * }
 * ```
 *
 * Files may be `.json`, `.js`/`.mjs` (default export; `class` may then be the
 * class itself), or `.ts` where a TypeScript loader is installed. Every
 * mistake is reported with the file, the app and the key. Environment
 * variables override keys: `TILTH__APPS__PING__BIND=drpc+tcp://127.0.0.1:7000`
 * (path segments joined by `__`, case-insensitive; values parsed as JSON when
 * they are JSON).
 * @module
 */
import { existsSync } from "node:fs";
import { dirname, isAbsolute, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { z } from "zod";
import { TilthError } from "../core/errors.js";
import { suggest } from "../core/suggest.js";
import "../rpc/index.js"; // registers drpc and zrpc
import { knownProtocols } from "../rpc/protocols.js";
import { parseRpcUrl } from "../rpc/url.js";
import { standardSchemes } from "../transports/index.js";
import { applyOverrides, type OptionOverride } from "./overrides.js";

const rpcUrl = z.string().superRefine((s, ctx) => {
  try {
    const u = parseRpcUrl(s, "");
    const protocols = [...knownProtocols().keys()];
    if (!protocols.includes(u.protocol)) {
      const near = suggest(u.protocol, protocols);
      ctx.addIssue({ code: "custom", message: `unknown protocol in "${s}"${near ? ` (did you mean ${near}?)` : ""} (expected ${protocols.map((p) => `${p}+…`).join(" or ")})` });
      return;
    }
    const t = new URL(u.transport);
    if ((t.protocol === "tcp:" || t.protocol === "tls:" || t.protocol === "zmq+tcp:") && (t.hostname === "" || t.port === ""))
      ctx.addIssue({ code: "custom", message: `"${s}" needs a host and a port` });
  } catch (e) {
    const msg = (e as Error).message;
    ctx.addIssue({ code: "custom", message: msg.includes(s) ? msg : `invalid URL "${s}": ${msg}` });
  }
});

const appSchema = z
  .object({
    class: z.union([z.string().min(1), z.custom<Function>((v) => typeof v === "function")], {
      error: (iss) => (iss.input === undefined ? 'missing: the app\'s class, as "./module.js#ExportName" or the class itself' : 'expected "./module.js#ExportName" or a class'),
    }),
    bind: z.union([rpcUrl, z.array(rpcUrl).min(1)]).optional(),
    remote: rpcUrl.optional(),
    uses: z.array(z.string()).default([]),
    options: z.record(z.string(), z.unknown()).default({}),
    restart: z.enum(["on-failure", "always", "never"]).default("on-failure"),
    /** Processes `tilth run` starts for this app (`ping#1`, `ping#2`...): a fleet, which needs a bind URL they share (drpc+nats://…/SERVICE). */
    instances: z.number().int().min(1).max(64).default(1),
    /** Open a REPL into the live app: `ipc:///path.sock` (mode 0600) or `tcp://127.0.0.1:PORT` (with a token). */
    backdoor: z.string().optional(),
    /** Serve the debug API on the app's listeners that are not loopback too, behind its backdoor's token (docs/observability.md). */
    debugRemote: z.boolean().optional(),
    log: z.object({ level: z.enum(["trace", "debug", "info", "warn", "error", "fatal"]).optional() }).strict().optional(),
  })
  .strict();

const settingsSchema = z
  .object({
    apps: z.record(z.string().regex(/^[A-Za-z_][\w-]*$/, "app names are letters, digits, _ and -"), appSchema),
    log: z.object({ level: z.enum(["trace", "debug", "info", "warn", "error", "fatal"]).optional(), json: z.boolean().optional() }).strict().optional(),
    /** URL schemes of transports the program registers on its loop itself, beyond tilth's (tcp, ipc, tls, inproc, zmq+tcp, zmq+ipc). */
    transports: z.array(z.string().min(1)).optional(),
    /** Folder for pidfiles, relative to the settings file. */
    run: z
      .object({
        dir: z.string().optional(),
        /** How long an app's process has after SIGTERM (the runner stopping, `--reload`, `--stop`) before SIGKILL, ms. */
        stopTimeout: z.number().positive().optional(),
      })
      .strict()
      .optional(),
  })
  .strict();

export type AppSettings = z.infer<typeof appSchema>;
export type SettingsData = z.infer<typeof settingsSchema>;

export interface Problem {
  file: string;
  app?: string;
  key: string;
  message: string;
}

/** The settings are wrong; `problems` lists every mistake found. */
export class SettingsError extends TilthError {
  readonly problems: Problem[];
  constructor(problems: Problem[]) {
    super("ERR_SETTINGS", problems.map(formatProblem).join("\n"), { context: { problems } });
    this.problems = problems;
  }
}

function formatProblem(p: Problem): string {
  return `${p.file}: ${p.app === undefined ? "" : `app "${p.app}": `}${p.key ? `${p.key}: ` : ""}${p.message}`;
}

/** Loaded, validated settings. */
export class Settings {
  readonly file: string;
  readonly data: SettingsData;

  constructor(file: string, data: SettingsData) {
    this.file = file;
    this.data = data;
  }

  /** Build settings from an object (tests, embedding); validated like a file. `overrides`: as `tilth run --set`. */
  static from(data: unknown, file = "<inline>", env: NodeJS.ProcessEnv = {}, overrides: readonly OptionOverride[] = []): Settings {
    return new Settings(file, validate(applyOverrides(applyEnv(data, env), overrides, file), file));
  }

  /** Names of the apps, in file order. */
  get names(): string[] {
    return Object.keys(this.data.apps);
  }

  /** The settings of one app; SettingsError naming the known apps if there is none. */
  app(name: string): AppSettings {
    const a = this.data.apps[name];
    if (a === undefined)
      throw new SettingsError([{ file: this.file, key: "apps", message: `no app named "${name}" (apps: ${this.names.join(", ") || "none"})` }]);
    return a;
  }

  /** The URLs an app binds. */
  bindUrls(name: string): string[] {
    const b = this.app(name).bind;
    return b === undefined ? [] : Array.isArray(b) ? b : [b];
  }

  /**
   * Every URL an app serves on that the settings name: its `bind`, then the
   * `bind` of each of its tasks' options (`options.rpc.bind` of a Service's
   * RpcServerTask named "rpc").
   */
  serveUrls(name: string): string[] {
    const urls = [...this.bindUrls(name)];
    for (const value of Object.values(this.app(name).options)) {
      const bind = (value as { bind?: unknown } | null)?.bind;
      if (typeof value !== "object" || value === null || Array.isArray(value)) continue;
      for (const u of Array.isArray(bind) ? bind : [bind]) if (typeof u === "string" && !urls.includes(u)) urls.push(u);
    }
    return urls;
  }

  /** The URL clients use to reach an app: its `remote`, else the first URL it serves on ({@link serveUrls}). */
  remoteUrl(name: string): string {
    const a = this.app(name);
    const url = a.remote ?? this.serveUrls(name)[0];
    if (url === undefined)
      throw new SettingsError([
        {
          file: this.file,
          app: name,
          key: "remote",
          message: 'no client can reach the app: it has no "remote" URL, no "bind" URL, and no task option with a bind URL (options.TASK.bind)',
        },
      ]);
    return url;
  }

  /** Folder for pidfiles. */
  get runDir(): string {
    return resolve(dirname(this.file), this.data.run?.dir ?? ".tilth");
  }

  /** How long an app's process has to exit after SIGTERM before `tilth run` kills it, ms (`run.stopTimeout`, default 15 000). */
  get stopTimeout(): number {
    return this.data.run?.stopTimeout ?? 15_000;
  }

  /** Resolve an app's class (importing its module when it is named by a string). */
  async appClass(name: string): Promise<Function> {
    const a = this.app(name);
    if (typeof a.class === "function") return a.class;
    const [spec, exportName = "default"] = a.class.split("#") as [string, string?];
    const target = spec.startsWith(".") || isAbsolute(spec) ? pathToFileURL(resolve(dirname(this.file), spec)).href : spec;
    let mod: Record<string, unknown>;
    try {
      mod = (await import(target)) as Record<string, unknown>;
    } catch (e) {
      throw new SettingsError([{ file: this.file, app: name, key: "class", message: `cannot load module "${spec}": ${(e as Error).message}` }]);
    }
    const cls = mod[exportName];
    if (typeof cls !== "function")
      throw new SettingsError([
        { file: this.file, app: name, key: "class", message: `module "${spec}" has no class export "${exportName}" (exports: ${Object.keys(mod).join(", ") || "none"})` },
      ]);
    return cls;
  }
}

/** Load, override from the environment then the command line (`overrides`, see overrides.ts), and validate a settings file. */
export async function loadSettings(file: string, env: NodeJS.ProcessEnv = process.env, overrides: readonly OptionOverride[] = []): Promise<Settings> {
  const path = resolve(file);
  if (!existsSync(path)) throw new SettingsError([{ file, key: "", message: "settings file not found" }]);
  let data: unknown;
  if (path.endsWith(".json")) {
    const { readFile } = await import("node:fs/promises");
    try {
      data = JSON.parse(await readFile(path, "utf8"));
    } catch (e) {
      throw new SettingsError([{ file, key: "", message: `not valid JSON: ${(e as Error).message}` }]);
    }
  } else if (/\.(m?js|cjs|m?ts|cts)$/.test(path)) {
    try {
      const mod = (await import(pathToFileURL(path).href)) as { default?: unknown };
      data = mod.default ?? mod;
    } catch (e) {
      const hint = /\.[mc]?ts$/.test(path) ? " (a .ts settings file needs a TypeScript loader, e.g. node --import tsx)" : "";
      throw new SettingsError([{ file, key: "", message: `cannot load: ${(e as Error).message}${hint}` }]);
    }
  } else throw new SettingsError([{ file, key: "", message: "settings files are .json, .js, .mjs or .ts" }]);
  return new Settings(path, validate(applyOverrides(applyEnv(data, env), overrides, file), file));
}

function validate(data: unknown, file: string): SettingsData {
  const r = settingsSchema.safeParse(data);
  const problems: Problem[] = [];
  if (!r.success) {
    for (const issue of r.error.issues) {
      const path = issue.path.map(String);
      const isApp = path[0] === "apps" && path.length >= 2;
      const p: Problem = { file, key: isApp ? path.slice(2).join(".") : path.join("."), message: issue.message };
      if (isApp) p.app = path[1]!;
      problems.push(p);
    }
    throw new SettingsError(problems);
  }
  // Two apps on one URL cannot both bind it.
  const owner = new Map<string, string>();
  const schemes = [...standardSchemes(), ...(r.data.transports ?? [])];
  for (const [name, app] of Object.entries(r.data.apps)) {
    const binds = app.bind === undefined ? [] : Array.isArray(app.bind) ? app.bind : [app.bind];
    for (const [key, url] of [...binds.map((u) => ["bind", u] as const), ...(app.remote === undefined ? [] : [["remote", app.remote] as const])]) {
      const problem = schemeProblem(url, schemes);
      if (problem !== undefined) problems.push({ file, app: name, key, message: problem });
    }
    for (const url of binds) {
      const other = owner.get(url);
      if (other !== undefined) problems.push({ file, app: name, key: "bind", message: `${url} is also bound by app "${other}"` });
      else owner.set(url, name);
    }
    if (app.instances > 1 && binds.some((u) => !/^[a-z0-9.-]+\+nats:\/\//i.test(u)))
      problems.push({ file, app: name, key: "instances", message: `${app.instances} instances need bind URLs that many processes share (drpc+nats://HOST:PORT/SERVICE), not ${binds.join(", ")}` });
    for (const used of app.uses)
      if (!(used in r.data.apps)) problems.push({ file, app: name, key: "uses", message: `uses unknown app "${used}" (apps: ${Object.keys(r.data.apps).join(", ")})` });
  }
  if (problems.length) throw new SettingsError(problems);
  return r.data;
}

/**
 * Why the transport of RPC URL `url` is one no loop will know (a typo such
 * as `drpc+tpc://`), found when the settings load instead of when binding;
 * undefined when it is known.
 */
function schemeProblem(url: string, schemes: readonly string[]): string | undefined {
  const { protocol, transport } = parseRpcUrl(url, "");
  const wire = knownProtocols().get(protocol)?.transportUrl?.(transport) ?? transport;
  const scheme = wire.slice(0, wire.indexOf(":")).toLowerCase();
  if (schemes.includes(scheme)) return undefined;
  const given = transport.slice(0, transport.indexOf(":"));
  const near = suggest(given, schemes.filter((x) => !x.includes("+")));
  return (
    `unknown transport "${given}" in ${url}${near ? ` (did you mean ${protocol}+${near}://?)` : ""}: ` +
    `the transports are ${schemes.join(", ")} (a transport the program registers itself: list its scheme in the settings' "transports")`
  );
}

/** Apply `TILTH__A__B=value` overrides (case-insensitive path, JSON values where they parse). */
export function applyEnv(data: unknown, env: NodeJS.ProcessEnv): unknown {
  const keys = Object.keys(env).filter((k) => k.startsWith("TILTH__"));
  if (keys.length === 0 || typeof data !== "object" || data === null) return data;
  const root = structuredCloneSafe(data) as Record<string, unknown>;
  for (const k of keys) {
    const path = k.slice("TILTH__".length).split("__").filter(Boolean);
    let o: Record<string, unknown> = root;
    for (let i = 0; i < path.length; i++) {
      const want = path[i]!.toLowerCase();
      const existing = Object.keys(o).find((x) => x.toLowerCase() === want) ?? want;
      if (i === path.length - 1) {
        const raw = env[k]!;
        try {
          o[existing] = JSON.parse(raw);
        } catch {
          o[existing] = raw;
        }
      } else {
        if (typeof o[existing] !== "object" || o[existing] === null) o[existing] = {};
        o = o[existing] as Record<string, unknown>;
      }
    }
  }
  return root;
}

/** Deep copy of plain data, keeping functions (classes) as they are. */
function structuredCloneSafe(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(structuredCloneSafe);
  if (typeof v === "object" && v !== null) return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, structuredCloneSafe(x)]));
  return v;
}
