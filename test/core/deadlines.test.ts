import assert from "node:assert/strict";
import { test } from "node:test";
import { VirtualLoop } from "../../adapters/virtual.js";
import { Deadlines } from "../../core/Deadlines.js";
import { sleep } from "../../core/time.js";

test("Deadlines: equal limits share one timer; cancelled ones never fire; due ones fire at their time, in order", async () => {
  const loop = new VirtualLoop();
  const fired: [string, number][] = [];
  const d = new Deadlines<string>(loop, (x) => fired.push([x, loop.now()]));
  await loop.run(async () => {
    const a = d.add(1000, "a");
    await sleep(loop, 100);
    d.add(1000, "b");
    await sleep(loop, 100);
    d.add(1000, "c");
    assert.equal(loop.pendingTimers, 1, "one timer for three deadlines");
    a.cancel();
    assert.equal(a.pending, false);
    await sleep(loop, 2000);
  });
  assert.deepEqual(fired, [
    ["b", 1100],
    ["c", 1200],
  ]);
  assert.equal(loop.pendingTimers, 0);
});

test("Deadlines: an earlier deadline than the newest queued one gets its own timer and still fires on time", async () => {
  const loop = new VirtualLoop();
  const fired: [string, number][] = [];
  const d = new Deadlines<string>(loop, (x) => fired.push([x, loop.now()]));
  await loop.run(async () => {
    d.add(5000, "long");
    d.add(100, "short");
    const gone = d.add(50, "cancelled");
    gone.cancel();
    await sleep(loop, 6000);
  });
  assert.deepEqual(fired, [
    ["short", 100],
    ["long", 5000],
  ]);
  assert.equal(loop.pendingTimers, 0);
});

test("Deadlines: clear() cancels everything and leaves no timer", async () => {
  const loop = new VirtualLoop();
  let n = 0;
  const d = new Deadlines<number>(loop, () => n++);
  for (let i = 0; i < 100; i++) d.add(1000 + (i % 2 ? 0 : 500), i);
  d.clear();
  assert.equal(loop.pendingTimers, 0);
  await loop.runAll();
  assert.equal(n, 0);
});

test("Deadlines: an add() from inside an expiry callback arms no second timer", async () => {
  const loop = new VirtualLoop();
  const fired: number[] = [];
  const d: Deadlines<number> = new Deadlines<number>(loop, (x) => {
    fired.push(loop.now());
    if (x < 3) d.add(1000, x + 1);
  });
  d.add(1000, 0);
  await loop.runAll();
  assert.deepEqual(fired, [1000, 2000, 3000, 4000]);
  assert.equal(loop.pendingTimers, 0);
});

test("Deadlines: finished entries do not stay queued until their deadline (also behind one long-running entry)", () => {
  const loop = new VirtualLoop();
  const d = new Deadlines<number>(loop, () => {});
  for (let i = 0; i < 1000; i++) d.add(30_000, i).cancel();
  assert.equal(d.size, 0, "finished entries leave from the head");
  const slow = d.add(30_000, -1);
  for (let i = 0; i < 1000; i++) d.add(30_000, i).cancel();
  assert.ok(d.size <= 65, `a slow entry at the head keeps at most a bounded tail: ${d.size}`);
  slow.cancel();
  assert.equal(d.size, 0);
  d.clear();
});

test("Deadlines: once every queued entry has finished, a shorter deadline queues too (no timer of its own) and fires on time", async () => {
  const loop = new VirtualLoop();
  const fired: [string, number][] = [];
  const d = new Deadlines<string>(loop, (x) => fired.push([x, loop.now()]));
  const long = d.add(30_000, "long");
  long.cancel();
  d.add(5_000, "short");
  d.add(5_000, "short too");
  assert.equal(loop.pendingTimers, 1, "the one timer, re-armed earlier");
  await loop.advance(4_999);
  assert.deepEqual(fired, []);
  await loop.advance(1);
  assert.deepEqual(fired, [
    ["short", 5_000],
    ["short too", 5_000],
  ]);
  await loop.runAll();
  assert.equal(fired.length, 2);
  assert.equal(loop.pendingTimers, 0);
});

test("Deadlines: an out-of-order entry added with an explicit earlier `now` expires at now + ms", async () => {
  const loop = new VirtualLoop();
  const fired: [string, number][] = [];
  const d = new Deadlines<string>(loop, (x) => fired.push([x, loop.now()]));
  await loop.advance(1_000);
  d.add(10_000, "queued"); // at 11 000
  d.add(2_000, "own timer", 500); // read at 500: at 2 500, before the queued one
  await loop.runAll();
  assert.deepEqual(fired, [
    ["own timer", 2_500],
    ["queued", 11_000],
  ]);
});
