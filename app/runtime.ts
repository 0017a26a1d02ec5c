/**
 * Starting and stopping apps, in this process. This is what `tilth run` does
 * for each app, and what a program that embeds tilth calls: one call starts an
 * app on the program's own loop and returns a handle to stop it. Nothing is
 * global: two apps started in one process see each other only when wired
 * (by the settings' `uses`).
 *
 * @example
 * ```ts
 * const settings = Settings.from({ apps: { ping: { class: PingApp, bind: "drpc+tcp://127.0.0.1:9990" } } });
 * const handle = await startApp("ping", settings, { loop });
 * // ... later
 * await handle.stop();
 * ```
 * @module
 */
import "../rpc/index.js"; // registers drpc and zrpc
import "reflect-metadata";
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { container as rootContainer, type DependencyContainer } from "tsyringe";
import type { Loop } from "../core/Loop.js";
import { CancelledError, TilthError, describe } from "../core/errors.js";
import { registerTransports } from "../transports/index.js";
import { RpcClient, remoteOf, type Remote } from "../rpc/Client.js";
import { RpcServer, type ServerOptions } from "../rpc/Server.js";
import { App, AppContext, LOOP, client } from "./App.js";
import { openBackdoor, type Backdoor } from "./backdoor.js";
import { Logger, type LoggerOptions } from "./Logger.js";
import { runloop, type RunloopOptions } from "./runloop.js";
import { Settings, SettingsError } from "./Settings.js";

export interface StartOptions {
  loop: Loop;
  /** Parent DI container; the app gets a child of it. Default: tsyringe's root container. */
  container?: DependencyContainer;
  /** How log lines are written (json, colour, a custom writer). */
  log?: Omit<LoggerOptions, "app" | "loop" | "name">;
  /** Restart policy of `serve()`. */
  runloop?: RunloopOptions;
  /** Extra server options (middleware, limits) for the app's API. */
  server?: Partial<ServerOptions>;
  /** Register the standard transports on the loop (default true). */
  transports?: boolean;
}

/** A running app. */
export interface AppHandle {
  readonly name: string;
  readonly app: App;
  /** The URLs the app's API is bound to. */
  readonly urls: string[];
  /** The app's DI container. */
  readonly container: DependencyContainer;
  /** Resolves when `serve()` has ended for good (it returned, or the app was stopped). */
  readonly done: Promise<void>;
  /**
   * Stop: abort the app's signal, wait for `serve()` to end, run `app.stop()`,
   * close the server (in-flight calls get `graceMs`, default 5000) and every
   * client the app used. Idempotent.
   */
  stop(options?: { graceMs?: number; reason?: string }): Promise<void>;
}

/** Construct an app class: through DI when it is decorated (`@injectable`), else `new Cls(ctx)`. */
function construct(cls: Function, c: DependencyContainer, ctx: AppContext): App {
  const decorated = Reflect.getMetadata("design:paramtypes", cls) !== undefined;
  const app = decorated ? (c.resolve(cls as new (...a: never[]) => unknown) as App) : new (cls as new (ctx: AppContext) => App)(ctx);
  if (typeof app !== "object" || app === null) throw new TilthError("ERR_APP_CLASS", "the app class did not construct an object");
  return app;
}

