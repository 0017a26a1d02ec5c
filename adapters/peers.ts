/**
 * Optional peer dependencies: zeromq (the zmq transports and zrpc) and rxjs
 * (the RxJS adapter) are installed by the apps that use them, not by every
 * app that depends on tilth. Each is loaded where it is first used; when it
 * is missing, the error names the package to install.
 *
 * @example
 * ```ts
 * try { await loop.connect("zmq+tcp://127.0.0.1:5555") }
 * catch (e) { if (isTilthError(e, "ERR_MISSING_PACKAGE")) console.error(e.message) } // ... run `npm install zeromq`
 * ```
 * @module
 */
import { createRequire } from "node:module";
import { TilthError, type TilthErrorOptions } from "../core/errors.js";

/** An optional peer dependency that a feature needs is not installed. `packageName` names it. */
export class MissingPackageError extends TilthError {
  readonly packageName: string;
  constructor(packageName: string, what: string, options: TilthErrorOptions = {}) {
    super(
      "ERR_MISSING_PACKAGE",
      `${what} needs the package "${packageName}", which is not installed (tilth lists it as an optional peer dependency): run \`npm install ${packageName}\``,
      { ...options, context: { package: packageName, ...options.context } },
    );
    this.packageName = packageName;
  }
}

/** Whether `e` says that package `name` itself (not one of its files or dependencies) cannot be found. */
function isMissing(e: unknown, name: string): boolean {
  const code = (e as { code?: unknown } | null)?.code;
  if (code !== "ERR_MODULE_NOT_FOUND" && code !== "MODULE_NOT_FOUND") return false;
  const message = e instanceof Error ? e.message : "";
  return message.includes(`'${name}'`) || message.includes(`"${name}"`);
}

const require = createRequire(import.meta.url);

/** Load CommonJS-compatible package `name` synchronously; MissingPackageError when it is not installed. */
export function requirePeer<T>(name: string, what: string, load: (name: string) => unknown = require): T {
  try {
    return load(name) as T;
  } catch (e) {
    if (isMissing(e, name)) throw new MissingPackageError(name, what, { cause: e });
    throw e;
  }
}

/** Import package `name`; MissingPackageError when it is not installed. */
export async function importPeer<T>(name: string, what: string, load: (name: string) => Promise<unknown> = (n) => import(n)): Promise<T> {
  try {
    return (await load(name)) as T;
  } catch (e) {
    if (isMissing(e, name)) throw new MissingPackageError(name, what, { cause: e });
    throw e;
  }
}
