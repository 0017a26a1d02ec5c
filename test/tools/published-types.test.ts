/**
 * The published declarations (dist/**.d.ts, as package.json "files" ships
 * them) carry no `@internal` member, and a package that depends on tilth
 * compiles against them: test/fixtures/consumer/consumer.ts imports every
 * entry point of package.json "exports", writes its own Loop adapter on
 * LoopBase, runs both conformance suites' registration, and expects the
 * internal members to be absent. It is type-checked with skipLibCheck off
 * for tilth's declarations (the TypeScript API, so that the thousands of
 * lines of @types/node, rxjs and zod are not checked too).
 */
import assert from "node:assert/strict";
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, relative, sep } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import ts from "typescript";

const repo = join(dirname(fileURLToPath(import.meta.url)), "..", "..", ".."); // dist/test/tools -> repo root
const dist = join(repo, "dist");

/** The .d.ts files the package ships: under dist/, less package.json's "!dist/..." entries. */
function publishedDeclarations(): string[] {
  const files = (JSON.parse(readFileSync(join(repo, "package.json"), "utf8")) as { files: string[] }).files;
  const left = files.filter((f) => f.startsWith("!")).map((f) => join(repo, f.slice(1)));
  const out: string[] = [];
  const walk = (dir: string): void => {
    if (left.includes(dir)) return;
    for (const name of readdirSync(dir)) {
      const p = join(dir, name);
      if (statSync(p).isDirectory()) walk(p);
      else if (name.endsWith(".d.ts")) out.push(p);
    }
  };
  walk(dist);
  return out;
}

test("the published declarations carry no @internal member", () => {
  const files = publishedDeclarations();
  assert.ok(files.some((f) => f.endsWith(join("testing", "index.d.ts"))), "dist/testing is published");
  assert.ok(!files.some((f) => relative(dist, f).startsWith(`test${sep}`)), "dist/test is not published");
  const tagged = files.filter((f) => readFileSync(f, "utf8").includes("@internal")).map((f) => relative(repo, f));
  assert.deepEqual(tagged, [], "stripInternal is on in tsconfig.json: these still carry @internal");
  const members: Record<string, string[]> = {
    "core/LoopBase.d.ts": ["_cancelTimer", "_refChanged"],
    "core/Scope.d.ts": ["_settle", "_start", "_isOwnCancellation", "_prev", "_next", "_abandoned"],
  };
  for (const [file, names] of Object.entries(members)) {
    const src = readFileSync(join(dist, file), "utf8");
    assert.match(src, /export declare (abstract )?class/, `${file} declares its classes`);
    for (const name of names) assert.ok(!src.includes(name), `${file} still declares ${name}`);
  }
});

test("a package that depends on tilth compiles against the published declarations", { timeout: 120_000 }, () => {
  const dir = mkdtempSync(join(tmpdir(), "tilth-consumer-"));
  try {
    mkdirSync(join(dir, "node_modules"));
    symlinkSync(repo, join(dir, "node_modules", "tilth"), "dir");
    symlinkSync(join(repo, "node_modules", "@types"), join(dir, "node_modules", "@types"), "dir");
    copyFileSync(join(repo, "test", "fixtures", "consumer", "consumer.ts"), join(dir, "consumer.ts"));
    const config = {
      compilerOptions: {
        target: "ES2022",
        lib: ["ES2023", "ESNext.Disposable"],
        module: "NodeNext",
        moduleResolution: "NodeNext",
        strict: true,
        noEmit: true,
        skipLibCheck: false,
        types: ["node"],
      },
      files: ["consumer.ts"],
    };
    writeFileSync(join(dir, "tsconfig.json"), JSON.stringify(config, null, 2));
    const parsed = ts.getParsedCommandLineOfConfigFile(join(dir, "tsconfig.json"), {}, {
      ...ts.sys,
      onUnRecoverableConfigFileDiagnostic: (d) => assert.fail(ts.flattenDiagnosticMessageText(d.messageText, "\n")),
    })!;
    const program = ts.createProgram({ rootNames: parsed.fileNames, options: parsed.options });
    // Check tilth's declarations and the consumer; other packages' types only as far as they are used.
    const realDist = realpathSync(dist) + sep;
    const ours = program.getSourceFiles().filter((sf) => sf.fileName.startsWith(realDist) || sf.fileName.endsWith("/consumer.ts"));
    assert.ok(ours.length > 30, `the consumer reached only ${ours.length} of tilth's declaration files`);
    const diagnostics = [
      ...program.getOptionsDiagnostics(),
      ...program.getGlobalDiagnostics(),
      ...ours.flatMap((sf) => [...program.getSyntacticDiagnostics(sf), ...program.getSemanticDiagnostics(sf)]),
    ];
    const text = ts.formatDiagnostics(diagnostics, { getCanonicalFileName: (f) => f, getCurrentDirectory: () => dir, getNewLine: () => "\n" });
    assert.equal(
      diagnostics.length,
      0,
      `${text}\n(The consumer is test/fixtures/consumer/consumer.ts. An @internal tag on a module's doc comment strips the import after it; ` +
        `a member a public interface requires cannot be @internal.)`,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
