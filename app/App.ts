/**
 * Apps: a long-running `serve()` and/or an `api` object that tilth serves on
 * the app's bind URL(s).
 *
 * @example
 * ```ts
 * @injectable()
 * export class PingApp extends App {
 *   api = { ping: async () => "pong" };
 * }
 *
 * @injectable()
 * export class LongRunningApp extends App {
 *   constructor(ctx: AppContext, @inject(client("ping")) private ping: Remote<PingAPI>) { super(ctx); }
 *   async serve(signal: AbortSignal) {
 *     for (;;) {
 *       this.log.info(`ping: ${inspect(await this.ping.ping())}`);
 *       await this.sleep(1000);
 *     }
 *   }
 * }
 * ```
 * @module
 */
import "reflect-metadata";
import type { DependencyContainer } from "tsyringe";
import type { Loop } from "../core/Loop.js";
import { sleep } from "../core/time.js";
import type { Remote } from "../rpc/Client.js";
import type { Logger } from "./Logger.js";
import type { Settings } from "./Settings.js";

/** DI token of the app's Loop (an interface, so it needs a token). */
export const LOOP = Symbol.for("tilth.Loop");

/** DI token of the typed client of another app, declared in the settings' `uses`. */
export function client(appName: string): string {
  return `tilth.client:${appName}`;
}

/** What an app knows about where it runs. Injected into apps and tasks. */
export class AppContext {
  readonly name: string;
  readonly loop: Loop;
  readonly settings: Settings;
  /** The app's logger (name `tilth.app`); `log.child(name)` for others. */
  readonly log: Logger;
  /** Aborts when the app is stopping, with the reason. */
  readonly signal: AbortSignal;
  /** The app's DI container (a child container per app), when it was started by the runtime. */
  readonly container: DependencyContainer | undefined;
  readonly #api: <T>(app: string) => Remote<T>;
  readonly #debugToken: () => string | undefined;

  constructor(
    name: string,
    loop: Loop,
    settings: Settings,
    log: Logger,
    signal: AbortSignal,
    api: <T>(app: string) => Remote<T>,
    container?: DependencyContainer,
    debugToken: () => string | undefined = () => undefined,
  ) {
    this.name = name;
    this.loop = loop;
    this.settings = settings;
    this.log = log;
    this.signal = signal;
    this.#api = api;
    this.container = container;
    this.#debugToken = debugToken;
  }

  /**
   * The token the debug API asks for on listeners that are not loopback (when
   * the app's settings enable it with `debugRemote`): its backdoor's, once
   * open; undefined without one. An `RpcServerTask` passes it to its server.
   */
  debugToken(): string | undefined {
    return this.#debugToken();
  }

  /** The app's `options` from the settings (after command-line and environment overrides). */
  get options(): Record<string, unknown> {
    return this.settings.app(this.name).options;
  }

  /** A typed client of another app, by name (its remote URL from the settings). One per app, shared. */
  api<T>(app: string): Remote<T> {
    return this.#api<T>(app);
  }
}

/** Base class of apps. Subclasses set `api`, implement `serve`, or both. */
export abstract class App {
  readonly ctx: AppContext;
  #log: Logger | undefined;
  /** The API object served on the app's bind URLs. */
  api?: object;

  constructor(ctx: AppContext) {
    this.ctx = ctx;
  }

  /**
   * Called once after the app's server is bound and before `serve()`:
   * `startApp` resolves only when it has. If it throws, the app does not
   * start (`ERR_APP_START`, or the SettingsError it threw). `signal` aborts
   * if the app is stopped meanwhile.
   */
  start?(signal: AbortSignal): Promise<void> | void;

  /**
   * The app's long-running work. Restarted with backoff when it throws
   * (`runloop`); should return when `signal` aborts.
   */
  serve?(signal: AbortSignal): Promise<void>;

  /** Called once when the app stops, after `serve` ended and before the server closes. */
  stop?(): Promise<void> | void;

  /**
   * The URLs the app serves on besides its `bind` ones, while it runs (a
   * Service's RPC tasks): listed on its handle's `urls`.
   */
  servedUrls?(): string[];

  get loop(): Loop {
    return this.ctx.loop;
  }

  /** A logger named after the app's class. */
  get log(): Logger {
    return (this.#log ??= this.ctx.log.child(this.constructor.name));
  }

  /** Sleep on the app's loop; rejects when the app stops. */
  sleep(ms: number): Promise<void> {
    return sleep(this.ctx.loop, ms, { signal: this.ctx.signal });
  }
}
