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
import { ensureDebianPackage } from "./lib/debian-package.mjs";

ensureDebianPackage({
  tag: "setup-nats",
  what: 'nats-server',
  pkg: "nats-server",
  present: () => spawnSync("nats-server", ["--version"], { stdio: "pipe" }).status === 0,
  elsewhere: "or get it from https://github.com/nats-io/nats-server/releases and put it on the PATH; the NATS tests skip until then",
});
