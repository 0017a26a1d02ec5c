/**
 * examples/service (the mailer): in virtual time in-process (the digest
 * feeds the outbox, retries happen, RPC works, stop drains), and end to end
 * with `tilth run` and command-line overrides (real process, HTTP health and
 * metrics, RPC, SIGTERM).
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { NodeLoop } from "../../adapters/node.js";
import { VirtualLoop } from "../../adapters/virtual.js";
import { parseOverride } from "../../app/overrides.js";
import { startApp } from "../../app/runtime.js";
import { Settings } from "../../app/Settings.js";
import { isTilthError } from "../../core/errors.js";
import { sleep } from "../../core/time.js";
import { close, connect } from "../../rpc/index.js";
import { registerTransports } from "../../transports/index.js";
import { MailerService, Outbox, type MailerAPI } from "../../examples/service/mailer.js";
import settingsData from "../../examples/service/settings.js";
import { capture } from "./svc-helpers.js";
import { watch } from "../helpers/child.js";
import { httpGet } from "../helpers/http.js";

test("the mailer in virtual time: digests every interval, retries, RPC, a full outbox refuses, stop drains", async () => {
  const loop = new VirtualLoop();
  const out = capture();
  // no real sockets here: RPC over inproc; the HTTP task binds port 0 on loopback
  const settings = Settings.from(settingsData, "<example>", {}, [
    parseOverride('mailer.rpc.bind="drpc+inproc://mailer"'),
    parseOverride("mailer.http.port=0"),
    parseOverride("mailer.digest.interval=1000"),
    parseOverride("mailer.outbox.capacity=3"),
    parseOverride("mailer.failureRate=0.5"),
  ]);
  await loop.run(async () => {
    const h = await startApp("mailer", settings, { loop, log: { write: out.write, color: false } });
    const svc = h.app as MailerService;
    const api = await connect<MailerAPI>("drpc+inproc://mailer", { loop });
    assert.equal(await api.subscribe("dev@example.com"), 2);
    await sleep(loop, 10_500); // digests at about 1, 2, ... 10 s, two subscribers each
    const s = await api.stats();
    assert.ok(s.sent >= 15, `sent ${s.sent}`);
    assert.ok(svc.metrics.value("tilth_queue_retries_total", { task: "outbox" })! > 0, "with failureRate 0.5 some attempts were retried");
    assert.ok(out.grep(/INFO outbox: sent #\d+ to dev@example\.com: digest #\d+ \(attempt [2-4]\)/).length > 0, out.lines.join("\n"));
    assert.equal(svc.task(Outbox).capacity, 3, "outbox options from the settings and the overrides");
    // fill the outbox: the RPC call is refused with the queue's code, over the wire
    let refused: unknown;
    for (let i = 0; i < 10 && refused === undefined; i++) await api.send(`x${i}@example.com`, "hi").catch((e: unknown) => (refused = e));
    assert.ok(isTilthError(refused, "ERR_QUEUE_FULL") || (refused as { code?: string }).code === "ERR_QUEUE_FULL", String(refused));
    await close(api);
    const before = svc.task(Outbox).done + svc.task(Outbox).failed;
    await h.stop();
    const o = svc.task(Outbox);
    assert.equal(o.depth, 0);
    assert.ok(o.done + o.failed > before, "the queued mails were drained on stop");
  });
  assert.equal(loop.pendingTimers, 0);
});

test("tilth run mailer with --set and --APP.OPTION overrides: health, metrics and RPC for real; SIGTERM stops it", { timeout: 60_000 }, async () => {
  const cli = fileURLToPath(new URL("../../cli/main.js", import.meta.url));
  const file = fileURLToPath(new URL("../../examples/service/settings.js", import.meta.url));
  const runDir = mkdtempSync(join(tmpdir(), "tilth-mailer-"));
  const child = spawn(
    process.execPath,
    [cli, "run", "mailer", "--settings", file, "--set", "mailer.http.port=0", "--set", 'mailer.rpc.bind="drpc+tcp://127.0.0.1:0"', "--mailer.digest.interval=200"],
    { env: { ...process.env, TILTH__RUN__DIR: runDir }, stdio: ["ignore", "pipe", "pipe"] },
  );
  const { waitFor, exited, output } = watch(child);
  const loop = new NodeLoop();
  registerTransports(loop);
  try {
    const httpUrl = (await waitFor(/mailer INFO http: health and metrics on (http:\/\/127\.0\.0\.1:\d+)/))[1]!;
    const rpcUrl = (await waitFor(/mailer INFO rpc: serving on (drpc\+tcp:\/\/127\.0\.0\.1:\d+)/))[1]!;
    await waitFor(/mailer INFO tilth\.service: started 4 tasks: http, outbox, digest, rpc/);
    const health = await httpGet(`${httpUrl}/health`);
    assert.equal(health.status, 200);
    assert.deepEqual(JSON.parse(health.body), { status: "ok", service: "mailer", tasks: { http: "running", outbox: "running", digest: "running", rpc: "running" } });

    const api = await connect<MailerAPI>(rpcUrl, { loop });
    try {
      const id = await api.send("you@example.com", "hello");
      await waitFor(new RegExp(`sent #${id} to you@example\\.com: hello`));
      // the digest interval came from the shorthand override: 200 ms, so several digests by now
      await waitFor(/sent #\d+ to ops@example\.com: digest #3\b/);
    } finally {
      await close(api);
    }
    const metrics = await httpGet(`${httpUrl}/metrics`);
    assert.match(metrics.body, /^tilth_rpc_server_call_duration_seconds_count\{code="ok",method="send",task="rpc"\} 1$/m);
    assert.match(metrics.body, /^tilth_queue_items_total\{outcome="done",task="outbox"\} \d+$/m);
    assert.match(metrics.body, /^tilth_task_runs_total\{task="digest"\} \d+$/m);

    child.kill("SIGTERM");
    assert.equal(await exited, 0, output());
    assert.match(output(), /mailer INFO tilth\.service: stopped every task/);
    assert.match(output(), /mailer INFO tilth\.app: stopped/);
    await assert.rejects(httpGet(`${httpUrl}/health`), (e) => (e as NodeJS.ErrnoException).code === "ECONNREFUSED");
  } finally {
    child.kill("SIGKILL");
    rmSync(runDir, { recursive: true, force: true });
  }
});
