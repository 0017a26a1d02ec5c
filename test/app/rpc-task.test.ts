/**
 * RpcServerTask in virtual time over inproc://: serves the API, records calls
 * in the service's metrics (durations by method and outcome), closes gracefully within the stop deadline.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { VirtualLoop } from "../../adapters/virtual.js";
import { Service, type Task } from "../../app/Service.js";
import { RpcServerTask } from "../../app/tasks/RpcServerTask.js";
import { isTilthError } from "../../core/errors.js";
import { sleep } from "../../core/time.js";
import { close, connect, contextual, type CallContext } from "../../rpc/index.js";
import { startService } from "./svc-helpers.js";

interface Api {
  hello(name: string): string;
  slow(ms: number): Promise<string>;
  broken(): never;
  count(n: number): AsyncIterable<number>;
}

class ApiService extends Service {
  override api = {
    hello: (name: string) => `hello ${name}`,
    slow: contextual(async (ctx: CallContext, ms: number) => {
      await sleep(this.loop, ms, { signal: ctx.signal });
      return "done";
    }),
    broken: () => {
      throw new Error("no");
    },
    async *count(n: number) {
      for (let i = 0; i < n; i++) yield i;
    },
  };
  protected override createTasks(): Task[] {
    return [new RpcServerTask(this.ctx)];
  }
}

test("serves the service's api on the URLs of its settings; counts calls and errors by method", async () => {
  const loop = new VirtualLoop();
  await loop.run(async () => {
    const { handle, svc, out } = await startService(loop, ApiService, { rpc: { bind: "drpc+inproc://svc-a" } });
    assert.deepEqual(svc.task<RpcServerTask>("rpc").urls, ["drpc+inproc://svc-a"]);
    assert.equal(out.grep(/INFO rpc: serving on drpc\+inproc:\/\/svc-a/).length, 1);
    const api = await connect<Api>("drpc+inproc://svc-a", { loop });
    assert.equal(await api.hello("you"), "hello you");
    assert.equal(await api.hello("me"), "hello me");
    await assert.rejects(api.broken());
    const m = svc.metrics;
    const d = "tilth_rpc_server_call_duration_seconds";
    assert.equal(m.value(`${d}_count`, { task: "rpc", method: "hello", code: "ok" }), 2);
    assert.equal(m.value(`${d}_count`, { task: "rpc", method: "broken", code: "ERR_REMOTE" }), 1);
    assert.equal(m.value(`${d}_count`, { task: "rpc", method: "broken", code: "ok" }), 0, "the ok series is bound when the server starts");
    assert.equal(m.value("tilth_rpc_server_calls_in_flight", { task: "rpc" }), 0);
    assert.equal(m.value("tilth_rpc_server_connections", { task: "rpc" }), 1);
    const slow = api.slow(100);
    await sleep(loop, 10);
    assert.equal(m.value("tilth_rpc_server_calls_in_flight", { task: "rpc" }), 1);
    assert.equal(await slow, "done");
    assert.equal(m.value("tilth_rpc_server_calls_in_flight", { task: "rpc" }), 0);
    assert.equal(m.value(`${d}_sum`, { task: "rpc", method: "slow", code: "ok" }), 0.1, "100 ms of loop time, in seconds");
    // Stream items sent, by method; the stream counts as one call once it has ended.
    for (const n of [3, 4]) {
      const got: number[] = [];
      for await (const x of api.count(n)) got.push(x);
      assert.equal(got.length, n);
    }
    assert.equal(m.value("tilth_rpc_server_stream_items_total", { task: "rpc", method: "count" }), 7);
    assert.equal(m.value(`${d}_count`, { task: "rpc", method: "count", code: "ok" }), 2);
    await close(api);
    await handle.stop();
  });
  assert.equal(loop.pendingTimers, 0);
});

test("stop lets calls in flight finish within the grace period", async () => {
  const loop = new VirtualLoop();
  await loop.run(async () => {
    const { handle } = await startService(loop, ApiService, { rpc: { bind: "drpc+inproc://svc-b", stopTimeout: 5000 } });
    const api = await connect<Api>("drpc+inproc://svc-b", { loop });
    const slow = api.slow(2000);
    await sleep(loop, 100);
    await handle.stop();
    assert.equal(await slow, "done");
    assert.equal(loop.now(), 2000, "stop (at 100) waited for the call (0 to 2000)");
    await close(api);
  });
  assert.equal(loop.pendingTimers, 0);
});

test("a call longer than the grace is cancelled before the stop deadline; the caller is told; nothing is logged as stuck", async () => {
  const loop = new VirtualLoop();
  await loop.run(async () => {
    const { handle, out, svc } = await startService(loop, ApiService, { rpc: { bind: "drpc+inproc://svc-c", stopTimeout: 1000 } });
    assert.equal(svc.task<RpcServerTask>("rpc").graceMs, 800);
    const api = await connect<Api>("drpc+inproc://svc-c", { loop });
    const slow = api.slow(60_000);
    const failed = assert.rejects(slow, (e) => isTilthError(e, "ERR_UNAVAILABLE"));
    await sleep(loop, 100);
    await handle.stop();
    await failed;
    assert.ok(loop.now() >= 900 && loop.now() < 1100, `stopped at ${loop.now()}`);
    assert.equal(out.grep(/did not stop/).length, 0, out.lines.join("\n"));
    assert.equal(svc.metrics.value("tilth_rpc_server_call_duration_seconds_count", { task: "rpc", method: "slow", code: "ERR_UNAVAILABLE" }), 1, "a call cancelled at stop ends ERR_UNAVAILABLE");
    await close(api);
  });
  assert.equal(loop.pendingTimers, 0);
});

test("no URL or no API: the task cannot start, with a message saying what to set", async () => {
  const loop = new VirtualLoop();
  await loop.run(async () => {
    await assert.rejects(startService(loop, ApiService), (e) => isTilthError(e, "ERR_APP_START") && /set options\.rpc\.bind in the settings/.test((e as Error).message));
    class NoApi extends Service {
      protected override createTasks(): Task[] {
        return [new RpcServerTask(this.ctx, { bind: "drpc+inproc://x" })];
      }
    }
    await assert.rejects(startService(loop, NoApi), (e) => /no API to serve/.test((e as Error).message));
  });
  assert.equal(loop.pendingTimers, 0);
});

test("a URL already bound: start fails with the transport's reason", async () => {
  const loop = new VirtualLoop();
  await loop.run(async () => {
    const { handle } = await startService(loop, ApiService, { rpc: { bind: "drpc+inproc://svc-d" } });
    await assert.rejects(startService(loop, ApiService, { rpc: { bind: "drpc+inproc://svc-d" } }), (e) => isTilthError(e, "ERR_APP_START") && /task rpc cannot start/.test((e as Error).message));
    await handle.stop();
  });
  assert.equal(loop.pendingTimers, 0);
});

test("stats: false records no call (the gauges stay)", async () => {
  const loop = new VirtualLoop();
  class Quiet extends ApiService {
    protected override createTasks(): Task[] {
      return [new RpcServerTask(this.ctx, { stats: false })];
    }
  }
  await loop.run(async () => {
    const { handle, svc } = await startService(loop, Quiet, { rpc: { bind: "drpc+inproc://svc-q" } });
    const api = await connect<Api>("drpc+inproc://svc-q", { loop });
    assert.equal(await api.hello("you"), "hello you");
    assert.equal(svc.metrics.value("tilth_rpc_server_call_duration_seconds_count", { task: "rpc", method: "hello", code: "ok" }), undefined);
    assert.equal(svc.metrics.value("tilth_rpc_server_connections", { task: "rpc" }), 1);
    await close(api);
    await handle.stop();
  });
  assert.equal(loop.pendingTimers, 0);
});
