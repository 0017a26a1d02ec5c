/**
 * What installing tilth depends on: a lockfile that `npm ci` accepts, the
 * files `npm pack` ships, and the optional peer dependencies (zeromq, rxjs)
 * that are loaded only where used, with an error naming the package when
 * they are missing.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFileSync, readdirSync, statSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { test } from "node:test";
import { fileURLToPath, pathToFileURL } from "node:url";
import { MissingPackageError, importPeer, requirePeer } from "../../adapters/peers.js";
import { isTilthError } from "../../core/errors.js";

const repo = join(dirname(fileURLToPath(import.meta.url)), "..", "..", ".."); // dist/test/tools -> repo root
const readJson = (file: string): any => JSON.parse(readFileSync(join(repo, file), "utf8"));

type Deps = Record<string, string>;
interface Manifest {
  version?: string;
  dependencies?: Deps;
  devDependencies?: Deps;
  optionalDependencies?: Deps;
  peerDependencies?: Deps;
  peerDependenciesMeta?: Record<string, { optional?: boolean }>;
  link?: boolean;
}
interface Lockfile {
  lockfileVersion: number;
  packages: Record<string, Manifest>;
}

/** Whether `version` is in `range`, for the range forms package.json files use (`^`, `~`, `>=`, `<`, exact, `*`, `||`, spaces). */
export function satisfies(version: string, range: string): boolean {
  const v = version.split("-")[0]!.split(".").map(Number);
  const cmp = (a: number[], b: number[]): number => {
    for (let i = 0; i < 3; i++) if ((a[i] ?? 0) !== (b[i] ?? 0)) return (a[i] ?? 0) - (b[i] ?? 0);
    return 0;
  };
  const one = (c: string): boolean => {
    const m = /^(\^|~|>=|<=|>|<|=)?v?(\d+|x|\*)?(?:\.(\d+|x|\*))?(?:\.(\d+|x|\*))?/.exec(c.trim())!;
    const [, op = "", ...parts] = m;
    const given = parts.filter((p) => p !== undefined && p !== "x" && p !== "*").map(Number);
    const base = [given[0] ?? 0, given[1] ?? 0, given[2] ?? 0];
    if (given.length === 0) return true;
    const d = cmp(v, base);
    switch (op) {
      case ">=":
        return d >= 0;
      case ">":
        return d > 0;
      case "<=":
        return d <= 0;
      case "<":
        return d < 0;
      case "~":
        return d >= 0 && v[0] === base[0] && (given.length < 2 || v[1] === base[1]);
      case "^": {
        if (d < 0) return false;
        const lead = base.findIndex((x) => x !== 0);
        const upTo = lead === -1 ? given.length - 1 : Math.min(lead, given.length - 1);
        return base.slice(0, upTo + 1).every((x, i) => v[i] === x);
      }
      default:
        return given.every((x, i) => v[i] === x);
    }
  };
  // An operator may stand apart from its version (">= 2.1.2 < 3.0.0", as iconv-lite writes it).
  return range.split("||").some((alt) => alt.trim() === "" || alt.trim().replace(/(>=|<=|>|<|=)\s+/g, "$1").split(/\s+/).every(one));
}

/**
 * Why `npm ci` would refuse `lock` for `pkg` (empty when it would install):
 * the lockfile's root must list package.json's dependencies as written, and
 * every dependency of every locked package, optional platform packages
 * included, must be locked where Node would find it, at a version its range
 * accepts. `npm ci` installs nothing that is not in the lockfile.
 */
export function lockfileProblems(pkg: Manifest, lock: Lockfile): string[] {
  const problems: string[] = [];
  const root = lock.packages[""] ?? {};
  for (const field of ["dependencies", "devDependencies", "optionalDependencies", "peerDependencies"] as const) {
    const want = pkg[field] ?? {};
    const have = root[field] ?? {};
    for (const name of new Set([...Object.keys(want), ...Object.keys(have)]))
      if (want[name] !== have[name]) problems.push(`${field}.${name}: package.json has ${want[name] ?? "nothing"}, the lockfile ${have[name] ?? "nothing"}`);
  }
  const find = (from: string, name: string): Manifest | undefined => {
    // Node's lookup: from/node_modules/name, then each parent's node_modules.
    for (let dir = from; ; ) {
      const hit = lock.packages[`${dir ? `${dir}/` : ""}node_modules/${name}`];
      if (hit) return hit;
      if (dir === "") return undefined;
      const i = dir.lastIndexOf("/node_modules/");
      dir = i === -1 ? "" : dir.slice(0, i);
    }
  };
  for (const [path, entry] of Object.entries(lock.packages)) {
    if (entry.link) continue;
    const own = path === "" ? pkg : entry; // the root's dependencies as package.json writes them
    const wanted: Deps = { ...own.dependencies, ...own.optionalDependencies };
    if (path === "") Object.assign(wanted, own.devDependencies, own.peerDependencies);
    else for (const [n, r] of Object.entries(entry.peerDependencies ?? {})) if (!entry.peerDependenciesMeta?.[n]?.optional) wanted[n] = r;
    for (const [name, range] of Object.entries(wanted)) {
      const found = find(path, name);
      const who = path || "package.json";
      if (!found) problems.push(`${who} needs ${name}@${range}: missing from the lockfile`);
      else if (found.version && !/^(npm:|file:|git|https?:)/.test(range) && !satisfies(found.version, range))
        problems.push(`${who} needs ${name}@${range}: the lockfile has ${found.version}`);
    }
  }
  return problems;
}

