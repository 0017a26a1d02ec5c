/**
 * PeriodicTask in virtual time: interval, jitter from a seed, no overlap,
 * errors that do not stop it, stop while a run is in progress.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { VirtualLoop } from "../../adapters/virtual.js";
import type { AppContext } from "../../app/App.js";
import { Service, type Task } from "../../app/Service.js";
import { PeriodicTask, type PeriodicOptions } from "../../app/tasks/PeriodicTask.js";
import { seededRandom } from "../../app/tasks/random.js";
import { sleep } from "../../core/time.js";
import { capture, startService } from "./svc-helpers.js";

/** A service with one PeriodicTask "tick" whose runs record their start times. */
function periodic(options: PeriodicOptions, body?: (n: number, signal: AbortSignal, loop: VirtualLoop) => Promise<void> | void) {
  const starts: number[] = [];
  const ends: number[] = [];
  class Svc extends Service {
    protected override createTasks(): Task[] {
      const loop = this.loop as VirtualLoop;
      return [
        new PeriodicTask(this.ctx as AppContext, {
          name: "tick",
          ...options,
          execute: async (signal) => {
            starts.push(loop.now());
            await body?.(starts.length, signal, loop);
            ends.push(loop.now());
          },
        }),
      ];
    }
  }
  return { Svc, starts, ends };
}

test("runs every interval from the start, first run at once; stop leaves no timer", async () => {
  const loop = new VirtualLoop();
  const { Svc, starts } = periodic({ interval: 1000 });
  await loop.run(async () => {
    const { handle, svc } = await startService(loop, Svc);
    await sleep(loop, 3500);
    await handle.stop();
    assert.equal(svc.metrics.value("tilth_task_runs_total", { task: "tick" }), 4);
  });
  assert.deepEqual(starts, [0, 1000, 2000, 3000]);
  assert.equal(loop.pendingTimers, 0);
});

test("interval and initialDelay from the settings override the code", async () => {
  const loop = new VirtualLoop();
  const { Svc, starts } = periodic({ interval: 1000 });
  await loop.run(async () => {
    const { handle } = await startService(loop, Svc, { tick: { interval: 250, initialDelay: 100 } });
    await sleep(loop, 900);
    await handle.stop();
  });
  assert.deepEqual(starts, [100, 350, 600, 850]);
});

test("no overlap: a run longer than the interval delays the next, which starts as soon as it ends", async () => {
  const loop = new VirtualLoop();
  const { Svc, starts, ends } = periodic({ interval: 1000 }, async (n, signal, l) => {
    if (n === 2) await sleep(l, 2500, { signal }); // the run at 1000 ends at 3500
  });
  await loop.run(async () => {
    const { handle, svc } = await startService(loop, Svc);
    await sleep(loop, 5200);
    await handle.stop();
    assert.equal(svc.metrics.value("tilth_periodic_late_total", { task: "tick" }), 1);
  });
  assert.deepEqual(starts, [0, 1000, 3500, 4500]);
  // never two runs at once: every run ended before the next started
  for (let i = 1; i < starts.length; i++) assert.ok(starts[i]! >= ends[i - 1]!, `run ${i} overlapped`);
});

test("a run that throws is logged and counted; the task keeps its schedule", async () => {
  const loop = new VirtualLoop();
  const { Svc, starts } = periodic({ interval: 1000 }, (n) => {
    if (n === 2) throw new Error("disk full");
  });
  await loop.run(async () => {
    const { handle, svc, out } = await startService(loop, Svc);
    await sleep(loop, 3500);
    assert.equal(svc.task("tick").state, "running");
    assert.equal(svc.health().status, "ok");
    assert.equal(svc.metrics.value("tilth_task_errors_total", { task: "tick" }), 1);
    assert.equal(out.grep(/ERROR tick: run failed: Error: disk full/).length, 1, out.lines.join("\n"));
    await handle.stop();
  });
  assert.deepEqual(starts, [0, 1000, 2000, 3000]);
});

