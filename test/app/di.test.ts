/**
 * Dependency injection as an app file meets it: the decorators come from
 * tilth/app (the same tsyringe copy as tilth's), and a class compiled
 * without the decorator settings, or decorated by another tsyringe copy,
 * gets an error that says what to change.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { VirtualLoop } from "../../adapters/virtual.js";
import { App, AppContext, client, inject, injectable, type Remote } from "../../app/index.js"; // loads reflect-metadata, as an app file relies on
import * as tsyringe from "tsyringe";
import { SettingsError, Settings } from "../../app/Settings.js";
import { startApp } from "../../app/runtime.js";
import * as root from "../../index.js";

test("tilth/app gives an app file tsyringe's decorators and the Remote type; the root export has App and embed", async () => {
  assert.equal(injectable, tsyringe.injectable);
  assert.equal(inject, tsyringe.inject);
  assert.equal(typeof root.App, "function");
  assert.equal(typeof root.embed, "function");
  assert.equal(typeof root.injectable, "function");

  @injectable()
  class Pinger extends App {
    constructor(
      ctx: AppContext,
      @inject(client("other")) readonly other: Remote<{ ping(): Promise<string> }>,
    ) {
      super(ctx);
    }
  }
  const loop = new VirtualLoop();
  const settings = Settings.from({ apps: { p: { class: Pinger, uses: ["other"] }, other: { class: "<remote>", remote: "drpc+inproc://other" } } });
  await loop.run(async () => {
    const h = await startApp("p", settings, { loop, log: { write: () => {} } });
    assert.equal(typeof (h.app as Pinger).other.ping, "function", "the client was injected");
    await h.stop();
  });
});

/** The problems of the SettingsError that starting `cls` as an app throws. */
async function startError(cls: Function): Promise<string> {
  const loop = new VirtualLoop();
  const settings = Settings.from({ apps: { a: { class: cls } } });
  let message = "";
  await loop.run(async () => {
    await assert.rejects(startApp("a", settings, { loop, log: { write: () => {} } }), (e: unknown) => {
      assert.ok(e instanceof SettingsError);
      message = e.problems.map((p) => p.message).join("\n");
      return true;
    });
  });
  return message;
}

test("an app class with constructor parameters but no decorator metadata: the error names the two tsconfig settings", async () => {
  // What a class looks like compiled without experimentalDecorators/emitDecoratorMetadata: no design:paramtypes.
  class NoMetadata extends App {
    constructor(
      ctx: AppContext,
      readonly other: unknown,
    ) {
      super(ctx);
    }
  }
  const message = await startError(NoMetadata);
  assert.match(message, /NoMetadata's constructor takes 2 parameters, but the class carries no type metadata/);
  assert.match(message, /@injectable\(\) \(from "tilth\/app"\).*"experimentalDecorators": true and "emitDecoratorMetadata": true/);
  assert.match(message, /\[ERR_DI_METADATA\]/);
});

test("an app class decorated by a second copy of tsyringe: the error says to import injectable from tilth/app", async () => {
  class OtherCopy extends App {
    constructor(
      ctx: AppContext,
      readonly other: AppContext,
    ) {
      super(ctx);
    }
  }
  // A second tsyringe copy's @injectable() writes the metadata (emitDecoratorMetadata) but registers the class in its own registry.
  Reflect.defineMetadata("design:paramtypes", [AppContext, AppContext], OtherCopy);
  const message = await startError(OtherCopy);
  assert.match(message, /OtherCopy is not known to tilth's injector: decorate it with @injectable\(\) imported from "tilth\/app"/);
});
