#!/usr/bin/env node
/**
 * Installs the peer frameworks of the peers benchmark (`npm run bench -- peers`)
 * into bench/peers/ (its own package.json and lock: never dependencies of
 * tilth), and the npm zerorpc peer through scripts/setup-interop.mjs.
 *
 * Idempotent and quick when already installed (a stamp plus a check that every
 * peer loads). Prints `unavailable SYSTEM: reason` on stdout for each system
 * that cannot run here (the suite shows it as such); exits 1 only when the
 * bench/peers install itself fails.
 *
 * Usage: node scripts/setup-bench-peers.mjs [--quiet]
 */
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const dir = join(root, "bench", "peers");
const quiet = process.argv.includes("--quiet");
const stamp = join(dir, "node_modules", ".tilth-bench-peers-ok");
const log = (m) => {
  if (!quiet) console.error(`[setup-bench-peers] ${m}`);
};

const PEERS = ["@grpc/grpc-js", "jayson", "moleculer", "nats", "socket.io", "socket.io-client"];

function loads(cwd, modules) {
  const code = modules.map((m) => `require(${JSON.stringify(m)});`).join("");
  const r = spawnSync(process.execPath, ["-e", code], { cwd, stdio: "pipe", encoding: "utf8" });
  return r.status === 0 ? null : (r.stderr.split("\n").find((l) => /Error/.test(l)) ?? `exit ${r.status}`).trim();
}

const want = `${process.version} ${createHash("sha256")
  .update(readFileSync(join(dir, "package.json")))
  .update(existsSync(join(dir, "package-lock.json")) ? readFileSync(join(dir, "package-lock.json")) : "")
  .digest("hex")}`;

if (!(existsSync(stamp) && readFileSync(stamp, "utf8").trim() === want && loads(dir, PEERS) === null)) {
  const ci = existsSync(join(dir, "package-lock.json"));
  log(`$ npm ${ci ? "ci" : "install"} in bench/peers`);
  const r = spawnSync("npm", [ci ? "ci" : "install", "--no-audit", "--no-fund", "--loglevel=error"], { cwd: dir, stdio: quiet ? "pipe" : "inherit", encoding: "utf8" });
  if (r.status !== 0) {
    console.error(`[setup-bench-peers] npm install in bench/peers failed${quiet ? `:\n${r.stderr ?? ""}` : "; see above"}`);
    process.exit(1);
  }
  const why = loads(dir, PEERS);
  if (why) {
    console.error(`[setup-bench-peers] the peers installed but do not load: ${why}`);
    process.exit(1);
  }
  writeFileSync(stamp, `${want}\n`);
  log("peers installed");
} else log("peers ready");

// The npm zerorpc peer lives in test/interop/ (shared with the interop tests).
const interop = join(root, "scripts", "setup-interop.mjs");
if (!existsSync(interop)) console.log("unavailable zerorpc: scripts/setup-interop.mjs (which installs it) is not in this tree");
else {
  spawnSync(process.execPath, [interop, "--optional", ...(quiet ? ["--quiet"] : [])], { stdio: quiet ? "pipe" : "inherit" });
  const zerorpc = loads(join(root, "test", "interop"), ["zerorpc"]);
  if (zerorpc) console.log(`unavailable zerorpc: npm zerorpc does not load (${zerorpc}); see scripts/setup-interop.mjs`);
}

// Raw zeromq.js is tilth's own dependency.
const zmq = loads(root, ["zeromq"]);
if (zmq) console.log(`unavailable zeromq: zeromq.js does not load (${zmq})`);
