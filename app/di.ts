/**
 * Dependency injection for app files: tsyringe's decorators, re-exported so
 * that an app uses the same tsyringe copy as tilth (a second copy keeps its
 * own registry, and tilth would not know the class), and reflect-metadata,
 * loaded here so that an app need not import it.
 *
 * The decorators need two settings in the app's tsconfig.json:
 * `"experimentalDecorators": true` and `"emitDecoratorMetadata": true`.
 *
 * @example
 * ```ts
 * import { App, AppContext, client, inject, injectable, type Remote } from "tilth/app";
 *
 * @injectable()
 * export class LongRunningApp extends App {
 *   constructor(ctx: AppContext, @inject(client("ping")) private ping: Remote<{ ping(): Promise<string> }>) { super(ctx); }
 * }
 * ```
 * @module
 */
import "reflect-metadata";
import type { DependencyContainer } from "tsyringe";
import { TilthError } from "../core/errors.js";
import type { AppContext } from "./App.js";

export { container, delay, inject, injectAll, injectable, registry, singleton, Lifecycle, type DependencyContainer } from "tsyringe";
export type { Remote } from "../rpc/Client.js";

/** The tsconfig.json settings that class decorators and constructor injection need. */
const FLAGS = '"experimentalDecorators": true and "emitDecoratorMetadata": true';

/**
 * Construct an app or task class: through DI when it carries decorator
 * metadata (`@injectable()`), else `new Cls(ctx)`. A class whose constructor
 * takes more than the context but has no metadata was compiled without the
 * decorator settings or left undecorated: ERR_DI_METADATA says which.
 */
export function constructWithDi<T extends object>(cls: Function, ctx: AppContext, c: DependencyContainer | undefined = ctx.container): T {
  const decorated = Reflect.getMetadata("design:paramtypes", cls) !== undefined;
  if (!decorated || c === undefined) {
    if (cls.length > 1)
      throw new TilthError(
        "ERR_DI_METADATA",
        `${cls.name || "the class"}'s constructor takes ${cls.length} parameters, but the class carries no type metadata for injection: ` +
          `decorate it with @injectable() (from "tilth/app") and compile with ${FLAGS} in tsconfig.json`,
      );
    return new (cls as new (ctx: AppContext) => T)(ctx);
  }
  try {
    return c.resolve(cls as unknown as new (...a: any[]) => T);
  } catch (e) {
    // tsyringe's words when the class was decorated by another tsyringe copy than tilth's.
    if (e instanceof Error && /TypeInfo not known/.test(e.message))
      throw new TilthError(
        "ERR_DI_METADATA",
        `${cls.name || "the class"} is not known to tilth's injector: decorate it with @injectable() imported from "tilth/app" ` +
          `(a second copy of tsyringe in node_modules keeps its own registry), and compile with ${FLAGS}`,
        { cause: e },
      );
    throw e;
  }
}

