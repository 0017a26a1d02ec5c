/** A stale unix socket file, as a process killed while it listened leaves one. */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { lstatSync } from "node:fs";

/** Make `path` a socket file that nobody accepts on: a child listens there, then SIGKILLs itself. */
export function staleSocket(path: string): void {
  const src = `require("node:net").createServer().listen(${JSON.stringify(path)}, () => process.kill(process.pid, "SIGKILL"));`;
  const r = spawnSync(process.execPath, ["-e", src], { timeout: 20_000 });
  assert.equal(r.signal, "SIGKILL", `the child did not die listening: ${String(r.stderr)}`);
  assert.ok(lstatSync(path).isSocket(), "no socket file left behind");
}
