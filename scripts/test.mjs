#!/usr/bin/env node
// Runs the compiled test suite with node's own test runner. Extra arguments
// (files or flags) pass through; with none, every dist/test/**/*.test.js runs.
import { spawnSync } from "node:child_process";

const args = process.argv.slice(2);
const files = args.filter((a) => !a.startsWith("-"));
const flags = args.filter((a) => a.startsWith("-"));
const r = spawnSync(
  process.execPath,
  ["--test", "--test-concurrency=2", ...flags, ...(files.length ? files : ["dist/test/"])],
  { stdio: "inherit" },
);
process.exit(r.status ?? 1);
