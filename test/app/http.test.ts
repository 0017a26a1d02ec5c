/**
 * HttpTask for real on 127.0.0.1 port 0: /health (200 while every task runs,
 * 503 otherwise, JSON), /metrics (task runs, queue depth, RPC call durations,
 * loop lag: the scrape parsed strictly and its histograms checked), closing
 * with a keep-alive connection open, a port in use. Every test proves it
 * leaves no socket or timer behind.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import http from "node:http";
import net from "node:net";
import { test } from "node:test";
import { NodeLoop } from "../../adapters/node.js";
import { Service, Task } from "../../app/Service.js";
import { HttpTask } from "../../app/tasks/HttpTask.js";
import { PeriodicTask } from "../../app/tasks/PeriodicTask.js";
import { QueueTask } from "../../app/tasks/QueueTask.js";
import { RpcServerTask } from "../../app/tasks/RpcServerTask.js";
import { isTilthError } from "../../core/errors.js";
import { sleep } from "../../core/time.js";
import { RpcError, close, connect } from "../../rpc/index.js";
import { leakCheck } from "../helpers/leaks.js";
import { histogramSeries, parsePrometheus } from "../helpers/prometheus.js";
import { startService } from "./svc-helpers.js";

interface Reply {
  status: number;
  type: string | undefined;
  body: string;
  headers: http.IncomingHttpHeaders;
}

function request(url: string, method = "GET", agent: http.Agent | false = false): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, agent }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => (body += c));
      res.on("end", () => resolve({ status: res.statusCode!, type: res.headers["content-type"], body, headers: res.headers }));
    });
    req.on("error", reject);
    req.end();
  });
}

/** A task whose run() fails when told to. */
class Breakable extends Task {
  #broken: ((e: Error) => void) | undefined;
  breakNow(): void {
    this.#broken?.(new Error("broken on purpose"));
  }
  override run(signal: AbortSignal): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.#broken = reject;
      signal.addEventListener("abort", () => resolve(), { once: true });
    });
  }
}

class Ops extends Service {
  static override failurePolicy = "continue" as const;
  override api = {
    ping: () => "pong",
    boom: () => {
      throw new RpcError("ERR_BOOM", "boom");
    },
  };
  protected override createTasks(): Task[] {
    return [
      new HttpTask(this.ctx),
      new PeriodicTask(this.ctx, { name: "tick", interval: 10, execute: () => undefined }),
      new QueueTask<number>(this.ctx, { name: "jobs", handle: (_i, signal) => sleep(this.loop, 60_000, { signal }) }),
      new RpcServerTask(this.ctx, { bind: "drpc+tcp://127.0.0.1:0" }),
      new Breakable(this.ctx),
    ];
  }
}

