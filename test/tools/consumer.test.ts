/**
 * tilth as a user gets it: `npm pack`, the tarball installed into a fresh
 * project (with rxjs and zeromq, the optional peers some snippets use), and
 * every ```ts block of README.md and docs/*.md compiled there, on this
 * project's TypeScript and on TypeScript 7, with `module: nodenext` and with
 * `moduleResolution: bundler`; the blocks marked to run are run. The project
 * lists no @types/node: tilth's declarations bring Node's types themselves.
 *
 * A block is compiled as a module of its own (`readme-2.ts`, `apps-1.ts`:
 * the document's name and the block's number in it). An HTML comment right
 * before a block, invisible on the rendered page, says more:
 *
 *     <!-- snippet: context
 *     declare const loop: Loop;             code put before the block: the
 *     -->                                   names a fragment takes as given
 *     <!-- snippet: run -->                 also run it (it must end by itself)
 *     <!-- snippet: skip (why) -->          not compiled (a sketch, not code)
 *     <!-- snippet: as TickLoop.ts -->      its module's name, for a later block to import
 *
 * One install per run; the install asks the registry only for what npm's
 * cache lacks. Without a registry and a cache the tests skip, saying so.
 */
import assert from "node:assert/strict";
import { spawnSync, type SpawnSyncReturns } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, dirname, join } from "node:path";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";

const repo = join(dirname(fileURLToPath(import.meta.url)), "..", "..", ".."); // dist/test/tools -> repo root
const TS7 = "typescript@7";

export interface Snippet {
  /** The module's file name, e.g. `readme-2.ts`. */
  file: string;
  /** Where the block is, for messages: `README.md:61`. */
  where: string;
  code: string;
  context: string;
  run: boolean;
  skip?: string;
}

/** The ```ts blocks of a Markdown text, with the `<!-- snippet: ... -->` comments before each. */
export function extractSnippets(markdown: string, doc: string): Snippet[] {
  const lines = markdown.split("\n");
  const name = basename(doc, ".md").toLowerCase();
  const out: Snippet[] = [];
  let pending: { context: string[]; run: boolean; skip?: string; as?: string } = { context: [], run: false };
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    const comment = /^<!--\s*snippet:\s*(\w+)\s*(.*?)\s*(-->)?\s*$/.exec(line);
    if (comment) {
      const [, kind, rest] = comment;
      const body = [rest!];
      if (!comment[3]) for (i++; i < lines.length && !lines[i]!.includes("-->"); i++) body.push(lines[i]!);
      if (kind === "context") pending.context.push(...body.filter((l) => l !== ""));
      else if (kind === "run") pending.run = true;
      else if (kind === "skip") pending.skip = rest || "no reason given";
      else if (kind === "as") pending.as = rest;
      else throw new Error(`${doc}:${i + 1}: unknown snippet directive "${kind}" (context, run, skip or as)`);
      continue;
    }
    if (/^```ts\s*$/.test(line)) {
      const start = i + 2; // the first line of code, 1-based
      const code: string[] = [];
      for (i++; i < lines.length && !/^```\s*$/.test(lines[i]!); i++) code.push(lines[i]!);
      const s: Snippet = { file: pending.as ?? `${name}-${out.length + 1}.ts`, where: `${doc}:${start}`, code: code.join("\n"), context: pending.context.join("\n"), run: pending.run };
      if (pending.skip !== undefined) s.skip = pending.skip;
      out.push(s);
      pending = { context: [], run: false };
    } else if (line.trim() !== "") pending = { context: [], run: false }; // a directive belongs to the block right after it
  }
  return out;
}

function docs(): Array<{ doc: string; text: string }> {
  const files = ["README.md", ...readdirSync(join(repo, "docs")).filter((f) => f.endsWith(".md")).map((f) => join("docs", f))];
  return files.map((doc) => ({ doc, text: readFileSync(join(repo, doc), "utf8") }));
}

function sh(cmd: string, args: string[], cwd: string, timeout = 300_000): SpawnSyncReturns<string> {
  return spawnSync(cmd, args, { cwd, encoding: "utf8", timeout, env: { ...process.env, npm_config_loglevel: "error", npm_config_fund: "false", npm_config_audit: "false", NO_COLOR: "1" } });
}

let dir = "";
let unavailable: string | undefined;
const snippets = docs().flatMap(({ doc, text }) => extractSnippets(text, doc));

