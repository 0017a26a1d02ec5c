import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

interface Violation {
  file: string;
  line: number;
  rule: string;
  message: string;
}
const here = dirname(fileURLToPath(import.meta.url));
const repo = join(here, "..", "..", ".."); // dist/test/tools -> repo root
const { checkLayers } = (await import(join(repo, "scripts", "check-layers.mjs"))) as {
  checkLayers: (root: string) => Violation[];
};

/** The violations, as "file:line:rule" and sorted, of a tree holding `files` (path -> source). */
function violations(files: Record<string, string>): string[] {
  const root = mkdtempSync(join(tmpdir(), "tilth-layers-"));
  try {
    for (const [path, src] of Object.entries(files)) {
      mkdirSync(dirname(join(root, path)), { recursive: true });
      writeFileSync(join(root, path), src);
    }
    return checkLayers(root).map((x) => `${x.file}:${x.line}:${x.rule}`).sort();
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

test("the project itself respects the layering, internal and clock rules", () => {
  const v = checkLayers(repo);
  assert.deepEqual(v, [], v.map((x) => `${x.file}:${x.line} ${x.message}`).join("\n"));
});

test("the check catches upward imports and direct clock calls, and ignores comments", () => {
  const v = violations({
    "core/Bad.ts": `import { NodeLoop } from "../adapters/node.js";\nexport const x = Date.now();\n`,
    "core/Fine.ts": `// setTimeout(() => {}) in a comment is fine\nimport { y } from "./Other.js";\n/* performance.now() */\n`,
    "transports/tcp.ts": `import { sleep } from "../core/time.js";\nsetImmediate(() => {});\nconst t = setTimeout(f, 1);\n`,
    "rpc/server.ts": `const m = await import("../app/App.js");\nimport "tilth/cli";\n`,
    "adapters/node.ts": `setTimeout(() => {}, 1); import "../core/Loop.js";\n`,
    "app/App.ts": `import { connect } from "../rpc/client.js";\nconst t = performance.now();\n`,
  });
  assert.deepEqual(v, [
    "app/App.ts:2:clock",
    "core/Bad.ts:1:layering",
    "core/Bad.ts:2:clock",
    "rpc/server.ts:1:layering",
    "rpc/server.ts:2:layering",
    "transports/tcp.ts:2:clock",
    "transports/tcp.ts:3:clock",
  ]);
});

test("the check catches Math.random outside adapters/ (randomness comes from loop.random())", () => {
  const v = violations({
    "app/Jitter.ts": `export const j = () => Math.random() * 10;\n`,
    "rpc/Ids.ts": `// Math.random() in a comment is fine\nconst pick = Math . random;\n`,
    "adapters/node.ts": `export const r = Math.random;\n`,
    "test/x.test.ts": `Math.random();\n`,
  });
  assert.deepEqual(v, ["app/Jitter.ts:1:random", "rpc/Ids.ts:2:random"]);
});

test("the check catches imports of another top-level folder's internal/ folder; test/ may import any", () => {
  const v = violations({
    "core/internal/Heap.ts": `export class Heap {}\n`,
    "core/Loop.ts": `import { Heap } from "./internal/Heap.js";\n`,
    "transports/tcp.ts": `import { Base } from "./internal/Base.js";\nimport { Heap } from "../core/internal/Heap.js";\n`,
    "transports/internal/Base.ts": `import { Ring } from "../../core/Ring.js";\nimport type { Heap } from "../../core/internal/Heap.js";\n`,
    "rpc/drpc/Session.ts": `import { IdTable } from "../internal/IdTable.js";\nconst m = await import("../../transports/internal/socket.js");\n`,
    "bench/hot.ts": `// import "../core/internal/Heap.js" in a comment is fine\nimport { Heap } from "../core/internal/Heap.js";\n`,
    "examples/e/main.ts": `import { socket } from "../../transports/internal/socket.js";\n`,
    "index.ts": `export * from "./core/internal/Heap.js";\n`,
    "test/core/heap.test.ts": `import { Heap } from "../../core/internal/Heap.js";\nimport { Base } from "../../transports/internal/Base.js";\n`,
  });
  assert.deepEqual(v, [
    "bench/hot.ts:2:internal",
    "examples/e/main.ts:1:internal",
    "index.ts:1:internal",
    "rpc/drpc/Session.ts:2:internal",
    "transports/internal/Base.ts:2:internal",
    "transports/tcp.ts:2:internal",
  ]);
});

test("testing/ is a leaf: it may import core, adapters and transports (and host clocks); no layer imports it", () => {
  const v = violations({
    "testing/loop.ts": `import { Ring } from "../core/Ring.js";\nimport { NodeLoop } from "../adapters/node.js";\nimport { registerTransports } from "../transports/index.js";\nsetImmediate(() => {});\n`,
    "testing/rpc.ts": `import { connect } from "../rpc/Client.js";\nimport "tilth/app";\nimport { x } from "./loop.js";\n`,
    "rpc/Server.ts": `import { loopConformance } from "../testing/loop.js";\n`,
    "transports/tcp.ts": `import "tilth/testing";\n`,
    "cli/main.ts": `import { transportConformance } from "../testing/transport.js";\n`,
    "test/adapters/node.test.ts": `import { loopConformance } from "../../testing/loop.js";\n`,
    "examples/tick/tick.test.ts": `import { loopConformance } from "../../testing/loop.js";\n`,
  });
  assert.deepEqual(v, [
    "cli/main.ts:1:layering",
    "rpc/Server.ts:1:layering",
    "testing/rpc.ts:1:layering",
    "testing/rpc.ts:2:layering",
    "transports/tcp.ts:1:layering",
  ]);
});