test("jitter is drawn from the seeded source: the same seed, the same schedule", async () => {
  async function schedule(seed: number): Promise<number[]> {
    const loop = new VirtualLoop();
    const { Svc, starts } = periodic({ interval: 1000, jitter: 200, seed });
    await loop.run(async () => {
      const { handle } = await startService(loop, Svc);
      await sleep(loop, 5000);
      await handle.stop();
    });
    return starts;
  }
  const a = await schedule(42);
  assert.deepEqual(await schedule(42), a);
  assert.notDeepEqual(await schedule(7), a);
  // exactly: first run after jitter r0, each next interval + jitter after the previous start
  const r = seededRandom(42);
  const want: number[] = [];
  for (let t = r() * 200; t <= 5000; t += 1000 + r() * 200) want.push(t);
  assert.deepEqual(a, want);
  for (let i = 1; i < a.length; i++) {
    const gap = a[i]! - a[i - 1]!;
    assert.ok(gap >= 1000 && gap < 1200, `gap ${gap}`);
  }
});

test("an injected random source beats the seed", async () => {
  const loop = new VirtualLoop();
  const { Svc, starts } = periodic({ interval: 100, jitter: 50, seed: 1, random: () => 0.5 });
  await loop.run(async () => {
    const { handle } = await startService(loop, Svc);
    await sleep(loop, 400);
    await handle.stop();
  });
  assert.deepEqual(starts, [25, 150, 275, 400]);
});

test("stop while a run is in progress: it may finish before the deadline; no new run starts", async () => {
  const loop = new VirtualLoop();
  let cancelled = false;
  const { Svc, starts, ends } = periodic({ interval: 1000, stopTimeout: 5000 }, async (_n, signal, l) => {
    try {
      await sleep(l, 300, { signal });
    } catch {
      cancelled = true;
    }
  });
  await loop.run(async () => {
    const { handle, out } = await startService(loop, Svc);
    await sleep(loop, 1100); // the second run is in progress until 1300
    await handle.stop();
    assert.equal(loop.now(), 1300, "stop waited for the run in progress");
    assert.equal(out.grep(/did not stop/).length, 0);
  });
  assert.deepEqual(starts, [0, 1000]);
  assert.deepEqual(ends, [300, 1300]);
  assert.equal(cancelled, false);
  assert.equal(loop.pendingTimers, 0);
});

test("a run still going at the stop deadline is cancelled through its signal, and that is logged", async () => {
  const loop = new VirtualLoop();
  let reason: unknown;
  const { Svc, starts } = periodic({ interval: 1000, stopTimeout: 1000 }, async (_n, signal, l) => {
    try {
      await sleep(l, 10_000, { signal });
    } catch (e) {
      reason = e;
    }
  });
  await loop.run(async () => {
    const { handle, out, svc } = await startService(loop, Svc);
    await sleep(loop, 500);
    await handle.stop();
    assert.equal(loop.now(), 1500);
    assert.equal(out.grep(/WARN tick: did not stop within 1000 ms: cancelled/).length, 1, out.lines.join("\n"));
    assert.equal(svc.metrics.value("tilth_task_errors_total", { task: "tick" }), undefined, "a cancelled run is not an error");
  });
  assert.deepEqual(starts, [0]);
  assert.equal((reason as { code?: string }).code, "ERR_TIMEOUT");
  assert.equal(loop.pendingTimers, 0);
});

test("a per-run timeout cancels an overlong run and counts it as an error", async () => {
  const loop = new VirtualLoop();
  const { Svc, starts } = periodic({ interval: 1000, timeout: 200 }, async (n, signal, l) => {
    if (n === 1) await sleep(l, 5000, { signal });
  });
  const out = capture();
  await loop.run(async () => {
    const { handle, svc } = await startService(loop, Svc, {}, out);
    await sleep(loop, 1500);
    await handle.stop();
    assert.equal(svc.metrics.value("tilth_task_errors_total", { task: "tick" }), 1);
  });
  assert.deepEqual(starts, [0, 1000]);
  assert.equal(out.grep(/run of task tick timed out after 200 ms/).length, 1, out.lines.join("\n"));
});

test("a subclass overriding execute(), named after its class", async () => {
  const loop = new VirtualLoop();
  const seen: number[] = [];
  class HeartbeatTask extends PeriodicTask {
    constructor(ctx: AppContext) {
      super(ctx, { interval: 500 });
    }
    override execute(): void {
      seen.push(this.loop.now());
    }
  }
  class Svc extends Service {
    static override tasks = [HeartbeatTask];
  }
  await loop.run(async () => {
    const { handle, svc } = await startService(loop, Svc, { heartbeat: { interval: 400 } });
    await sleep(loop, 1000);
    assert.equal(svc.task(HeartbeatTask).name, "heartbeat");
    await handle.stop();
  });
  assert.deepEqual(seen, [0, 400, 800]);
});
