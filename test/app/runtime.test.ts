import assert from "node:assert/strict";
import { test } from "node:test";
import { VirtualLoop } from "../../adapters/virtual.js";
import { NodeLoop } from "../../adapters/node.js";
import { Settings } from "../../app/Settings.js";
import { startApp } from "../../app/runtime.js";
import { runloop } from "../../app/runloop.js";
import { Service, type Task } from "../../app/Service.js";
import { PeriodicTask } from "../../app/tasks/PeriodicTask.js";
import { RpcServerTask } from "../../app/tasks/RpcServerTask.js";
import { Logger, clockText } from "../../app/Logger.js";
import { isTilthError } from "../../core/errors.js";
import { sleep } from "../../core/time.js";
import { RpcClient, connect, close } from "../../rpc/index.js";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { leakCheck } from "../helpers/leaks.js";
import { CallerApp, CrashingApp, PingApp, PlainApp } from "../fixtures/apps/apps.js";

function capture(): { lines: string[]; write: (l: string) => void } {
  const lines: string[] = [];
  return { lines, write: (l) => lines.push(l) };
}

test("the ping pair in virtual time: DI gives the caller its client and loop; it logs every second", async () => {
  const loop = new VirtualLoop();
  const out = capture();
  const settings = Settings.from({
    apps: {
      ping: { class: PingApp, bind: "drpc+inproc://ping" },
      caller: { class: CallerApp, uses: ["ping"], options: { interval: 1000 } },
    },
  });
  await loop.run(async () => {
    const ping = await startApp("ping", settings, { loop, log: { write: out.write, color: false } });
    const caller = await startApp("caller", settings, { loop, log: { write: out.write, color: false } });
    assert.ok(caller.app instanceof CallerApp);
    assert.equal((caller.app as CallerApp).injectedLoop, loop);
    await sleep(loop, 3500);
    await caller.stop();
    await ping.stop();
  });
  const pings = out.lines.filter((l) => l.includes("ping: 'pong'"));
  assert.equal(pings.length, 4, out.lines.join("\n")); // at 0, 1, 2, 3 s
  const t0 = Date.UTC(2000, 0, 1); // the virtual loop's wall clock at time 0 (shown in local time)
  assert.equal(out.lines[0], `${clockText(t0)} ping INFO tilth.app: binding to drpc+inproc://ping`);
  assert.equal(pings[1], `${clockText(t0 + 1000)} caller INFO CallerApp: ping: 'pong'`);
  assert.equal(loop.pendingTimers, 0, "stop left a timer");
});

test("a plain (undecorated) app class is constructed with its context", async () => {
  const done = leakCheck();
  const loop = new NodeLoop();
  const settings = Settings.from({ apps: { hello: { class: PlainApp, bind: "drpc+tcp://127.0.0.1:0" } } });
  const h = await startApp("hello", settings, { loop, log: { write: () => {} } });
  assert.equal(h.urls.length, 1);
  const api = await connect<{ hello(n: string): string }>(h.urls[0]!, { loop });
  assert.equal(await api.hello("world"), "hello world");
  await close(api);
  await h.stop();
  await h.stop(); // idempotent
  await done();
});

test("runloop: serve() that keeps crashing restarts with growing backoff and logs why", async () => {
  const loop = new VirtualLoop();
  const out = capture();
  const log = new Logger({ app: "crashy", loop, write: out.write, color: false });
  const ac = new AbortController();
  let starts: number[] = [];
  await loop.run(async () => {
    const running = runloop(
      loop,
      log,
      async () => {
        starts.push(loop.now());
        throw new Error("boom");
      },
      ac.signal,
      { backoffMs: 1000, maxBackoffMs: 8000, healthyAfterMs: 30_000 },
    );
    await sleep(loop, 40_000);
    ac.abort();
    await running;
  });
  // waits of 1, 2, 4, 8, 8, 8... seconds
  assert.deepEqual(starts.slice(0, 7), [0, 1000, 3000, 7000, 15000, 23000, 31000]);
  assert.match(out.lines[0]!, /serve\(\) crashed after 0 ms: Error: boom; restarting in 1000 ms/);
  assert.match(out.lines[3]!, /restarting in 8000 ms/);
  assert.equal(loop.pendingTimers, 0);
  starts = [];
});

