import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { Settings, SettingsError, loadSettings } from "../../app/Settings.js";
import { PingApp } from "../fixtures/apps/apps.js";

const appsModule = fileURLToPath(new URL("../fixtures/apps/apps.js", import.meta.url));

function problems(fn: () => unknown): string[] {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof SettingsError, String(e));
    assert.equal(e.code, "ERR_SETTINGS");
    return e.problems.map((p) => `${p.app ?? "-"} ${p.key}: ${p.message}`);
  }
  assert.fail("no SettingsError");
}

test("a valid settings object: apps, URLs, defaults", () => {
  const s = Settings.from({ apps: { ping: { class: PingApp, bind: "drpc+tcp://127.0.0.1:9990" }, caller: { class: "./x.js#Y", uses: ["ping"] } } });
  assert.deepEqual(s.names, ["ping", "caller"]);
  assert.deepEqual(s.bindUrls("ping"), ["drpc+tcp://127.0.0.1:9990"]);
  assert.equal(s.remoteUrl("ping"), "drpc+tcp://127.0.0.1:9990");
  assert.equal(s.app("caller").restart, "on-failure");
  assert.deepEqual(s.app("caller").options, {});
});

test("every mistake is reported with the app and the key", () => {
  const got = problems(() =>
    Settings.from({
      apps: {
        a: { bind: "drpc+tcp://127.0.0.1:1" },
        b: { class: "./b.js", bind: "nonsense", restart: "sometimes" },
        c: { class: "./c.js", remote: "drpc+tcp://no-port", extra: 1 },
        d: { class: "./d.js", bind: "drpc+tcp://127.0.0.1:1", uses: ["nobody"] },
      },
    }),
  );
  const joined = got.join("\n");
  assert.match(joined, /^a class: missing: the app's class/m, "missing class");
  assert.match(joined, /^b bind: invalid URL "nonsense": expected PROTOCOL\+TRANSPORT/m, "bad URL");
  assert.match(joined, /^b restart: .*"on-failure"\|"always"\|"never"/m, "bad enum");
  assert.match(joined, /^c remote: .*needs a host and a port/m);
  assert.match(joined, /^c : Unrecognized key: "extra"/m, "unknown key");
  assert.equal(got.length, 5);
});

test("two apps on one URL are refused, naming both", () => {
  const got = problems(() =>
    Settings.from({ apps: { a: { class: "./a.js", bind: "drpc+tcp://127.0.0.1:7000" }, b: { class: "./b.js", bind: ["drpc+tcp://127.0.0.1:7000"] } } }),
  );
  assert.deepEqual(got, ['b bind: drpc+tcp://127.0.0.1:7000 is also bound by app "a"']);
});

test("an unknown app in `uses` and an unknown app name are named with the known ones", () => {
  assert.deepEqual(problems(() => Settings.from({ apps: { a: { class: "./a.js", uses: ["zed"] } } })), ['a uses: uses unknown app "zed" (apps: a)']);
  const s = Settings.from({ apps: { a: { class: "./a.js" } } });
  assert.match(problems(() => s.app("nope"))[0]!, /no app named "nope" \(apps: a\)/);
});

test("environment variables override keys", () => {
  const s = Settings.from(
    { apps: { long_running: { class: "./a.js", options: { interval: 1000 } } } },
    "<inline>",
    { TILTH__APPS__LONG_RUNNING__OPTIONS__INTERVAL: "250", TILTH__APPS__LONG_RUNNING__BIND: "drpc+inproc://lr" },
  );
  assert.equal(s.app("long_running").options.interval, 250);
  assert.deepEqual(s.bindUrls("long_running"), ["drpc+inproc://lr"]);
});

test("files: .json and .mjs load; a missing class module or export is reported", async () => {
  const dir = mkdtempSync(join(tmpdir(), "tilth-settings-"));
  try {
    const json = join(dir, "tilth.json");
    writeFileSync(
      json,
      JSON.stringify({ apps: { ping: { class: `${appsModule}#PingApp`, bind: "drpc+inproc://p" }, ghost: { class: "./missing.js#Ghost" }, nope: { class: `${appsModule}#Nope` } } }),
    );
    const s = await loadSettings(json);
    assert.equal(await s.appClass("ping"), PingApp);
    await assert.rejects(s.appClass("ghost"), (e) => e instanceof SettingsError && /app "ghost": class: cannot load module "\.\/missing\.js"/.test(e.message));
    await assert.rejects(s.appClass("nope"), (e) => e instanceof SettingsError && /has no class export "Nope"/.test(e.message));
    const mjs = join(dir, "tilth.settings.mjs");
    writeFileSync(mjs, `import { PingApp } from ${JSON.stringify(appsModule)};\nexport default { apps: { ping: { class: PingApp } } };\n`);
    assert.equal(await (await loadSettings(mjs)).appClass("ping"), PingApp);
    const bad = join(dir, "bad.json");
    writeFileSync(bad, "{ not json");
    await assert.rejects(loadSettings(bad), (e) => e instanceof SettingsError && /not valid JSON/.test(e.message) && e.message.startsWith(bad));
    await assert.rejects(loadSettings(join(dir, "absent.json")), (e) => e instanceof SettingsError && /not found/.test(e.message));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
