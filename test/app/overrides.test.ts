/**
 * Option overrides from the command line: `--set APP.OPTION=VALUE` and the
 * `--APP.OPTION=VALUE` shorthand, their parsing, their precedence over the
 * settings file and the environment, and their mistakes.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { Settings, SettingsError, loadSettings } from "../../app/Settings.js";
import { applyOverrides, isOverride, parseOverride } from "../../app/overrides.js";
import { UsageError, parseRunArgs } from "../../cli/run.js";
import { PingApp } from "../fixtures/apps/apps.js";

test("parseOverride: app, path inside options, JSON values or strings", () => {
  assert.deepEqual(parseOverride("svc.interval=5"), { app: "svc", path: ["interval"], value: 5, text: "svc.interval=5" });
  assert.deepEqual(parseOverride("svc.tick.jitter=0.5").path, ["tick", "jitter"]);
  assert.equal(parseOverride("svc.http.host=127.0.0.1").value, "127.0.0.1");
  assert.equal(parseOverride("svc.jobs.drain=false").value, false);
  assert.deepEqual(parseOverride('svc.rpc.bind=["drpc+tcp://127.0.0.1:1","drpc+inproc://x"]').value, ["drpc+tcp://127.0.0.1:1", "drpc+inproc://x"]);
  assert.equal(parseOverride("svc.greeting=a=b").value, "a=b", "the first = splits");
  assert.equal(parseOverride("svc.empty=").value, "");
  for (const bad of ["svc=5", "interval", ".x=1", "svc..x=1", "svc.__proto__.x=1"]) assert.throws(() => parseOverride(bad), RangeError, bad);
  assert.equal(isOverride("svc.interval=5"), true);
  assert.equal(isOverride("settings=x.json"), false);
});

test("tilth run: --set, --set=, and the --APP.OPTION=VALUE shorthand; a malformed --set is a usage error", () => {
  const a = parseRunArgs(["svc", "--set", "svc.tick.interval=5", "--set=svc.jobs.workers=2", "--svc.http.port=9100", "--settings", "x.json"]);
  assert.deepEqual(a.apps, ["svc"]);
  assert.deepEqual(a.set, ["svc.tick.interval=5", "svc.jobs.workers=2", "svc.http.port=9100"]);
  assert.equal(a.settings, "x.json");
  assert.throws(() => parseRunArgs(["svc", "--set", "interval=5"]), UsageError);
  assert.throws(() => parseRunArgs(["svc", "--set"]), UsageError);
  assert.throws(() => parseRunArgs(["svc", "--svc.interval"]), (e) => e instanceof UsageError && /unknown option --svc\.interval/.test(e.message));
});

test("overrides land in the app's options, nested, without touching the input", () => {
  const data = { apps: { svc: { class: PingApp, options: { tick: { interval: 1000, jitter: 10 } } }, other: { class: PingApp } } };
  const out = applyOverrides(data, [parseOverride("svc.tick.interval=5"), parseOverride("svc.http.port=0"), parseOverride("other.x=1")], "f.json") as typeof data;
  assert.deepEqual(out.apps.svc.options, { tick: { interval: 5, jitter: 10 }, http: { port: 0 } });
  assert.deepEqual((out.apps.other as { options?: unknown }).options, { x: 1 });
  assert.equal(data.apps.svc.options.tick.interval, 1000, "input unchanged");
  assert.equal(out.apps.svc.class, PingApp);
});

test("an override naming an unknown app, or going through a non-object, is a settings error naming it", () => {
  const data = { apps: { svc: { class: PingApp, options: { tick: 5 } } } };
  assert.throws(
    () => applyOverrides(data, [parseOverride("svx.tick.interval=5"), parseOverride("svc.tick.interval=5")], "f.json"),
    (e) => {
      assert.ok(e instanceof SettingsError);
      assert.match(e.message, /f\.json: --set svx\.tick\.interval=5: no app named "svx" \(apps: svc\)/);
      assert.match(e.message, /app "svc": options\.tick: --set svc\.tick\.interval=5: this option is 5, not an object/);
      return true;
    },
  );
});

test("precedence: settings file < environment < command line", async () => {
  const dir = mkdtempSync(join(tmpdir(), "tilth-over-"));
  try {
    const file = join(dir, "tilth.json");
    writeFileSync(file, JSON.stringify({ apps: { svc: { class: "./x.js#Y", options: { tick: { interval: 1000, jitter: 1 } } } } }));
    const env = { TILTH__APPS__SVC__OPTIONS__TICK__INTERVAL: "2000", TILTH__APPS__SVC__OPTIONS__TICK__JITTER: "2" };
    let s = await loadSettings(file, env);
    assert.deepEqual(s.app("svc").options, { tick: { interval: 2000, jitter: 2 } });
    s = await loadSettings(file, env, [parseOverride("svc.tick.interval=3000")]);
    assert.deepEqual(s.app("svc").options, { tick: { interval: 3000, jitter: 2 } });
    s = Settings.from({ apps: { svc: { class: PingApp } } }, "<inline>", {}, [parseOverride("svc.interval=5")]);
    assert.deepEqual(s.app("svc").options, { interval: 5 });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