before(() => {
  dir = mkdtempSync(join(tmpdir(), "tilth-consumer-"));
  const pack = sh("npm", ["pack", "--ignore-scripts", "--json", "--pack-destination", dir], repo);
  assert.equal(pack.status, 0, pack.stderr);
  const tarball = (JSON.parse(pack.stdout) as Array<{ filename: string }>)[0]!.filename;
  const own = JSON.parse(readFileSync(join(repo, "package.json"), "utf8")) as { devDependencies: Record<string, string> };
  writeFileSync(
    join(dir, "package.json"),
    JSON.stringify({
      name: "tilth-consumer",
      private: true,
      type: "module",
      dependencies: { tilth: `file:./${basename(tarball)}`, rxjs: own.devDependencies.rxjs, zeromq: own.devDependencies.zeromq },
      devDependencies: { typescript: "^7" },
    }),
  );
  // npm's cache answers what it holds; the registry is asked for the rest.
  const install = sh("npm", ["install", "--ignore-scripts", "--prefer-offline"], dir);
  if (install.status !== 0) unavailable = `cannot install the packed tarball and ${TS7} (no registry, nothing in npm's cache?): ${install.stderr.trim().split("\n").slice(-3).join(" ")}`;
  mkdirSync(join(dir, "snippets"));
  for (const s of snippets.filter((x) => x.skip === undefined)) {
    // Every snippet is a module (top-level await, imports).
    writeFileSync(join(dir, "snippets", s.file), `${s.context ? `${s.context}\n` : ""}${s.code}\nexport {};\n`);
  }
});

after(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

type Resolution = "nodenext" | "bundler";

function tsconfig(resolution: Resolution): string {
  const file = `tsconfig.${resolution}.json`;
  const compilerOptions = {
    target: "ES2022",
    ...(resolution === "nodenext" ? { module: "NodeNext", moduleResolution: "NodeNext", rootDir: "snippets", outDir: "out" } : { module: "ESNext", moduleResolution: "Bundler", noEmit: true }),
    strict: true,
    // The two settings app classes need (docs/apps.md, README).
    experimentalDecorators: true,
    emitDecoratorMetadata: true,
  };
  writeFileSync(join(dir, file), JSON.stringify({ compilerOptions, include: ["snippets"] }, null, 2));
  return file;
}

/** Map "snippets/readme-2.ts(4,7): error ..." lines back to the Markdown. */
function explain(output: string): string {
  return output.replace(/snippets\/([\w.-]+\.ts)\((\d+),(\d+)\)/g, (m, file: string, line: string) => {
    const s = snippets.find((x) => x.file === file);
    if (!s) return m;
    const contextLines = s.context ? s.context.split("\n").length : 0;
    const docLine = Number(line) - contextLines;
    return docLine > 0 ? `${s.where.replace(/:\d+$/, "")}:${Number(s.where.split(":").pop()) + docLine - 1} (${file})` : `${m} (in its context comment)`;
  });
}

function compile(tsc: string, resolution: Resolution): void {
  const r = sh(process.execPath, [tsc, "-p", tsconfig(resolution), "--pretty", "false"], dir);
  assert.equal(r.status, 0, `${explain(r.stdout + r.stderr)}\n(snippets of README.md and docs/*.md, compiled in ${dir})`);
}

const projectTsc = join(repo, "node_modules", "typescript", "bin", "tsc");
const ts7 = (): string => join(dir, "node_modules", "typescript", "bin", "tsc");

test("the docs' snippets are found, and every skipped one says why", () => {
  assert.ok(snippets.length >= 15, `only ${snippets.length} ts blocks found`);
  for (const s of snippets) if (s.skip !== undefined) assert.ok(s.skip.length > 3, `${s.where}: skip needs a reason`);
  assert.ok(snippets.filter((s) => s.run).length >= 3, "some snippets run");
});

test("the extractor reads the directives before a block only", () => {
  const md = "# t\n<!-- snippet: context\ndeclare const x: number;\n-->\n<!-- snippet: run -->\n```ts\nx;\n```\ntext\n```ts\ny;\n```\n<!-- snippet: skip a sketch -->\n\n```ts\nz\n```\n";
  const got = extractSnippets(md, "docs/t.md");
  assert.deepEqual(
    got.map((s) => [s.file, s.where, s.code, s.context, s.run, s.skip]),
    [
      ["t-1.ts", "docs/t.md:7", "x;", "declare const x: number;", true, undefined],
      ["t-2.ts", "docs/t.md:11", "y;", "", false, undefined],
      ["t-3.ts", "docs/t.md:16", "z", "", false, "a sketch"],
    ],
  );
});

for (const resolution of ["nodenext", "bundler"] as const) {
  test(`the snippets compile against the installed package: this project's TypeScript, ${resolution}`, { timeout: 180_000 }, (t) => {
    if (unavailable) return t.skip(unavailable);
    compile(projectTsc, resolution);
  });
  test(`the snippets compile against the installed package: TypeScript 7, ${resolution}`, { timeout: 180_000 }, (t) => {
    if (unavailable) return t.skip(unavailable);
    const version = sh(process.execPath, [ts7(), "--version"], dir).stdout.trim();
    assert.match(version, /^Version 7\./);
    compile(ts7(), resolution);
  });
}

test("the snippets marked to run run, and end by themselves", { timeout: 180_000 }, (t) => {
  if (unavailable) return t.skip(unavailable);
  if (!existsSync(join(dir, "out"))) compile(projectTsc, "nodenext");
  for (const s of snippets.filter((x) => x.run)) {
    const r = sh(process.execPath, [join("out", s.file.replace(/\.ts$/, ".js"))], dir, 30_000);
    assert.equal(r.status, 0, `${s.where} (${s.file}) exited ${r.status ?? r.signal}:\n${r.stdout}\n${r.stderr}`);
  }
});
