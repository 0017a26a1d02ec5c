/**
 * `tilth run` end to end: real child processes, bounded in time.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { fileURLToPath } from "node:url";

const cli = fileURLToPath(new URL("../../cli/main.js", import.meta.url));
const apps = fileURLToPath(new URL("../fixtures/apps/apps.js", import.meta.url));
const root = mkdtempSync(join(tmpdir(), "tilth-cli-"));
after(() => rmSync(root, { recursive: true, force: true }));
let n = 0;

function settingsFile(apps: Record<string, unknown>): { file: string; dir: string } {
  const dir = join(root, `s${n++}`);
  mkdirSync(dir);
  const file = join(dir, "tilth.json");
  writeFileSync(file, JSON.stringify({ apps }, null, 2));
  return { file, dir };
}

interface Run {
  child: ChildProcess;
  out: () => string;
  waitFor(re: RegExp, ms?: number): Promise<void>;
  exit: Promise<number | null>;
}

/** Every runner a test started: one that a failed test left running is killed at the end (its apps then see it go and stop). */
const runners = new Set<ChildProcess>();
after(() => {
  for (const c of runners) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
});

function tilth(args: string[]): Run {
  const child = spawn(process.execPath, [cli, ...args], { stdio: ["ignore", "pipe", "pipe"] });
  runners.add(child);
  child.once("exit", () => runners.delete(child));
  let text = "";
  const waiters: { re: RegExp; resolve: () => void }[] = [];
  const feed = (c: Buffer): void => {
    text += String(c);
    for (const w of [...waiters]) if (w.re.test(text)) {
      waiters.splice(waiters.indexOf(w), 1);
      w.resolve();
    }
  };
  child.stdout!.on("data", feed);
  child.stderr!.on("data", feed);
  const exit = new Promise<number | null>((r) => child.on("exit", (code) => r(code)));
  return {
    child,
    out: () => text,
    exit,
    waitFor(re, ms = 15_000) {
      if (re.test(text)) return Promise.resolve();
      return new Promise((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`timed out waiting for ${re} in:\n${text}`)), ms);
        waiters.push({ re, resolve: () => (clearTimeout(t), resolve()) });
      });
    },
  };
}

function tilthSync(args: string[]): { code: number | null; out: string } {
  const r = spawnSync(process.execPath, [cli, ...args], { encoding: "utf8", timeout: 30_000 });
  return { code: r.status, out: r.stdout + r.stderr };
}

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

for (const together of [false, true]) {
  test(`tilth run ping caller${together ? " --together" : ""}: log lines within seconds, graceful stop on SIGTERM, nothing left behind`, { timeout: 60_000 }, async () => {
    const { file, dir } = settingsFile({
      ping: { class: `${apps}#PingApp`, bind: `drpc+ipc://${join(root, `ping${n}.sock`)}` },
      caller: { class: `${apps}#CallerApp`, uses: ["ping"], options: { interval: 100 } },
    });
    const run = tilth(["run", "ping", "caller", "--settings", file, ...(together ? ["--together"] : [])]);
    try {
      await run.waitFor(/\d\d:\d\d:\d\d\.\d{3} ping INFO tilth\.app: binding to drpc\+ipc:/);
      await run.waitFor(/\d\d:\d\d:\d\d\.\d{3} caller INFO CallerApp: ping: 'pong'/);
      const pids = ["ping", "caller"].map((a) => Number(readFileSync(join(dir, ".tilth", `${a}.pid`), "utf8")));
      if (!together) assert.ok(!pids.includes(run.child.pid!), "apps run in their own processes");
      const st = tilthSync(["run", "--status", "--settings", file]);
      assert.equal(st.code, 0, st.out);
      assert.match(st.out, /ping: running \(pid \d+\)/);
      run.child.kill("SIGTERM");
      assert.equal(await run.exit, 0, run.out());
      assert.match(run.out(), /caller INFO tilth\.app: stopped/);
      assert.match(run.out(), /ping INFO tilth\.app: stopped/);
      for (const pid of pids) assert.equal(alive(pid), false, `process ${pid} outlived the run`);
      assert.equal(existsSync(join(dir, ".tilth", "ping.pid")), false, "pidfile left behind");
    } finally {
      run.child.kill("SIGKILL");
    }
  });
}

