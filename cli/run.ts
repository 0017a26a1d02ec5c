/**
 * `tilth run`: run apps from the settings file.
 *
 *     tilth run APP... [--settings FILE] [--together] [--json] [--reload] [--level LEVEL] [--set APP.OPTION=VALUE]...
 *     tilth run --list | --status [APP...] | --stop [APP...]
 *
 * By default each app runs in its own child process (restarted by its
 * `restart` policy when it fails); `--together` runs them in this process, on
 * one loop. SIGINT/SIGTERM stop gracefully; a second signal forces. A child
 * that has not exited `run.stopTimeout` (15 s) after its SIGTERM is killed.
 * `--stop APP` leaves a stop request (`<run dir>/APP.stop`, the pid it stops)
 * before it signals the app, so the runner does not restart it.
 * `--set svc.tick.interval=5000` (or `--svc.tick.interval=5000`) overrides
 * an app option (app/overrides.ts).
 * @module
 */
import { type ChildProcess, fork } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, rmSync, watch, writeFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { NodeLoop } from "../adapters/node.js";
import { describe, formatMs, isTilthError } from "../core/errors.js";
import { Scope, stopWithin, type StopOutcome } from "../core/Scope.js";
import { sleep } from "../core/time.js";
import { Logger } from "../app/Logger.js";
import { loadSettings, type Settings, SettingsError } from "../app/Settings.js";
import { isOverride, parseOverride } from "../app/overrides.js";
import { startApp, type AppHandle } from "../app/runtime.js";
import { EXIT, UsageError, helpText, parseCommand, styler } from "./args.js";
import { RUN } from "./commands.js";

export { UsageError } from "./args.js";

/**
 * Exit codes between the runner and its children only (a person sees
 * {@link EXIT}): the app cannot start for a reason a restart will not fix,
 * because of its settings (the runner then exits 2) or otherwise (a port
 * in use, start() failed: the runner exits 1).
 */
export const EXIT_CONFIG = 78;
export const EXIT_CANNOT_START = 79;

export interface RunArgs {
  apps: string[];
  settings?: string;
  together: boolean;
  json: boolean;
  reload: boolean;
  level?: string;
  child: boolean;
  /** A runner's child: which instance of its app (an app with `instances` > 1). */
  instance?: number;
  action: "run" | "list" | "status" | "stop";
  /** App option overrides, `APP.OPTION=VALUE`. */
  set: string[];
  /** --help: show the help instead. */
  help: boolean;
}

export function parseRunArgs(argv: string[]): RunArgs {
  const p = parseCommand(RUN, argv);
  const v = p.values;
  const set = [...((v.set as string[] | undefined) ?? []), ...p.extra.map((x) => x.slice(2))];
  for (const x of set) if (!isOverride(x)) throw new UsageError(`--set needs APP.OPTION=VALUE (e.g. svc.tick.interval=5000), got "${x}"`, "run");
  const action = v.list ? "list" : v.status ? "status" : v.stop ? "stop" : "run";
  return {
    apps: p.positionals,
    ...(v.settings === undefined ? {} : { settings: v.settings as string }),
    together: v.together === true,
    json: v.json === true,
    reload: v.reload === true,
    ...(v.level === undefined ? {} : { level: v.level as string }),
    child: v.child === true,
    ...(v.instance === undefined ? {} : { instance: Number(v.instance) }),
    action,
    set,
    help: p.help,
  };
}


/** --settings, else $TILTH_SETTINGS, else tilth.json / tilth.settings.{mjs,js,json} in the current folder. */
export function findSettings(given: string | undefined): string {
  if (given) return given;
  if (process.env.TILTH_SETTINGS) return process.env.TILTH_SETTINGS;
  for (const f of ["tilth.json", "tilth.settings.mjs", "tilth.settings.js", "tilth.settings.json"]) if (existsSync(f)) return f;
  throw new UsageError("no settings file: pass --settings FILE, set TILTH_SETTINGS, or add tilth.json here");
}

const pidfile = (s: Settings, app: string): string => join(s.runDir, `${app}.pid`);

