/**
 * `tilth run`: run apps from the settings file.
 *
 *     tilth run APP... [--settings FILE] [--together] [--json] [--reload] [--level LEVEL] [--set APP.OPTION=VALUE]...
 *     tilth run --list | --status [APP...] | --stop [APP...]
 *
 * By default each app runs in its own child process (restarted by its
 * `restart` policy when it fails); `--together` runs them in this process, on
 * one loop. SIGINT/SIGTERM stop gracefully; a second signal forces.
 * `--set svc.tick.interval=5000` (or `--svc.tick.interval=5000`) overrides
 * an app option (app/overrides.ts).
 * @module
 */
import { type ChildProcess, fork } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, rmSync, watch, writeFileSync, type FSWatcher } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { NodeLoop } from "../adapters/node.js";
import { describe, isTilthError } from "../core/errors.js";
import { sleep } from "../core/time.js";
import { Logger } from "../app/Logger.js";
import { loadSettings, type Settings, SettingsError } from "../app/Settings.js";
import { isOverride, parseOverride } from "../app/overrides.js";
import { startApp, type AppHandle } from "../app/runtime.js";

/** Exit code of a child whose app cannot start for a reason a restart will not fix. */
export const EXIT_CONFIG = 78;

export interface RunArgs {
  apps: string[];
  settings?: string;
  together: boolean;
  json: boolean;
  reload: boolean;
  level?: string;
  child: boolean;
  action: "run" | "list" | "status" | "stop";
  /** App option overrides, `APP.OPTION=VALUE`. */
  set: string[];
}

export function parseRunArgs(argv: string[]): RunArgs {
  const a: RunArgs = { apps: [], together: false, json: false, reload: false, child: false, action: "run", set: [] };
  for (let i = 0; i < argv.length; i++) {
    const x = argv[i]!;
    const value = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new UsageError(`${x} needs a value`);
      return v;
    };
    if (x === "--settings" || x === "-s") a.settings = value();
    else if (x.startsWith("--settings=")) a.settings = x.slice(11);
    else if (x === "--together") a.together = true;
    else if (x === "--json") a.json = true;
    else if (x === "--reload") a.reload = true;
    else if (x === "--level") a.level = value();
    else if (x === "--child") a.child = true;
    else if (x === "--list") a.action = "list";
    else if (x === "--status") a.action = "status";
    else if (x === "--stop") a.action = "stop";
    else if (x === "--set" || x.startsWith("--set=")) {
      const v = x === "--set" ? value() : x.slice(6);
      if (!isOverride(v)) throw new UsageError(`--set needs APP.OPTION=VALUE (e.g. svc.tick.interval=5000), got "${v}"`);
      a.set.push(v);
    } else if (x.startsWith("--") && isOverride(x.slice(2))) a.set.push(x.slice(2));
    else if (x.startsWith("-")) throw new UsageError(`unknown option ${x}`);
    else a.apps.push(x);
  }
  return a;
}

export class UsageError extends Error {}

/** --settings, else $TILTH_SETTINGS, else tilth.json / tilth.settings.{mjs,js,json} in the current folder. */
export function findSettings(given: string | undefined): string {
  if (given) return given;
  if (process.env.TILTH_SETTINGS) return process.env.TILTH_SETTINGS;
  for (const f of ["tilth.json", "tilth.settings.mjs", "tilth.settings.js", "tilth.settings.json"]) if (existsSync(f)) return f;
  throw new UsageError("no settings file: pass --settings FILE, set TILTH_SETTINGS, or add tilth.json here");
}

const pidfile = (s: Settings, app: string): string => join(s.runDir, `${app}.pid`);

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

