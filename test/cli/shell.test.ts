/**
 * `tilth shell` against a server in a child process: piped input end to end,
 * and completion and the message log in-process.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, readFileSync, rmSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";
import { startShell } from "../../cli/shell.js";

const cli = fileURLToPath(new URL("../../cli/main.js", import.meta.url));
const serverScript = fileURLToPath(new URL("./api-server.js", import.meta.url));
let server: ChildProcess;
let url = "";
const dir = mkdtempSync(join(tmpdir(), "tilth-shell-"));

before(async () => {
  server = spawn(process.execPath, [serverScript, "drpc+tcp://127.0.0.1:0"], { stdio: ["ignore", "pipe", "inherit"] });
  let out = "";
  while (!out.includes("\n")) out += String((await once(server.stdout!, "data"))[0]);
  url = out.split("\n")[0]!.split(" ")[0]!;
});

after(async () => {
  server.kill("SIGTERM");
  await once(server, "exit");
  rmSync(dir, { recursive: true, force: true });
});

test("shell: piped input calls the remote API with top-level await, then exits", () => {
  const r = spawnSync(process.execPath, [cli, "shell", url, "--history", join(dir, "h1")], {
    input: "const r = await api.add(40, 2)\nconsole.log('answer', r)\nawait api.fail()\n",
    encoding: "utf8",
    timeout: 30_000,
  });
  assert.equal(r.status, 1, "a failed line makes the exit status 1");
  assert.match(r.stdout, /tilth shell: api = drpc\+tcp:/);
  assert.match(r.stdout, /answer 42/);
  assert.match(r.stdout, /Uncaught RemoteError: no more widgets/);
});

test("shell: tab completion offers remote method names; calls are logged to a file", async () => {
  const input = new PassThrough();
  const output = new PassThrough();
  let shown = "";
  output.on("data", (c: Buffer) => (shown += String(c)));
  const logFile = join(dir, "messages.jsonl");
  const history = join(dir, "history");
  const shell = await startShell({ targets: [url], input, output, terminal: true, historyFile: history, logFile });
  try {
    const [completions] = await new Promise<[string[], string]>((resolve, reject) =>
      shell.repl.completer("api.co", (err, res) => (err ? reject(err) : resolve(res as [string[], string]))),
    );
    assert.ok(completions.includes("api.count"), `completions: ${completions.join(", ")}`);
    input.write("await api.echo('hello')\r");
    for (let i = 0; i < 500 && !/\n'hello'/.test(shown); i++) await new Promise((r) => setTimeout(r, 10));
    assert.match(shown, /\n'hello'/);
    const lines = readFileSync(logFile, "utf8").trim().split("\n").map((l) => JSON.parse(l) as { dir: string; method: string });
    assert.deepEqual(
      lines.filter((l) => l.method === "echo").map((l) => l.dir),
      ["call", "result"],
    );
  } finally {
    shell.repl.close();
    await shell.close();
  }
  for (let i = 0; i < 200 && !(existsSync(history) && readFileSync(history, "utf8").includes("hello")); i++) await new Promise((r) => setTimeout(r, 10));
  assert.match(readFileSync(history, "utf8"), /api\.echo\('hello'\)/, "history was written");
});
