import assert from "node:assert/strict";
import { test } from "node:test";
import { VirtualLoop } from "../../adapters/virtual.js";
import { CancelledError } from "../../core/errors.js";
import { Event } from "../../core/Event.js";
import { Lock } from "../../core/Lock.js";
import { scoped } from "../../core/Scope.js";
import { Semaphore } from "../../core/Semaphore.js";
import { sleep } from "../../core/time.js";

test("Event wakes every waiter and stays set until cleared", async () => {
  const loop = new VirtualLoop();
  const ev = new Event();
  const woke: number[] = [];
  await loop.run(() =>
    scoped(loop, async (s) => {
      for (let i = 0; i < 3; i++)
        s.spawn(async () => {
          await ev.wait();
          woke.push(loop.now());
        });
      await sleep(loop, 50);
      ev.set();
    }),
  );
  assert.deepEqual(woke, [50, 50, 50]);
  await ev.wait();
  ev.clear();
  assert.equal(ev.isSet, false);
});

test("Event.wait gives up on abort with the reason", async () => {
  const ev = new Event();
  const ac = new AbortController();
  const p = ev.wait({ signal: ac.signal });
  ac.abort(new CancelledError("bye"));
  await assert.rejects(p, /bye/);
  ev.set(); // the aborted waiter is gone; nothing to wake
});

test("Semaphore admits at most N holders, FIFO", async () => {
  const loop = new VirtualLoop();
  const sem = new Semaphore(loop, 2);
  let active = 0;
  let peak = 0;
  const order: number[] = [];
  await loop.run(() =>
    scoped(loop, (s) => {
      for (let i = 0; i < 6; i++)
        s.spawn(() =>
          sem.use(async () => {
            order.push(i);
            peak = Math.max(peak, ++active);
            await sleep(loop, 10);
            active--;
          }),
        );
    }),
  );
  assert.equal(peak, 2);
  assert.deepEqual(order, [0, 1, 2, 3, 4, 5]);
  assert.equal(loop.now(), 30);
  assert.equal(sem.available, 2);
});

test("Semaphore: an aborted acquire leaves the queue; over-release is refused", async () => {
  const loop = new VirtualLoop();
  const sem = new Semaphore(loop, 1);
  await sem.acquire();
  const ac = new AbortController();
  const p = sem.acquire({ signal: ac.signal });
  assert.equal(sem.waiting, 1);
  ac.abort(new CancelledError("late"));
  await assert.rejects(p, /late/);
  assert.equal(sem.waiting, 0);
  sem.release();
  assert.throws(() => sem.release(), RangeError);
});

test("Lock serialises critical sections and is released on throw", async () => {
  const loop = new VirtualLoop();
  const lock = new Lock(loop);
  const log: string[] = [];
  await loop.run(() =>
    scoped(loop, (s) => {
      s.spawn(() =>
        lock
          .use(async () => {
            log.push("a in");
            await sleep(loop, 10);
            log.push("a out");
            throw new Error("a failed");
          })
          .catch(() => log.push("a caught")),
      );
      s.spawn(() =>
        lock.use(async () => {
          log.push("b in");
          await sleep(loop, 10);
          log.push("b out");
        }),
      );
    }),
  );
  // b enters only after a left, although a's section threw.
  assert.deepEqual(
    log.filter((x) => x !== "a caught"),
    ["a in", "a out", "b in", "b out"],
  );
  assert.ok(log.includes("a caught"));
  assert.equal(lock.locked, false);
});
