#!/usr/bin/env node
/**
 * The layering check. Fails when
 *  - a file imports from a layer above its own
 *    (core <- adapters <- transports <- rpc <- app <- cli);
 *  - a file imports testing/ (the conformance suites published as
 *    `tilth/testing`) from a layer, or testing/ imports a layer it may not:
 *    testing/ is a leaf beside the stack that may import core/, adapters/
 *    and transports/, and that only tests and users' tests import;
 *  - a file imports an `internal/` folder of another top-level folder
 *    (`transports/` may use `transports/internal/`, `rpc/` may not). What
 *    another layer needs is public API of its layer. test/ is exempt: tests
 *    test internals, so a test may import any `internal/` folder;
 *  - code outside adapters/ (and outside test/, testing/, bench/, scripts/)
 *    calls setTimeout, setInterval, setImmediate, Date.now or
 *    performance.now: every clock and timer goes through the Loop. (testing/
 *    and test/ measure the host itself: a host macrotask between loop turns,
 *    leak checks that wait real time.)
 *    A browser page's script, served as a string, is exempt (BROWSER_PAGES).
 *  - code in the same folders calls Math.random: randomness comes from the
 *    loop's seeded source (`loop.random()`), so a simulation replays.
 *
 * Usage: node scripts/check-layers.mjs [ROOT]   (exit 1 and a list on violation)
 * Also imported by the test suite, which proves it catches each violation.
 */
import { readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, resolve, sep } from "node:path";
import { fileURLToPath } from "node:url";

export const LAYERS = ["core", "adapters", "transports", "rpc", "app", "cli"];
/** Leaves beside the stack: the layers each may import. No layer imports a leaf. */
export const LEAVES = { testing: ["core", "adapters", "transports"] };
/** Folders whose code may import only its own `internal/` folders: all but test/. */
const INTERNAL_EXEMPT = ["test"];
/** Folders whose code may not touch host clocks; adapters/ may, test/ bench/ scripts/ measure with them. */
const CLOCK_FREE = ["core", "transports", "rpc", "app", "cli", "examples"];
/**
 * Files whose text is code for a browser page (served as a string), which runs
 * on the browser's own clock, not on a Loop: exempt from the clock rule.
 */
const BROWSER_PAGES = ["examples/gateway/page.ts"];
const CLOCK_CALL = /\b(setTimeout|setInterval|setImmediate)\s*\(|\bDate\s*\.\s*now\s*\(|\bperformance\s*\.\s*now\s*\(/g;
const RANDOM_CALL = /\bMath\s*\.\s*random\b/g;
const IMPORT = /(?:\bfrom\s*|\bimport\s*\(\s*|\bimport\s+)(["'])([^"']+)\1/g;

function* sourceFiles(dir) {
  let entries;
  try {
    entries = readdirSync(dir);
  } catch {
    return;
  }
  for (const name of entries) {
    if (name === "node_modules" || name === "dist" || name.startsWith(".")) continue;
    const p = join(dir, name);
    const st = statSync(p);
    if (st.isDirectory()) yield* sourceFiles(p);
    else if (/\.(ts|mts|cts|js|mjs)$/.test(name) && !name.endsWith(".d.ts")) yield p;
  }
}

/** Remove comments, keeping line numbers (string contents are kept: imports live there). */
function stripComments(src) {
  return src
    .replace(/\/\*[\s\S]*?\*\//g, (m) => m.replace(/[^\n]/g, " "))
    .replace(/(^|[^:"'`\\])\/\/[^\n]*/g, (m, pre) => pre + " ".repeat(m.length - pre.length));
}

/** The top-level folder of `file` ("" for a file at the root). */
function topOf(root, file) {
  const parts = relative(root, file).split(sep);
  return parts.length > 1 ? parts[0] : "";
}

/** `{name, rank}` of a layer, `{name, leaf: true}` of a leaf, else undefined. */
function layerNamed(name) {
  const i = LAYERS.indexOf(name);
  if (i >= 0) return { name, rank: i };
  return Object.hasOwn(LEAVES, name) ? { name, leaf: true } : undefined;
}

function layerOf(root, file) {
  return layerNamed(topOf(root, file));
}

/** Why `own` may not import `target`, or undefined when it may. */
function layeringError(own, target) {
  if (target === undefined || target.name === own.name) return undefined;
  if (own.leaf) {
    return LEAVES[own.name].includes(target.name) ? undefined : `may import only ${LEAVES[own.name].join("/, ")}/`;
  }
  if (target.leaf) return `${target.name}/ is for tests: no layer imports it`;
  return target.rank > own.rank ? "a layer above it" : undefined;
}

/** The top-level folder whose `internal/` folder `spec` (relative to `file`) points into, if any. */
function internalOwner(root, file, spec) {
  if (!spec.startsWith(".")) return undefined;
  const parts = relative(root, resolve(dirname(file), spec)).split(sep);
  return parts.length > 1 && parts.slice(1, -1).includes("internal") ? parts[0] : undefined;
}

function lineOf(src, index) {
  return src.slice(0, index).split("\n").length;
}

/** Every violation under `root`, as `{file, line, rule, message}`. */
export function checkLayers(root) {
  root = resolve(root);
  const out = [];
  for (const file of sourceFiles(root)) {
    const top = topOf(root, file);
    if (INTERNAL_EXEMPT.includes(top)) continue;
    const src = stripComments(readFileSync(file, "utf8"));
    const rel = relative(root, file);
    const own = layerNamed(top);
    for (const m of src.matchAll(IMPORT)) {
      const spec = m[2];
      const owner = internalOwner(root, file, spec);
      if (owner !== undefined && owner !== top) {
        out.push({
          file: rel,
          line: lineOf(src, m.index),
          rule: "internal",
          message: `imports "${spec}" from the internal/ folder of ${owner}/: use (or add) public API of ${owner}/`,
        });
      }
      if (own === undefined) continue;
      let target;
      if (spec.startsWith(".")) target = layerOf(root, resolve(dirname(file), spec));
      else if (spec === "tilth" || spec.startsWith("tilth/")) {
        const sub = spec.split("/")[1];
        target = sub ? layerNamed(sub) : { name: "tilth", rank: LAYERS.length };
      }
      const why = layeringError(own, target);
      if (why !== undefined) {
        out.push({
          file: rel,
          line: lineOf(src, m.index),
          rule: "layering",
          message: `${own.name}/ imports "${spec}" from ${target.name}/: ${why}`,
        });
      }
    }
    if (CLOCK_FREE.includes(top) && !BROWSER_PAGES.includes(rel.split(sep).join("/"))) {
      for (const m of src.matchAll(CLOCK_CALL)) {
        out.push({
          file: rel,
          line: lineOf(src, m.index),
          rule: "clock",
          message: `calls ${m[0].replace(/\s*\($/, "")}(): outside adapters/, time and timers go through the Loop`,
        });
      }
      for (const m of src.matchAll(RANDOM_CALL)) {
        out.push({ file: rel, line: lineOf(src, m.index), rule: "random", message: "uses Math.random: outside adapters/, randomness comes from loop.random() (seeded in simulation)" });
      }
    }
  }
  return out;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const root = process.argv[2] ?? join(dirname(fileURLToPath(import.meta.url)), "..");
  const v = checkLayers(root);
  for (const x of v) console.error(`${x.file}:${x.line}: [${x.rule}] ${x.message}`);
  if (v.length) {
    console.error(`${v.length} violation(s)`);
    process.exit(1);
  }
  console.log("layering: ok");
}
