import assert from "node:assert/strict";
import { test } from "node:test";
import { VirtualLoop } from "../../adapters/virtual.js";
import { CancelledError, ScopeError, isTilthError } from "../../core/errors.js";
import { Scope, scoped } from "../../core/Scope.js";
import { sleep } from "../../core/time.js";

test("scoped() waits for every child and returns the body's value", async () => {
  const loop = new VirtualLoop();
  const finished: string[] = [];
  const v = await loop.run(() =>
    scoped(loop, async (s) => {
      s.spawn(async (t) => {
        await t.sleep(300);
        finished.push("slow");
      });
      s.spawn(async (t) => {
        await t.sleep(100);
        finished.push("fast");
      });
      return "body";
    }),
  );
  assert.equal(v, "body");
  assert.deepEqual(finished, ["fast", "slow"]);
  assert.equal(loop.now(), 300);
  assert.equal(loop.pendingTimers, 0);
});

test("spawn starts the task at once, like calling an async function: it runs to its first await", async () => {
  const loop = new VirtualLoop();
  const log: string[] = [];
  await loop.run(() =>
    scoped(loop, (s) => {
      s.spawn(async () => {
        log.push("task start");
        await null;
        log.push("task resumed");
      });
      log.push("after spawn");
    }),
  );
  assert.deepEqual(log, ["task start", "after spawn", "task resumed"]);
});

test("a failing child cancels its siblings with a reason and the error reaches the owner", async () => {
  const loop = new VirtualLoop();
  let siblingReason: unknown;
  let siblingFinally = false;
  const boom = new Error("boom");
  await assert.rejects(
    loop.run(() =>
      scoped(loop, async (s) => {
        s.spawn(async (t) => {
          try {
            await t.sleep(10_000);
          } catch (e) {
            siblingReason = e;
            throw e;
          } finally {
            siblingFinally = true;
          }
        });
        s.spawn(async (t) => {
          await t.sleep(50);
          throw boom;
        });
      }),
    ),
    (e) => e === boom,
  );
  assert.ok(siblingReason instanceof CancelledError);
  assert.equal((siblingReason as CancelledError).reason, boom);
  assert.equal(siblingFinally, true);
  assert.equal(loop.now(), 50, "the sibling was cancelled, not waited for");
  assert.equal(loop.pendingTimers, 0);
});

test("several failures arrive together as a ScopeError", async () => {
  const loop = new VirtualLoop();
  await assert.rejects(
    loop.run(() =>
      scoped(loop, async (s) => {
        s.spawn(async () => {
          throw new Error("one");
        });
        s.spawn(async () => {
          throw new Error("two");
        });
      }),
    ),
    (e) => e instanceof ScopeError && e.errors.length === 2 && e.code === "ERR_SCOPE",
  );
});

test("the body's own error cancels the children and is thrown after they end", async () => {
  const loop = new VirtualLoop();
  let childEnded = false;
  await assert.rejects(
    loop.run(() =>
      scoped(loop, async (s) => {
        s.spawn(async (t) => {
          await t.sleep(1_000_000).catch(() => {});
          childEnded = true;
        });
        await sleep(loop, 5);
        throw new Error("body failed");
      }),
    ),
    /body failed/,
  );
  assert.equal(childEnded, true);
  assert.equal(loop.now(), 5);
});

test("a parent signal cancels the scope with its reason", async () => {
  const loop = new VirtualLoop();
  const parent = new AbortController();
  let seen: unknown;
  loop.timer(20, () => parent.abort(new CancelledError("shutting down")));
  await loop.run(() =>
    scoped(
      loop,
      async (s) => {
        s.spawn(async (t) => {
          await t.sleep(1_000_000).catch((e: unknown) => (seen = e));
        });
      },
      { signal: parent.signal },
    ),
  );
  assert.ok(seen instanceof CancelledError);
  assert.equal((seen as Error).message, "shutting down");
  assert.equal(loop.now(), 20);
});

test("task.cancel() cancels one task only; its cancellation is not a failure", async () => {
  const loop = new VirtualLoop();
  const ends: string[] = [];
  await loop.run(() =>
    scoped(loop, async (s) => {
      const a = s.spawn(async (t) => {
        await t.sleep(1000);
        ends.push("a");
      });
      s.spawn(async (t) => {
        await t.sleep(2000);
        ends.push("b");
      });
      await sleep(loop, 10);
      a.cancel();
      await assert.rejects(a.join(), (e) => isTilthError(e, "ERR_CANCELLED"));
    }),
  );
  assert.deepEqual(ends, ["b"]);
});

test("join() gives the task's value; a closed scope refuses spawn with ERR_CLOSED", async () => {
  const loop = new VirtualLoop();
  const s = new Scope(loop);
  const t = s.spawn(async () => 42);
  assert.equal(await t.join(), 42);
  assert.equal(t.done, true);
  await s.close();
  await s.close(); // idempotent
  assert.throws(() => s.spawn(() => 1), (e) => isTilthError(e, "ERR_CLOSED"));
});

test("await using closes the scope", async () => {
  const loop = new VirtualLoop();
  let done = false;
  await loop.run(async () => {
    const s = new Scope(loop);
    try {
      s.spawn(async (t) => {
        await t.sleep(10);
        done = true;
      });
    } finally {
      await s[Symbol.asyncDispose]();
    }
  });
  assert.equal(done, true);
});

test("a task spawned into a cancelled scope starts with an aborted signal", async () => {
  const loop = new VirtualLoop();
  const s = new Scope(loop);
  s.cancel(new CancelledError("stop"));
  const t = s.spawn(async (task) => task.signal.aborted);
  assert.equal(await t.join(), true);
  await s.close();
});

test("a handler that throws a non-Error value still fails the scope", async () => {
  const loop = new VirtualLoop();
  await assert.rejects(
    loop.run(() =>
      scoped(loop, (s) => {
        s.spawn(() => {
          throw "a string";
        });
      }),
    ),
    (e) => e === "a string",
  );
});

test("nested scopes: cancelling the outer cancels the inner's tasks", async () => {
  const loop = new VirtualLoop();
  let innerSaw: unknown;
  await loop.run(() =>
    scoped(loop, async (outer) => {
      outer.spawn((t) =>
        scoped(
          loop,
          (inner) => {
            inner.spawn(async (it) => {
              await it.sleep(1e9).catch((e: unknown) => (innerSaw = e));
            });
          },
          { signal: t.signal },
        ),
      );
      await sleep(loop, 100);
      outer.cancel(new CancelledError("outer done"));
    }),
  );
  assert.equal((innerSaw as Error).message, "outer done");
  assert.equal(loop.now(), 100);
  assert.equal(loop.pendingTimers, 0);
});
