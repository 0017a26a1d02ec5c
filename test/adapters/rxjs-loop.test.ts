/**
 * loopFromRx: the Loop conformance suite on RxJS schedulers (virtual, async,
 * asap), and tilth tasks living on an RxJS VirtualTimeScheduler.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { VirtualTimeScheduler, asapScheduler, asyncScheduler, interval, take, type SchedulerLike } from "rxjs";
import { loopFromRx, runVirtual } from "../../adapters/rxjs.js";
import { isTilthError } from "../../core/errors.js";
import { scoped } from "../../core/Scope.js";
import { sleep, timeout } from "../../core/time.js";
import { loopConformance } from "../../testing/index.js";
import { leakCheck } from "../helpers/leaks.js";

const turn = (): Promise<void> => new Promise((r) => setImmediate(r));

loopConformance("loopFromRx(new VirtualTimeScheduler())", () => {
  const done = leakCheck();
  const errors: unknown[] = [];
  const rx = new VirtualTimeScheduler();
  const loop = loopFromRx(rx, { onError: (e) => errors.push(e) });
  return {
    loop,
    drive: (body) => runVirtual(rx, body),
    reported: () => errors,
    teardown: async () => {
      await turn();
      assert.deepEqual(
        rx.actions.map((a) => a.delay),
        [],
        "an action was left on the VirtualTimeScheduler",
      );
      await done();
    },
  };
});

for (const [name, scheduler] of [
  ["asyncScheduler", asyncScheduler],
  ["asapScheduler", asapScheduler],
] as [string, SchedulerLike][]) {
  loopConformance(`loopFromRx(${name})`, () => {
    const done = leakCheck();
    const errors: unknown[] = [];
    const loop = loopFromRx(scheduler, { onError: (e) => errors.push(e) });
    return {
      loop,
      drive: (body) => body(),
      reported: () => errors,
      teardown: done,
    };
  });
}

test("loopFromRx(VirtualTimeScheduler): tilth sleeps, timeouts and scopes run in the scheduler's virtual time", async () => {
  const rx = new VirtualTimeScheduler();
  const loop = loopFromRx(rx);
  const seen: string[] = [];
  const result = await runVirtual(rx, () =>
    scoped(loop, async (scope) => {
      scope.spawn(async () => {
        for (let i = 0; i < 3; i++) {
          await sleep(loop, 1000);
          seen.push(`tick ${loop.now()}`);
        }
      });
      await assert.rejects(
        timeout(loop, 2500, (signal) => sleep(loop, 60_000, { signal })),
        (e) => isTilthError(e, "ERR_TIMEOUT"),
      );
      seen.push(`timed out ${loop.now()}`);
      return rx.now();
    }),
  );
  assert.deepEqual(seen, ["tick 1000", "tick 2000", "timed out 2500", "tick 3000"]);
  assert.equal(result, 2500);
  assert.equal(rx.now(), 3000, "the cancelled 60 s sleep did not move virtual time");
  assert.equal(loop.pendingTimers, 0);
  assert.equal(rx.actions.length, 0);
});

test("loopFromRx(VirtualTimeScheduler): RxJS pipelines and tilth tasks share one virtual clock", async () => {
  const rx = new VirtualTimeScheduler();
  const loop = loopFromRx(rx);
  const seen: string[] = [];
  await runVirtual(rx, async () => {
    const sub = interval(400, rx)
      .pipe(take(3))
      .subscribe((n) => seen.push(`rx ${n} at ${rx.now()}`));
    await sleep(loop, 1000);
    seen.push(`tilth at ${loop.now()}`);
    await sleep(loop, 500);
    assert.ok(sub.closed);
  });
  assert.deepEqual(seen, ["rx 0 at 400", "rx 1 at 800", "tilth at 1000", "rx 2 at 1200"]);
  assert.equal(rx.actions.length, 0);
});

test("loopFromRx: a cancelled timer leaves nothing on the scheduler; an unref'd one still fires", async () => {
  const rx = new VirtualTimeScheduler();
  const loop = loopFromRx(rx);
  const t = loop.timer(30_000, () => assert.fail("cancelled timer fired"));
  await turn();
  assert.equal(rx.actions.length, 1);
  t.cancel();
  await turn();
  assert.equal(rx.actions.length, 0, "no wake-up left: nothing would move virtual time to 30 s");
  // A later unref'd timer: RxJS schedulers cannot unref, so it must still be woken for.
  let fired = -1;
  loop.timer(45_000, () => (fired = loop.now())).unref();
  await runVirtual(rx, async () => {
    while (fired < 0) await sleep(loop, 10_000);
  });
  assert.equal(fired, 45_000);
  assert.equal(loop.pendingTimers, 0);
  assert.equal(rx.actions.length, 0);
});

test("runVirtual: deadlock and time limit are coded errors", async () => {
  const rx = new VirtualTimeScheduler();
  const loop = loopFromRx(rx);
  await assert.rejects(
    runVirtual(rx, () => new Promise<void>(() => {}), { deadlockMs: 20 }),
    (e) => isTilthError(e, "ERR_VIRTUAL_DEADLOCK"),
  );
  let t = loop.timer(1000, function tick() {
    t = loop.timer(1000, tick);
  });
  await assert.rejects(
    runVirtual(rx, () => new Promise<void>(() => {}), { timeLimit: 10_000 }),
    (e) => isTilthError(e, "ERR_VIRTUAL_LIMIT"),
  );
  t.cancel();
  await turn();
  assert.equal(loop.pendingTimers, 0);
  assert.equal(rx.actions.length, 0);
});

test("loopFromRx: the clock never goes backwards even if the scheduler's does; wallTime follows it", () => {
  let now = 1000;
  const fake: SchedulerLike = { now: () => now, schedule: () => assert.fail("nothing scheduled") };
  const loop = loopFromRx(fake);
  assert.equal(loop.now(), 1000);
  now = 900;
  assert.equal(loop.now(), 1000);
  now = 1100;
  assert.equal(loop.now(), 1100);
  assert.equal(loop.wallTime(), 1100, "a real scheduler's clock is taken as epoch time");
  assert.equal(loopFromRx(fake, { wallOrigin: 5 }).wallTime(), 1105);
});

test("loopFromRx(VirtualTimeScheduler): wallTime() starts at 2000-01-01 and moves with the frames", async () => {
  const rx = new VirtualTimeScheduler();
  const loop = loopFromRx(rx);
  assert.equal(loop.wallTime(), Date.UTC(2000, 0, 1));
  await runVirtual(rx, () => sleep(loop, 1500));
  assert.equal(loop.wallTime(), Date.UTC(2000, 0, 1) + 1500);
});
