/**
 * The command line as a newcomer meets it: help for every command, the
 * version, suggestions for mistyped commands and options, exit codes that
 * mean one thing each (docs/operators.md), colours only where they belong.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { fileURLToPath } from "node:url";
import { colorEnabled } from "../../app/Logger.js";
import { EXIT, UsageError, editDistance, parseCommand, suggest } from "../../cli/args.js";
import { COMMANDS, CALL, RUN } from "../../cli/commands.js";

const cli = fileURLToPath(new URL("../../cli/main.js", import.meta.url));
const apps = fileURLToPath(new URL("../fixtures/apps/apps.js", import.meta.url));
const repo = fileURLToPath(new URL("../../../", import.meta.url));
const root = mkdtempSync(join(tmpdir(), "tilth-cli-help-"));
after(() => rmSync(root, { recursive: true, force: true }));

function tilth(args: string[], env: NodeJS.ProcessEnv = {}): { code: number | null; stdout: string; stderr: string } {
  const clean = { ...process.env };
  delete clean.FORCE_COLOR;
  delete clean.NO_COLOR;
  const r = spawnSync(process.execPath, [cli, ...args], { encoding: "utf8", timeout: 30_000, env: { ...clean, ...env }, cwd: root });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

test("every command has --help, -h and tilth help CMD, with usage, options and examples; exit 0", () => {
  for (const c of COMMANDS.filter((x) => x.name !== "help")) {
    const a = tilth([c.name, "--help"]);
    assert.equal(a.code, EXIT.ok, `${c.name} --help: ${a.stderr}`);
    assert.match(a.stdout, new RegExp(`^usage:\\n  tilth ${c.name} `), c.name);
    assert.match(a.stdout, /\noptions:\n[\s\S]*--help[\s\S]*\nexamples:\n {2}tilth /, c.name);
    assert.equal(tilth(["help", c.name]).stdout, a.stdout, `tilth help ${c.name}`);
    assert.equal(tilth([c.name, "-h"]).stdout, a.stdout, `tilth ${c.name} -h`);
  }
  const call = tilth(["call", "--help"]).stdout;
  assert.match(call, /--raw/);
  assert.match(call, /tilth call calc add 1 2/);
  const overview = tilth(["help"]);
  assert.equal(overview.code, EXIT.ok);
  for (const c of COMMANDS) assert.match(overview.stdout, new RegExp(`\\n  ${c.name} `));
  const none = tilth([]);
  assert.equal(none.code, EXIT.usage, "no command is a usage mistake");
  assert.match(none.stderr, /commands:/);
});

test("tilth --version prints the version of package.json", () => {
  const { version } = JSON.parse(readFileSync(join(repo, "package.json"), "utf8")) as { version: string };
  for (const flag of ["--version", "-v"]) {
    const r = tilth([flag]);
    assert.equal(r.code, EXIT.ok);
    assert.equal(r.stdout, `tilth ${version}\n`);
  }
});

test("a mistyped command or option gets a suggestion and exit 2", () => {
  let r = tilth(["cal", "x", "y"]);
  assert.equal(r.code, EXIT.usage);
  assert.match(r.stderr, /unknown command "cal" \(did you mean "call"\?\)/);
  r = tilth(["help", "inspekt"]);
  assert.equal(r.code, EXIT.usage);
  assert.match(r.stderr, /did you mean "inspect"/);
  r = tilth(["run", "ping", "--settigns", "x.json"]);
  assert.equal(r.code, EXIT.usage);
  assert.match(r.stderr, /unknown option --settigns for "tilth run" \(did you mean --settings\?\)\n\(`tilth help run` shows its options and examples\)/);
  r = tilth(["call", "calc", "add", "1", "--timeuot", "5"]);
  assert.equal(r.code, EXIT.usage);
  assert.match(r.stderr, /did you mean --timeout\?/);
  r = tilth(["shell", "--hisory", "f"]);
  assert.match(r.stderr, /did you mean --history\?/);
  r = tilth(["run", "--json=yes"]);
  assert.match(r.stderr, /--json takes no value/);
  r = tilth(["run", "ping", "--settings"]);
  assert.match(r.stderr, /--settings needs a value \(FILE\)/);
});

test("suggestions come from the edit distance, only for near misses", () => {
  assert.equal(editDistance("settigns", "settings"), 1, "a swap of neighbours is one edit");
  assert.equal(editDistance("kitten", "sitting"), 3);
  assert.equal(editDistance("", "abc"), 3);
  assert.equal(suggest("--settigns", ["--settings", "--set"]), "--settings");
  assert.equal(suggest("cal", ["run", "call", "shell"]), "call");
  assert.equal(suggest("frobnicate", ["run", "call", "shell", "inspect"]), undefined);
});

test("tilth call: after METHOD, negative numbers and unknown options are arguments; after --, everything is", () => {
  const p = parseCommand(CALL, ["calc", "add", "-1", "-2.5", "--json", "--flag", "--", "--raw"]);
  assert.deepEqual(p.positionals, ["calc", "add", "-1", "-2.5", "--flag", "--raw"]);
  assert.equal(p.values.json, true);
  assert.equal(p.values.raw, undefined);
  assert.throws(() => parseCommand(CALL, ["--nope", "calc", "add"]), (e) => e instanceof UsageError && /unknown option --nope/.test(e.message));
  const run = parseCommand(RUN, ["svc", "--svc.tick.interval=5", "--set", "a.b=1", "--set=c.d=2"]);
  assert.deepEqual(run.extra, ["--svc.tick.interval=5"]);
  assert.deepEqual(run.values.set, ["a.b=1", "c.d=2"]);
});

function settingsFile(name: string, apps: Record<string, unknown>): string {
  const dir = join(root, name);
  mkdirSync(dir);
  const file = join(dir, "tilth.json");
  writeFileSync(file, JSON.stringify({ apps }));
  return file;
}

test("exit codes: a settings mistake is 2 wherever it is found (in the runner or in the app's process); a port in use is 1", { timeout: 60_000 }, async () => {
  const file = settingsFile("di", { bad: { class: `${apps}#UninjectableApp` } });
  for (const mode of [[], ["--together"]]) {
    const r = tilth(["run", "bad", "--settings", file, ...mode]);
    const out = r.stdout + r.stderr;
    assert.equal(r.code, EXIT.usage, out);
    assert.match(out, /bad settings:[\s\S]*app "bad": class: cannot construct UninjectableApp: .*ERR_DI_METADATA.*experimentalDecorators/);
    assert.doesNotMatch(out, /exit 78|\(exit \d+\)/);
    if (mode.length === 0) assert.match(out, /app bad cannot start \(its settings are wrong\); stopping/);
  }
  const blocker = net.createServer();
  await new Promise<void>((r) => blocker.listen(0, "127.0.0.1", r));
  try {
    const port = (blocker.address() as net.AddressInfo).port;
    const busy = settingsFile("busy", { ping: { class: `${apps}#PingApp`, bind: `drpc+tcp://127.0.0.1:${port}` } });
    for (const mode of [[], ["--together"]]) {
      const r = tilth(["run", "ping", "--settings", busy, ...mode]);
      assert.equal(r.code, EXIT.failed, r.stdout + r.stderr);
      assert.doesNotMatch(r.stdout + r.stderr, /\(exit \d+\)/);
    }
  } finally {
    await new Promise<void>((r) => blocker.close(() => r()));
  }
  const status = tilth(["run", "--status", "--settings", file]);
  assert.equal(status.code, EXIT.notRunning);
  assert.equal(status.stdout, "bad: not running\n");
});

test("colours: only on a terminal, never with NO_COLOR, always with FORCE_COLOR", () => {
  const tty = { isTTY: true, hasColors: () => true };
  const pipe = { isTTY: false };
  assert.equal(colorEnabled(tty, {}), true);
  assert.equal(colorEnabled(pipe, {}), false);
  assert.equal(colorEnabled(tty, { NO_COLOR: "1" }), false);
  assert.equal(colorEnabled(tty, { NO_COLOR: "" }), true, "an empty NO_COLOR does not count");
  assert.equal(colorEnabled(pipe, { FORCE_COLOR: "1" }), true);
  assert.equal(colorEnabled(pipe, { FORCE_COLOR: "1", NO_COLOR: "1" }), true, "FORCE_COLOR wins");
  assert.equal(colorEnabled(tty, { FORCE_COLOR: "0" }), false);
  assert.equal(colorEnabled({ isTTY: true, hasColors: () => false }, {}), false, "a terminal without colours");

  const esc = "\x1b[";
  assert.ok(!tilth(["frobnicate"]).stderr.includes(esc), "no colour into a pipe");
  assert.ok(tilth(["frobnicate"], { FORCE_COLOR: "1" }).stderr.includes(`${esc}31mtilth:`), "FORCE_COLOR colours the error prefix");
  assert.ok(tilth(["help", "call"], { FORCE_COLOR: "1" }).stdout.includes(`${esc}1musage:`), "FORCE_COLOR: bold headings");
  assert.ok(!tilth(["help", "call"], { NO_COLOR: "1" }).stdout.includes(esc));
});
