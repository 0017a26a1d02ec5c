/**
 * `tilth bench` end to end: the command against a tilth server in a child
 * process (drpc and zrpc over tcp) and against the npm zerorpc server; the
 * loopback rule, the bounds, Ctrl-C, workers, --json, --compare, plots.
 * No assertion on speed: counts, codes and shapes only.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import type { BenchFile } from "../../cli/bench/report.js";
import { freePort, repoRoot } from "../transports/util.js";

const cli = fileURLToPath(new URL("../../cli/main.js", import.meta.url));
const serverScript = fileURLToPath(new URL("./api-server.js", import.meta.url));
let server: ChildProcess;
let url = "";
let zurl = "";
const dir = mkdtempSync(join(tmpdir(), "tilth-bench-"));

before(async () => {
  server = spawn(process.execPath, [serverScript, "drpc+tcp://127.0.0.1:0", "zrpc+tcp://127.0.0.1:0"], { stdio: ["ignore", "pipe", "inherit"] });
  let out = "";
  server.stdout!.on("data", (c: Buffer) => (out += String(c)));
  while (!out.includes("\n")) await once(server.stdout!, "data");
  [url, zurl] = out.split("\n")[0]!.split(" ") as [string, string];
});

after(async () => {
  if (server.exitCode === null) {
    server.kill("SIGTERM");
    await once(server, "exit");
  }
  rmSync(dir, { recursive: true, force: true });
});

interface Out {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Run `tilth ARGS...` to its end (bounded). */
async function tilth(...args: string[]): Promise<Out> {
  const p = spawn(process.execPath, [cli, ...args], { stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  p.stdout!.on("data", (c: Buffer) => (stdout += String(c)));
  p.stderr!.on("data", (c: Buffer) => (stderr += String(c)));
  const t = setTimeout(() => p.kill("SIGKILL"), 60_000);
  const [code] = (await once(p, "exit")) as [number | null];
  clearTimeout(t);
  return { code, stdout, stderr };
}

const readRun = (file: string): BenchFile => JSON.parse(readFileSync(file, "utf8")) as BenchFile;

test("closed loop over drpc+tcp: --calls bounds the run; the summary and --json agree", async () => {
  const json = join(dir, "closed.json");
  const r = await tilth("bench", url, "echo", "hello", "-c", "2", "-m", "4", "--calls", "400", "--warmup", "0", "--json", json);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /closed loop, 4 in flight per connection, 2 connections/);
  assert.match(r.stdout, /calls {7}400 in [\d.]+ s = [\d ]+ calls\/s, errors 0 \(0%\)/);
  assert.match(r.stdout, /latency {5}p50 .+ {2}p90 .+ {2}p99 .+ {2}p99\.9 .+ {2}max /);
  assert.match(r.stdout, /bytes {7}sent .+\/s, received .+\/s/);
  assert.match(r.stdout, /client {6}CPU \d+% of one core, event loop busy \d+%/);
  const f = readRun(json);
  assert.equal(f.tool, "tilth bench");
  assert.equal(f.runs.length, 1);
  const run = f.runs[0]!;
  assert.equal(run.calls, 400);
  assert.equal(run.latency.count, 400);
  assert.equal(run.mode, "closed");
  assert.ok(run.latency.histogram.length > 0, "the whole histogram is kept");
  assert.ok(run.bytesSent > 400 * 5 && run.bytesReceived > 400 * 5, "every call carried its argument and result");
  assert.ok(run.client.cpu > 0);
});

test("open loop over drpc+tcp: --rate sends on schedule; latency from the intended start; errors counted by code", async () => {
  const json = join(dir, "open.json");
  let r = await tilth("bench", url, "add", "1", "2", "--rate", "400", "-d", "500ms", "--warmup", "0", "--json", json);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /open loop at 400 calls\/s \(at most 1000 in flight per connection\)/);
  assert.match(r.stdout, /from send {3}p50 /, "the uncorrected latency beside it");
  const run = readRun(json).runs[0]!;
  // Each call of the schedule was made, or reported as due and never sent (a starved machine falls behind).
  assert.equal(run.calls + run.behind, 200, "400 calls/s for 0.5 s");
  assert.equal(run.rate, 400);
  r = await tilth("bench", url, "fail", "--calls", "30", "--warmup", "0", "-m", "3");
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /errors 30 \(100\.00%\)/);
  assert.match(r.stdout, /^ {4}ERR_OUT_OF_STOCK {2} +30 {2}no more widgets$/m);
  r = await tilth("bench", url, "slow", "5000", "--calls", "2", "--warmup", "0", "-m", "2", "--timeout", "100");
  assert.match(r.stdout, /^ {4}ERR_TIMEOUT +2 {2}call slow timed out after 100 ms$/m);
});

