import assert from "node:assert/strict";
import { test } from "node:test";
import { VirtualLoop } from "../../adapters/virtual.js";
import { isTilthError } from "../../core/errors.js";
import { sleep } from "../../core/time.js";
import { loopConformance } from "../../testing/index.js";
import { leakCheck } from "../helpers/leaks.js";

loopConformance("VirtualLoop", () => {
  const done = leakCheck();
  const errors: unknown[] = [];
  const loop = new VirtualLoop({ onError: (e) => errors.push(e) });
  return {
    loop,
    drive: (body) => loop.run(body),
    reported: () => errors,
    teardown: done,
  };
});

test("VirtualLoop: without onError, run() rethrows an error a callback threw", async () => {
  const loop = new VirtualLoop();
  await assert.rejects(
    loop.run(async () => {
      loop.post(() => {
        throw new Error("from a callback");
      });
      await sleep(loop, 10);
    }),
    /from a callback/,
  );
  await loop.runAll();
  assert.equal(loop.pendingTimers, 0);
});

/** Timer callbacks that record their name and the loop time they ran at. */
function marks(loop: VirtualLoop): { seen: [string, number][]; at: (name: string) => () => void } {
  const seen: [string, number][] = [];
  return { seen, at: (name) => () => void seen.push([name, loop.now()]) };
}

test("VirtualLoop: advance() fires due timers in order, at their deadlines, and nothing later", async () => {
  const loop = new VirtualLoop();
  const { seen, at } = marks(loop);
  loop.timer(300, at("c"));
  loop.timer(100, at("a"));
  loop.timer(200, at("b"));
  await loop.advance(250);
  assert.deepEqual(seen, [
    ["a", 100],
    ["b", 200],
  ]);
  assert.equal(loop.now(), 250);
  await loop.advance(50);
  assert.deepEqual(seen.at(-1), ["c", 300]);
  assert.equal(loop.pendingTimers, 0);
});

test("VirtualLoop: a 0 ms timer made after advance() fired a timer runs on the next advance (no hang)", async () => {
  const loop = new VirtualLoop();
  const { seen, at } = marks(loop);
  loop.timer(100, at("a"));
  loop.timer(500, at("c"));
  await loop.advance(100);
  loop.timer(0, at("b"));
  await loop.advance(40);
  assert.deepEqual(seen, [
    ["a", 100],
    ["b", 100],
  ]);
  assert.equal(loop.now(), 140);
  // And when nobody advances: runUntilIdle fires it too.
  loop.timer(0, at("d"));
  await loop.runUntilIdle();
  assert.deepEqual(seen.at(-1), ["d", 140]);
  await loop.runAll();
  assert.deepEqual(seen.at(-1), ["c", 500]);
  assert.equal(loop.pendingTimers, 0);
});

test("VirtualLoop: promise continuations run between timer firings", async () => {
  const loop = new VirtualLoop();
  const seen: string[] = [];
  const task = (async () => {
    await sleep(loop, 10);
    seen.push(`woke at ${loop.now()}`);
    await sleep(loop, 10);
    seen.push(`woke at ${loop.now()}`);
  })();
  await loop.advance(100);
  await task;
  assert.deepEqual(seen, ["woke at 10", "woke at 20"]);
});

test("VirtualLoop: runUntilIdle runs posts and due timers without moving time", async () => {
  const loop = new VirtualLoop();
  let n = 0;
  loop.post(() => n++);
  loop.timer(0, () => n++);
  const later = loop.timer(5, () => n++);
  await loop.runUntilIdle();
  assert.equal(n, 2);
  assert.equal(loop.now(), 0);
  later.cancel();
});

test("VirtualLoop: run() auto-advances an hour of sleeps instantly", async () => {
  const loop = new VirtualLoop();
  const result = await loop.run(async () => {
    for (let i = 0; i < 60; i++) await sleep(loop, 60_000);
    return loop.now();
  });
  assert.equal(result, 3_600_000);
});

test("VirtualLoop: run() reports a deadlock when the body waits on nothing", async () => {
  const loop = new VirtualLoop();
  await assert.rejects(
    loop.run(() => new Promise<void>(() => {}), { deadlockMs: 20 }),
    (e) => isTilthError(e, "ERR_VIRTUAL_DEADLOCK"),
  );
});

test("VirtualLoop: run() stops at its time limit when a periodic timer never ends", async () => {
  const loop = new VirtualLoop();
  let t = loop.timer(1000, function tick() {
    t = loop.timer(1000, tick);
  });
  await assert.rejects(
    loop.run(() => new Promise<void>(() => {}), { timeLimit: 60_000 }),
    (e) => isTilthError(e, "ERR_VIRTUAL_LIMIT"),
  );
  t.cancel();
  assert.equal(loop.pendingTimers, 0);
});

test("VirtualLoop: a wait on virtual time that nobody advances raises a stall warning", async () => {
  const done = leakCheck();
  const loop = new VirtualLoop({ stallWarningMs: 5 });
  const warned = new Promise<Error>((resolve) => {
    const on = (w: Error): void => {
      if ((w as { code?: string }).code === "TILTH_VIRTUAL_STALL") {
        process.off("warning", on);
        resolve(w);
      }
    };
    process.on("warning", on);
  });
  const t = loop.timer(1000, () => {});
  // The watchdog is unref'd (it must never hold a process open); keep this
  // test's process alive until the warning, failing if it never comes.
  const guard = setTimeout(() => assert.fail("no stall warning within 5 s"), 5000);
  const w = await warned;
  clearTimeout(guard);
  assert.match(w.message, /time has not advanced/);
  t.cancel();
  await loop.runUntilIdle();
  await done();
});

test("VirtualLoop: a million pending timers, half cancelled, fire in order", async () => {
  const loop = new VirtualLoop();
  const n = 1_000_000;
  const timers = new Array(n);
  let last = -1;
  let fired = 0;
  let ordered = true;
  for (let i = 0; i < n; i++) {
    const ms = (i * 7919) % 10_007;
    timers[i] = loop.timer(ms, () => {
      if (ms < last) ordered = false;
      last = ms;
      fired++;
    });
  }
  for (let i = 0; i < n; i += 2) timers[i].cancel();
  assert.equal(loop.pendingTimers, n / 2);
  await loop.runAll(n);
  assert.equal(fired, n / 2);
  assert.ok(ordered);
  assert.equal(loop.pendingTimers, 0);
});

test("VirtualLoop: advancing twice at once is refused", async () => {
  const loop = new VirtualLoop();
  const a = loop.advance(10);
  await assert.rejects(loop.advance(10), (e) => isTilthError(e, "ERR_BUSY"));
  await a;
});
