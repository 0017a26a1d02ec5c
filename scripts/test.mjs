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
// Prometheus's own text parser (Python's prometheus_client, Debian's python3-prometheus-client) for the
// /metrics scrape test: installed when missing and root, else that test skips saying why.
spawnSync(process.execPath, [join(import.meta.dirname ?? ".", "setup-prometheus-parser.mjs"), "--optional", "--quiet"], { stdio: "inherit" });
// Chromium for the browser tests (Debian's chromium): installed when missing and root, else those tests skip saying why.
spawnSync(process.execPath, [join(import.meta.dirname ?? ".", "setup-browser.mjs"), "--optional", "--quiet"], { stdio: "inherit" });

const args = process.argv.slice(2);
const paths = args.filter((a) => !a.startsWith("-"));
const flags = args.filter((a) => a.startsWith("-"));
const files = (paths.length ? paths : ["dist/test"]).flatMap((p) => (statSync(p).isDirectory() ? testFiles(p) : [p]));
// The browser tests (a headless Chromium each) run after the others, one file at a time.
const isBrowser = (f) => /(^|[\\/])test[\\/]browser[\\/]/.test(f);
const rest = files.filter((f) => !isBrowser(f));
const browser = files.filter(isBrowser);
let status = 0;
if (rest.length > 0) status = spawnSync(process.execPath, ["--test", "--test-concurrency=2", ...flags, ...rest], { stdio: "inherit" }).status ?? 1;
for (const f of browser) {
  const r = spawnSync(process.execPath, ["--test", "--test-concurrency=1", ...flags, f], { stdio: "inherit" });
  if (r.status !== 0) status = r.status ?? 1;
}
process.exit(status);