test("rate steps: one run per step, a table, and where latency breaks", async () => {
  const json = join(dir, "steps.json");
  const r = await tilth("bench", url, "echo", "1", "--rate", "100:300:100", "-d", "300ms", "--warmup", "0", "--json", json);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^ +rate +calls\/s +p50 +p90 +p99 +p99\.9 +max +errors +behind$/m);
  assert.match(r.stdout, /^ +100\/s /m);
  assert.match(r.stdout, /^ +300\/s /m);
  assert.match(r.stdout, /latency (held at every step|breaks at [\d ]+ calls\/s: .+)/);
  const f = readRun(json);
  assert.deepEqual(
    f.runs.map((x) => [x.rate, x.calls + x.behind]),
    [
      [100, 30],
      [200, 60],
      [300, 90],
    ],
  );
});

test("a streamed method: items per second and time to first item", async () => {
  const r = await tilth("bench", url, "count", "5", "--calls", "40", "--warmup", "0", "-m", "4");
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /streams {5}40 streams, 200 items = [\d ]+ items\/s/);
  assert.match(r.stdout, /first item {2}p50 /);
  assert.match(r.stdout, /whole {7}p50 /);
});

test("arguments from a JSON file of argument lists, used in turn", async () => {
  const args = join(dir, "args.json");
  writeFileSync(args, "[[1, 2], [3, 4], [9007199254740993, 1]]");
  const json = join(dir, "args-run.json");
  let r = await tilth("bench", url, "add", "--args", args, "--calls", "30", "--warmup", "0", "--json", json);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(readRun(json).runs[0]!.calls, 30);
  writeFileSync(args, '{"not": "lists"}');
  r = await tilth("bench", url, "add", "--args", args, "--calls", "3");
  assert.equal(r.code, 1);
  assert.match(r.stderr, /ERR_BENCH_FILE.*must hold a non-empty JSON array of argument lists/);
  r = await tilth("bench", url, "add", "1", "--args", args);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /not both/);
});

test("zrpc over tcp against tilth's zrpc server", async () => {
  const json = join(dir, "zrpc.json");
  const r = await tilth("bench", zurl, "add", "2", "3", "--calls", "200", "--warmup", "0", "-c", "2", "-m", "5", "--json", json);
  assert.equal(r.code, 0, r.stderr);
  const run = readRun(json).runs[0]!;
  assert.equal(run.calls, 200);
  assert.equal(run.failed, 0);
});

test("safety: a target that is not loopback is refused (exit 2) unless --allow-remote; bad options are usage errors", async () => {
  let r = await tilth("bench", "drpc+tcp://10.1.2.3:9990", "ping", "--calls", "1");
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /refusing to load-test drpc\+tcp:\/\/10\.1\.2\.3:9990: 10\.1\.2\.3 is not a loopback address .*needs --allow-remote \[ERR_BENCH_NOT_LOOPBACK\]/);
  // With --allow-remote the tool tries (a closed port here: a connect failure, exit 1, not a refusal).
  const port = await freePort();
  r = await tilth("bench", `drpc+tcp://127.0.0.1:${port}`, "ping", "--calls", "1", "--allow-remote", "--timeout", "2000");
  assert.equal(r.code, 1);
  assert.doesNotMatch(r.stderr, /ERR_BENCH_NOT_LOOPBACK/);
  r = await tilth("bench", url, "echo", "--rate", "1:1000:1");
  assert.equal(r.code, 2);
  assert.match(r.stderr, /makes 1000 steps; at most 100/);
  r = await tilth("bench", url);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /usage: tilth bench URL\|APP METHOD/);
});

