#!/usr/bin/env node
/**
 * Installs Chromium, which the browser tests (test/browser/) drive headless
 * through playwright-core: Debian's package `chromium` (/usr/bin/chromium). Quick when it
 * is already on the PATH. When missing and root, runs `apt-get update` and
 * `apt-get install -y chromium`; otherwise says what to install.
 * Exit 0 when chromium runs; exit 1 with a message otherwise.
 * `--optional`: print the problem but exit 0 (the browser tests then skip,
 * saying what to install).
 *
 * Elsewhere: install Chromium with the system's package manager, at
 * /usr/bin/chromium.
 *
 * Usage: node scripts/setup-browser.mjs [--optional] [--quiet]
 */
import { spawnSync } from "node:child_process";

const optional = process.argv.includes("--optional");
const quiet = process.argv.includes("--quiet");
const log = (m) => {
  if (!quiet) console.error(`[setup-browser] ${m}`);
};
const fail = (m) => {
  console.error(`[setup-browser] ${m}`);
  process.exit(optional ? 0 : 1);
};
const present = () => spawnSync("/usr/bin/chromium", ["--version"], { stdio: "pipe" }).status === 0;

if (present()) {
  log("chromium ready");
  process.exit(0);
}
const isRoot = typeof process.getuid === "function" && process.getuid() === 0;
const elsewhere = "or install Chromium at /usr/bin/chromium with your package manager; the browser tests skip until then";
if (!isRoot) fail(`chromium is missing and this is not root: run \`sudo apt-get install -y chromium\` (${elsewhere})`);
if (spawnSync("which", ["apt-get"]).status !== 0) fail(`chromium is missing and apt-get is not available: install chromium with your package manager (${elsewhere})`);
const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
const run = (args) => {
  log(`$ apt-get ${args.join(" ")}`);
  return spawnSync("apt-get", args, { stdio: quiet ? "pipe" : "inherit", env });
};
run(["update"]);
const r = run(["install", "-y", "--no-install-recommends", "chromium"]);
if (r.status !== 0 || !present()) fail(`apt-get install chromium failed (${elsewhere})`);
log("chromium installed");
