/**
 * Every error code tilth raises is written down: each "ERR_..." string of
 * the published source appears in README.md or docs/*.md, so a user who
 * meets one can look it up.
 */
import assert from "node:assert/strict";
import { readFileSync, readdirSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

const repo = join(dirname(fileURLToPath(import.meta.url)), "..", "..", ".."); // dist/test/tools -> repo root
/** Codes of Node's own that tilth reads, never raises. */
const NODE_CODES = new Set(["ERR_MODULE_NOT_FOUND"]);

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) return sources(p);
    return name.endsWith(".ts") && !name.endsWith(".d.ts") ? [p] : [];
  });
}

test("every error code in the source is named in the docs", () => {
  const files = ["index.ts", ...["core", "adapters", "transports", "rpc", "app", "cli", "testing"].flatMap((d) => sources(join(repo, d)))];
  const codes = new Set<string>();
  for (const f of files) for (const m of readFileSync(f.startsWith(repo) ? f : join(repo, f), "utf8").matchAll(/"(ERR_[A-Z0-9_]+)"/g)) if (!NODE_CODES.has(m[1]!)) codes.add(m[1]!);
  assert.ok(codes.size > 30, `found only ${codes.size} codes`);
  const docs = [readFileSync(join(repo, "README.md"), "utf8"), ...readdirSync(join(repo, "docs")).filter((f) => f.endsWith(".md")).map((f) => readFileSync(join(repo, "docs", f), "utf8"))].join("\n");
  const missing = [...codes].filter((c) => !docs.includes(c)).sort();
  assert.deepEqual(missing, [], "name these codes in the doc of their layer (what raises them and when)");
});
