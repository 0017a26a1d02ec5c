#!/usr/bin/env node
/**
 * The layering check. Fails when
 *  - a file imports from a layer above its own
 *    (core <- adapters <- transports <- rpc <- app <- cli), or
 *  - code outside adapters/ (and outside test/, bench/, scripts/) calls
 *    setTimeout, setInterval, setImmediate, Date.now or performance.now:
 *    every clock and timer goes through the Loop.
 *
 * Usage: node scripts/check-layers.mjs [ROOT]   (exit 1 and a list on violation)
 * Also imported by the test suite, which proves it catches a violation.
 */
import { readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, resolve, sep } from "node:path";
import { fileURLToPath } from "node:url";

export const LAYERS = ["core", "adapters", "transports", "rpc", "app", "cli"];
/** Folders whose code may not touch host clocks; adapters/ may, test/ bench/ scripts/ measure with them. */
const CLOCK_FREE = ["core", "transports", "rpc", "app", "cli", "examples"];
const CLOCK_CALL = /\b(setTimeout|setInterval|setImmediate)\s*\(|\bDate\s*\.\s*now\s*\(|\bperformance\s*\.\s*now\s*\(/g;
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

function layerOf(root, file) {
  const top = relative(root, file).split(sep)[0];
  const i = LAYERS.indexOf(top);
  return i < 0 ? undefined : { name: top, rank: i };
}

function lineOf(src, index) {
  return src.slice(0, index).split("\n").length;
}

/** Every violation under `root`, as `{file, line, rule, message}`. */
export function checkLayers(root) {
  root = resolve(root);
  const out = [];
  for (const top of new Set([...LAYERS, ...CLOCK_FREE])) {
    for (const file of sourceFiles(join(root, top))) {
      const src = stripComments(readFileSync(file, "utf8"));
      const rel = relative(root, file);
      const own = layerOf(root, file);
      if (own) {
        for (const m of src.matchAll(IMPORT)) {
          const spec = m[2];
          let target;
          if (spec.startsWith(".")) target = layerOf(root, resolve(dirname(file), spec));
          else if (spec === "tilth" || spec.startsWith("tilth/")) {
            const sub = spec.split("/")[1];
            target = sub ? { name: sub, rank: LAYERS.indexOf(sub) } : { name: "tilth", rank: LAYERS.length };
          }
          if (target && target.rank > own.rank) {
            out.push({
              file: rel,
              line: lineOf(src, m.index),
              rule: "layering",
              message: `${own.name}/ imports "${spec}" from ${target.name}/, a layer above it`,
            });
          }
        }
      }
      if (CLOCK_FREE.includes(top)) {
        for (const m of src.matchAll(CLOCK_CALL)) {
          out.push({
            file: rel,
            line: lineOf(src, m.index),
            rule: "clock",
            message: `calls ${m[0].replace(/\s*\($/, "")}(): outside adapters/, time and timers go through the Loop`,
          });
        }
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
    console.error(`${v.length} layering violation(s)`);
    process.exit(1);
  }
  console.log("layering: ok");
}
