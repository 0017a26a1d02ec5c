/**
 * A seeded slice of the fuzzers (`npm run fuzz` runs more): a few thousand
 * cases of each target inproc in virtual time, and a few hundred over tcp
 * (zmq+tcp for zrpc) in real time. Known issues (bench/fuzz/known.ts) are
 * counted, not failed: others fix them; anything else fails, printed with
 * its seed, path and shrunk input for `npm run fuzz -- --seed S --path P`.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { recordCorpus } from "../../bench/fuzz/corpus.js";
import { formatReport, fuzz } from "../../bench/fuzz/run.js";
import type { TargetName } from "../../bench/fuzz/targets.js";
import type { Mode } from "../../bench/fuzz/harness.js";
import { leakCheck } from "../helpers/leaks.js";

const SEED = 20_261_201;
const corpus = await recordCorpus();

const slices: [TargetName, Mode, number][] = [
  ["drpc", "inproc", 2000],
  ["zrpc", "inproc", 2000],
  ["msgpack", "inproc", 2000],
  ["framing", "inproc", 2000],
  ["drpc", "tcp", 300],
  ["zrpc", "tcp", 150],
  ["msgpack", "tcp", 200],
  ["framing", "tcp", 300],
];

for (const [target, mode, cases] of slices) {
  test(`fuzz slice: ${cases} ${target} cases ${mode === "inproc" ? "inproc in virtual time" : "over tcp"} find nothing but known issues`, { timeout: 120_000 }, async () => {
    const done = leakCheck();
    const report = await fuzz({ target, mode, cases, seed: SEED, allowKnown: "all", corpus, controlMs: mode === "tcp" ? 5000 : 2000 });
    assert.equal(report.cases, cases, formatReport(report));
    assert.deepEqual(report.findings, [], formatReport(report));
    await done();
  });
}
