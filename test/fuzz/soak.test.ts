/**
 * Smoke test of the soak tool: `npm run soak -- --seconds 5` in a child
 * process runs every kind of load against its server child, prints a sample
 * a second and the slopes, writes its JSON, and stops the server child.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { slope, slopes } from "../../bench/soak/slope.js";

const main = fileURLToPath(new URL("../../bench/soak/main.js", import.meta.url));

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

test("soak --seconds 5: samples each second, slopes, every kind of load, and no server child left", { timeout: 60_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), "tilth-soak-"));
  const json = join(dir, "soak.json");
  // Its own process group, so that a timeout ends the soak run and its server together.
  const child = spawn(process.execPath, [main, "--seconds", "5", "--sample-seconds", "1", "--hold-seconds", "2", "--json", json], { stdio: ["ignore", "pipe", "pipe"], detached: true });
  let out = "";
  child.stdout!.on("data", (d: Buffer) => (out += String(d)));
  child.stderr!.on("data", (d: Buffer) => (out += String(d)));
  const timer = setTimeout(() => process.kill(-child.pid!, "SIGKILL"), 45_000);
  try {
    const code = await new Promise<number | null>((resolve) => child.once("close", (c) => resolve(c)));
    assert.equal(code, 0, out);
    const samples = out.split("\n").filter((l) => /^t=[\d.]+s rss [\d.]+ MiB heap [\d.]+ MiB/.test(l));
    assert.ok(samples.length >= 4, out);
    assert.match(out, /slope over \d+ samples after the first 1 s: rss [+-][\d.]+ MiB\/h, heap [+-][\d.]+ MiB\/h/);
    const pid = Number(/server pid (\d+) at/.exec(out)?.[1]);
    assert.ok(pid > 0, out);
    assert.ok(!alive(pid), "the server child is gone");
    const report = JSON.parse(readFileSync(json, "utf8")) as { samples: unknown[]; slope: { rssMiBPerHour: number; heapMiBPerHour: number }; load: Record<string, { rounds: number }>; failures: string[] };
    assert.equal(report.samples.length, samples.length);
    assert.equal(typeof report.slope.rssMiBPerHour, "number");
    assert.equal(typeof report.slope.heapMiBPerHour, "number");
    assert.deepEqual(report.failures, []);
    for (const kind of ["unary", "stream", "cancel", "reconnect", "slow reader", "stalled writer"]) assert.ok((report.load[kind]?.rounds ?? 0) > 0, `${kind} ran: ${JSON.stringify(report.load)}`);
  } finally {
    clearTimeout(timer);
    if (child.exitCode === null && child.signalCode === null) process.kill(-child.pid!, "SIGKILL");
    rmSync(dir, { recursive: true, force: true });
  }
});

test("soak: the slope is the least-squares fit in MiB per hour, over the samples after the first interval", () => {
  assert.equal(slope([[0, 1], [1, 3], [2, 5]]), 2);
  assert.equal(slope([[1, 1]]), undefined);
  const MiB = 1024 * 1024;
  // 1 MiB more each minute, after a first minute that jumps by 100 MiB (warm-up, left out).
  const samples = [60, 120, 180, 240].map((t, i) => ({ t, rss: (i === 0 ? 0 : 100 + i) * MiB, heapUsed: 5 * MiB }));
  const k = slopes(samples, 60);
  assert.equal(k.points, 3);
  assert.ok(Math.abs(k.rss! - 60) < 1e-9, String(k.rss));
  assert.equal(k.heap, 0);
});