test("/health is 200 with every task's state while all run, 503 once one failed; /metrics counts", { timeout: 20_000 }, async () => {
  const done = leakCheck();
  const loop = new NodeLoop();
  const { handle, svc } = await startService(loop, Ops, { jobs: { stopTimeout: 50 } });
  const httpTask = svc.task(HttpTask);
  const url = httpTask.url!;
  assert.match(url, /^http:\/\/127\.0\.0\.1:\d+$/, "bound to loopback by default");

  let r = await request(`${url}/health`);
  assert.equal(r.status, 200);
  assert.equal(r.type, "application/json");
  assert.deepEqual(JSON.parse(r.body), { status: "ok", service: "svc", tasks: { http: "running", tick: "running", jobs: "running", rpc: "running", breakable: "running" } });

  // some work to count: runs of tick, items waiting in jobs, RPC calls
  await sleep(loop, 50);
  const jobs = svc.task<QueueTask<number>>("jobs");
  for (let i = 0; i < 3; i++) jobs.trySubmit(i); // one in flight, two waiting
  const api = await connect<{ ping(): string }>(svc.task(RpcServerTask).urls[0]!, { loop });
  assert.equal(await api.ping(), "pong");
  await close(api);

  r = await request(`${url}/metrics`);
  assert.equal(r.status, 200);
  assert.equal(r.type, "text/plain; version=0.0.4; charset=utf-8");
  const runs = Number(/^tilth_task_runs_total\{task="tick"\} (\d+)$/m.exec(r.body)?.[1]);
  assert.ok(runs >= 2, `tick ran ${runs} times:\n${r.body}`);
  assert.match(r.body, /^# TYPE tilth_task_runs_total counter$/m);
  assert.match(r.body, /^tilth_queue_depth\{task="jobs"\} 2$/m);
  assert.match(r.body, /^tilth_queue_active\{task="jobs"\} 1$/m);
  // The whole scrape parses strictly; the histograms have cumulative buckets, +Inf = _count, a _sum.
  const fams = parsePrometheus(r.body);
  const calls = histogramSeries(fams.get("tilth_rpc_server_call_duration_seconds")!);
  const ping = calls.find((c) => c.labels.method === "ping" && c.labels.code === "ok");
  assert.ok(ping, r.body);
  assert.deepEqual(Object.entries(ping.labels), [["code", "ok"], ["method", "ping"], ["task", "rpc"]], "labels in name order");
  assert.equal(ping.count, 1);
  assert.ok(ping.sum >= 0 && ping.sum < 5, `sum ${ping.sum} s`);
  assert.equal(ping.buckets.length, 18, "17 bounds and +Inf");
  assert.equal(ping.buckets.at(-1)![1], 1);
  const lag = histogramSeries(fams.get("tilth_loop_lag_seconds")!);
  assert.deepEqual(lag.map((l) => l.labels), [{ loop: "node" }]);
  assert.equal(fams.get("tilth_rpc_server_calls_in_flight")!.type, "gauge");
  assert.equal(fams.get("tilth_rpc_server_connections")!.samples[0]!.value, 0, "the client has closed");
  const elu = fams.get("tilth_loop_utilization_ratio")!.samples[0]!.value;
  assert.ok(elu >= 0 && elu <= 1, `utilisation ${elu}`);
  assert.equal(fams.get("process_cpu_user_seconds_total")?.type, "counter", "the process's default metrics");
  // Bytes each way on the server's tcp connections (the closed one included) and heartbeats lost.
  for (const dir of ["received", "sent"]) {
    const f = fams.get(`tilth_rpc_server_${dir}_bytes_total`)!;
    assert.equal(f.type, "counter");
    assert.deepEqual(f.samples[0]!.labels, { task: "rpc" });
    assert.ok(f.samples[0]!.value > 20, `${dir} ${f.samples[0]!.value} bytes`);
  }
  assert.deepEqual(fams.get("tilth_rpc_server_heartbeats_lost_total")!.samples.map((x) => [x.labels, x.value]), [[{ task: "rpc" }, 0]]);
  assert.equal(fams.get("tilth_task_runs_total")!.type, "counter");
  assert.match(r.body, /^tilth_task_up\{task="breakable"\} 1$/m);

  svc.task(Breakable).breakNow();
  await sleep(loop, 10);
  r = await request(`${url}/health`);
  assert.equal(r.status, 503);
  assert.equal(JSON.parse(r.body).status, "unavailable");
  assert.equal(JSON.parse(r.body).tasks.breakable, "failed");
  assert.match((await request(`${url}/metrics`)).body, /^tilth_task_failures_total\{task="breakable"\} 1$/m);

  await handle.stop();
  assert.equal(loop.pendingTimers, 0);
  await assert.rejects(request(`${url}/health`), (e) => (e as NodeJS.ErrnoException).code === "ECONNREFUSED");
  await done();
});

/** A Python that imports Prometheus's own text parser (scripts/setup-prometheus-parser.mjs installs it), or why not. */
const PY = ["/usr/bin/python3", "python3"].find((py) => spawnSync(py, ["-c", "import prometheus_client.parser"], { stdio: "pipe" }).status === 0);
const noParser = PY === undefined ? "Python's prometheus_client is missing: run `node scripts/setup-prometheus-parser.mjs` (apt-get install python3-prometheus-client)" : undefined;

/** The families of a scrape as prometheus_client.parser reads them (non-finite values as strings). */
function parseWithPrometheusClient(text: string): { name: string; type: string; samples: { name: string; labels: Record<string, string>; value: number | string }[] }[] {
  const script = [
    "import sys, json, math",
    "from prometheus_client.parser import text_string_to_metric_families",
    "v = lambda x: x if math.isfinite(x) else str(x)",
    "print(json.dumps([{'name': f.name, 'type': f.type, 'samples': [{'name': s.name, 'labels': s.labels, 'value': v(s.value)} for s in f.samples]} for f in text_string_to_metric_families(sys.stdin.read())]))",
  ].join("\n");
  const r = spawnSync(PY!, ["-c", script], { input: text, encoding: "utf8", timeout: 20_000 });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout) as ReturnType<typeof parseWithPrometheusClient>;
}

