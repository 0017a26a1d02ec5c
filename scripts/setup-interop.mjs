#!/usr/bin/env node
/**
 * Installs the third-party ZeroRPC peer used by the interop tests and the zmq
 * bench: npm `zerorpc@0.9.8` in test/interop/ (its own package.json, never a
 * dependency of tilth). As published it does not install on Node 20; it does
 * with `"overrides": {"zeromq": "5.3.1"}` built against the system libzmq
 * (Debian's libzmq3-dev) with `--zmq-external`.
 *
 * Idempotent and quick when already installed (checks that the peer loads).
 * Installs libzmq3-dev with apt-get when root and missing; otherwise says what
 * to install. Exit 0 when the peer is ready; exit 1 with a message otherwise.
 * `--optional`: print the problem but exit 0 (the interop tests then skip,
 * saying why).
 *
 * Usage: node scripts/setup-interop.mjs [--optional] [--quiet]
 */
import { spawnSync } from "node:child_process";
import { existsSync, writeFileSync, readFileSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const dir = join(root, "test", "interop");
const optional = process.argv.includes("--optional");
const quiet = process.argv.includes("--quiet");
const stamp = join(dir, "node_modules", ".tilth-interop-ok");
const log = (m) => {
  if (!quiet) console.error(`[setup-interop] ${m}`);
};

function fail(msg) {
  console.error(`[setup-interop] ${msg}`);
  writeFileSync(join(dir, ".interop-unavailable"), `${msg}\n`);
  process.exit(optional ? 0 : 1);
}

function peerLoads() {
  const r = spawnSync(process.execPath, ["-e", "require('zerorpc'); require('zeromq')"], { cwd: dir, stdio: "pipe", encoding: "utf8" });
  return r.status === 0;
}

function hasLibzmqDev() {
  return spawnSync("pkg-config", ["--exists", "libzmq"]).status === 0 || existsSync("/usr/include/zmq.h");
}

function run(cmd, args, opts = {}) {
  log(`$ ${cmd} ${args.join(" ")}`);
  return spawnSync(cmd, args, { stdio: quiet ? "pipe" : "inherit", encoding: "utf8", ...opts });
}

// Fast path: installed before and still loads.
if (existsSync(stamp) && readFileSync(stamp, "utf8").trim() === process.version && peerLoads()) {
  log("zerorpc peer ready");
  process.exit(0);
}

if (!hasLibzmqDev()) {
  const isRoot = typeof process.getuid === "function" && process.getuid() === 0;
  if (!isRoot) fail("libzmq3-dev is missing and this is not root: run `sudo apt-get install -y libzmq3-dev` (or your system's libzmq development package), then again.");
  if (spawnSync("which", ["apt-get"]).status !== 0) fail("libzmq3-dev is missing and apt-get is not available: install libzmq (headers and pkg-config file) with your package manager.");
  let r = run("apt-get", ["install", "-y", "--no-install-recommends", "libzmq3-dev"], { env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" } });
  if (r.status !== 0) {
    run("apt-get", ["update"], { env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" } });
    r = run("apt-get", ["install", "-y", "--no-install-recommends", "libzmq3-dev"], { env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" } });
  }
  if (r.status !== 0 || !hasLibzmqDev()) fail("apt-get install libzmq3-dev failed; see the output above.");
}

// zeromq@5 builds its addon with node-gyp against the system libzmq.
const env = { ...process.env, npm_config_zmq_external: "true", npm_config_build_from_source: "true" };
const r = run("npm", ["install", "--no-audit", "--no-fund", "--zmq-external", "--foreground-scripts"], { cwd: dir, env });
if (r.status !== 0) fail("npm install of the zerorpc peer failed; see the output above.");
if (!peerLoads()) fail("zerorpc installed but does not load (its zeromq@5 addon did not build?)");
writeFileSync(stamp, `${process.version}\n`);
rmSync(join(dir, ".interop-unavailable"), { force: true });
log("zerorpc peer installed");