/** The processes of an app: its name, or `NAME#1`... `NAME#N` for an app with `instances` > 1. */
function unitsOf(s: Settings, name: string): { name: string; label: string; instance?: number }[] {
  const n = s.app(name).instances;
  if (n === 1) return [{ name, label: name }];
  return Array.from({ length: n }, (_, i) => ({ name, label: `${name}#${i + 1}`, instance: i + 1 }));
}

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

/**
 * A stop request: `tilth run --stop APP` writes the pid it stops to
 * `<run dir>/APP.stop` before it signals it, so that the runner supervising
 * that process does not restart it, whatever its `restart` policy.
 */
const stopfile = (s: Settings, app: string): string => join(s.runDir, `${app}.stop`);

function requestStop(s: Settings, app: string, pid: number): void {
  mkdirSync(s.runDir, { recursive: true });
  writeFileSync(stopfile(s, app), `${pid}\n`);
}

/** Whether a stop was requested for process `pid` of `app`; the request is used up. */
function takeStopRequest(s: Settings, app: string, pid: number | undefined): boolean {
  const file = stopfile(s, app);
  if (pid === undefined || readPid(file) !== pid) return false;
  rmSync(file, { force: true });
  return true;
}

/** After SIGKILL, how long to wait for a process to be gone before giving up on it, ms. */
const KILL_WAIT_MS = 5000;

interface ProcessStop {
  /** For the log lines: "app ping (pid 123)". */
  what: string;
  /** Send a signal to the process. */
  kill(signal: NodeJS.Signals): void;
  /** Settles when the process has exited. */
  ended: PromiseLike<unknown>;
  /** How long it has to exit after SIGTERM. */
  graceMs: number;
  log(line: string): void;
}

/**
 * Stop a process the one way everything stops ({@link stopWithin}): SIGTERM
 * (graceful), SIGKILL if it has not exited within `graceMs`, given up with a
 * line in the log if even that does not end it within KILL_WAIT_MS.
 */
function stopProcess(loop: NodeLoop, p: ProcessStop): Promise<StopOutcome> {
  p.kill("SIGTERM");
  return stopWithin(loop, {
    what: p.what,
    ended: p.ended,
    graceMs: p.graceMs,
    cancel: () => {
      p.log(`${p.what} did not exit within ${formatMs(p.graceMs)} of SIGTERM: sending SIGKILL`);
      p.kill("SIGKILL");
    },
    cancelMs: KILL_WAIT_MS,
    log: p.log,
  });
}

/** `process.kill` that ignores a process already gone. */
function signalPid(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "ESRCH") throw e;
  }
}

