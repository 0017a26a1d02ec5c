/**
 * examples/udp: the echo keeps a count per conversation; the statsd
 * collector's parsing and bounds; and the collector end to end under
 * `tilth run`, fed by a raw node:dgram sender and read with
 * `tilth call collector stats`.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import dgram from "node:dgram";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { NodeLoop } from "../../adapters/node.js";
import { registerTransports } from "../../transports/index.js";
import { Aggregates, type CollectorStats } from "../../examples/udp/collector.js";
import { udpEcho } from "../../examples/udp/echo.js";
import { leakCheck } from "../helpers/leaks.js";
import { watch } from "../helpers/child.js";
import { freePort } from "../transports/util.js";

test("udp echo example: each peer gets its own count", async () => {
  const done = leakCheck();
  const loop = registerTransports(new NodeLoop());
  const lines: string[] = [];
  const listener = await udpEcho(loop, "udp://127.0.0.1:0", {}, (l) => lines.push(l));
  const ask = async (conv: Awaited<ReturnType<typeof loop.connect>>, got: string[], text: string): Promise<void> => {
    const n = got.length;
    // Retransmit only after 500 ms without an answer (a datagram may be lost; on loopback it hardly ever is).
    for (let i = 0; got.length === n; i++) {
      assert.ok(i < 20, "no answer");
      conv.send([Buffer.from(text)]);
      for (let w = 0; w < 100 && got.length === n; w++) await new Promise<void>((r) => loop.timer(5, r));
    }
  };
  const peers = await Promise.all([0, 1, 2].map(() => loop.connect(listener.url)));
  const answers = peers.map(() => [] as string[]);
  peers.forEach((p, i) => p.start({ message: (m) => answers[i]!.push(String(m[0])), end() {} }));
  for (let round = 1; round <= 3; round++) {
    for (let i = 0; i < peers.length; i++) if (i < round) await ask(peers[i]!, answers[i]!, `hi${i}`);
  }
  assert.deepEqual(answers[0], ["1 hi0", "2 hi0", "3 hi0"]);
  assert.deepEqual(answers[1], ["1 hi1", "2 hi1"]);
  assert.deepEqual(answers[2], ["1 hi2"]);
  await Promise.all(peers.map((p) => p.close()));
  await listener.close();
  assert.equal(lines.filter((l) => l.includes("opened")).length, 3);
  assert.ok(lines.some((l) => /ended after 3 datagrams/.test(l)), lines.join("\n"));
  await done();
});

test("collector example: counters with sample rates, gauges absolute and relative, bad lines counted, names bounded", () => {
  const a = new Aggregates(4);
  assert.equal(a.take("hits:1|c\nhits:2|c\nsampled:1|c|@0.5\n"), 0);
  assert.equal(a.take("temp:20|g\ntemp:+3|g\nload:-1|g"), 0);
  assert.equal(a.counters.get("hits"), 3);
  assert.equal(a.counters.get("sampled"), 2);
  assert.equal(a.gauges.get("temp"), 23);
  assert.equal(a.gauges.get("load"), -1);
  const bad = ["", "nocolon", ":1|c", "x:abc|c", "x:1|q", "x:1|c|@0", "x:1|c|@2", "x:1|g|@0.5", "x:1", `${"n".repeat(201)}:1|c`, "bad name:1|c", "x:1|c|@0.5|z", "\u0000:1|c"];
  const before = a.bad;
  a.take(bad.join("\n"));
  assert.equal(a.bad - before, bad.length - 1, "every line but the empty one is bad");
  a.take("fifth:1|c\nsixth:1|g\nhits:1|c");
  assert.equal(a.refused, 2, "names past maxMetrics are refused and counted");
  assert.equal(a.counters.get("hits"), 4, "known names still count");
  assert.equal(a.counters.size + a.gauges.size, 4);
});

function run(args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, args, { env, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    p.stdout.on("data", (c) => (out += String(c)));
    p.stderr.on("data", (c) => (out += String(c)));
    p.on("exit", (code) => resolve({ code, out }));
  });
}

test("tilth run collector takes statsd over udp; tilth call collector stats serves the aggregates over drpc", { timeout: 60_000 }, async () => {
  const cli = fileURLToPath(new URL("../../cli/main.js", import.meta.url));
  const settings = fileURLToPath(new URL("../../examples/udp/settings.js", import.meta.url));
  const runDir = mkdtempSync(join(tmpdir(), "tilth-collector-"));
  const env = { ...process.env, TILTH__RUN__DIR: runDir, TILTH__APPS__COLLECTOR__BIND: `drpc+tcp://127.0.0.1:${await freePort()}`, NO_COLOR: "1" };
  const child = spawn(process.execPath, [cli, "run", "collector", "--settings", settings, '--collector.udp="udp://127.0.0.1:0"'], {
    env,
    stdio: ["ignore", "pipe", "pipe"],
  });
  const { waitFor, exited, output } = watch(child);
  const sender = dgram.createSocket("udp4");
  try {
    const port = Number((await waitFor(/statsd on udp:\/\/127\.0\.0\.1:(\d+)/))[1]);
    // start() logs it once the drpc server is bound.
    const lines = ["requests:1|c", "requests:1|c\nrequests:2|c", "latency_ms:12|g", "sampled:1|c|@0.25", "this is not statsd"];
    const stats = async (): Promise<CollectorStats> => {
      const r = await run([cli, "call", "collector", "stats", "--settings", settings], env);
      assert.equal(r.code, 0, r.out);
      return JSON.parse(r.out) as CollectorStats;
    };
    let s: CollectorStats | undefined;
    for (let attempt = 0; attempt < 5; attempt++) {
      for (const l of lines) sender.send(Buffer.from(l), port, "127.0.0.1");
      s = await stats();
      if (s.datagrams >= lines.length) break;
    }
    assert.ok(s !== undefined && s.datagrams >= lines.length, JSON.stringify(s));
    const rounds = s.datagrams / lines.length;
    assert.ok(Number.isInteger(rounds), `whole rounds of datagrams: ${s.datagrams}`);
    assert.equal(s.counters.requests, 4 * rounds);
    assert.equal(s.counters.sampled, 4 * rounds);
    assert.equal(s.gauges.latency_ms, 12);
    assert.equal(s.bad, rounds);
    assert.deepEqual(Object.values(s.senders), [s.datagrams], "one sender, one conversation");
    child.kill("SIGTERM");
    assert.equal(await exited, 0, output());
  } finally {
    sender.close();
    child.kill("SIGKILL");
    rmSync(runDir, { recursive: true, force: true });
  }
});
