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
import { CancelledError, ClosedError, TilthError, describe } from "../core/errors.js";
import { Scope } from "../core/Scope.js";
import { registerTransports } from "../transports/index.js";
import { RpcClient, remoteOf, type Remote } from "../rpc/Client.js";
import { RpcServer, type ServerOptions } from "../rpc/Server.js";
import type { Middleware } from "../rpc/context.js";
import { App, AppContext, LOOP, client } from "./App.js";
import { openBackdoor } from "./backdoor.js";
import { constructWithDi } from "./di.js";
import { Logger, type LoggerOptions } from "./Logger.js";
import { runloop, type RunloopOptions } from "./runloop.js";
import { Settings, SettingsError } from "./Settings.js";

export interface StartOptions {
  loop: Loop;
  /** Parent DI container; the app gets a child of it. Default: tsyringe's root container. */
  container?: DependencyContainer;
  /** How log lines are written (json, colour, a custom writer). */
  log?: Omit<LoggerOptions, "app" | "loop" | "name">;
  /** The name its log lines carry, when not the app's name (`ping#2`: one instance of a fleet). */
  label?: string;
  /** Restart policy of `serve()`. */
  runloop?: RunloopOptions;
  /** Extra server options (middleware, limits) for the app's API. */
  server?: Partial<ServerOptions>;
  /** Extra options of the clients the app opens to other apps (middleware: a simulation watches every call). */
  client?: { middleware?: Middleware[] };
  /** Register the standard transports on the loop (default true). */
  transports?: boolean;
}

/** A running app. */
export interface AppHandle {
  readonly name: string;
  readonly app: App;
  /** The URLs the app serves on: its API's bind URLs, then those of its tasks (a Service's RpcServerTask), port 0 resolved. */
  readonly urls: string[];
  /** The app's DI container. */
  readonly container: DependencyContainer;
  /** Resolves when `serve()` has ended for good (it returned, or the app was stopped). */
  readonly done: Promise<void>;
  /**
   * Stop: abort the app's signal, wait for `serve()` to end, then close what
   * the app opened in reverse order: its backdoor (and the file naming it),
   * `app.stop()`, the server (in-flight calls get `graceMs`, default 5000),
   * every client the app used. Idempotent; concurrent callers share one stop.
   */
  stop(options?: { graceMs?: number; reason?: string }): Promise<void>;
}

/** Construct an app class: through DI when it is decorated (`@injectable`), else `new Cls(ctx)`. */
function construct(cls: Function, c: DependencyContainer, ctx: AppContext): App {
  const app = constructWithDi<App>(cls, ctx, c);
  if (typeof app !== "object" || app === null) throw new TilthError("ERR_APP_CLASS", "the app class did not construct an object");
  return app;
}

/**
 * Start app `name` from `settings` on `options.loop`.
 *
 * Everything the app opens is registered on one {@link Scope} as it opens:
 * the clients of other apps, the RPC server, `app.stop()` (once `start()`
 * succeeded), the backdoor and its file, and the `serve()` runloop as the
 * scope's task. `stop()` closes the scope: `serve()` ends first, then the rest
 * closes in reverse order of opening. A start step that fails closes the
 * scope the same way (the server without grace) and throws its coded error.
 */
