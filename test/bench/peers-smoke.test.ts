/**
 * Smoke test of the peers benchmark: `npm run bench -- peers --quick` in a
 * child process finishes and every system produced a result in every
 * scenario that applies to it (how fast is not checked). Every echo and
 * stream item is checked by the benchmark itself: a wrong one fails it.
 * The pipelined scenarios are left out: they run the sequential scenario's
 * code with more calls in flight, and each scenario costs a start of every
 * system's processes, the most of this test's time.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import type { BenchResult } from "../../bench/lib.js";
import { SCENARIOS, SYSTEM_INFO, scenarioEntries } from "../../bench/peers.js";
import { loadZrpc } from "../../bench/peer-systems.js";

const main = fileURLToPath(new URL("../../bench/main.js", import.meta.url));
const LIMIT_MS = 360_000;
const SKIPPED = new Set(["pipelined-100", "pipelined-1000"]);
const CHECKED = SCENARIOS.filter((s) => !SKIPPED.has(s.id));

test("peers bench --quick: every system ran every scenario that applies to it", { timeout: LIMIT_MS + 60_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), "tilth-peers-smoke-"));
  const json = join(dir, "peers.json");
  // Its own process group, so a timeout can end the bench and its children together.
  const child = spawn(process.execPath, [main, "peers", "--quick", "--json", json], {
    env: { ...process.env, TILTH_BENCH_RESULTS: dir, TILTH_BENCH_SCENARIOS: CHECKED.map((s) => s.id).join(",") },
    stdio: ["ignore", "pipe", "pipe"],
    detached: true,
  });
  let stderr = "";
  let stdout = "";
  child.stdout!.on("data", (d: Buffer) => (stdout += String(d)));
  child.stderr!.on("data", (d: Buffer) => (stderr = (stderr + String(d)).slice(-8000)));
  const timer = setTimeout(() => process.kill(-child.pid!, "SIGKILL"), LIMIT_MS);
  try {
    const code = await new Promise<number | null>((resolve) => child.once("exit", (c) => resolve(c)));
    assert.equal(code, 0, `bench exited with ${code}:\n${stderr}`);
    const out = JSON.parse(readFileSync(json, "utf8")) as { suite: string; results: BenchResult[] };
    assert.equal(out.suite, "peers");
    assert.ok((await loadZrpc()) !== undefined, "tilth's zrpc is built");
    for (const sc of CHECKED) {
      // The fleet scenario runs the systems that make fleets, at 1 and 2 instances in a quick run.
      for (const s of scenarioEntries(sc, SYSTEM_INFO, true)) {
        const r = out.results.find((x) => x.extra?.system === s.id && x.extra?.scenario === sc.id);
        assert.ok(r, `no result for ${s.id} in ${sc.id}`);
        const na = r.extra?.na as string | undefined;
        if (na !== undefined) {
          // Only a scenario the system cannot do (declared by the suite) may be missing.
          assert.ok(sc.na?.[s.system] !== undefined || na === "no streams", `${s.id} did not run ${sc.id}: ${na}`);
          continue;
        }
        assert.ok(r.value > 0, `${s.id} in ${sc.id}: ${r.value} ${r.unit}`);
      }
    }
    for (const sc of CHECKED) assert.match(readFileSync(join(dir, `peers-${sc.id}.svg`), "utf8"), /^<svg[^>]*>[\s\S]*<\/svg>\s*$/);
    assert.match(stdout, /### sequential \(1 in flight, 16 B\)/);
    assert.doesNotMatch(stdout, /### pipelined/);
  } finally {
    clearTimeout(timer);
    if (child.exitCode === null && child.signalCode === null) process.kill(-child.pid!, "SIGKILL");
    rmSync(dir, { recursive: true, force: true });
  }
});