test("tilth run --json: every line the runner and its apps write is a JSON object shaped like pino's (level number, time in ms, app, name, msg)", { timeout: 60_000 }, async () => {
  const { file } = settingsFile({
    ping: { class: `${apps}#PingApp`, bind: `drpc+ipc://${join(root, `ping${n}.sock`)}` },
    caller: { class: `${apps}#CallerApp`, uses: ["ping"], options: { interval: 100 } },
  });
  const run = tilth(["run", "ping", "caller", "--settings", file, "--json"]);
  try {
    await run.waitFor(/"msg":"ping: 'pong'"/);
    run.child.kill("SIGTERM");
    assert.equal(await run.exit, 0, run.out());
  } finally {
    run.child.kill("SIGKILL");
  }
  const lines = run.out().split("\n").filter((l) => l.length > 0);
  const records = lines.map((l) => {
    const r = JSON.parse(l) as Record<string, unknown>; // throws on a line that is not JSON
    assert.equal(typeof r.level, "number", l);
    assert.ok([10, 20, 30, 40, 50, 60].includes(r.level as number), l);
    assert.equal(typeof r.time, "number", l);
    assert.ok(Math.abs((r.time as number) - Date.now()) < 60_000, `time in ms since the epoch: ${l}`);
    assert.equal(typeof r.msg, "string", l);
    assert.deepEqual(Object.keys(r).slice(0, 2), ["level", "time"], l);
    return r;
  });
  const binding = records.find((r) => r.app === "ping" && r.name === "tilth.app" && /^binding to drpc\+ipc:/.test(r.msg as string));
  assert.ok(binding, lines.join("\n"));
  assert.equal(binding.level, 30);
  assert.ok(records.some((r) => r.app === "caller" && r.name === "CallerApp" && r.msg === "ping: 'pong'"));
});

test("tilth run --stop stops running apps; a stale pidfile is reported and removed", { timeout: 60_000 }, async () => {
  const { file, dir } = settingsFile({ ping: { class: `${apps}#PingApp`, bind: `drpc+ipc://${join(root, `p${n}.sock`)}` }, other: { class: `${apps}#PingApp` } });
  const run = tilth(["run", "ping", "--settings", file]);
  try {
    await run.waitFor(/binding to/);
    await run.waitFor(/./); // started
    // a stale pidfile for "other": a process that has exited
    const dead = spawnSync(process.execPath, ["-e", "process.stdout.write(String(process.pid))"], { encoding: "utf8" });
    writeFileSync(join(dir, ".tilth", "other.pid"), `${dead.stdout}\n`);
    for (let i = 0; i < 100 && !existsSync(join(dir, ".tilth", "ping.pid")); i++) await new Promise((r) => setTimeout(r, 50));
    const stop = tilthSync(["run", "--stop", "--settings", file]);
    assert.equal(stop.code, 0, stop.out);
    assert.match(stop.out, /ping: stopped \(pid \d+\)/);
    assert.match(stop.out, new RegExp(`other: not running \\(stale pidfile for pid ${dead.stdout} removed\\)`));
    assert.equal(existsSync(join(dir, ".tilth", "other.pid")), false);
    // the runner saw its child stop and exits when nothing is left to run
    const code = await run.exit;
    assert.notEqual(code, null);
  } finally {
    run.child.kill("SIGKILL");
  }
});