export async function runCommand(argv: string[]): Promise<number> {
  const args = parseRunArgs(argv);
  if (args.help) {
    process.stdout.write(helpText(RUN));
    return EXIT.ok;
  }
  const settings = await loadSettings(findSettings(args.settings), process.env, args.set.map(parseOverride));
  const loop = new NodeLoop({ name: "tilth" });
  if (settings.data.log?.json) args.json = true; // the settings may ask for JSON logs too
  const out = new Logger({ app: "tilth", loop, name: "tilth.run", json: args.json });

  if (args.action === "list") {
    for (const name of settings.names) {
      const a = settings.app(name);
      const cls = typeof a.class === "string" ? a.class : a.class.name;
      const binds = settings.serveUrls(name);
      process.stdout.write(`${name}\t${cls}${binds.length ? `\t${binds.join(" ")}` : ""}\n`);
    }
    return 0;
  }
  const names = args.apps.length ? args.apps : args.action === "run" ? [] : settings.names;
  if (args.action === "run" && names.length === 0) throw new UsageError(`name the apps to run (apps: ${settings.names.join(", ")})`);
  for (const n of names) settings.app(n); // unknown names fail here, naming the known ones

  if (args.action === "status" || args.action === "stop") {
    let code = 0;
    for (const name of names.flatMap((n) => unitsOf(settings, n).map((u) => u.label))) {
      const file = pidfile(settings, name);
      const pid = readPid(file);
      if (pid === undefined) {
        process.stdout.write(`${name}: not running\n`);
        if (args.action === "status") code = EXIT.notRunning;
        continue;
      }
      if (!alive(pid)) {
        rmSync(file, { force: true });
        process.stdout.write(`${name}: not running (stale pidfile for pid ${pid} removed)\n`);
        if (args.action === "status") code = EXIT.notRunning;
        continue;
      }
      if (args.action === "status") {
        process.stdout.write(`${name}: running (pid ${pid})\n`);
        continue;
      }
      requestStop(settings, name, pid);
      // Not our child: its end is seen by polling.
      const polling = new AbortController();
      const ended = (async () => {
        while (alive(pid)) await sleep(loop, 50, { signal: polling.signal });
      })();
      const say = (line: string): void => void process.stdout.write(`${name}: ${line}\n`);
      const outcome = await stopProcess(loop, { what: `pid ${pid}`, kill: (sig) => signalPid(pid, sig), ended, graceMs: settings.stopTimeout, log: say });
      polling.abort();
      if (outcome === "ended") say(`stopped (pid ${pid})`);
      else if (outcome === "cancelled") say(`killed (pid ${pid})`);
      else code = EXIT.failed;
      if (outcome !== "abandoned") rmSync(file, { force: true });
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
  const log = { json: args.json, ...(args.level ? { level: args.level as "info" } : {}) };
  let signals = 0;
  let resolveStop!: (why: string) => void;
  const stopRequested = new Promise<string>((r) => (resolveStop = r));
  const onSignal = (sig: string): void => {
    if (++signals > 1) process.exit(EXIT.interrupted);
    resolveStop(`received ${sig}`);
  };
  // A child leaves SIGINT (the terminal's Ctrl-C) to its parent, which sends SIGTERM.
  if (!args.child) process.on("SIGINT", () => onSignal("SIGINT"));
  else process.on("SIGINT", () => {});
  process.on("SIGTERM", () => onSignal("SIGTERM"));
  if (args.child) process.on("disconnect", () => resolveStop("parent went away"));
  // Each app and its pidfile live on this scope; closing it stops them in reverse order.
  const scope = new Scope(loop, { name: "apps" });
  let stopOptions: { graceMs?: number; reason?: string } = {};
  try {
    for (const name of names) {
      const label = args.instance === undefined ? name : `${name}#${args.instance}`;
      const release = writePid(settings, label);
      scope.defer(() => {
        release();
        // A stop request names this process when no runner supervises it: used up here.
        if (!args.child) takeStopRequest(settings, label, process.pid);
      });
      const h = await startApp(name, settings, { loop, log, label });
      handles.push(h);
      scope.defer(() => h.stop(stopOptions));
    }
  } catch (e) {
    stopOptions = { graceMs: 0 };
    await scope.close().catch(() => undefined);
    throw e;
  }
  const allDone = Promise.all(handles.map((h) => h.done)).then(() => "every app's serve() ended");
  const apiApps = handles.some((h) => h.urls.length > 0);
  stopOptions = { reason: await (apiApps ? stopRequested : Promise.race([stopRequested, allDone])) };
  await scope.close();
  return 0;
}

/** An app's process, from its fork to its exit. */
interface Child {
  readonly name: string;
  readonly proc: ChildProcess;
  /** Settles when the process has exited, or was given up on (it would not die even of SIGKILL). */
  readonly exited: Promise<Exit>;
  /** Settle `exited` (from the process's exit, or from a stop that gave up on it). */
  readonly settle: (exit: Exit) => void;
  /** Once this runner asked it to stop: SIGTERM, SIGKILL at the deadline. */
  stopping?: Promise<StopOutcome>;
  /** Stopped to be started again (--reload). */
  reload: boolean;
}

interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** Still running, given up on after SIGKILL. */
  abandoned?: boolean;
}

/**
 * Run each app in its own child process, restart per policy, stop on a
 * signal. The runner's scope owns one supervising task per app; closing the
 * scope stops every child (SIGTERM, SIGKILL after `run.stopTimeout`).
 */
async function runChildren(names: string[], settings: Settings, loop: NodeLoop, out: Logger, args: RunArgs, argv: string[]): Promise<number> {
  const main = fileURLToPath(new URL("./main.js", import.meta.url));
  const passthrough = argv.filter((x, i) => ["--json", "--level"].includes(x) || argv[i - 1] === "--level");
  const scope = new Scope(loop, { name: "runner", log: (line) => out.error(line) });
  /** The live process of each app. */
  const running = new Map<string, Child>();
  let exitCode = 0;
  let signals = 0;

  const forkApp = (name: string, label: string, instance: number | undefined): Child => {
    const which = instance === undefined ? [] : ["--instance", String(instance)];
    const proc = fork(main, ["run", name, "--child", ...which, "--settings", resolve(settings.file), ...passthrough, ...args.set.flatMap((s) => ["--set", s])], {
      stdio: ["ignore", "inherit", "inherit", "ipc"],
    });
    let settle!: (exit: Exit) => void;
    const exited = new Promise<Exit>((r) => (settle = r));
    proc.once("exit", (code, signal) => settle({ code, signal }));
    // A process that could not be spawned at all has no exit event.
    proc.once("error", () => {
      if (proc.pid === undefined) settle({ code: null, signal: null });
    });
    return { name: label, proc, exited, settle, reload: false };
  };

  const stopChild = (child: Child): Promise<StopOutcome> =>
    (child.stopping ??= stopProcess(loop, {
      what: `app ${child.name} (pid ${child.proc.pid})`,
      kill: (sig) => void child.proc.kill(sig),
      ended: child.exited,
      graceMs: settings.stopTimeout,
      log: (line) => out.warn(line),
    }).then((outcome) => {
      if (outcome === "abandoned") child.settle({ code: null, signal: null, abandoned: true });
      return outcome;
    }));

  /** Run app `app` (one instance of it: `name` is its label) until it ends for good: restart it by its policy, stop it when the runner stops. */
  const supervise = async (app: string, name: string, instance: number | undefined): Promise<void> => {
    let backoff = 500;
    for (let attempt = 1; !scope.closing.aborted; attempt++) {
      const child = forkApp(app, name, instance);
      const started = loop.now();
      running.set(name, child);
      const onStop = (): void => void stopChild(child);
      scope.closing.addEventListener("abort", onStop, { once: true });
      const exit = await child.exited;
      const abandoned = exit.abandoned === true;
      scope.closing.removeEventListener("abort", onStop);
      running.delete(name);
      const outcome = await child.stopping;
      // A process that could not clean up (killed) leaves its pidfile: it names a dead process.
      if (!abandoned && child.proc.pid !== undefined && readPid(pidfile(settings, name)) === child.proc.pid) rmSync(pidfile(settings, name), { force: true });
      if (scope.closing.aborted) {
        if (outcome !== undefined && outcome !== "ended") exitCode = 1;
        return;
      }
      if (child.reload && !abandoned) {
        out.info(`app ${name} restarting for reload`);
        continue;
      }
      const how =
        abandoned ? "would not exit"
        : exit.signal ? `was killed by ${exit.signal}`
        : (exit.code === EXIT_CONFIG || exit.code === EXIT_CANNOT_START) && attempt > 1 ? "could not start again (see its error above)"
        : `exited with code ${exit.code}`;
      if (takeStopRequest(settings, name, child.proc.pid)) {
        out.info(`app ${name} ${how} after tilth run --stop; not restarted`);
        return;
      }
      // An app that cannot start at all is a mistake to fix before anything runs.
      // One that ran before and cannot start again (its address still taken, a
      // service it needs down) failed like any crash: its own policy and backoff
      // apply, and the other apps go on.
      if ((exit.code === EXIT_CONFIG || exit.code === EXIT_CANNOT_START) && attempt === 1) {
        out.error(`app ${name} cannot start (${exit.code === EXIT_CONFIG ? "its settings are wrong" : "see its error above"}); stopping`);
        exitCode = exit.code === EXIT_CONFIG ? EXIT.usage : EXIT.failed;
        stopAll("an app cannot start");
        return;
      }
      const policy = settings.app(app).restart;
      const failed = exit.code !== 0;
      if (abandoned || !(policy === "always" || (policy === "on-failure" && failed))) {
        out.warn(`app ${name} ${how}; not restarted (restart: ${policy})`);
        if (failed) exitCode = 1;
        return;
      }
      const ran = loop.now() - started;
      backoff = ran > 30_000 ? 1000 : Math.min(60_000, backoff * 2);
      out.error(`app ${name} ${how}; restarting in ${formatMs(backoff)}`);
      try {
        await sleep(loop, backoff, { signal: scope.closing });
      } catch {
        return; // the runner is stopping
      }
    }
  };

  const stopAll = (why: string): void => {
    if (scope.isClosing) return;
    out.info(`stopping (${why})`);
    // Closing aborts scope.closing: each supervisor stops its child.
    void scope.close().catch(() => undefined); // its failure is thrown where the runner awaits the close
  };
  let firstSignalAt = 0;
  const onSignal = (sig: string): void => {
    // A signal sent to the whole process group can reach us twice at once; a
    // person's second Ctrl-C comes later.
    if (signals > 0 && loop.now() - firstSignalAt < 100) return;
    if (signals++ === 0) firstSignalAt = loop.now();
    if (signals > 1) {
      out.warn(`second ${sig}: forcing`);
      for (const c of running.values()) c.proc.kill("SIGKILL");
      process.exit(EXIT.interrupted);
    }
    stopAll(`received ${sig}`);
  };
  process.on("SIGINT", () => onSignal("SIGINT"));
  process.on("SIGTERM", () => onSignal("SIGTERM"));

  if (args.reload) {
    const dir = dirname(resolve(settings.file));
    let pending = false;
    // The run folder (pidfiles, backdoor files) changes because apps start: not a reason to reload.
    const runRel = relative(dir, settings.runDir);
    scope.use(
      watch(dir, { recursive: true }, (_event, file) => {
        if (file && runRel && !runRel.startsWith("..") && (file === runRel || file.startsWith(`${runRel}/`))) return;
        if (pending || scope.isClosing) return;
        pending = true;
        loop.timer(200, () => {
          pending = false;
          if (scope.isClosing) return;
          out.info("files changed: restarting apps");
          for (const child of running.values()) {
            child.reload = true;
            void stopChild(child);
          }
        });
      }),
    );
    out.info(`reloading on changes under ${dir}`);
  }

  const units = names.flatMap((n) => unitsOf(settings, n));
  const tasks = units.map((u) => scope.spawn(() => supervise(u.name, u.label, u.instance), { name: `app ${u.label}` }));
  // Every app has ended for good (by itself, or because the runner stopped them).
  await Promise.allSettled(tasks.map((t) => t.join()));
  await scope.close();
  return exitCode;
}

/**
 * Messages for the errors a user makes, and their exit codes ({@link EXIT}).
 * `child`: the code a runner's child exits with instead, so that the runner
 * does not restart an app that cannot start.
 */
export function reportError(e: unknown, child = false): number {
  const style = styler(process.stderr);
  const say = (text: string): void => void process.stderr.write(`${style("red", "tilth:")} ${text}\n`);
  if (e instanceof UsageError) {
    say(e.message);
    if (e.command) process.stderr.write(`(\`tilth help ${e.command}\` shows its options and examples)\n`);
    return child ? EXIT_CONFIG : EXIT.usage;
  }
  if (e instanceof SettingsError) {
    say(`bad settings:\n${e.problems.map((p) => `  ${p.file}: ${p.app ? `app "${p.app}": ` : ""}${p.key ? `${p.key}: ` : ""}${p.message}`).join("\n")}`);
    return child ? EXIT_CONFIG : EXIT.usage;
  }
  if (isTilthError(e, "ERR_APP_BIND") || isTilthError(e, "ERR_APP_START")) {
    say((e as Error).message);
    return child ? EXIT_CANNOT_START : EXIT.failed;
  }
  say(describe(e));
  return EXIT.failed;
}
