/**
 * `tilth call` and `tilth inspect` end to end, against a server in a child process.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";

const cli = fileURLToPath(new URL("../../cli/main.js", import.meta.url));
const serverScript = fileURLToPath(new URL("./api-server.js", import.meta.url));
let server: ChildProcess;
let url = "";
let zurl = "";
let serverOut = "";
const dir = mkdtempSync(join(tmpdir(), "tilth-call-"));

before(async () => {
  server = spawn(process.execPath, [serverScript, "drpc+tcp://127.0.0.1:0", "zrpc+tcp://127.0.0.1:0"], { stdio: ["ignore", "pipe", "inherit"] });
  server.stdout!.on("data", (c: Buffer) => (serverOut += String(c)));
  while (!serverOut.includes("\n")) await once(server.stdout!, "data");
  [url, zurl] = serverOut.split("\n")[0]!.split(" ") as [string, string];
});

after(async () => {
  if (server.exitCode === null) {
    server.kill("SIGTERM");
    await once(server, "exit");
  }
  rmSync(dir, { recursive: true, force: true });
});

function tilth(...args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [cli, ...args], { encoding: "utf8", timeout: 30_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

test("call: JSON arguments where valid, strings otherwise; one-line JSON when piped", () => {
  let r = tilth("call", url, "add", "2", "3");
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, "5\n");
  r = tilth("call", url, "echo", "hello world");
  assert.equal(r.stdout, '"hello world"\n');
  r = tilth("call", url, "echo", '{"a":[1,2,{"b":null}]}');
  assert.equal(r.stdout, '{"a":[1,2,{"b":null}]}\n');
  r = tilth("call", url, "big");
  assert.equal(r.stdout, "1152921504606846977\n", "a 64-bit integer prints exactly");
  r = tilth("call", url, "echo", "not json", "--json");
  assert.equal(r.code, 2);
  assert.match(r.stderr, /argument is not valid JSON: not json/);
});

test("call: integers beyond 2^53 go out exactly, as BigInt, also inside JSON", () => {
  let r = tilth("call", url, "echo", "9007199254740993");
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, "9007199254740993\n");
  r = tilth("call", url, "kind", "9007199254740993");
  assert.equal(r.stdout, '"bigint"\n', "the server receives a BigInt");
  r = tilth("call", url, "echo", '{"id":-1234567890123456789,"n":[1,9007199254740993],"s":"9007199254740993"}');
  assert.equal(r.stdout, '{"id":-1234567890123456789,"n":[1,9007199254740993],"s":"9007199254740993"}\n');
  r = tilth("call", url, "kind", "42");
  assert.equal(r.stdout, '"number"\n', "safe integers stay numbers");
});

test("call: bytes print as hex or base64 with a note; --raw writes the bytes", () => {
  let r = tilth("call", url, "bytes", "4");
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, '{"$hex":"00010203"}\n');
  assert.match(r.stderr, /^note: bytes are shown as \{"\$hex": \.\.\.\} up to 32 bytes, else \{"\$base64": \.\.\.\}; --raw writes them as they are\n$/);
  r = tilth("call", url, "bytes", "40");
  const expected = Buffer.from(Array.from({ length: 40 }, (_, i) => i)).toString("base64");
  assert.equal(r.stdout, `{"$base64":"${expected}"}\n`);
  const raw = spawnSync(process.execPath, [cli, "call", url, "bytes", "300", "--raw"], { timeout: 30_000 });
  assert.equal(raw.status, 0, String(raw.stderr));
  assert.deepEqual([...raw.stdout], Array.from({ length: 300 }, (_, i) => i % 256));
  assert.equal(String(raw.stderr), "", "no note with --raw");
  r = tilth("call", url, "chunks", "--raw");
  assert.equal(r.stdout, "abcd", "a stream of bytes, written one after the other");
  r = tilth("call", url, "echo", "plain text", "--raw");
  assert.equal(r.stdout, "plain text", "--raw writes a string without JSON quotes");
});

test("call: a stream prints one item per line", () => {
  const r = tilth("call", url, "count", "3");
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, '{"i":0}\n{"i":1}\n{"i":2}\n');
});

test("call: a remote error exits 1 with its name, code and message on stderr", () => {
  let r = tilth("call", url, "fail");
  assert.equal(r.code, 1);
  assert.equal(r.stderr, "RpcError [ERR_OUT_OF_STOCK]: no more widgets\n");
  r = tilth("call", url, "nosuch");
  assert.equal(r.code, 1);
  assert.match(r.stderr, /\[ERR_UNKNOWN_METHOD\]: unknown method "nosuch"/);
});

test("call: --timeout gives up with ERR_TIMEOUT", () => {
  const r = tilth("call", url, "slow", "60000", "--timeout", "200");
  assert.equal(r.code, 1);
  assert.match(r.stderr, /TimeoutError \[ERR_TIMEOUT\]: call slow timed out after 200 ms/);
});

test("call: Ctrl-C stops a stream cleanly and cancels it on the server", { timeout: 30_000 }, async () => {
  const child = spawn(process.execPath, [cli, "call", url, "ticks"], { stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  child.stdout!.on("data", (c: Buffer) => (out += String(c)));
  while (out.split("\n").length < 4) await once(child.stdout!, "data");
  const before = serverOut.split("event: ticks finally").length;
  child.kill("SIGINT");
  const [code] = (await once(child, "exit")) as [number];
  assert.equal(code, 130);
  assert.match(out, /^0\n1\n2\n/);
  for (let i = 0; i < 200 && serverOut.split("event: ticks finally").length === before; i++) await new Promise((r) => setTimeout(r, 10));
  assert.ok(serverOut.split("event: ticks finally").length > before, "the server's generator was stopped");
});

test("call and inspect resolve an app name from the settings file", () => {
  const settings = join(dir, "tilth.json");
  writeFileSync(settings, JSON.stringify({ apps: { calc: { class: "./unused.js#X", remote: url } } }));
  const r = tilth("call", "calc", "add", "40", "2", "--settings", settings);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, "42\n");
  const bad = tilth("call", "nope", "add", "--settings", settings);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /no app named "nope"/);
});

test("inspect: a table of methods with parameters and docs, or JSON", () => {
  let r = tilth("inspect", url);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^add\(a: number, b: number\) -> number\s+call\s+Adds two numbers\.$/m, "a validated method shows its schemas' types");
  assert.match(r.stdout, /^count\(n\)\s+stream$/m);
  r = tilth("inspect", url, "--json");
  const parsed = JSON.parse(r.stdout) as { methods: { name: string; params: string[]; schema?: unknown }[] };
  const add = parsed.methods.find((m) => m.name === "add");
  assert.deepEqual(add?.params, ["a", "b"]);
  assert.deepEqual(add?.schema, { params: [{ type: "number" }, { type: "number" }], result: { type: "number" } }, "the JSON Schema of each parameter and of the result");
  assert.equal(parsed.methods.find((m) => m.name === "echo")?.schema, undefined);
});

test("call: arguments that do not fit a method's schemas are ERR_BAD_ARGUMENTS with the path and message of each; a wrong result is ERR_BAD_RESULT", () => {
  for (const u of [url, zurl]) {
    let r = tilth("call", u, "add", '"2"', "3");
    assert.equal(r.code, 1, `${u}: ${r.stdout}`);
    assert.equal(r.stdout, "", "not \"23\"");
    // ZeroRPC names it as zerorpc-python does a bad call: TypeError.
    assert.match(r.stderr, u === url ? /BadArgumentsError \[ERR_BAD_ARGUMENTS\]/ : /TypeError/);
    assert.match(r.stderr, /add\(\): argument 0: Invalid input: expected number, received string/);
    r = tilth("call", u, "add", "2", "3");
    assert.equal(r.stdout, "5\n");
    r = tilth("call", u, "half", "3");
    assert.equal(r.code, 1);
    assert.match(r.stderr, u === url ? /BadResultError \[ERR_BAD_RESULT\]: result: Invalid input: expected int/ : /BadResultError/);
    assert.equal(tilth("call", u, "half", "4").stdout, "2\n");
  }
});

test("call and inspect over zrpc: the same commands against a ZeroRPC URL (inspect through _zerorpc_inspect)", () => {
  let r = tilth("call", zurl, "add", "2", "3");
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, "5\n");
  r = tilth("call", zurl, "count", "2");
  assert.equal(r.stdout, '{"i":0}\n{"i":1}\n');
  r = tilth("inspect", zurl);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^add\(a: number, b: number\) -> number\s+call\s+Adds two numbers\.$/m, "the schemas ride in _zerorpc_inspect");
  r = tilth("call", zurl, "fail");
  assert.equal(r.code, 1);
  assert.match(r.stderr, /no more widgets/);
  // the debug API is off over zrpc by default, on over drpc
  r = tilth("call", zurl, ".debug.status");
  assert.equal(r.code, 1);
  assert.match(r.stderr, /NameError/);
  r = tilth("call", url, ".debug.status");
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /"uptimeMs":\d+/);
});