test("the lockfile is in sync with package.json: npm ci would install it", () => {
  const pkg = readJson("package.json") as Manifest;
  const lock = readJson("package-lock.json") as Lockfile;
  assert.ok(lock.lockfileVersion >= 2, "lockfileVersion 2 or 3 (npm 7+)");
  assert.deepEqual(lockfileProblems(pkg, lock), []);
  // msgpackr's native extension comes as one optional package per platform: all are locked, whatever platform wrote the lockfile.
  const platforms = Object.keys(lock.packages).filter((p) => p.startsWith("node_modules/@msgpackr-extract/"));
  assert.ok(platforms.length >= 6, `msgpackr-extract's platform packages are locked (found ${platforms.length})`);
});

test("the lockfile check finds what npm ci refuses: a missing optional platform package, a dependency not locked, a version out of range", () => {
  const pkg = readJson("package.json") as Manifest;
  const lock = readJson("package-lock.json") as Lockfile;
  const noPlatform = structuredClone(lock);
  delete noPlatform.packages["node_modules/@msgpackr-extract/msgpackr-extract-darwin-arm64"];
  assert.deepEqual(lockfileProblems(pkg, noPlatform), [
    "node_modules/msgpackr-extract needs @msgpackr-extract/msgpackr-extract-darwin-arm64@3.0.7: missing from the lockfile",
  ]);
  const added = structuredClone(pkg);
  added.dependencies = { ...added.dependencies, "left-pad": "^1.3.0" };
  assert.deepEqual(lockfileProblems(added, lock), [
    "dependencies.left-pad: package.json has ^1.3.0, the lockfile nothing",
    "package.json needs left-pad@^1.3.0: missing from the lockfile",
  ]);
  const old = structuredClone(lock);
  old.packages["node_modules/zod"]!.version = "3.22.0";
  assert.match(lockfileProblems(pkg, old).join("\n"), /needs zod@\^4\.\d+\.\d+: the lockfile has 3\.22\.0/);
});

test("satisfies() reads the range forms of package.json", () => {
  const cases: Array<[string, string, boolean]> = [
    ["4.10.2", "^4.6.7", true],
    ["5.0.0", "^4.6.7", false],
    ["0.2.2", "^0.2.1", true],
    ["0.3.0", "^0.2.1", false],
    ["1.2.9", "~1.2.3", true],
    ["1.3.0", "~1.2.3", false],
    ["20.19.43", ">=18", true],
    ["3.0.7", "3.0.7", true],
    ["3.0.6", "3.0.7", false],
    ["2.0.0", "^1.0.0 || ^2.0.0", true],
    ["1.0.0", "*", true],
    ["2.1.2", ">= 2.1.2 < 3.0.0", true],
    ["3.0.0", ">= 2.1.2 < 3.0.0", false],
  ];
  for (const [v, r, ok] of cases) assert.equal(satisfies(v, r), ok, `${v} in ${r}`);
});

interface PackFile {
  path: string;
}

