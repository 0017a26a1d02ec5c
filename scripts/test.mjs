#!/usr/bin/env node
// Runs the compiled test suite with node's own test runner. Extra arguments
// (files, folders or flags) pass through; with none, every
// dist/test/**/*.test.js runs. Only *.test.js files are tests: helpers,
// fixtures and child-process scripts under dist/test/ are not.
import { spawnSync } from "node:child_process";
import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";

function testFiles(dir) {
  const out = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...testFiles(p));
    else if (name.endsWith(".test.js")) out.push(p);
  }
  return out.sort();
}

// The third-party ZeroRPC peer of the interop tests (npm zerorpc in test/interop/):
// installed when missing, quick when present. If it cannot be installed the
// interop tests skip, saying why.
spawnSync(process.execPath, [join(import.meta.dirname ?? ".", "setup-interop.mjs"), "--optional", "--quiet"], { stdio: "inherit" });
// nats-server for the NATS tests (Debian's nats-server): installed when missing and root, else those tests skip saying why.
spawnSync(process.execPath, [join(import.meta.dirname ?? ".", "setup-nats.mjs"), "--optional", "--quiet"], { stdio: "inherit" });

const args = process.argv.slice(2);
const paths = args.filter((a) => !a.startsWith("-"));
const flags = args.filter((a) => a.startsWith("-"));
const files = (paths.length ? paths : ["dist/test"]).flatMap((p) => (statSync(p).isDirectory() ? testFiles(p) : [p]));
const r = spawnSync(process.execPath, ["--test", "--test-concurrency=2", ...flags, ...files], { stdio: "inherit" });
process.exit(r.status ?? 1);
