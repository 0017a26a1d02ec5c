/**
 * tilth/browser bundles for a browser: esbuild (platform browser) finds no
 * Node module anywhere in its import graph, and the minified, gzipped bundle
 * (rxjs not included) stays within its size goal.
 */
import assert from "node:assert/strict";
import { dirname, join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";
import { build } from "esbuild";

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "..");
/** The goal of the issue: at most 25 KB minified and gzipped. */
const GOAL = 25 * 1024;

test("tilth/browser bundles for the browser with no Node import, within 25 KiB minified and gzipped", async () => {
  const r = await build({
    entryPoints: [join(root, "dist", "rpc", "browser.js")],
    bundle: true,
    minify: true,
    platform: "browser",
    format: "esm",
    write: false,
    metafile: true,
    logLevel: "silent",
    // A Node builtin would fail to resolve for the browser anyway; rxjs is the user's.
    external: ["rxjs"],
  });
  assert.equal(r.errors.length, 0, JSON.stringify(r.errors));
  const imports = Object.entries(r.metafile.inputs).flatMap(([file, i]) => i.imports.map((x) => ({ file, path: x.path })));
  const nodeImports = imports.filter((x) => x.path.startsWith("node:") || /^(fs|net|tls|http|https|crypto|os|path|stream|zlib|events|perf_hooks|worker_threads|buffer|dgram|child_process)$/.test(x.path));
  assert.deepEqual(nodeImports, [], "no Node module in the import graph");
  assert.ok(!Object.keys(r.metafile.inputs).some((f) => /node_modules\/ws\//.test(f)), "the ws library stays out");
  const text = r.outputFiles[0]!.contents;
  const gz = gzipSync(text, { level: 9 }).length;
  console.log(`tilth/browser: ${(text.length / 1024).toFixed(1)} KiB minified, ${(gz / 1024).toFixed(1)} KiB gzipped`);
  assert.ok(gz <= GOAL, `the bundle is ${gz} bytes gzipped, the goal ${GOAL}`);
});