test("a crashing app process is restarted by its policy", { timeout: 60_000 }, async () => {
  const { file } = settingsFile({ exiting: { class: `${apps}#ExitingApp` } });
  const run = tilth(["run", "exiting", "--settings", file]);
  try {
    await run.waitFor(/app exiting exited with code 1; restarting in \d+ ms/);
    await run.waitFor(/about to exit[\s\S]*about to exit/); // started again
    run.child.kill("SIGTERM");
    await run.exit;
  } finally {
    run.child.kill("SIGKILL");
  }
});

test("bad settings and bad command lines: a clear message naming the culprit, non-zero exit", { timeout: 60_000 }, async () => {
  const missing = settingsFile({ ping: { class: "./nowhere.js#PingApp" } });
  let r = tilthSync(["run", "ping", "--settings", missing.file]);
  assert.equal(r.code, 2);
  assert.match(r.out, /app "ping": class: cannot load module "\.\/nowhere\.js"/);

  const ok = settingsFile({ ping: { class: `${apps}#PingApp`, bind: "drpc+tcp://127.0.0.1:9" } });
  r = tilthSync(["run", "pong", "--settings", ok.file]);
  assert.equal(r.code, 2);
  assert.match(r.out, /no app named "pong" \(apps: ping\)/);

  const badUrl = settingsFile({ ping: { class: `${apps}#PingApp`, bind: "drpc+tcp//127.0.0.1" } });
  r = tilthSync(["run", "ping", "--settings", badUrl.file]);
  assert.equal(r.code, 2);
  assert.match(r.out, /app "ping": bind: invalid URL "drpc\+tcp\/\/127\.0\.0\.1"/);

  const twice = settingsFile({ a: { class: `${apps}#PingApp`, bind: "drpc+tcp://127.0.0.1:7001" }, b: { class: `${apps}#PingApp`, bind: "drpc+tcp://127.0.0.1:7001" } });
  r = tilthSync(["run", "a", "b", "--settings", twice.file]);
  assert.equal(r.code, 2);
  assert.match(r.out, /app "b": bind: drpc\+tcp:\/\/127\.0\.0\.1:7001 is also bound by app "a"/);

  r = tilthSync(["run", "ping", "--settings", join(root, "absent.json")]);
  assert.equal(r.code, 2);
  assert.match(r.out, /settings file not found/);

  r = tilthSync(["frobnicate"]);
  assert.equal(r.code, 2);
  assert.match(r.out, /unknown command "frobnicate"/);
});

test("a port in use: the app cannot start, the runner says which URL and exits non-zero", { timeout: 60_000 }, async () => {
  const blocker = net.createServer();
  await new Promise<void>((r) => blocker.listen(0, "127.0.0.1", r));
  const port = (blocker.address() as net.AddressInfo).port;
  try {
    const { file } = settingsFile({ ping: { class: `${apps}#PingApp`, bind: `drpc+tcp://127.0.0.1:${port}` } });
    for (const mode of [[], ["--together"]]) {
      const r = tilthSync(["run", "ping", "--settings", file, ...mode]);
      assert.notEqual(r.code, 0, r.out);
      assert.match(r.out, new RegExp(`app "ping" cannot bind drpc\\+tcp://127\\.0\\.0\\.1:${port}.*(in use|EADDRINUSE)`, "i"));
    }
  } finally {
    await new Promise<void>((r) => blocker.close(() => r()));
  }
});

test("tilth run --reload restarts the apps when a file under the settings folder changes", { timeout: 60_000 }, async () => {
  const { file, dir } = settingsFile({ ping: { class: `${apps}#PingApp`, bind: `drpc+ipc://${join(root, `r${n}.sock`)}` } });
  const run = tilth(["run", "ping", "--settings", file, "--reload"]);
  try {
    await run.waitFor(/reloading on changes under/);
    await run.waitFor(/binding to/);
    await new Promise((r) => setTimeout(r, 500)); // the app's own pidfile must not count as a change
    assert.doesNotMatch(run.out(), /files changed/);
    writeFileSync(join(dir, "changed.txt"), "x");
    await run.waitFor(/files changed: restarting apps/);
    await run.waitFor(/binding to[\s\S]*binding to/);
    run.child.kill("SIGTERM");
    assert.equal(await run.exit, 0, run.out());
  } finally {
    run.child.kill("SIGKILL");
  }
});