/** Start app `name` from `settings` on `options.loop`. */
export async function startApp(name: string, settings: Settings, options: StartOptions): Promise<AppHandle> {
  const { loop } = options;
  const appSettings = settings.app(name);
  if (options.transports !== false) registerTransports(loop);
  const ac = new AbortController();
  const level = appSettings.log?.level ?? settings.data.log?.level ?? options.log?.level;
  const base = new Logger({ ...options.log, ...(level ? { level } : {}), app: name, loop });
  const log = base.child("tilth.app");

  // Clients of other apps, one per app, opened on first use, closed on stop.
  const clients = new Map<string, RpcClient>();
  const proxies = new Map<string, unknown>();
  const api = <T>(other: string): Remote<T> => {
    let p = proxies.get(other);
    if (p === undefined) {
      const c = new RpcClient(settings.remoteUrl(other), { loop, waitForReady: true });
      clients.set(other, c);
      p = remoteOf(c);
      proxies.set(other, p);
    }
    return p as Remote<T>;
  };

  const c = (options.container ?? rootContainer).createChildContainer();
  const ctx = new AppContext(name, loop, settings, log, ac.signal, api, c);
  c.register(LOOP, { useValue: loop });
  c.register(Settings, { useValue: settings });
  c.register(Logger, { useValue: log });
  c.register(AppContext, { useValue: ctx });
  for (const other of appSettings.uses) c.register(client(other), { useFactory: () => api(other) });

  const cls = await settings.appClass(name);
  let app: App;
  try {
    app = construct(cls, c, ctx);
  } catch (e) {
    throw new SettingsError([{ file: settings.file, app: name, key: "class", message: `cannot construct ${cls.name || "the class"}: ${describe(e)}` }]);
  }

  let server: RpcServer | undefined;
  const urls = settings.bindUrls(name);
  if (urls.length > 0) {
    if (app.api === undefined || app.api === null)
      throw new SettingsError([{ file: settings.file, app: name, key: "bind", message: `the app binds ${urls.join(", ")} but ${cls.name} has no api object` }]);
    server = new RpcServer(app.api, { loop, debugInfo: () => ({ app: name, settings: appSettings }), ...options.server });
    try {
      for (const url of urls) {
        log.info(`binding to ${url}`);
        await server.listen(url);
      }
    } catch (e) {
      await server.close({ graceMs: 0 });
      await Promise.all([...clients.values()].map((x) => x.close()));
      throw new TilthError("ERR_APP_BIND", `app "${name}" cannot bind ${urls.join(", ")}: ${describe(e)}`, { cause: e, context: { app: name } });
    }
  }

  if (app.start) {
    try {
      await app.start(ac.signal);
    } catch (e) {
      await server?.close({ graceMs: 0 });
      await Promise.all([...clients.values()].map((x) => x.close()));
      if (e instanceof SettingsError) throw e;
      throw new TilthError("ERR_APP_START", `app "${name}" cannot start: ${describe(e)}`, { cause: e, context: { app: name } });
    }
  }

  let door: Backdoor | undefined;
  const doorFile = join(settings.runDir, `${name}.backdoor`);
  if (appSettings.backdoor !== undefined) {
    try {
      door = await openBackdoor({
        address: appSettings.backdoor,
        name,
        context: { app, ctx, container: c, loop, settings, log, server, status: () => server?.status() },
      });
      mkdirSync(settings.runDir, { recursive: true });
      writeFileSync(doorFile, JSON.stringify({ address: door.address, ...(door.token ? { token: door.token } : {}) }) + "\n", { mode: 0o600 });
      log.info(`backdoor on ${door.address}`);
    } catch (e) {
      await door?.close();
      await server?.close({ graceMs: 0 });
      await Promise.all([...clients.values()].map((x) => x.close()));
      throw new TilthError("ERR_APP_BIND", `app "${name}" cannot open its backdoor: ${describe(e)}`, { cause: e, context: { app: name } });
    }
  }

  const served = app.serve ? runloop(loop, log, (signal) => app.serve!(signal), ac.signal, options.runloop) : Promise.resolve({ restarts: 0 });
  const done = served.then(() => {});

  let stopping: Promise<void> | undefined;
  const stop = (o: { graceMs?: number; reason?: string } = {}): Promise<void> =>
    (stopping ??= (async () => {
      log.info(`stopping${o.reason ? ` (${o.reason})` : ""}`);
      ac.abort(new CancelledError(o.reason ?? "app stopping"));
      await done;
      try {
        await app.stop?.();
      } catch (e) {
        log.error(`stop() failed: ${describe(e)}`);
      }
      if (door) {
        await door.close();
        rmSync(doorFile, { force: true });
      }
      await server?.close({ graceMs: o.graceMs ?? 5000 });
      await Promise.all([...clients.values()].map((x) => x.close()));
      log.info("stopped");
    })());

  return {
    name,
    app,
    urls: server?.urls ?? [],
    container: c,
    done,
    stop,
  };
}