test("runloop: a crash after a healthy run restarts quickly again", async () => {
  const loop = new VirtualLoop();
  const log = new Logger({ app: "x", loop, write: () => {} });
  const ac = new AbortController();
  const starts: number[] = [];
  await loop.run(async () => {
    let n = 0;
    const running = runloop(
      loop,
      log,
      async () => {
        starts.push(loop.now());
        n++;
        if (n === 3) await sleep(loop, 60_000); // a healthy minute, then crash
        throw new Error("x");
      },
      ac.signal,
      { backoffMs: 1000, healthyAfterMs: 30_000 },
    );
    await sleep(loop, 70_000);
    ac.abort();
    await running;
  });
  assert.deepEqual(starts.slice(0, 4), [0, 1000, 3000, 64000]);
});

test("an app whose serve() crashes is restarted by startApp, and stop ends it", async () => {
  const loop = new VirtualLoop();
  const out = capture();
  const settings = Settings.from({ apps: { crashy: { class: CrashingApp } } });
  await loop.run(async () => {
    const h = await startApp("crashy", settings, { loop, log: { write: out.write, color: false }, runloop: { backoffMs: 100 } });
    await sleep(loop, 1000);
    await h.stop();
    assert.ok((h.app as CrashingApp).starts >= 4);
  });
  assert.ok(out.lines.some((l) => /ERROR tilth\.app: serve\(\) crashed/.test(l)));
  assert.equal(loop.pendingTimers, 0);
});

test("embedding: two apps in one process do not see each other unless wired", async () => {
  const loop = new VirtualLoop();
  const a = Settings.from({ apps: { ping: { class: PingApp, bind: "drpc+inproc://ping" } } });
  const b = Settings.from({ apps: { ping: { class: PingApp, bind: "drpc+inproc://ping" } } });
  await loop.run(async () => {
    const one = await startApp("ping", a, { loop, log: { write: () => {} } });
    // the same inproc name on the same loop is taken: a clear bind error, nothing shared silently
    await assert.rejects(startApp("ping", b, { loop, log: { write: () => {} } }), (e) => isTilthError(e, "ERR_APP_BIND") && /cannot bind drpc\+inproc:\/\/ping/.test((e as Error).message));
    // on another loop, the same settings make an independent app
    const other = new VirtualLoop();
    const two = await startApp("ping", b, { loop: other, log: { write: () => {} } });
    await two.stop();
    await one.stop();
  });
});

test("an app that binds but has no api object is refused clearly", async () => {
  const loop = new VirtualLoop();
  const s = Settings.from({ apps: { c: { class: CrashingApp, bind: "drpc+inproc://c" } } });
  await assert.rejects(startApp("c", s, { loop, log: { write: () => {} } }), (e) => isTilthError(e, "ERR_SETTINGS") && /has no api object/.test((e as Error).message));
});

test("a failure at a later start step closes what the earlier steps opened: a service whose backdoor cannot open has its tasks stopped", async () => {
  const loop = new VirtualLoop();
  const out = capture();
  let ticks = 0;
  class Ticking extends Service {
    override api = { ping: () => "pong" };
    protected override createTasks(): Task[] {
      return [new PeriodicTask(this.ctx, { name: "tick", interval: 100, execute: () => void ticks++ })];
    }
  }
  const settings = Settings.from({ apps: { svc: { class: Ticking, bind: "drpc+inproc://svc", backdoor: "tcp://192.0.2.1:7000" } } });
  await loop.run(async () => {
    await assert.rejects(startApp("svc", settings, { loop, log: { write: out.write, color: false } }), (e) => {
      assert.ok(isTilthError(e, "ERR_APP_BIND"), String(e));
      assert.match((e as Error).message, /app "svc" cannot open its backdoor: .*not loopback/);
      return true;
    });
    const seen = ticks;
    await sleep(loop, 1000);
    assert.equal(ticks, seen, "the task runs on after the failed start");
    // the server was closed too: the name is free again
    const again = await startApp("svc", Settings.from({ apps: { svc: { class: PingApp, bind: "drpc+inproc://svc" } } }), { loop, log: { write: () => {} } });
    await again.stop();
  });
  assert.ok(out.lines.some((l) => /INFO tilth\.service: stopped every task/.test(l)), out.lines.join("\n"));
  assert.equal(loop.pendingTimers, 0);
});

