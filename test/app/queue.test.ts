/**
 * QueueTask in virtual time: N workers, backpressure and refusal when full,
 * retries with backoff, the final failure hook, stop with drain and at the
 * deadline.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { VirtualLoop } from "../../adapters/virtual.js";
import { Service, type Task } from "../../app/Service.js";
import { QueueTask, type QueueOptions } from "../../app/tasks/QueueTask.js";
import { isTilthError } from "../../core/errors.js";
import { sleep } from "../../core/time.js";
import { startService } from "./svc-helpers.js";

interface Failure {
  item: number;
  code: string | undefined;
  attempts: number;
  at: number;
}

/** A service with one QueueTask<number> "jobs". */
function queue(options: QueueOptions<number>) {
  const failures: Failure[] = [];
  let loopRef: VirtualLoop | undefined;
  class Svc extends Service {
    protected override createTasks(): Task[] {
      loopRef = this.loop as VirtualLoop;
      return [
        new QueueTask<number>(this.ctx, {
          name: "jobs",
          onFailure: (item, e, attempts) => void failures.push({ item, code: (e as { code?: string }).code ?? (e as Error).message, attempts, at: loopRef!.now() }),
          ...options,
        }),
      ];
    }
  }
  return { Svc, failures };
}

const jobs = (svc: Service): QueueTask<number> => svc.task<QueueTask<number>>("jobs");

test("N workers handle items concurrently, never more than N at once", async () => {
  const loop = new VirtualLoop();
  let active = 0;
  let most = 0;
  const done: [number, number][] = [];
  const { Svc } = queue({
    workers: 3,
    capacity: 10,
    handle: async (item, signal) => {
      most = Math.max(most, ++active);
      await sleep(loop, 100, { signal });
      active--;
      done.push([item, loop.now()]);
    },
  });
  await loop.run(async () => {
    const { handle, svc } = await startService(loop, Svc);
    for (let i = 0; i < 9; i++) await jobs(svc).submit(i);
    await sleep(loop, 1000);
    assert.equal(jobs(svc).done, 9);
    assert.equal(svc.metrics.value("tilth_queue_items_total", { task: "jobs", outcome: "done" }), 9);
    await handle.stop();
  });
  assert.equal(most, 3);
  assert.deepEqual(done.map(([, t]) => t), [100, 100, 100, 200, 200, 200, 300, 300, 300]);
  assert.equal(loop.pendingTimers, 0);
});

test("submit() waits while the queue is full (backpressure); depth is a gauge", async () => {
  const loop = new VirtualLoop();
  const { Svc } = queue({ workers: 1, capacity: 2, handle: (_i, signal) => sleep(loop, 100, { signal }) });
  const accepted: number[] = [];
  await loop.run(async () => {
    const { handle, svc } = await startService(loop, Svc);
    for (let i = 0; i < 5; i++) {
      await jobs(svc).submit(i);
      accepted.push(loop.now());
      if (i === 2) {
        assert.equal(jobs(svc).depth, 2);
        assert.match(await svc.metrics.text(), /^tilth_queue_depth\{task="jobs"\} 2$/m);
      }
    }
    await handle.stop();
  });
  // item 0 goes straight to the worker, 1 and 2 fill the queue, 3 waits for a slot (t=100), 4 for the next (t=200)
  assert.deepEqual(accepted, [0, 0, 0, 100, 200]);
});

test("trySubmit() refuses at once with ERR_QUEUE_FULL when full; ERR_CLOSED when not running", async () => {
  const loop = new VirtualLoop();
  const { Svc } = queue({ workers: 1, capacity: 1, handle: (_i, signal) => sleep(loop, 100, { signal }) });
  await loop.run(async () => {
    const { handle, svc } = await startService(loop, Svc);
    const q = jobs(svc);
    q.trySubmit(1); // to the worker
    await sleep(loop, 0);
    q.trySubmit(2); // queued
    assert.throws(() => q.trySubmit(3), (e) => isTilthError(e, "ERR_QUEUE_FULL") && (e as { retryable: boolean }).retryable && /queue jobs is full \(1 items\)/.test((e as Error).message));
    await handle.stop();
    assert.throws(() => q.trySubmit(4), (e) => isTilthError(e, "ERR_CLOSED"));
    await assert.rejects(q.submit(5), (e) => isTilthError(e, "ERR_CLOSED") && /queue jobs is not running \(stopped\)/.test((e as Error).message));
  });
});

test("a failing item is retried with doubling backoff, capped, then given to the failure hook", async () => {
  const loop = new VirtualLoop();
  const attempts: number[] = [];
  const { Svc, failures } = queue({
    retries: 4,
    backoff: 100,
    maxBackoff: 300,
    handle: () => {
      attempts.push(loop.now());
      throw new Error("backend down");
    },
  });
  await loop.run(async () => {
    const { handle, svc, out } = await startService(loop, Svc);
    await jobs(svc).submit(7);
    await sleep(loop, 5000);
    assert.equal(svc.metrics.value("tilth_queue_retries_total", { task: "jobs" }), 4);
    assert.equal(svc.metrics.value("tilth_task_errors_total", { task: "jobs" }), 5);
    assert.equal(jobs(svc).failed, 1);
    assert.equal(out.grep(/WARN jobs: attempt 1 of 5 failed: Error: backend down; retrying in 100 ms/).length, 1, out.lines.join("\n"));
    await handle.stop();
  });
  // waits 100, 200, 300 (capped), 300
  assert.deepEqual(attempts, [0, 100, 300, 600, 900]);
  assert.deepEqual(failures, [{ item: 7, code: "backend down", attempts: 5, at: 900 }]);
});