test("a /metrics scrape read by Prometheus's own text parser (prometheus_client): the call histogram by method and outcome, loop lag, counters and names by the conventions", { timeout: 20_000, skip: noParser }, async () => {
  const done = leakCheck();
  const loop = new NodeLoop();
  const { handle, svc } = await startService(loop, Ops, { jobs: { stopTimeout: 50 } });
  const api = await connect<{ ping(): string; boom(): string }>(svc.task(RpcServerTask).urls[0]!, { loop });
  for (let i = 0; i < 3; i++) assert.equal(await api.ping(), "pong");
  await assert.rejects(api.boom(), (e) => isTilthError(e, "ERR_BOOM"));
  await close(api);
  await sleep(loop, 600); // one loop-lag observation (every 500 ms)
  const body = (await request(`${svc.task(HttpTask).url!}/metrics`)).body;
  await handle.stop();
  const fams = new Map(parseWithPrometheusClient(body).map((f) => [f.name, f]));

  const calls = fams.get("tilth_rpc_server_call_duration_seconds");
  assert.equal(calls?.type, "histogram");
  const of = (suffix: string, labels: Record<string, string>) => calls!.samples.filter((x) => x.name === `tilth_rpc_server_call_duration_seconds${suffix}` && Object.entries(labels).every(([k, v]) => x.labels[k] === v));
  const buckets = of("_bucket", { task: "rpc", method: "ping", code: "ok" });
  assert.equal(buckets.length, 18, "17 bounds and +Inf");
  assert.equal(buckets.at(-1)!.labels.le, "+Inf");
  for (let i = 1; i < buckets.length; i++) assert.ok((buckets[i]!.value as number) >= (buckets[i - 1]!.value as number), "cumulative buckets");
  assert.equal(buckets.at(-1)!.value, 3);
  assert.equal(of("_count", { method: "ping", code: "ok" })[0]!.value, 3);
  assert.ok((of("_sum", { method: "ping", code: "ok" })[0]!.value as number) >= 0);
  // By outcome: the failed call in the series of its code.
  assert.equal(of("_count", { method: "boom", code: "ERR_BOOM" })[0]!.value, 1);
  assert.equal(of("_bucket", { method: "boom", code: "ERR_BOOM", le: "+Inf" })[0]!.value, 1);
  assert.equal(of("_count", { method: "boom", code: "ok" })[0]!.value, 0);

  const lag = fams.get("tilth_loop_lag_seconds");
  assert.equal(lag?.type, "histogram");
  const lagCount = lag!.samples.find((x) => x.name === "tilth_loop_lag_seconds_count")!;
  assert.deepEqual(lagCount.labels, { loop: "node" });
  assert.ok((lagCount.value as number) >= 1, `loop lag observed ${lagCount.value} times`);

  // Counters: the family by its base name, the sample with _total.
  for (const [base, type] of [
    ["tilth_rpc_server_received_bytes", "counter"],
    ["tilth_rpc_server_sent_bytes", "counter"],
    ["tilth_rpc_server_heartbeats_lost", "counter"],
    ["tilth_task_runs", "counter"],
    ["tilth_rpc_server_calls_in_flight", "gauge"],
    ["tilth_rpc_server_connections", "gauge"],
    ["tilth_loop_utilization_ratio", "gauge"],
    ["process_cpu_user_seconds", "counter"],
  ] as const) {
    const f = fams.get(base);
    assert.equal(f?.type, type, base);
    if (type === "counter") assert.ok(f!.samples.every((x) => x.name === `${base}_total`), base);
  }
  assert.ok((fams.get("tilth_rpc_server_received_bytes")!.samples[0]!.value as number) > 0);
  // Names by the conventions: snake case with a tilth_ (or prom-client's process_ / nodejs_) prefix; histograms of time in seconds.
  for (const f of fams.values()) {
    assert.match(f.name, /^(tilth|process|nodejs)_[a-z0-9_]+$/, f.name);
    if (f.type === "histogram" && f.name.startsWith("tilth_")) assert.match(f.name, /_seconds$/, f.name);
  }
  await done();
});