export async function startApp(name: string, settings: Settings, options: StartOptions): Promise<AppHandle> {
  const { loop } = options;
  const appSettings = settings.app(name);
  if (options.transports !== false) registerTransports(loop);
  const ac = new AbortController();
  const level = appSettings.log?.level ?? settings.data.log?.level ?? options.log?.level;
  const base = new Logger({ ...options.log, ...(level ? { level } : {}), app: options.label ?? name, loop });
  const log = base.child("tilth.app");
  const scope = new Scope(loop, { name: `app ${name}`, log: (line) => log.error(line) });
  /** The grace of calls in flight when the server closes: stop()'s, or none after a failed start. */
  let graceMs = 5000;

  // Clients of other apps, one per app, opened on first use, closed when the app's scope ends.
  const clients = new Map<string, RpcClient>();
  const proxies = new Map<string, unknown>();
  let clientsClosed = false;
  scope.defer(async () => {
    clientsClosed = true;
    await Promise.all([...clients.values()].map((x) => x.close()));
  });
  const api = <T>(other: string): Remote<T> => {
    let p = proxies.get(other);
    if (p === undefined) {
      if (clientsClosed) throw new ClosedError(`app "${name}" has stopped: it cannot open a client of app "${other}"`);
      // Waiting for the other app to come up ends when this app stops.
      const c = new RpcClient(settings.remoteUrl(other), { loop, waitForReady: true, signal: scope.closing, ...options.client });
      clients.set(other, c);
      p = remoteOf(c);
      proxies.set(other, p);
    }
    return p as Remote<T>;
  };

  const c = (options.container ?? rootContainer).createChildContainer();
  let doorToken: string | undefined;
  const ctx = new AppContext(name, loop, settings, log, ac.signal, api, c, () => doorToken);
  c.register(LOOP, { useValue: loop });
  c.register(Settings, { useValue: settings });
  c.register(Logger, { useValue: log });
  c.register(AppContext, { useValue: ctx });
  for (const other of appSettings.uses) c.register(client(other), { useFactory: () => api(other) });

  let app: App;
  let server: RpcServer | undefined;
  try {
    const cls = await settings.appClass(name);
    try {
      app = construct(cls, c, ctx);
    } catch (e) {
      throw new SettingsError([{ file: settings.file, app: name, key: "class", message: `cannot construct ${cls.name || "the class"}: ${describe(e)}` }]);
    }

    const urls = settings.bindUrls(name);
    if (urls.length > 0) {
      if (app.api === undefined || app.api === null)
        throw new SettingsError([{ file: settings.file, app: name, key: "bind", message: `the app binds ${urls.join(", ")} but ${cls.name} has no api object` }]);
      // On a listener that is not loopback the debug API is off unless debugRemote, and then asks for the backdoor's token.
      const s = (server = new RpcServer(app.api, { loop, debugInfo: () => ({ app: name, settings: appSettings }), debugToken: () => doorToken, ...(appSettings.debugRemote === true ? { debugRemote: true } : {}), log: (line) => log.warn(line), ...options.server }));
      scope.defer(() => s.close({ graceMs }));
      try {
        for (const url of urls) {
          log.info(`binding to ${url}`);
          await s.listen(url);
        }
      } catch (e) {
        throw new TilthError("ERR_APP_BIND", `app "${name}" cannot bind ${urls.join(", ")}: ${describe(e)}`, { cause: e, context: { app: name } });
      }
    }

    if (app.start) {
      try {
        await app.start(ac.signal);
      } catch (e) {
        if (e instanceof SettingsError) throw e;
        throw new TilthError("ERR_APP_START", `app "${name}" cannot start: ${describe(e)}`, { cause: e, context: { app: name } });
      }
    }
    const started = app;
    scope.defer(async () => {
      try {
        await started.stop?.();
      } catch (e) {
        log.error(`stop() failed: ${describe(e)}`);
      }
    });

    if (appSettings.backdoor !== undefined) {
      const doorFile = join(settings.runDir, `${name}.backdoor`);
      try {
        const door = scope.use(
          await openBackdoor({
            address: appSettings.backdoor,
            name,
            context: { app, ctx, container: c, loop, settings, log, server, status: () => server?.status() },
          }),
        );
        mkdirSync(settings.runDir, { recursive: true });
        scope.defer(() => rmSync(doorFile, { force: true }));
        writeFileSync(doorFile, JSON.stringify({ address: door.address, ...(door.token ? { token: door.token } : {}) }) + "\n", { mode: 0o600 });
        doorToken = door.token;
        log.info(`backdoor on ${door.address}`);
      } catch (e) {
        throw new TilthError("ERR_APP_BIND", `app "${name}" cannot open its backdoor: ${describe(e)}`, { cause: e, context: { app: name } });
      }
    }
  } catch (e) {
    // Close what the steps before opened, in reverse order, then report the step that failed.
    graceMs = 0;
    ac.abort(new CancelledError(`app ${name} cannot start`, e));
    await scope.close().catch((e2: unknown) => log.error(`closing after a failed start: ${describe(e2)}`));
    throw e;
  }

  const serve = app.serve?.bind(app);
  const done = serve ? scope.spawn(() => runloop(loop, log, serve, ac.signal, options.runloop), { name: "serve()" }).join().then(() => {}) : Promise.resolve();

  let stopping: Promise<void> | undefined;
  const stop = (o: { graceMs?: number; reason?: string } = {}): Promise<void> =>
    (stopping ??= (async () => {
      log.info(`stopping${o.reason ? ` (${o.reason})` : ""}`);
      graceMs = o.graceMs ?? 5000;
      ac.abort(new CancelledError(o.reason ?? "app stopping"));
      await scope.close();
      log.info("stopped");
    })());

  const running = app;
  return {
    name,
    app,
    get urls() {
      return [...(server?.urls ?? []), ...(running.servedUrls?.() ?? [])];
    },
    container: c,
    done,
    stop,
  };
}
