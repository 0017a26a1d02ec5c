/**
 * Every URL an app serves on is reachable by the app's name: its bind URLs
 * and its Service's RPC task, from the settings (tilth call/inspect/shell,
 * clients of `uses`) and on the handle of a running app (embed, startApp).
 */
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { VirtualLoop } from "../../adapters/virtual.js";
import { embed } from "../../app/embed.js";
import { Settings, SettingsError } from "../../app/Settings.js";
import { startApp } from "../../app/runtime.js";
import { connect, close } from "../../rpc/index.js";
import { leakCheck } from "../helpers/leaks.js";
import { CalcService, PingApp } from "../fixtures/apps/apps.js";

const cli = fileURLToPath(new URL("../../cli/main.js", import.meta.url));
const apps = fileURLToPath(new URL("../fixtures/apps/apps.js", import.meta.url));

test("the settings resolve an app by the bind URL of its task options when it has no bind or remote", () => {
  const s = Settings.from({
    apps: {
      calcsvc: { class: CalcService, options: { rpc: { bind: ["drpc+tcp://127.0.0.1:7101", "drpc+inproc://calc"] } } },
      both: { class: PingApp, bind: "drpc+tcp://127.0.0.1:7102", options: { rpc: { bind: "drpc+tcp://127.0.0.1:7103" }, other: { x: 1 } } },
      nothing: { class: PingApp, options: { interval: 5 } },
    },
  });
  assert.deepEqual(s.serveUrls("calcsvc"), ["drpc+tcp://127.0.0.1:7101", "drpc+inproc://calc"]);
  assert.equal(s.remoteUrl("calcsvc"), "drpc+tcp://127.0.0.1:7101");
  assert.deepEqual(s.serveUrls("both"), ["drpc+tcp://127.0.0.1:7102", "drpc+tcp://127.0.0.1:7103"]);
  assert.throws(() => s.remoteUrl("nothing"), (e) => e instanceof SettingsError && /no "remote" URL, no "bind" URL, and no task option with a bind URL/.test(e.problems[0]!.message));
});

test("a Service's RPC task URLs are on the handle of startApp and embed (port 0 resolved), and a client of `uses` reaches it by name", async () => {
  const done = leakCheck();
  const svc = await embed(CalcService, { options: { rpc: { bind: "drpc+tcp://127.0.0.1:0" } }, log: { write: () => {} } });
  try {
    assert.equal(svc.urls.length, 1);
    assert.match(svc.urls[0]!, /^drpc\+tcp:\/\/127\.0\.0\.1:[1-9]\d*$/);
    const calc = await connect<{ add(a: number, b: number): number }>(svc.urls[0]!, { loop: svc.loop });
    assert.equal(await calc.add(40, 2), 42);
    await close(calc);
  } finally {
    await svc.stop();
  }
  assert.deepEqual(svc.urls, [], "no URL once stopped");
  await done();

  const loop = new VirtualLoop();
  const settings = Settings.from({ apps: { calcsvc: { class: CalcService, options: { rpc: { bind: "drpc+inproc://calcsvc" } } } } });
  await loop.run(async () => {
    const h = await startApp("calcsvc", settings, { loop, log: { write: () => {} } });
    assert.deepEqual(h.urls, ["drpc+inproc://calcsvc"]);
    await h.stop();
  });
});

test("tilth call, inspect and shell reach a running Service by its app name", { timeout: 60_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), "tilth-urls-"));
  const file = join(dir, "tilth.json");
  writeFileSync(file, JSON.stringify({ apps: { calcsvc: { class: `${apps}#CalcService`, options: { rpc: { bind: `drpc+ipc://${join(dir, "calc.sock")}` } } } } }));
  const run = spawn(process.execPath, [cli, "run", "calcsvc", "--together", "--settings", file], { stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  run.stdout!.on("data", (c: Buffer) => (out += String(c)));
  run.stderr!.on("data", (c: Buffer) => (out += String(c)));
  try {
    const tilth = (args: string[], input?: string) => spawnSync(process.execPath, [cli, ...args, "--settings", file], { encoding: "utf8", timeout: 30_000, ...(input ? { input } : {}) });
    let r = tilth(["call", "calcsvc", "add", "1", "2"]);
    for (let i = 0; i < 100 && r.status !== 0; i++) {
      await new Promise((res) => setTimeout(res, 100)); // until the service has bound its socket
      r = tilth(["call", "calcsvc", "add", "1", "2"]);
    }
    assert.equal(r.status, 0, `${r.stderr}\n${out}`);
    assert.equal(r.stdout, "3\n");
    r = tilth(["inspect", "calcsvc"]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /add\(a, b\) +call/);
    r = tilth(["shell", "calcsvc"], "await calcsvc.add(20, 22)\n");
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /42/);
    r = spawnSync(process.execPath, [cli, "run", "--list", "--settings", file], { encoding: "utf8" });
    assert.match(r.stdout, /^calcsvc\t.*#CalcService\tdrpc\+ipc:\/\/.*calc\.sock\n$/);
  } finally {
    run.kill("SIGTERM");
    if (run.exitCode === null) await once(run, "exit");
    rmSync(dir, { recursive: true, force: true });
  }
});
