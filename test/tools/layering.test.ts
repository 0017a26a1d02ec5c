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

test("the project itself respects the layering and clock rules", () => {
  const v = checkLayers(repo);
  assert.deepEqual(v, [], v.map((x) => `${x.file}:${x.line} ${x.message}`).join("\n"));
});

test("the check catches upward imports and direct clock calls, and ignores comments", () => {
  const root = mkdtempSync(join(tmpdir(), "tilth-layers-"));
  try {
    const put = (path: string, src: string): void => {
      mkdirSync(dirname(join(root, path)), { recursive: true });
      writeFileSync(join(root, path), src);
    };
    put("core/Bad.ts", `import { NodeLoop } from "../adapters/node.js";\nexport const x = Date.now();\n`);
    put("core/Fine.ts", `// setTimeout(() => {}) in a comment is fine\nimport { y } from "./Other.js";\n/* performance.now() */\n`);
    put("transports/tcp.ts", `import { sleep } from "../core/time.js";\nsetImmediate(() => {});\nconst t = setTimeout(f, 1);\n`);
    put("rpc/server.ts", `const m = await import("../app/App.js");\nimport "tilth/cli";\n`);
    put("adapters/node.ts", `setTimeout(() => {}, 1); import "../core/Loop.js";\n`);
    put("app/App.ts", `import { connect } from "../rpc/client.js";\nconst t = performance.now();\n`);
    const v = checkLayers(root).map((x) => `${x.file}:${x.line}:${x.rule}`).sort();
    assert.deepEqual(v, [
      "app/App.ts:2:clock",
      "core/Bad.ts:1:layering",
      "core/Bad.ts:2:clock",
      "rpc/server.ts:1:layering",
      "rpc/server.ts:2:layering",
      "transports/tcp.ts:2:clock",
      "transports/tcp.ts:3:clock",
    ]);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
