/**
 * What the setup scripts for system packages share: check that a component is
 * there; when it is not and the user is root, install its Debian package with
 * apt-get; otherwise say what to install. Exit 0 when the component works;
 * exit 1 with a message otherwise, or 0 with `--optional` (the tests that need
 * it then skip, saying what to install). `--quiet`: only problems are printed.
 */
import { spawnSync } from "node:child_process";

/**
 * @param {object} o
 * @param {string} o.tag      log prefix, the script's name
 * @param {string} o.what     the component as the messages name it
 * @param {string} o.pkg      the Debian package
 * @param {() => boolean} o.present  whether the component works now
 * @param {string} o.elsewhere how to get it without apt-get, and what skips until then
 */
export function ensureDebianPackage({ tag, what, pkg, present, elsewhere }) {
  const optional = process.argv.includes("--optional");
  const quiet = process.argv.includes("--quiet");
  const log = (m) => {
    if (!quiet) console.error(`[${tag}] ${m}`);
  };
  const fail = (m) => {
    console.error(`[${tag}] ${m}`);
    process.exit(optional ? 0 : 1);
  };
  if (present()) {
    log(`${what} ready`);
    process.exit(0);
  }
  const isRoot = typeof process.getuid === "function" && process.getuid() === 0;
  if (!isRoot) fail(`${what} is missing and this is not root: run \`sudo apt-get install -y ${pkg}\` (${elsewhere})`);
  if (spawnSync("which", ["apt-get"]).status !== 0) fail(`${what} is missing and apt-get is not available: install ${pkg} with your package manager (${elsewhere})`);
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
  const run = (args) => {
    log(`$ apt-get ${args.join(" ")}`);
    return spawnSync("apt-get", args, { stdio: quiet ? "pipe" : "inherit", env });
  };
  run(["update"]);
  const r = run(["install", "-y", "--no-install-recommends", pkg]);
  if (r.status !== 0 || !present()) fail(`apt-get install ${pkg} failed (${elsewhere})`);
  log(`${pkg} installed`);
}
