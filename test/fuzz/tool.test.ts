/**
 * The fuzz tool finds what it claims to find: bugs planted in the served API
 * (a server left broken, an unhandled rejection, a crash of the process) are
 * findings with a seed and a path that replay the same shrunk input, and the
 * recorded traffic it mutates is the same on every run (or a seed would not
 * replay).
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import type { Loop } from "../../core/Loop.js";
import { fuzzApi } from "../../bench/fuzz/api.js";
import { recordCorpus } from "../../bench/fuzz/corpus.js";
import { formatReport, fuzz, type FuzzOptions } from "../../bench/fuzz/run.js";
import { leakCheck } from "../helpers/leaks.js";

const planted = fileURLToPath(new URL("./planted-cli.js", import.meta.url));
const corpus = await recordCorpus();

/** An API that breaks for good (its control call fails from then on) once `add` gets a first argument the recorded sessions never send. */
function poisonable(loop: Loop): object {
  let poisoned = false;
  return {
    ...fuzzApi(loop),
    add: (a: unknown, b: unknown) => {
      if (a !== 2 && a !== 1.5) poisoned = true;
      return typeof a === "number" && typeof b === "number" ? a + b : null;
    },
    control: (n: unknown) => {
      if (poisoned) throw new Error("poisoned");
      return n;
    },
  };
}

test("fuzz: a server a call leaves broken is a finding, shrunk to that call, and its seed and path replay it", async () => {
  const done = leakCheck();
  const base: FuzzOptions = { target: "drpc", mode: "inproc", cases: 2000, seed: 42, allowKnown: "all", corpus, api: poisonable };
  const report = await fuzz(base);
  assert.equal(report.findings.length, 1, formatReport(report));
  const f = report.findings[0]!;
  assert.equal(f.kind, "control");
  assert.match(f.message, /poisoned/);
  assert.ok(f.path !== undefined && f.input !== undefined);
  // Shrunk: a HELLO at most, and the one call that poisons.
  const lines = f.input.split("\n").filter((l) => /^\s+#\d/.test(l));
  assert.ok(lines.length <= 2, `not shrunk:\n${f.input}`);
  assert.ok(report.cases < 2000, "the run stops at the finding");
  // The seed and path give the same input and the same finding.
  const again = await fuzz({ ...base, path: f.path, cases: 1 });
  assert.equal(again.findings.length, 1, formatReport(again));
  assert.equal(again.findings[0]!.input, f.input);
  assert.equal(again.findings[0]!.kind, "control");
  // The same seed on the API without the bug: nothing.
  const clean = await fuzz({ ...base, api: fuzzApi, cases: report.cases });
  assert.deepEqual(clean.findings, [], formatReport(clean));
  await done();
});

test("fuzz: the recorded traffic is the same on every recording (a seed replays)", async () => {
  const hexOf = (c: Awaited<ReturnType<typeof recordCorpus>>): string => JSON.stringify([c.drpc, c.zrpc].map((p) => p.map((s) => s.map((m) => m.map((f) => Buffer.from(f).toString("hex"))))));
  const again = await recordCorpus();
  assert.equal(hexOf(again), hexOf(corpus));
  assert.ok(corpus.drpc.length >= 5 && corpus.zrpc.length >= 5);
});

/** Run the planted fuzz command; its exit code and output. */
function runPlanted(plant: string, args: string[]): Promise<{ code: number | null; out: string }> {
  const child = spawn(process.execPath, [planted, ...args], { env: { ...process.env, TILTH_FUZZ_PLANT: plant }, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  child.stdout!.on("data", (d: Buffer) => (out += String(d)));
  child.stderr!.on("data", (d: Buffer) => (out += String(d)));
  return new Promise((resolve) => child.once("close", (code) => resolve({ code, out })));
}

test("fuzz: an unhandled rejection in a handler is a finding", { timeout: 60_000 }, async () => {
  const { code, out } = await runPlanted("reject", ["--target", "drpc", "--cases", "500", "--seed", "7", "--in-process", "--allow-known"]);
  assert.equal(code, 1, out);
  assert.match(out, /FINDING 1 drpc \(inproc\) \[unhandled\]: unhandled rejection: Error: planted rejection/);
  assert.match(out, /replay: npm run fuzz -- --target drpc --seed 7 --path \d+/);
});

test("fuzz: a crash of the process is a finding that names the case it was running, with its input", { timeout: 60_000 }, async () => {
  const { code, out } = await runPlanted("crash", ["--target", "drpc", "--cases", "500", "--seed", "7", "--allow-known"]);
  assert.equal(code, 1, out);
  assert.match(out, /FINDING 1 drpc \(inproc\) \[crash\]: the process died \(exit code 9\) while running this case/);
  const path = /replay: npm run fuzz -- --target drpc --seed 7 --path (\d+)\n/.exec(out)?.[1];
  assert.ok(path !== undefined, out);
  assert.match(out, /input:\n\s+#0 /);
  // The worker was told nothing about the crash: replaying that path alone crashes it again.
  const replay = await runPlanted("crash", ["--target", "drpc", "--seed", "7", "--path", path]);
  assert.match(replay.out, new RegExp(`\\[crash\\].*\\n.*\\n.*--path ${path}\\n`));
});

test("fuzz: --allow-known refuses an id it does not know", async () => {
  const { code, out } = await runPlanted("", ["--allow-known", "no-such-issue"]);
  assert.equal(code, 2);
  assert.match(out, /no known issue "no-such-issue"/);
});