test("tilth run --stop APP is honoured for an app with restart: always; the runner does not restart it", { timeout: 60_000 }, async () => {
  const { file, dir } = settingsFile({ ping: { class: `${apps}#PingApp`, bind: `drpc+ipc://${join(root, `a${n}.sock`)}`, restart: "always" } });
  const run = tilth(["run", "ping", "--settings", file]);
  try {
    await run.waitFor(/binding to/);
    for (let i = 0; i < 100 && !existsSync(join(dir, ".tilth", "ping.pid")); i++) await new Promise((r) => setTimeout(r, 50));
    const stop = tilthSync(["run", "--stop", "ping", "--settings", file]);
    assert.equal(stop.code, 0, stop.out);
    assert.match(stop.out, /ping: stopped \(pid \d+\)/);
    await run.waitFor(/app ping exited with code 0 after tilth run --stop; not restarted/, 10_000);
    assert.equal(await run.exit, 0, run.out());
    assert.doesNotMatch(run.out(), /restarting/);
    assert.equal(existsSync(join(dir, ".tilth", "ping.stop")), false, "the stop request was used up");
  } finally {
    run.child.kill("SIGKILL");
  }
});

test("the runner stops a child that ignores SIGTERM with SIGKILL after run.stopTimeout", { timeout: 60_000 }, async () => {
  const { file, dir } = settingsFile({ stubborn: { class: `${apps}#StubbornApp` } });
  const data = JSON.parse(readFileSync(file, "utf8"));
  writeFileSync(file, JSON.stringify({ ...data, run: { stopTimeout: 300 } }));
  const run = tilth(["run", "stubborn", "--settings", file]);
  let pid = 0;
  try {
    await run.waitFor(/serving, deaf to stop requests/);
    pid = Number(readFileSync(join(dir, ".tilth", "stubborn.pid"), "utf8"));
    run.child.kill("SIGTERM");
    await run.waitFor(/app stubborn \(pid \d+\) did not exit within 300 ms of SIGTERM: sending SIGKILL/);
    assert.equal(await run.exit, 1, run.out());
    assert.equal(alive(pid), false, "the child outlived the runner");
    assert.equal(existsSync(join(dir, ".tilth", "stubborn.pid")), false, "the killed child's pidfile is removed");
  } finally {
    run.child.kill("SIGKILL");
    if (pid > 0 && alive(pid)) process.kill(pid, "SIGKILL");
  }
});

/** Wait until `file` holds a pid other than `not` (a process that has written its pidfile). */
async function pidIn(file: string, not?: number): Promise<number> {
  for (let i = 0; i < 300; i++) {
    const pid = existsSync(file) ? Number(readFileSync(file, "utf8")) : NaN;
    if (Number.isInteger(pid) && pid > 0 && pid !== not) return pid;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`no new pid in ${file}`);
}

const count = (text: string, re: RegExp): number => text.match(new RegExp(re.source, "g"))?.length ?? 0;