test("stopping an app whose serve() waits for another app that is down (waitForReady) does not wait out the call's limit", async () => {
  const loop = new VirtualLoop();
  const out = capture();
  const settings = Settings.from({
    apps: {
      ping: { class: PingApp, bind: "drpc+inproc://ping-down" },
      caller: { class: CallerApp, uses: ["ping"], options: { interval: 1000 } },
    },
  });
  let took = -1;
  await loop.run(async () => {
    const caller = await startApp("caller", settings, { loop, log: { write: out.write, color: false } }); // ping never starts
    await sleep(loop, 1000);
    const t0 = loop.now();
    await caller.stop();
    took = loop.now() - t0;
  });
  assert.ok(took >= 0 && took < 100, `stop took ${took} ms (the call's limit is 30000 ms)`);
  assert.equal(loop.pendingTimers, 0, "stop left a timer");
});

/** A service whose RpcServerTask applies the rule of other addresses on 127.0.0.1 (tests bind loopback only). */
class DebugSvc extends Service {
  override api = { ping: () => "pong" };
  protected override createTasks(): Task[] {
    return [new RpcServerTask(this.ctx, { server: { isLoopback: () => false } })];
  }
}

test("debugRemote in an app's settings: on a listener that is not loopback the debug API asks for the app's backdoor token; without it, refused even with the token (an app's API and a service's RpcServerTask alike)", async () => {
  const done = leakCheck();
  const dir = mkdtempSync(join(tmpdir(), "tilth-debug-"));
  const loop = new NodeLoop();
  try {
    for (const [kind, debugRemote] of [["app", true], ["app", false], ["service", true], ["service", false]] as const) {
      const where = kind === "app" ? { class: PingApp, bind: "drpc+tcp://127.0.0.1:0" } : { class: DebugSvc, options: { rpc: { bind: "drpc+tcp://127.0.0.1:0" } } };
      const settings = Settings.from({ apps: { ping: { ...where, backdoor: "tcp://127.0.0.1:0", ...(debugRemote ? { debugRemote } : {}) } } }, join(dir, "tilth.json"));
      // The rule of other addresses, forced on 127.0.0.1 (tests bind loopback only).
      const h = await startApp("ping", settings, { loop, server: { isLoopback: () => false }, log: { write: () => {} } });
      const token = (JSON.parse(readFileSync(join(dir, ".tilth", "ping.backdoor"), "utf8")) as { token: string }).token;
      assert.match(token, /^[0-9a-f]{32}$/);
      const c = new RpcClient(h.urls[0]!, { loop });
      try {
        const refused = (re: RegExp) => (e: unknown) => isTilthError(e, "ERR_DEBUG_FORBIDDEN") && re.test((e as Error).message);
        if (debugRemote) {
          await assert.rejects(c.call(".debug.status"), refused(/none given/));
          await assert.rejects(c.call(".debug.status", ["0".repeat(32)]), refused(/wrong token/));
          assert.equal(typeof ((await c.call(".debug.status", [token])) as { uptimeMs: number }).uptimeMs, "number", "the backdoor's token opens it");
          if (kind === "app") assert.equal(((await c.call(".debug.settings", [token])) as { app: string }).app, "ping");
        } else await assert.rejects(c.call(".debug.status", [token]), refused(/debugRemote/));
        assert.equal(await c.call("ping"), "pong");
      } finally {
        await c.close();
        await h.stop();
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  await done();
});
