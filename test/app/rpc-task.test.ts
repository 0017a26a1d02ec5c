/**
 * RpcServerTask in virtual time over inproc://: serves the API, counts calls
 * through the server's middleware, closes gracefully within the stop deadline.
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
    assert.equal(m.value("tilth_rpc_calls_total", { task: "rpc", method: "hello" }), 2);
    assert.equal(m.value("tilth_rpc_calls_total", { task: "rpc", method: "broken" }), 1);
    assert.equal(m.value("tilth_rpc_errors_total", { task: "rpc", method: "broken" }), 1);
    assert.equal(m.value("tilth_rpc_in_flight", { task: "rpc" }), 0);
    const slow = api.slow(100);
    await sleep(loop, 10);
    assert.equal(m.value("tilth_rpc_in_flight", { task: "rpc" }), 1);
    assert.equal(await slow, "done");
    assert.equal(m.value("tilth_rpc_in_flight", { task: "rpc" }), 0);
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
    assert.equal(svc.metrics.value("tilth_rpc_in_flight", { task: "rpc" }), 0, "a cancelled call is uncounted");
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