test("an app on drpc+ipc with an ipc backdoor, killed by SIGKILL, comes back on the same sockets (restart: always); the other apps keep running", { timeout: 60_000 }, async () => {
  const sock = join(root, `k${n}.sock`);
  const door = join(root, `d${n}.sock`);
  const { file, dir } = settingsFile({
    ping: { class: `${apps}#PingApp`, bind: `drpc+ipc://${sock}`, restart: "always", backdoor: `ipc://${door}` },
    caller: { class: `${apps}#CallerApp`, uses: ["ping"], options: { interval: 100 } },
    other: { class: `${apps}#PingApp`, bind: `drpc+ipc://${join(root, `o${n}.sock`)}` },
  });
  const run = tilth(["run", "ping", "caller", "other", "--settings", file]);
  try {
    await run.waitFor(/caller INFO CallerApp: ping: 'pong'/);
    const ping = await pidIn(join(dir, ".tilth", "ping.pid"));
    const others = await Promise.all(["caller", "other"].map((a) => pidIn(join(dir, ".tilth", `${a}.pid`))));
    process.kill(ping, "SIGKILL");
    await run.waitFor(/app ping was killed by SIGKILL; restarting in \d+ ms/);
    assert.ok(existsSync(sock) && existsSync(door), "the killed app left its socket files");
    await run.waitFor(new RegExp(`(ping INFO tilth\\.app: binding to drpc\\+ipc://${sock}[\\s\\S]*){2}`));
    await run.waitFor(new RegExp(`(ping INFO tilth\\.app: backdoor on ipc://${door}[\\s\\S]*){2}`));
    const pongs = count(run.out(), /ping: 'pong'/);
    await run.waitFor(new RegExp(`(ping: 'pong'[\\s\\S]*){${pongs + 2}}`), 20_000);
    assert.notEqual(await pidIn(join(dir, ".tilth", "ping.pid"), ping), ping, "ping runs in a new process");
    for (const pid of others) assert.equal(alive(pid), true, "another app was stopped");
    assert.doesNotMatch(run.out(), /cannot start|stopping \(/);
    run.child.kill("SIGTERM");
    assert.equal(await run.exit, 0, run.out());
  } finally {
    run.child.kill("SIGKILL");
  }
});

test("an app that ran and then cannot start again (its port taken) is retried with backoff; the other apps keep running", { timeout: 60_000 }, async () => {
  const probe = net.createServer();
  await new Promise<void>((r) => probe.listen(0, "127.0.0.1", r));
  const port = (probe.address() as net.AddressInfo).port;
  await new Promise<void>((r) => probe.close(() => r()));
  const { file, dir } = settingsFile({
    ping: { class: `${apps}#PingApp`, bind: `drpc+tcp://127.0.0.1:${port}`, restart: "always" },
    other: { class: `${apps}#PingApp`, bind: `drpc+ipc://${join(root, `q${n}.sock`)}` },
  });
  const run = tilth(["run", "ping", "other", "--settings", file]);
  const blocker = net.createServer((s) => s.destroy());
  try {
    await run.waitFor(/ping INFO tilth\.app: binding to/);
    const ping = await pidIn(join(dir, ".tilth", "ping.pid"));
    const other = await pidIn(join(dir, ".tilth", "other.pid"));
    process.kill(ping, "SIGKILL");
    await run.waitFor(/app ping was killed by SIGKILL; restarting in \d+ ms/);
    // Another process takes the port before the restart.
    await new Promise<void>((resolve, reject) => blocker.once("error", reject).listen(port, "127.0.0.1", resolve));
    await run.waitFor(/app ping could not start again \(see its error above\); restarting in \d+ ms/, 20_000);
    assert.equal(alive(other), true, "the other app was stopped");
    assert.doesNotMatch(run.out(), /stopping \(an app cannot start\)/);
    await new Promise<void>((r) => blocker.close(() => r()));
    let call = tilthSync(["call", "ping", "ping", "--settings", file]);
    for (let i = 0; i < 100 && call.code !== 0; i++) {
      await new Promise((r) => setTimeout(r, 200));
      call = tilthSync(["call", "ping", "ping", "--settings", file]);
    }
    assert.equal(call.out.trim(), '"pong"', "ping came back once its port was free");
    run.child.kill("SIGTERM");
    assert.equal(await run.exit, 0, run.out());
    assert.equal(alive(other), false);
  } finally {
    run.child.kill("SIGKILL");
    if (blocker.listening) blocker.close();
  }
});
