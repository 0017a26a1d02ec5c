/**
 * The backdoor: a REPL into a live process, on a unix socket (0600) or
 * loopback TCP with a token; `tilth backdoor` attaches to it.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { fileURLToPath } from "node:url";
import { openBackdoor } from "../../app/backdoor.js";
import { isTilthError } from "../../core/errors.js";
import { leakCheck } from "../helpers/leaks.js";
import { staleSocket } from "../helpers/stale-socket.js";

const cli = fileURLToPath(new URL("../../cli/main.js", import.meta.url));
const dir = mkdtempSync(join(tmpdir(), "tilth-door-"));
after(() => rmSync(dir, { recursive: true, force: true }));

/** Run `tilth backdoor ...` with `input` piped in; resolves with its exit code and output. */
async function attach(args: string[], input: string): Promise<{ code: number | null; out: string }> {
  const child = spawn(process.execPath, [cli, "backdoor", ...args], { stdio: ["pipe", "pipe", "pipe"] });
  let out = "";
  let exited = false;
  child.on("exit", () => (exited = true));
  child.stdout.on("data", (c: Buffer) => (out += String(c)));
  child.stderr.on("data", (c: Buffer) => (out += String(c)));
  // type a line once the prompt shows, like a person would
  const lines = input.split("\n").filter(Boolean);
  const settle = async (): Promise<void> => {
    // until the output has been quiet for 100 ms (bounded)
    for (let i = 0, last = -1, quiet = 0; i < 500 && quiet < 10 && !exited; i++) {
      await new Promise((r) => setTimeout(r, 10));
      if (out.length === last) quiet++;
      else (quiet = 0), (last = out.length);
    }
  };
  const typing = (async () => {
    for (let i = 0; i < 500 && !out.includes("> ") && !exited; i++) await new Promise((r) => setTimeout(r, 10));
    for (const line of lines) {
      await settle();
      if (exited) return;
      child.stdin.write(`${line}\r`);
    }
    await settle();
    child.stdin.end();
  })();
  const [code] = exited ? [child.exitCode] : ((await once(child, "exit")) as [number | null]);
  await typing;
  return { code, out };
}

test("backdoor on a unix socket: mode 0600, evaluates in the live scope, detaching leaves it running", { timeout: 30_000 }, async () => {
  const done = leakCheck();
  const path = join(dir, "app.sock");
  const state = { hits: 0 };
  const door = await openBackdoor({ address: `ipc://${path}`, name: "demo", context: { state, answer: () => 42 } });
  try {
    assert.equal(statSync(path).mode & 0o777, 0o600);
    const r = await attach([`ipc://${path}`], "state.hits = answer() + 1\n.exit\n");
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, /demo> /);
    assert.match(r.out, /43/);
    assert.match(r.out, /detached/);
    assert.equal(state.hits, 43, "the expression ran in the live process");
    // attach again: still there
    const again = await attach([`ipc://${path}`], "state.hits\n.exit\n");
    assert.match(again.out, /43/);
  } finally {
    await door.close();
  }
  await done();
});

test("backdoor on loopback TCP: refused without the right token, served with it", { timeout: 30_000 }, async () => {
  const done = leakCheck();
  const door = await openBackdoor({ address: "tcp://127.0.0.1:0", name: "tcpdemo", context: { x: 7 } });
  try {
    assert.match(door.address, /^tcp:\/\/127\.0\.0\.1:\d+$/);
    assert.ok(door.token && door.token.length >= 32);
    const none = await attach([door.address], "x\n");
    assert.notEqual(none.code, 0);
    assert.match(none.out, /needs a token/);
    const wrong = await attach([door.address, "--token", "nope"], "x\n");
    assert.equal(wrong.code, 1);
    assert.match(wrong.out, /backdoor refused: bad token/);
    const ok = await attach([door.address, "--token", door.token!], "x * 6\n.exit\n");
    assert.equal(ok.code, 0, ok.out);
    assert.match(ok.out, /42/);
  } finally {
    await door.close();
  }
  await done();
});

test("backdoor on a unix socket: a stale socket file (its app was killed) is taken over; a live one is ERR_ADDRESS_IN_USE, and the probe resetting its connection does not crash the app", { timeout: 30_000 }, async () => {
  const done = leakCheck();
  const path = join(dir, "stale.sock");
  staleSocket(path);
  const door = await openBackdoor({ address: `ipc://${path}`, name: "again", context: { answer: () => 42 } });
  try {
    assert.equal(statSync(path).mode & 0o777, 0o600);
    await assert.rejects(
      openBackdoor({ address: `ipc://${path}`, name: "second", context: {} }),
      (e) => isTilthError(e, "ERR_ADDRESS_IN_USE") && /a live listener accepts connections/.test((e as Error).message),
    );
    const r = await attach([`ipc://${path}`], "answer()\n.exit\n");
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, /42/);
  } finally {
    await door.close();
  }
  await done();
});

test("backdoor refuses any address but a unix socket or loopback", async () => {
  for (const address of ["tcp://0.0.0.0:0", "tcp://192.168.1.10:7000", "tcp://example.com:22", "udp://127.0.0.1:1"]) {
    await assert.rejects(openBackdoor({ address, name: "x", context: {} }), (e) => isTilthError(e, "ERR_BACKDOOR_ADDRESS"), address);
  }
});

test("an app with a backdoor in its settings: tilth backdoor APP evaluates in the live app, which survives detaching", { timeout: 60_000 }, async () => {
  const { mkdirSync, writeFileSync } = await import("node:fs");
  const { spawnSync } = await import("node:child_process");
  const apps = fileURLToPath(new URL("../fixtures/apps/apps.js", import.meta.url));
  const appDir = join(dir, "app");
  mkdirSync(appDir);
  const settings = join(appDir, "tilth.json");
  writeFileSync(
    settings,
    JSON.stringify({ apps: { ping: { class: `${apps}#PingApp`, bind: `drpc+ipc://${join(appDir, "ping.sock")}`, backdoor: `ipc://${join(appDir, "door.sock")}` } } }),
  );
  const run = spawn(process.execPath, [cli, "run", "ping", "--settings", settings], { stdio: ["ignore", "pipe", "pipe"] });
  let log = "";
  run.stdout.on("data", (c: Buffer) => (log += String(c)));
  run.stderr.on("data", (c: Buffer) => (log += String(c)));
  try {
    for (let i = 0; i < 1000 && !/backdoor on ipc:/.test(log); i++) await new Promise((r) => setTimeout(r, 10));
    assert.match(log, /ping INFO tilth\.app: backdoor on ipc:\/\//);
    const r = await attach(["ping", "--settings", settings], "app.constructor.name + ' on ' + ctx.name\n.exit\n");
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, /'PingApp on ping'/);
    const call = spawnSync(process.execPath, [cli, "call", "ping", "ping", "--settings", settings], { encoding: "utf8", timeout: 20_000 });
    assert.equal(call.stdout, '"pong"\n', "the app still serves after the backdoor detached");
  } finally {
    run.kill("SIGTERM");
    await once(run, "exit");
  }

  // a backdoor on another interface is refused: the app does not start
  writeFileSync(settings, JSON.stringify({ apps: { ping: { class: `${apps}#PingApp`, backdoor: "tcp://0.0.0.0:7000" } } }));
  const bad = spawnSync(process.execPath, [cli, "run", "ping", "--settings", settings, "--together"], { encoding: "utf8", timeout: 20_000 });
  assert.notEqual(bad.status, 0);
  assert.match(bad.stderr, /cannot open its backdoor: .*not loopback/);
});