test("npm pack ships dist without tests, benchmarks and examples, with the types, the bin and the LICENSE", { timeout: 60_000 }, () => {
  const r = spawnSync("npm", ["pack", "--dry-run", "--json", "--ignore-scripts"], { cwd: repo, encoding: "utf8", env: { ...process.env, npm_config_loglevel: "error" } });
  assert.equal(r.status, 0, r.stderr);
  const [packed] = JSON.parse(r.stdout) as Array<{ files: PackFile[] }>;
  const files = new Set(packed!.files.map((f) => f.path));
  const pkg = readJson("package.json") as { bin: Record<string, string>; exports: Record<string, string | Record<string, string>>; main: string; types: string };
  const strip = (p: string): string => p.replace(/^\.\//, "");
  for (const f of ["LICENSE", "README.md", "package.json", strip(pkg.main), strip(pkg.types)]) assert.ok(files.has(f), `${f} is shipped`);
  for (const [entry, target] of Object.entries(pkg.exports)) {
    for (const p of typeof target === "string" ? [target] : Object.values(target)) assert.ok(files.has(strip(p)), `export "${entry}": ${p} is shipped`);
  }
  for (const [name, bin] of Object.entries(pkg.bin)) {
    assert.ok(files.has(strip(bin)), `bin ${name}: ${bin} is shipped`);
    assert.match(readFileSync(join(repo, bin), "utf8"), /^#!\/usr\/bin\/env node\n/, `bin ${name} starts with a node shebang`);
  }
  const unwanted = [...files].filter((f) => /^dist\/(test|bench|examples)\//.test(f) || f.endsWith(".tsbuildinfo") || (f.endsWith(".ts") && !f.endsWith(".d.ts")));
  assert.deepEqual(unwanted, [], "tests, benchmarks, examples, build state and sources stay out of the package");
  assert.ok([...files].some((f) => f.startsWith("dist/testing/")), "tilth/testing is shipped");
});

test("zeromq and rxjs are optional peer dependencies, installed for tilth's own tests, imported only where used", () => {
  const pkg = readJson("package.json") as Manifest;
  for (const name of ["zeromq", "rxjs"]) {
    assert.equal(pkg.dependencies?.[name], undefined, `${name} is not a dependency`);
    assert.ok(pkg.peerDependencies?.[name], `${name} is a peer dependency`);
    assert.equal(pkg.peerDependenciesMeta?.[name]?.optional, true, `${name} is an optional peer`);
    assert.ok(pkg.devDependencies?.[name], `${name} is a dev dependency (tilth's tests use it)`);
  }
  // The published modules that load them: only the two loaders, never a static import.
  const loaders = new Set(["adapters/peers.js"]);
  const found: string[] = [];
  const walk = (dir: string): void => {
    for (const name of readdirSync(dir)) {
      const p = join(dir, name);
      const rel = relative(join(repo, "dist"), p);
      if (statSync(p).isDirectory()) {
        if (!["test", "bench", "examples"].includes(rel)) walk(p);
      } else if (name.endsWith(".js") && !loaders.has(rel)) {
        const src = readFileSync(p, "utf8").replace(/\/\*[\s\S]*?\*\//g, "").replace(/^\s*\/\/.*$/gm, "");
        if (/(from|import\(|require\()\s*["'](zeromq|rxjs)(\/[^"']*)?["']/.test(src) || /^import\s+["'](zeromq|rxjs)["']/m.test(src)) found.push(rel);
      }
    }
  };
  walk(join(repo, "dist"));
  assert.deepEqual(found, [], "these published modules import zeromq or rxjs themselves instead of through adapters/peers");
});

test("a missing optional peer is a MissingPackageError naming the package to install", async () => {
  await assert.rejects(importPeer("tilth-no-such-package", "a test feature"), (e: unknown) => {
    assert.ok(e instanceof MissingPackageError && isTilthError(e, "ERR_MISSING_PACKAGE"));
    assert.equal(e.packageName, "tilth-no-such-package");
    assert.match(e.message, /a test feature needs the package "tilth-no-such-package".*npm install tilth-no-such-package/);
    return true;
  });
  assert.throws(() => requirePeer("tilth-no-such-package", "ZeroMQ sockets"), /ZeroMQ sockets needs the package "tilth-no-such-package"/);
  // A package that is there but fails to load (a broken native build) keeps its own error.
  const broken = Object.assign(new Error("Cannot find module './build/zeromq.node'"), { code: "MODULE_NOT_FOUND" });
  assert.throws(
    () =>
      requirePeer("zeromq", "ZeroMQ sockets", () => {
        throw broken;
      }),
    (e) => e === broken,
  );
});

test("importing tilth/adapters/rxjs without rxjs installed fails with ERR_MISSING_PACKAGE", { timeout: 30_000 }, () => {
  // A resolve hook that answers as Node does when the package is not installed.
  const hooks = `export async function resolve(spec, ctx, next) {
    if (spec === "rxjs" || spec.startsWith("rxjs/")) { const e = new Error("Cannot find package 'rxjs' imported from " + ctx.parentURL); e.code = "ERR_MODULE_NOT_FOUND"; throw e; }
    return next(spec, ctx);
  }`;
  const register = `import { register } from "node:module"; register("data:text/javascript,${encodeURIComponent(hooks)}");`;
  const script = `import(${JSON.stringify(pathToFileURL(join(repo, "dist", "adapters", "rxjs.js")).href)}).then(() => console.log("loaded"), (e) => console.log(e.code + " " + e.message));`;
  const r = spawnSync(process.execPath, ["--import", `data:text/javascript,${encodeURIComponent(register)}`, "--input-type=module", "-e", script], { encoding: "utf8" });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^ERR_MISSING_PACKAGE tilth\/adapters\/rxjs \(the RxJS adapter\) needs the package "rxjs".*npm install rxjs/);
});