function readPid(file: string): number | undefined {
  try {
    const pid = Number(readFileSync(file, "utf8").trim());
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

function writePid(s: Settings, app: string): () => void {
  const file = pidfile(s, app);
  mkdirSync(dirname(file), { recursive: true });
  const existing = readPid(file);
  if (existing !== undefined && existing !== process.pid && alive(existing))
    throw new SettingsError([{ file: s.file, app, key: "", message: `already running (pid ${existing}, pidfile ${file})` }]);
  writeFileSync(file, `${process.pid}\n`);
  return () => {
    if (readPid(file) === process.pid) rmSync(file, { force: true });
  };
}

export async function runCommand(argv: string[]): Promise<number> {
  const args = parseRunArgs(argv);
  const settings = await loadSettings(findSettings(args.settings), process.env, args.set.map(parseOverride));
  const loop = new NodeLoop({ name: "tilth" });
  if (settings.data.log?.json) args.json = true; // the settings may ask for JSON logs too
  const out = new Logger({ app: "tilth", loop, name: "tilth.run", json: args.json });

  if (args.action === "list") {
    for (const name of settings.names) {
      const a = settings.app(name);
      const cls = typeof a.class === "string" ? a.class : a.class.name;
      const binds = settings.bindUrls(name);
      process.stdout.write(`${name}\t${cls}${binds.length ? `\t${binds.join(" ")}` : ""}\n`);
    }
    return 0;
  }
  const names = args.apps.length ? args.apps : args.action === "run" ? [] : settings.names;
  if (args.action === "run" && names.length === 0) throw new UsageError(`name the apps to run (apps: ${settings.names.join(", ")})`);
  for (const n of names) settings.app(n); // unknown names fail here, naming the known ones

  if (args.action === "status" || args.action === "stop") {
    let code = 0;
    for (const name of names) {
      const file = pidfile(settings, name);
      const pid = readPid(file);
      if (pid === undefined) {
        process.stdout.write(`${name}: not running\n`);
        if (args.action === "status") code = 3;
        continue;
      }
      if (!alive(pid)) {
        rmSync(file, { force: true });
        process.stdout.write(`${name}: not running (stale pidfile for pid ${pid} removed)\n`);
        if (args.action === "status") code = 3;
        continue;
      }
      if (args.action === "status") {
        process.stdout.write(`${name}: running (pid ${pid})\n`);
        continue;
      }
      process.kill(pid, "SIGTERM");
      let waited = 0;
      while (alive(pid) && waited < 15_000) {
        await sleep(loop, 50);
        waited += 50;
      }
      if (alive(pid)) {
        process.kill(pid, "SIGKILL");
        process.stdout.write(`${name}: did not stop within 15 s; killed (pid ${pid})\n`);
      } else process.stdout.write(`${name}: stopped (pid ${pid})\n`);
      rmSync(file, { force: true });
    }
    return code;
  }

  // Find every class now, so a mistake is reported before anything starts.
  const problems: SettingsError[] = [];
  for (const n of names) await settings.appClass(n).catch((e: unknown) => problems.push(e as SettingsError));
  if (problems.length) throw new SettingsError(problems.flatMap((p) => (p instanceof SettingsError ? p.problems : [])));

  if (args.child || args.together) return runHere(names, settings, loop, args);
  return runChildren(names, settings, loop, out, args, argv);
}

/** Run the apps in this process, on one loop, until a signal. */
async function runHere(names: string[], settings: Settings, loop: NodeLoop, args: RunArgs): Promise<number> {
  const handles: AppHandle[] = [];
  const releases: (() => void)[] = [];
  const log = { json: args.json, ...(args.level ? { level: args.level as "info" } : {}) };
  let signals = 0;
  let resolveStop!: (why: string) => void;
  const stopRequested = new Promise<string>((r) => (resolveStop = r));
  const onSignal = (sig: string): void => {
    if (++signals > 1) process.exit(130);
    resolveStop(`received ${sig}`);
  };
  // A child leaves SIGINT (the terminal's Ctrl-C) to its parent, which sends SIGTERM.
  if (!args.child) process.on("SIGINT", () => onSignal("SIGINT"));
  else process.on("SIGINT", () => {});
  process.on("SIGTERM", () => onSignal("SIGTERM"));
  if (args.child) process.on("disconnect", () => resolveStop("parent went away"));
  try {
    for (const name of names) {
      releases.push(writePid(settings, name));
      handles.push(await startApp(name, settings, { loop, log }));
    }
  } catch (e) {
    for (const h of handles.reverse()) await h.stop({ graceMs: 0 });
    for (const r of releases) r();
    throw e;
  }
  const allDone = Promise.all(handles.map((h) => h.done)).then(() => "every app's serve() ended");
  const apiApps = handles.some((h) => h.urls.length > 0);
  const why = await (apiApps ? stopRequested : Promise.race([stopRequested, allDone]));
  for (const h of [...handles].reverse()) await h.stop({ reason: why });
  for (const r of releases) r();
  return 0;
}

/** Run each app in its own child process, restart per policy, stop on a signal. */
async function runChildren(names: string[], settings: Settings, loop: NodeLoop, out: Logger, args: RunArgs, argv: string[]): Promise<number> {
  const main = fileURLToPath(new URL("./main.js", import.meta.url));
  const passthrough = argv.filter((x, i) => ["--json", "--level"].includes(x) || argv[i - 1] === "--level");
  const children = new Map<string, ChildProcess>();
  /** Apps stopped by --reload, to be started again whatever their policy. */
  const reloading = new Set<string>();
  let stopping = false;
  let exitCode = 0;
  let signals = 0;
  const backoff = new Map<string, number>();
  let fatal: ((code: number) => void) | undefined;
  const finished = new Promise<number>((r) => (fatal = r));

  const spawnApp = (name: string): void => {
    const child = fork(main, ["run", name, "--child", "--settings", resolve(settings.file), ...passthrough, ...args.set.flatMap((s) => ["--set", s])], {
      stdio: ["ignore", "inherit", "inherit", "ipc"],
    });
    const started = loop.now();
    children.set(name, child);
    child.on("exit", (code, signal) => {
      children.delete(name);
      if (reloading.delete(name) && !stopping) {
        out.info(`app ${name} restarting for reload`);
        spawnApp(name);
        return;
      }
      if (stopping) {
        if (children.size === 0) fatal!(exitCode);
        return;
      }
      const policy = settings.app(name).restart;
      const failed = code !== 0;
      if (code === EXIT_CONFIG) {
        out.error(`app ${name} cannot start (exit ${code}); stopping`);
        exitCode = 1;
        void stopAll("an app cannot start");
        return;
      }
      const how = signal ? `was killed by ${signal}` : `exited with code ${code}`;
      if (policy === "always" || (policy === "on-failure" && failed)) {
        const ran = loop.now() - started;
        const wait = ran > 30_000 ? 1000 : Math.min(60_000, (backoff.get(name) ?? 500) * 2);
        backoff.set(name, wait);
        out.error(`app ${name} ${how}; restarting in ${wait} ms`);
        loop.timer(wait, () => {
          if (!stopping) spawnApp(name);
        });
      } else {
        out.warn(`app ${name} ${how}; not restarted (restart: ${policy})`);
        if (failed) exitCode = 1;
        if (children.size === 0) fatal!(exitCode);
      }
    });
  };

  const stopAll = async (why: string): Promise<void> => {
    if (stopping) return;
    stopping = true;
    out.info(`stopping (${why})`);
    watcher?.close();
    if (children.size === 0) fatal!(exitCode);
    for (const c of children.values()) c.kill("SIGTERM");
  };
  let firstSignalAt = 0;
  const onSignal = (sig: string): void => {
    // A signal sent to the whole process group can reach us twice at once; a
    // person's second Ctrl-C comes later.
    if (signals > 0 && loop.now() - firstSignalAt < 100) return;
    if (signals++ === 0) firstSignalAt = loop.now();
    if (signals > 1) {
      out.warn(`second ${sig}: forcing`);
      for (const c of children.values()) c.kill("SIGKILL");
      process.exit(130);
    }
    void stopAll(`received ${sig}`);
  };
  process.on("SIGINT", () => onSignal("SIGINT"));
  process.on("SIGTERM", () => onSignal("SIGTERM"));

  let watcher: FSWatcher | undefined;
  if (args.reload) {
    const dir = dirname(resolve(settings.file));
    let pending = false;
    // The run folder (pidfiles, backdoor files) changes because apps start: not a reason to reload.
    const runRel = relative(dir, settings.runDir);
    watcher = watch(dir, { recursive: true }, (_event, file) => {
      if (file && runRel && !runRel.startsWith("..") && (file === runRel || file.startsWith(`${runRel}/`))) return;
      if (pending || stopping) return;
      pending = true;
      loop.timer(200, () => {
        pending = false;
        out.info("files changed: restarting apps");
        for (const [name, c] of children) {
          reloading.add(name);
          c.kill("SIGTERM");
        }
      });
    });
    out.info(`reloading on changes under ${dir}`);
  }

  for (const name of names) spawnApp(name);
  const code = await finished;
  watcher?.close();
  return code;
}

/** Messages for the errors a user makes, and their exit codes. */
export function reportError(e: unknown): number {
  if (e instanceof UsageError) {
    process.stderr.write(`tilth: ${e.message}\n`);
    return 2;
  }
  if (e instanceof SettingsError) {
    process.stderr.write(`tilth: bad settings:\n${e.problems.map((p) => `  ${p.file}: ${p.app ? `app "${p.app}": ` : ""}${p.key ? `${p.key}: ` : ""}${p.message}`).join("\n")}\n`);
    return 2;
  }
  if (isTilthError(e, "ERR_APP_BIND") || isTilthError(e, "ERR_APP_START")) {
    process.stderr.write(`tilth: ${(e as Error).message}\n`);
    return EXIT_CONFIG;
  }
  process.stderr.write(`tilth: ${describe(e)}\n`);
  return 1;
}