test("an item that succeeds on a retry is done; retryIf can refuse a retry", async () => {
  const loop = new VirtualLoop();
  const tries = new Map<number, number>();
  const { Svc, failures } = queue({
    backoff: 50,
    retryIf: (e) => (e as Error).message !== "fatal",
    handle: (item) => {
      const n = (tries.get(item) ?? 0) + 1;
      tries.set(item, n);
      if (item === 1 && n < 3) throw new Error("flaky");
      if (item === 2) throw new Error("fatal");
    },
  });
  await loop.run(async () => {
    const { handle, svc } = await startService(loop, Svc);
    await jobs(svc).submit(1);
    await jobs(svc).submit(2);
    await sleep(loop, 1000);
    assert.equal(jobs(svc).done, 1);
    await handle.stop();
  });
  assert.equal(tries.get(1), 3);
  assert.equal(tries.get(2), 1);
  assert.deepEqual(failures.map((f) => [f.item, f.code, f.attempts]), [[2, "fatal", 1]]);
});

test("a per-attempt timeout fails the attempt with ERR_TIMEOUT and retries", async () => {
  const loop = new VirtualLoop();
  const { Svc, failures } = queue({ timeout: 100, retries: 1, backoff: 10, handle: (_i, signal) => sleep(loop, 1000, { signal }) });
  await loop.run(async () => {
    const { handle, svc } = await startService(loop, Svc);
    await jobs(svc).submit(1);
    await sleep(loop, 500);
    await handle.stop();
  });
  assert.deepEqual(failures, [{ item: 1, code: "ERR_TIMEOUT", attempts: 2, at: 210 }]);
});

test("stop drains the queued items before the deadline; waiting submitters are refused", async () => {
  const loop = new VirtualLoop();
  const handled: number[] = [];
  const { Svc, failures } = queue({
    capacity: 3,
    stopTimeout: 5000,
    handle: async (item, signal) => {
      await sleep(loop, 100, { signal });
      handled.push(item);
    },
  });
  await loop.run(async () => {
    const { handle, svc } = await startService(loop, Svc);
    for (let i = 0; i < 4; i++) await jobs(svc).submit(i);
    const blocked = jobs(svc).submit(99);
    const refused = assert.rejects(blocked, (e) => isTilthError(e, "ERR_CLOSED"));
    await handle.stop();
    await refused;
    assert.equal(loop.now(), 400, "the four items took 100 ms each");
  });
  assert.deepEqual(handled, [0, 1, 2, 3]);
  assert.deepEqual(failures, []);
  assert.equal(loop.pendingTimers, 0);
});

test("at the stop deadline the item in flight is cancelled and the rest go to the failure hook", async () => {
  const loop = new VirtualLoop();
  const { Svc, failures } = queue({ capacity: 10, stopTimeout: 250, handle: (_i, signal) => sleep(loop, 100, { signal }) });
  await loop.run(async () => {
    const { handle, svc, out } = await startService(loop, Svc);
    for (let i = 0; i < 6; i++) await jobs(svc).submit(i);
    await handle.stop();
    assert.equal(loop.now(), 250);
    assert.equal(out.grep(/WARN jobs: did not stop within 250 ms: cancelled/).length, 1);
    assert.equal(jobs(svc).done, 2);
  });
  // item 2 was in flight at 250 (cancelled after 1 attempt); 3, 4, 5 never ran
  assert.deepEqual(failures, [
    { item: 2, code: "ERR_TIMEOUT", attempts: 1, at: 250 },
    { item: 3, code: "ERR_CANCELLED", attempts: 0, at: 250 },
    { item: 4, code: "ERR_CANCELLED", attempts: 0, at: 250 },
    { item: 5, code: "ERR_CANCELLED", attempts: 0, at: 250 },
  ]);
  assert.equal(loop.pendingTimers, 0);
});

test("drain: false (from the settings) hands queued items to the failure hook at once on stop", async () => {
  const loop = new VirtualLoop();
  const { Svc, failures } = queue({ capacity: 10, handle: (_i, signal) => sleep(loop, 100, { signal }) });
  await loop.run(async () => {
    const { handle, svc } = await startService(loop, Svc, { jobs: { drain: false, workers: 2 } });
    assert.equal(jobs(svc).workers, 2);
    for (let i = 0; i < 5; i++) await jobs(svc).submit(i);
    await sleep(loop, 50);
    await handle.stop();
    assert.equal(loop.now(), 100, "the two items in flight finished");
    assert.equal(jobs(svc).done, 2);
  });
  assert.deepEqual(failures.map((f) => [f.item, f.code, f.attempts]), [[2, "ERR_CANCELLED", 0], [3, "ERR_CANCELLED", 0], [4, "ERR_CANCELLED", 0]]);
});

test("the queue starts again with the service after a restart", async () => {
  const loop = new VirtualLoop();
  const handled: number[] = [];
  const { Svc } = queue({ handle: (item) => void handled.push(item) });
  await loop.run(async () => {
    const { handle, svc } = await startService(loop, Svc);
    await jobs(svc).submit(1);
    await sleep(loop, 10);
    await svc.stop(); // the service's tasks stop (as on a failure)...
    await svc.start(new AbortController().signal); // ...and start again
    await jobs(svc).submit(2);
    await sleep(loop, 10);
    await handle.stop();
  });
  assert.deepEqual(handled, [1, 2]);
  assert.equal(loop.pendingTimers, 0);
});
