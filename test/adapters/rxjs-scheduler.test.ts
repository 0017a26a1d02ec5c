/**
 * toRxScheduler: the SchedulerLike contract on a tilth loop: delay-0 actions
 * go through loop.post, positive delays through one loop timer, rescheduling
 * reuses the action, unsubscribing cancels.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { type SchedulerAction, interval, observeOn, of, subscribeOn, take, timer, toArray, firstValueFrom } from "rxjs";
import { toRxScheduler } from "../../adapters/rxjs.js";
import { NodeLoop } from "../../adapters/node.js";
import { VirtualLoop } from "../../adapters/virtual.js";
import { leakCheck } from "../helpers/leaks.js";

test("toRxScheduler: one scheduler per loop; its clock is the loop's", async () => {
  const loop = new VirtualLoop({ start: 5000 });
  const s = toRxScheduler(loop);
  assert.equal(toRxScheduler(loop), s);
  assert.notEqual(toRxScheduler(new VirtualLoop()), s);
  assert.equal(s.now(), 5000);
  await loop.advance(250);
  assert.equal(s.now(), 5250);
});

test("toRxScheduler: a delay-0 action is a loop post (no timer), never synchronous, FIFO with other posts", async () => {
  const loop = new VirtualLoop();
  const s = toRxScheduler(loop);
  const seen: string[] = [];
  s.schedule(() => seen.push("rx 1"));
  loop.post(() => seen.push("post"));
  s.schedule(() => seen.push("rx 2"), 0);
  s.schedule(() => seen.push("rx negative"), -5);
  assert.equal(loop.pendingTimers, 0);
  assert.equal(loop.pendingPosts, 4);
  assert.deepEqual(seen, []);
  await loop.runUntilIdle();
  assert.deepEqual(seen, ["rx 1", "post", "rx 2", "rx negative"]);
});

test("toRxScheduler: a positive delay is one loop timer; unsubscribing cancels it", async () => {
  const loop = new VirtualLoop();
  const s = toRxScheduler(loop);
  let ran = 0;
  const sub = s.schedule(() => ran++, 1000);
  assert.equal(loop.pendingTimers, 1);
  sub.unsubscribe();
  assert.equal(loop.pendingTimers, 0);
  sub.unsubscribe(); // idempotent
  const rxSub = timer(60_000, s).subscribe(() => ran++);
  const rxSub2 = interval(10, s).subscribe(() => ran++);
  assert.equal(loop.pendingTimers, 2);
  rxSub.unsubscribe();
  rxSub2.unsubscribe();
  assert.equal(loop.pendingTimers, 0);
  await loop.runAll();
  assert.equal(ran, 0);
  assert.equal(loop.now(), 0, "nothing was left to move time");
});

test("toRxScheduler: an unsubscribed delay-0 action never runs", async () => {
  const loop = new VirtualLoop();
  const s = toRxScheduler(loop);
  let ran = 0;
  s.schedule(() => ran++).unsubscribe();
  await loop.runUntilIdle();
  assert.equal(ran, 0);
});

test("toRxScheduler: a reschedule chain reuses one action and keeps its state; interleaves FIFO with other work", async () => {
  const loop = new VirtualLoop();
  const s = toRxScheduler(loop);
  const actions = new Set<unknown>();
  const seen: (number | string)[] = [];
  s.schedule(
    function (this: SchedulerAction<number>, n?: number) {
      actions.add(this);
      seen.push(n!);
      if (n! < 3) {
        loop.post(() => seen.push(`post after ${n}`));
        this.schedule(n! + 1, 0);
      }
    },
    0,
    0,
  );
  await loop.runUntilIdle();
  assert.deepEqual(seen, [0, "post after 0", 1, "post after 1", 2, "post after 2", 3]);
  assert.equal(actions.size, 1);
  assert.equal(loop.pendingPosts, 0);
});

test("toRxScheduler: rescheduled before it ran, an action runs once, at its newer time or place", async () => {
  const loop = new VirtualLoop();
  const s = toRxScheduler(loop);
  const seen: string[] = [];
  const a = s.schedule((x?: string) => seen.push(`a ${x} at ${loop.now()}`), 0, "first") as SchedulerAction<string>;
  s.schedule(() => seen.push("b"));
  a.schedule("second", 0); // behind b now
  const c = s.schedule((x?: string) => seen.push(`c ${x} at ${loop.now()}`), 0, "posted") as SchedulerAction<string>;
  c.schedule("delayed", 50); // from a post to a timer
  const d = s.schedule((x?: string) => seen.push(`d ${x} at ${loop.now()}`), 100, "late") as SchedulerAction<string>;
  d.schedule("sooner", 0); // from a timer to a post
  assert.equal(loop.pendingTimers, 1);
  await loop.runAll();
  assert.deepEqual(seen, ["b", "a second at 0", "d sooner at 0", "c delayed at 50"]);
  assert.equal(loop.pendingTimers, 0);
});

test("toRxScheduler: periodic rescheduling at the same delay (interval) fires at exact multiples", async () => {
  const loop = new VirtualLoop();
  const s = toRxScheduler(loop);
  const times: number[] = [];
  const p = loop.run(() => firstValueFrom(interval(250, s).pipe(take(4), toArray())));
  interval(250, s)
    .pipe(take(4))
    .subscribe(() => times.push(loop.now()));
  assert.deepEqual(await p, [0, 1, 2, 3]);
  assert.deepEqual(times, [250, 500, 750, 1000]);
  assert.equal(loop.pendingTimers, 0);
});

test("toRxScheduler: an Infinity delay never runs and holds no timer", async () => {
  const loop = new VirtualLoop();
  const s = toRxScheduler(loop);
  let ran = 0;
  const sub = s.schedule(() => ran++, Infinity);
  assert.equal(loop.pendingTimers, 0);
  await loop.runAll();
  assert.equal(ran, 0);
  sub.unsubscribe();
});

test("toRxScheduler: an action that throws is unsubscribed and its error reported by the loop", async () => {
  const errors: unknown[] = [];
  const loop = new VirtualLoop({ onError: (e) => errors.push(e) });
  const s = toRxScheduler(loop);
  const sub = s.schedule(function (this: SchedulerAction<unknown>) {
    this.schedule(undefined, 10); // would run again, but the throw disposes of it
    throw new Error("bad work");
  });
  let after = 0;
  s.schedule(() => after++);
  await loop.runAll();
  assert.deepEqual(
    errors.map((e) => (e as Error).message),
    ["bad work"],
  );
  assert.ok(sub.closed);
  assert.equal(after, 1);
  assert.equal(loop.pendingTimers, 0);
});

test("toRxScheduler: observeOn/subscribeOn move work onto the loop", async () => {
  const loop = new VirtualLoop();
  const s = toRxScheduler(loop);
  const seen: string[] = [];
  of(1, 2)
    .pipe(subscribeOn(s, 5), observeOn(s, 10))
    .subscribe({ next: (n) => seen.push(`${n} at ${loop.now()}`), complete: () => seen.push(`done at ${loop.now()}`) });
  assert.deepEqual(seen, []);
  await loop.runAll();
  assert.deepEqual(seen, ["1 at 15", "2 at 15", "done at 15"]);
});

test("toRxScheduler on NodeLoop: a burst of actions runs in budget-sized turns, other macrotasks get in between; no handle left", async () => {
  const done = leakCheck();
  const loop = new NodeLoop({ budget: 256 });
  const s = toRxScheduler(loop);
  const n = 256 * 8;
  let ran = 0;
  let ranWhenOther = -1;
  const finished = new Promise<void>((resolve) => {
    for (let i = 0; i < n; i++) s.schedule(() => ++ran === n && resolve());
  });
  setImmediate(() => (ranWhenOther = ran));
  await finished;
  assert.ok(ranWhenOther >= 0 && ranWhenOther < n, `the other macrotask ran after ${ranWhenOther} actions`);
  // A cancelled long timer on the real loop holds nothing.
  const sub = timer(60_000, s).subscribe();
  sub.unsubscribe();
  assert.equal(loop.pendingTimers, 0);
  await done();
});
