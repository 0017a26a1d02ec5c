/**
 * Embedding: start a tilth app or service inside an existing Node program
 * (an HTTP server, a CLI, a test) with one call, and stop it with the handle.
 * The app runs on the program's own event loop (a `NodeLoop` over Node's
 * libuv loop, unless you pass a loop) and adds no global state: two embedded
 * apps see each other only when wired by URL.
 *
 * @example
 * ```ts
 * const store = new Map<string, string>();
 * const tilth = await embed({ get: (k: string) => store.get(k) ?? null }, { name: "kv", bind: "drpc+tcp://127.0.0.1:7000" });
 * httpServer.on("close", () => void tilth.stop());
 *
 * // or a service class, with its options:
 * const svc = await embed(MailerService, { options: { rpc: { bind: "drpc+tcp://127.0.0.1:0" } } });
 * svc.app; // the MailerService instance
 * ```
 * @module
 */
import { NodeLoop } from "../adapters/node.js";
import type { Loop } from "../core/Loop.js";
import { App } from "./App.js";
import { startApp, type AppHandle, type StartOptions } from "./runtime.js";
import { Settings, loadSettings } from "./Settings.js";

export interface EmbedOptions extends Partial<Omit<StartOptions, "loop">> {
  /** The loop to run on. Default: a new NodeLoop (Node's own event loop underneath). */
  loop?: Loop;
  /** The app's name, in logs. Default: the class name, or "embedded" for an API object. */
  name?: string;
  /** RPC URL(s) to serve the app's API on. */
  bind?: string | string[];
  /** The app's options (as in a settings file). */
  options?: Record<string, unknown>;
  /** Other apps the app calls, by name: their remote URLs (`ctx.api(name)`, `@inject(client(name))`). */
  uses?: Record<string, string>;
  /**
   * With a string target: the settings that define the app (a file path, a
   * Settings, or the data of a settings file). A file's keys may be
   * overridden by `env` (default: process.env), as with `tilth run`.
   */
  settings?: string | Settings | object;
  env?: NodeJS.ProcessEnv;
}

/** A running embedded app: the handle of `startApp`, plus its loop. */
export interface Embedded extends AppHandle {
  readonly loop: Loop;
}

/**
 * Start `target` in this process: an app or service class, an API object
 * (served on `bind`), or the name of an app defined by `options.settings`.
 * Resolves once the app has started (its servers listen); `stop()` on the
 * result stops it and leaves no timer or socket behind.
 */
export async function embed(target: string | Function | object, options: EmbedOptions = {}): Promise<Embedded> {
  const { loop = new NodeLoop({ name: "tilth" }), settings: given, env, name: wanted, bind, options: appOptions, uses, ...start } = options;
  let name: string;
  let settings: Settings;
  if (typeof target === "string") {
    name = target;
    if (given === undefined) throw new TypeError(`embed("${target}"): pass the settings that define the app`);
    settings =
      typeof given === "string" ? await loadSettings(given, env ?? process.env) : given instanceof Settings ? given : Settings.from(given, "<embed>", env ?? {});
  } else {
    let cls: Function;
    if (typeof target === "function") cls = target;
    else {
      const api = target;
      cls = class EmbeddedApp extends App {
        override api = api;
      };
    }
    name = wanted ?? (typeof target === "function" ? cls.name || "embedded" : "embedded");
    const apps: Record<string, unknown> = {
      [name]: {
        class: cls,
        ...(bind === undefined ? {} : { bind }),
        ...(appOptions === undefined ? {} : { options: appOptions }),
        ...(uses === undefined ? {} : { uses: Object.keys(uses) }),
      },
    };
    // Apps it calls are known only by their URL here; their class is never loaded.
    for (const [other, url] of Object.entries(uses ?? {})) apps[other] = { class: "<remote>", remote: url };
    settings = Settings.from({ apps }, "<embed>");
  }
  const handle = await startApp(name, settings, { ...start, loop });
  // urls stays live: a Service's tasks may bind later (a restart), and port 0 resolves when they do.
  return Object.defineProperty({ ...handle, loop }, "urls", { get: () => handle.urls, enumerable: true });
}
