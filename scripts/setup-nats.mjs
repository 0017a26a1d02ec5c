#!/usr/bin/env node
/**
 * Installs nats-server, which the NATS tests start (each its own, on
 * loopback and random ports): Debian's package `nats-server`. Quick when it
 * is already on the PATH. When missing and root, runs `apt-get update` and
 * `apt-get install -y nats-server`; otherwise says what to install.
 * Exit 0 when nats-server runs; exit 1 with a message otherwise.
 * `--optional`: print the problem but exit 0 (the NATS tests then skip,
 * saying what to install).
 *
 * Elsewhere: https://github.com/nats-io/nats-server/releases (one static
 * binary; put it on the PATH), `brew install nats-server`, or
 * `go install github.com/nats-io/nats-server/v2@latest`.
 *
 * Usage: node scripts/setup-nats.mjs [--optional] [--quiet]
 */
import { spawnSync } from "node:child_process";

const optional = process.argv.includes("--optional");
const quiet = process.argv.includes("--quiet");
const log = (m) => {
  if (!quiet) console.error(`[setup-nats] ${m}`);
};
const fail = (m) => {
  console.error(`[setup-nats] ${m}`);
  process.exit(optional ? 0 : 1);
};
const present = () => spawnSync("nats-server", ["--version"], { stdio: "pipe" }).status === 0;

if (present()) {
  log("nats-server ready");
  process.exit(0);
}
const isRoot = typeof process.getuid === "function" && process.getuid() === 0;
const elsewhere = "or get it from https://github.com/nats-io/nats-server/releases and put it on the PATH; the NATS tests skip until then";
if (!isRoot) fail(`nats-server is missing and this is not root: run \`sudo apt-get install -y nats-server\` (${elsewhere})`);
if (spawnSync("which", ["apt-get"]).status !== 0) fail(`nats-server is missing and apt-get is not available: install nats-server with your package manager (${elsewhere})`);
const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
const run = (args) => {
  log(`$ apt-get ${args.join(" ")}`);
  return spawnSync("apt-get", args, { stdio: quiet ? "pipe" : "inherit", env });
};
run(["update"]);
const r = run(["install", "-y", "--no-install-recommends", "nats-server"]);
if (r.status !== 0 || !present()) fail(`apt-get install nats-server failed (${elsewhere})`);
log("nats-server installed");
