/**
 * Durations in messages are whole milliseconds ("3666 ms", never
 * "3666.04 ms"): one helper, `formatMs`, writes every one of them.
 */
import assert from "node:assert/strict";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { VirtualLoop } from "../../adapters/virtual.js";
import { TimeoutError, formatMs } from "../../core/errors.js";
import { AbandonedError, Scope, stopWithin } from "../../core/Scope.js";
import { sleep } from "../../core/time.js";

const repo = fileURLToPath(new URL("../../../", import.meta.url)); // dist/test/core -> repo root

test("formatMs: whole milliseconds and the unit", () => {
  assert.equal(formatMs(3666.04), "3666 ms");
  assert.equal(formatMs(15006.399089), "15006 ms");
  assert.equal(formatMs(0.4), "0 ms");
  assert.equal(formatMs(30_000), "30000 ms");
});

test("errors and log lines of the core print loop times rounded; contexts keep the exact number", async () => {
  const e = new TimeoutError(1500.6, "call x");
  assert.equal(e.message, "call x timed out after 1501 ms");
  assert.equal(e.limitMs, 1500.6);
  assert.equal(new AbandonedError("task t", 2.5).message, "task t ignored cancellation for 3 ms and was abandoned (it may still be running)");

  const loop = new VirtualLoop();
  let line = "";
  await loop.run(() => stopWithin(loop, { what: "the thing", ended: new Promise(() => {}), graceMs: 1.25, cancel() {}, cancelMs: 4.75, log: (l) => (line = l) }));
  assert.match(line, /the thing: the thing ignored cancellation for 5 ms and/);

  const scope = new Scope(loop, { name: "s", graceMs: 10.3, cancelMs: 100 });
  let reason: unknown;
  scope.spawn(async (t) => {
    await sleep(loop, 1e6, { signal: t.signal }).catch((r: unknown) => (reason = r));
  });
  await loop.run(() => scope.close());
  assert.match(String((reason as Error).message), /its grace period of 10 ms is over$/);
});

/** Source files of the layers, with comments blanked. */
function* sources(dir: string): Generator<[string, string]> {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) yield* sources(p);
    else if (name.endsWith(".ts") && !name.endsWith(".d.ts"))
      yield [p, readFileSync(p, "utf8").replace(/\/\*[\s\S]*?\*\//g, (m) => m.replace(/[^\n]/g, " ")).replace(/(^|[^:"'`\\])\/\/[^\n]*/g, "$1")];
  }
}

test("every duration a message interpolates goes through formatMs", () => {
  const found: string[] = [];
  for (const layer of ["core", "adapters", "transports", "rpc", "app", "cli"]) {
    for (const [file, src] of sources(join(repo, layer))) {
      src.split("\n").forEach((line, i) => {
        // `${x} ms` where x is not formatMs(...): an unrounded time in a message.
        if (/\$\{(?!formatMs\()[^}]*\}\s*(?:virtual\s+)?ms\b/.test(line) && !line.includes("`${Math.round(ms)} ms`")) found.push(`${file.slice(repo.length)}:${i + 1}: ${line.trim()}`);
      });
    }
  }
  assert.deepEqual(found, [], `durations printed without formatMs:\n${found.join("\n")}`);
});