class HttpOnly extends Service {
  static override tasks = [HttpTask];
}

test("other paths are 404, other methods 405, HEAD has no body", { timeout: 20_000 }, async () => {
  const done = leakCheck();
  const loop = new NodeLoop();
  const { handle, svc } = await startService(loop, HttpOnly);
  const url = svc.task(HttpTask).url!;
  assert.equal((await request(`${url}/nope`)).status, 404);
  const post = await request(`${url}/health`, "POST");
  assert.equal(post.status, 405);
  assert.equal(post.headers.allow, "GET, HEAD");
  const head = await request(`${url}/health?verbose=1`, "HEAD");
  assert.equal(head.status, 200);
  assert.equal(head.body, "");
  await handle.stop();
  await done();
});

test("stop closes an idle keep-alive connection at once and a busy one at the deadline", { timeout: 20_000 }, async () => {
  const done = leakCheck();
  const loop = new NodeLoop();
  const { handle, svc } = await startService(loop, HttpOnly, { http: { stopTimeout: 300 } });
  const url = svc.task(HttpTask).url!;
  const agent = new http.Agent({ keepAlive: true });
  assert.equal((await request(`${url}/health`, "GET", agent)).status, 200);
  await sleep(loop, 10);
  const idle = Object.values(agent.freeSockets).flat()[0];
  assert.ok(idle, "the agent kept its connection");
  let idleClosedAt = -1;
  idle.once("close", () => (idleClosedAt = loop.now()));
  // a client that opened a connection and never sent a full request: busy, not idle
  const raw = net.connect(Number(new URL(url).port), "127.0.0.1");
  await new Promise<void>((r) => raw.once("connect", () => r()));
  raw.write("GET /health HTTP/1.1\r\nHost: x\r\n"); // headers never end
  await sleep(loop, 20);
  const closed = new Promise<void>((r) => raw.once("close", () => r()));
  const t0 = loop.now();
  await handle.stop();
  const took = loop.now() - t0;
  await closed;
  assert.ok(took >= 250 && took < 2000, `stop took ${took} ms`);
  assert.ok(idleClosedAt >= t0 && idleClosedAt - t0 < 200, `the idle connection closed ${idleClosedAt - t0} ms into the stop`);
  agent.destroy();
  await done();
});

test("the port in use: the service cannot start and says so; nothing is left open", { timeout: 20_000 }, async () => {
  const done = leakCheck();
  const blocker = net.createServer();
  await new Promise<void>((r) => blocker.listen(0, "127.0.0.1", r));
  const port = (blocker.address() as net.AddressInfo).port;
  const loop = new NodeLoop();
  await assert.rejects(startService(loop, HttpOnly, { http: { port } }), (e) => isTilthError(e, "ERR_APP_START") && /task http cannot start: .*EADDRINUSE/.test((e as Error).message));
  assert.equal(loop.pendingTimers, 0);
  await new Promise<void>((r) => blocker.close(() => r()));
  await done();
});

test("host and port from the settings; a bad port is a settings error naming the key", async () => {
  const done = leakCheck();
  const loop = new NodeLoop();
  await assert.rejects(startService(loop, HttpOnly, { http: { port: 70000 } }), (e) => isTilthError(e, "ERR_SETTINGS") && /options\.http\.port/.test((e as Error).message));
  const { handle, svc } = await startService(loop, HttpOnly, { http: { host: "127.0.0.1", port: 0 } });
  assert.equal(svc.task(HttpTask).host, "127.0.0.1");
  await handle.stop();
  await done();
});
