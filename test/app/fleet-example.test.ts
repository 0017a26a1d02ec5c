/**
 * examples/fleet end to end: `tilth run ping long_running` starts ping as 3
 * processes (logs prefixed ping#1, ping#2, ping#3) on a nats-server of the
 * test's own; long_running's calls spread over the three; `tilth run
 * --status` names each instance, `tilth inspect drpc+nats://…/ping` lists
 * them (id, host, pid, uptime, calls in flight); SIGTERM stops them all.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { natsSkip, startNats } from "../helpers/nats.js";

const cli = fileURLToPath(new URL("../../cli/main.js", import.meta.url));
const file = fileURLToPath(new URL("../../examples/fleet/settings.js", import.meta.url));

test("examples/fleet: ping as 3 instances on NATS, calls spread over them", { skip: natsSkip, timeout: 90_000 }, async () => {
  const nats = await startNats();
  const runDir = mkdtempSync(join(tmpdir(), "tilth-fleet-"));
  const env = { ...process.env, TILTH__RUN__DIR: runDir, NATS_URL: nats.hostPort };
  const child = spawn(process.execPath, [cli, "run", "ping", "long_running", "--settings", file], { env, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  child.stdout.on("data", (d) => (out += String(d)));
  child.stderr.on("data", (d) => (out += String(d)));
  const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
  try {
    const t0 = Date.now();
    const spread = /6 pings answered by pid \d+ x2, pid \d+ x2, pid \d+ x2/;
    while (!spread.test(out)) {
      if (Date.now() - t0 > 60_000) assert.fail(`the calls did not spread over 3 instances:\n${out}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    for (const i of [1, 2, 3]) assert.match(out, new RegExp(`ping#${i} INFO tilth\\.app: binding to drpc\\+nats://`));
    const status = await new Promise<string>((resolve) => {
      const s = spawn(process.execPath, [cli, "run", "--status", "ping", "--settings", file], { env, stdio: ["ignore", "pipe", "inherit"] });
      let text = "";
      s.stdout.on("data", (d) => (text += String(d)));
      s.once("exit", () => resolve(text));
    });
    for (const i of [1, 2, 3]) assert.match(status, new RegExp(`ping#${i}: running \\(pid \\d+\\)`));
    const inspect = await new Promise<string>((resolve) => {
      const s = spawn(process.execPath, [cli, "inspect", `drpc+nats://${nats.hostPort}/ping`], { env, stdio: ["ignore", "pipe", "inherit"] });
      let text = "";
      s.stdout.on("data", (d) => (text += String(d)));
      s.once("exit", () => resolve(text));
    });
    assert.match(inspect, /ping\(\)/, inspect);
    assert.match(inspect, /3 instances\n\ninstance +host +pid +uptime +calls in flight/, inspect);
    const pids = [...inspect.matchAll(/^[0-9a-f]{16} +\S+ +(\d+) +.+? +\d+$/gm)].map((m) => Number(m[1]));
    assert.equal(new Set(pids).size, 3, inspect);
    child.kill("SIGTERM");
    assert.equal(await exited, 0, out);
    for (const i of [1, 2, 3]) assert.match(out, new RegExp(`ping#${i} INFO tilth\\.app: stopped`));
  } finally {
    child.kill("SIGKILL");
    await nats.stop();
    rmSync(runDir, { recursive: true, force: true });
  }
});
