import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { NodeLoop } from "../../adapters/node.js";
import { leakCheck } from "../helpers/leaks.js";
import { loopConformance } from "../../testing/index.js";

loopConformance("NodeLoop", () => {
  const errors: unknown[] = [];
  const done = leakCheck();
  const loop = new NodeLoop({ onError: (e) => errors.push(e) });
  return {
    loop,
    drive: (body) => body(),
    reported: () => errors,
    teardown: done,
  };
});

const loopModule = fileURLToPath(new URL("../../adapters/node.js", import.meta.url));

test("NodeLoop: an unref'd timer does not keep the process alive, a ref'd one does", () => {
  const script = (unref: boolean): string => `
    import { NodeLoop } from ${JSON.stringify(loopModule)};
    const loop = new NodeLoop();
    const t = loop.timer(${unref ? 60_000 : 30}, () => console.log("fired"));
    ${unref ? "t.unref();" : ""}
  `;
  const a = spawnSync(process.execPath, ["--input-type=module", "-e", script(true)], { timeout: 20_000, encoding: "utf8" });
  assert.equal(a.status, 0);
  assert.equal(a.stdout, "", "the unref'd timer should not have fired");
  const b = spawnSync(process.execPath, ["--input-type=module", "-e", script(false)], { timeout: 20_000, encoding: "utf8" });
  assert.equal(b.status, 0);
  assert.equal(b.stdout.trim(), "fired");
});

test("NodeLoop: a cancelled long timer does not keep the process alive", () => {
  const src = `
    import { NodeLoop } from ${JSON.stringify(loopModule)};
    const loop = new NodeLoop();
    const t = loop.timer(60_000, () => console.log("fired"));
    loop.post(() => t.cancel());
  `;
  const r = spawnSync(process.execPath, ["--input-type=module", "-e", src], { timeout: 20_000, encoding: "utf8" });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout, "");
});

test("NodeLoop: a throwing callback without onError surfaces as an uncaught exception", () => {
  const src = `
    import { NodeLoop } from ${JSON.stringify(loopModule)};
    const loop = new NodeLoop();
    process.on("uncaughtException", (e) => { console.log("caught", e.message); });
    loop.post(() => { throw new Error("bad callback"); });
    loop.post(() => console.log("next ran"));
  `;
  const r = spawnSync(process.execPath, ["--input-type=module", "-e", src], { timeout: 20_000, encoding: "utf8" });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /caught bad callback/);
  assert.match(r.stdout, /next ran/);
});
