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
import { ensureDebianPackage } from "./lib/debian-package.mjs";

ensureDebianPackage({
  tag: "setup-browser",
  what: 'chromium',
  pkg: "chromium",
  present: () => spawnSync("/usr/bin/chromium", ["--version"], { stdio: "pipe" }).status === 0,
  elsewhere: "or install Chromium at /usr/bin/chromium with your package manager; the browser tests skip until then",
});
