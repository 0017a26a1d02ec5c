#!/usr/bin/env node
/**
 * Installs the Prometheus text parser of Prometheus's own Python client
 * (`prometheus_client.parser`), which a metrics test feeds a /metrics scrape
 * to: Debian's package `python3-prometheus-client`. Quick when Python already
 * imports it. When missing and root, runs `apt-get update` and
 * `apt-get install -y python3-prometheus-client`; otherwise says what to
 * install. Exit 0 when the parser imports; exit 1 with a message otherwise.
 * `--optional`: print the problem but exit 0 (that test then skips, saying
 * what to install).
 *
 * Elsewhere: `pip install prometheus-client`.
 *
 * Usage: node scripts/setup-prometheus-parser.mjs [--optional] [--quiet]
 */
import { spawnSync } from "node:child_process";

const optional = process.argv.includes("--optional");
const quiet = process.argv.includes("--quiet");
const log = (m) => {
  if (!quiet) console.error(`[setup-prometheus-parser] ${m}`);
};
const fail = (m) => {
  console.error(`[setup-prometheus-parser] ${m}`);
  process.exit(optional ? 0 : 1);
};
// Debian's package goes to the system's Python, which another python3 first on the PATH (pyenv) does not see.
const present = () => ["/usr/bin/python3", "python3"].some((py) => spawnSync(py, ["-c", "import prometheus_client.parser"], { stdio: "pipe" }).status === 0);

if (present()) {
  log("prometheus_client.parser ready");
  process.exit(0);
}
const isRoot = typeof process.getuid === "function" && process.getuid() === 0;
const elsewhere = "or `pip install prometheus-client`; the test that parses a scrape with it skips until then";
if (!isRoot) fail(`Python's prometheus_client is missing and this is not root: run \`sudo apt-get install -y python3-prometheus-client\` (${elsewhere})`);
if (spawnSync("which", ["apt-get"]).status !== 0) fail(`Python's prometheus_client is missing and apt-get is not available (${elsewhere})`);
const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
const run = (args) => {
  log(`$ apt-get ${args.join(" ")}`);
  return spawnSync("apt-get", args, { stdio: quiet ? "pipe" : "inherit", env });
};
run(["update"]);
const r = run(["install", "-y", "--no-install-recommends", "python3-prometheus-client"]);
if (r.status !== 0 || !present()) fail(`apt-get install python3-prometheus-client failed (${elsewhere})`);
log("python3-prometheus-client installed");
