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
import { ensureDebianPackage } from "./lib/debian-package.mjs";

// Debian's package goes to the system's Python, which another python3 first on the PATH (pyenv) does not see.
ensureDebianPackage({
  tag: "setup-prometheus-parser",
  what: "Python's prometheus_client",
  pkg: "python3-prometheus-client",
  present: () => ["/usr/bin/python3", "python3"].some((py) => spawnSync(py, ["-c", "import prometheus_client.parser"], { stdio: "pipe" }).status === 0),
  elsewhere: "or `pip install prometheus-client`; the test that parses a scrape with it skips until then",
});