test("Ctrl-C prints the summary so far and exits 130; the live line shows while it runs", { timeout: 60_000 }, async () => {
  const p = spawn(process.execPath, [cli, "bench", url, "echo", "x", "-d", "10m", "--warmup", "0", "--live"], { stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  p.stdout!.on("data", (c: Buffer) => (stdout += String(c)));
  p.stderr!.on("data", (c: Buffer) => (stderr += String(c)));
  while (!/\[1s\] [\d ]+ calls\/s {2}calls [\d ]+ {2}errors 0 {2}p50 .+ {2}p99 .+\n/.test(stderr)) await once(p.stderr!, "data");
  p.kill("SIGINT");
  const [code] = (await once(p, "exit")) as [number];
  assert.equal(code, 130, stderr);
  assert.match(stdout, /\(interrupted\)/);
  assert.match(stdout, /calls {7}[\d ]+ in [\d.]+ s/);
});

test("--workers 2: two client processes, their histograms merged", { timeout: 60_000 }, async () => {
  const json = join(dir, "workers.json");
  const r = await tilth("bench", url, "echo", "w", "--workers", "2", "-c", "3", "-m", "2", "--calls", "301", "--warmup", "0", "--json", json);
  assert.equal(r.code, 0, r.stderr);
  const run = readRun(json).runs[0]!;
  assert.equal(run.calls, 301, "the calls split between the workers, all counted");
  assert.equal(run.latency.count, 301, "the merged histogram holds every call");
  assert.equal(run.workers, 2);
  assert.equal(run.connections, 3);
  assert.match(r.stdout, /client {6}2 processes, CPU \d+% of one core/);
  const open = join(dir, "workers-open.json");
  const o = await tilth("bench", url, "echo", "w", "--workers", "2", "-c", "2", "--rate", "300", "-d", "500ms", "--warmup", "0", "--json", open);
  assert.equal(o.code, 0, o.stderr);
  const ro = readRun(open).runs[0]!;
  assert.equal(ro.rate, 300, "the rate split and added back up");
  assert.equal(ro.calls + ro.behind, 150);
});

test("--compare: the difference of two runs, with a verdict; --html and --svg plots", { timeout: 60_000 }, async () => {
  const a = join(dir, "a.json");
  const b = join(dir, "b.json");
  const html = join(dir, "run.html");
  const svg = join(dir, "run.svg");
  for (const f of [a, b]) {
    const r = await tilth("bench", url, "echo", "x", "--rate", "200", "-d", "500ms", "--warmup", "0", "--json", f, "--html", html, "--svg", svg);
    assert.equal(r.code, 0, r.stderr);
  }
  const r = await tilth("bench", "--compare", a, b);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^A: .*a\.json\nB: .*b\.json/);
  assert.match(r.stdout, /^ {2}calls\/s +\d+ +\d+ +[+-]\d+\.\d% {2}too few full intervals to judge \(1 and 1; at least 4: run longer\)$/m);
  assert.match(r.stdout, /^ {2}p99 +\S+ [µm]?s +\S+ [µm]?s +[+-]\d+\.\d%/m);
  assert.match(r.stdout, /verdict: /);
  const page = readFileSync(html, "utf8");
  assert.match(page, /<h1>tilth bench<\/h1>/);
  assert.equal(page.match(/<svg /g)?.length, 2, "two plots");
  assert.match(page, /latency over time/);
  assert.match(page, /latency by percentile/);
  const s = readFileSync(svg, "utf8");
  assert.match(s, /^<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg"/);
  assert.ok((s.match(/<polyline /g)?.length ?? 0) >= 4, "p50, p99 and max over time, and the percentile curve");
  const bad = join(dir, "bad.json");
  writeFileSync(bad, '{"tool": "other"}');
  const e = await tilth("bench", "--compare", a, bad);
  assert.equal(e.code, 1);
  assert.match(e.stderr, /ERR_BENCH_FILE.*is not a tilth bench --json file/);
});

const interopDir = join(repoRoot, "test", "interop");
const peerMissing = existsSync(join(interopDir, "node_modules", "zerorpc"))
  ? undefined
  : existsSync(join(interopDir, ".interop-unavailable"))
    ? readFileSync(join(interopDir, ".interop-unavailable"), "utf8").trim()
    : "npm zerorpc is not installed: run `node scripts/setup-interop.mjs`";

describe("against the npm zerorpc server (a ZeroRPC service tilth did not write)", { skip: peerMissing }, () => {
  let peer: ChildProcess;
  let endpoint = "";
  before(async () => {
    endpoint = `tcp://127.0.0.1:${await freePort()}`;
    peer = spawn(process.execPath, [join(interopDir, "peer.cjs"), "server", endpoint, "5000"], { cwd: interopDir, stdio: ["ignore", "pipe", "inherit"] });
    let out = "";
    peer.stdout!.on("data", (c: Buffer) => (out += String(c)));
    while (!out.includes("ready")) await once(peer.stdout!, "data");
  });
  after(async () => {
    if (peer.exitCode === null && peer.signalCode === null) {
      peer.kill("SIGKILL");
      await once(peer, "exit");
    }
  });

  test("closed and open loops, a stream, and its errors by name", { timeout: 60_000 }, async () => {
    const zu = `zrpc+${endpoint}`;
    const json = join(dir, "peer.json");
    let r = await tilth("bench", zu, "add", "1", "2", "--calls", "300", "-m", "5", "--warmup", "0", "--json", json);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(readRun(json).runs[0]!.calls, 300);
    assert.equal(readRun(json).runs[0]!.failed, 0);
    r = await tilth("bench", zu, "hello", "bench", "--rate", "200", "-d", "500ms", "--warmup", "0", "--json", json);
    assert.equal(r.code, 0, r.stderr);
    const open = readRun(json).runs[0]!;
    assert.equal(open.calls + open.behind, 100);
    r = await tilth("bench", zu, "count", "4", "--calls", "20", "--warmup", "0", "-m", "2");
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /streams {5}20 streams, 80 items/);
    r = await tilth("bench", zu, "fail", "boom", "--calls", "10", "--warmup", "0");
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /errors 10 \(100\.00%\)/);
    assert.match(r.stdout, /^ {4}ERR_REMOTE\/ValueError +10 {2}boom$/m, "a ZeroRPC error counts by its name");
  });
});
