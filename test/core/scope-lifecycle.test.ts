import assert from "node:assert/strict";
import { test } from "node:test";
import { VirtualLoop } from "../../adapters/virtual.js";
import { CancelledError, isTilthError } from "../../core/errors.js";
import { AbandonedError, Scope, stopWithin, type ScopeExit } from "../../core/Scope.js";
import { sleep } from "../../core/time.js";

test("close() called twice concurrently: both calls settle with the same outcome", async () => {
  const loop = new VirtualLoop();
  const scope = new Scope(loop);
  scope.spawn((t) => t.sleep(100));
  const a = scope.close();
  const b = scope.close();
  assert.equal(a, b);
  const settled: string[] = [];
  await loop.run(() => Promise.all([a.then(() => settled.push("a")), b.then(() => settled.push("b"))]));
  assert.deepEqual(settled.sort(), ["a", "b"]);
  assert.equal(loop.now(), 100);
});

test("finalizers run after the tasks, in reverse order, told how the scope ended", async () => {
  const loop = new VirtualLoop();
  const log: string[] = [];
  const exits: ScopeExit[] = [];
  const scope = new Scope(loop);
  scope.defer((exit) => {
    log.push("first registered");
    exits.push(exit);
  });
  scope.spawn(async (t) => {
    await t.sleep(50);
    log.push("task done");
  });
  scope.defer(async () => {
    await sleep(loop, 10);
    log.push("second registered");
  });
  await loop.run(() => scope.close());
  assert.deepEqual(log, ["task done", "second registered", "first registered"]);
  assert.deepEqual(exits, [{ kind: "ok" }]);

  const failing = new Scope(loop);
  const boom = new Error("boom");
  const seen: ScopeExit[] = [];
  failing.defer((e) => void seen.push(e));
  failing.spawn(() => Promise.reject(boom));
  await assert.rejects(loop.run(() => failing.close()), boom);
  assert.deepEqual(seen, [{ kind: "failed", error: boom }]);

  const cancelled = new Scope(loop);
  const why = new CancelledError("stop");
  cancelled.defer((e) => void seen.push(e));
  cancelled.cancel(why);
  await loop.run(() => cancelled.close());
  assert.deepEqual(seen[1], { kind: "cancelled", reason: why });
});

test("defer() returns an undo; release() stops owning a resource", async () => {
  const loop = new VirtualLoop();
  const scope = new Scope(loop);
  const ran: string[] = [];
  const undo = scope.defer(() => void ran.push("undone"));
  undo();
  const res = { close: () => void ran.push("released") };
  scope.use(res);
  scope.release(res);
  scope.use({ close: () => void ran.push("kept") });
  await loop.run(() => scope.close());
  assert.deepEqual(ran, ["kept"]);
});

test("use() closes a resource with [Symbol.asyncDispose] or close(); one opened on a closing scope is closed at once", async () => {
  const loop = new VirtualLoop();
  const closed: string[] = [];
  const scope = new Scope(loop);
  scope.use({ [Symbol.asyncDispose]: async () => void closed.push("disposable") });
  scope.use({ close: async () => void closed.push("closeable") });
  scope.spawn((t) => t.sleep(100));
  const closing = scope.close();
  // A resource that finished opening after its owner began to close (a listener still binding).
  await loop.run(() => sleep(loop, 10));
  assert.throws(() => scope.use({ close: () => void closed.push("late") }), (e) => isTilthError(e, "ERR_CLOSED"));
  await loop.run(() => sleep(loop, 0));
  assert.deepEqual(closed, ["late"]);
  assert.throws(() => scope.spawn(() => 1), (e) => isTilthError(e, "ERR_CLOSED"));
  await loop.run(() => closing);
  assert.deepEqual(closed, ["late", "closeable", "disposable"]);
});

test("closing escalates: graceful (closing aborts), cancel at graceMs, abandon at cancelMs with a coded error and a log line", async () => {
  const loop = new VirtualLoop();
  const lines: string[] = [];
  const scope = new Scope(loop, { name: "svc", graceMs: 1000, cancelMs: 200, log: (l) => lines.push(l) });
  const events: string[] = [];
  // Finishes in the graceful step once told to.
  scope.spawn(async (t) => {
    await new Promise<void>((r) => scope.closing.addEventListener("abort", () => r(), { once: true }));
    events.push(`polite stops at ${t.loop.now()}`);
  });
  // Ends only when cancelled.
  scope.spawn(async (t) => {
    try {
      await t.sleep(1e9);
    } catch {
      events.push(`slow cancelled at ${t.loop.now()}`);
    }
  });
  // Ignores everything.
  scope.spawn(() => sleep(loop, 1e9), { name: "stubborn" });
  const r = await loop.run(() => scope.close().then(() => undefined, (e: unknown) => e));
  assert.ok(r instanceof AbandonedError && r.code === "ERR_ABANDONED", String(r));
  assert.match((r as Error).message, /stubborn/);
  assert.deepEqual(events, ["polite stops at 0", "slow cancelled at 1000"]);
  assert.equal(loop.now(), 1200);
  assert.equal(lines.length, 1);
  assert.match(lines[0]!, /scope svc.*abandoned.*stubborn/);
});

test("stopWithin: says which step ended the work", async () => {
  const loop = new VirtualLoop();
  const quiet = (): void => {};
  assert.equal(await loop.run(() => stopWithin(loop, { what: "x", ended: sleep(loop, 10), graceMs: 100, cancel() {}, cancelMs: 100, log: quiet })), "ended");
  const ac = new AbortController();
  const work = sleep(loop, 1e6, { signal: ac.signal }).catch(() => {});
  assert.equal(await loop.run(() => stopWithin(loop, { what: "x", ended: work, graceMs: 100, cancel: () => ac.abort(), cancelMs: 100, log: quiet })), "cancelled");
  let line = "";
  const never = new Promise(() => {});
  assert.equal(await loop.run(() => stopWithin(loop, { what: "the thing", ended: never, graceMs: 5, cancel() {}, cancelMs: 5, log: (l) => (line = l) })), "abandoned");
  assert.match(line, /the thing.*abandoned/);
  assert.equal(loop.pendingTimers, 0);
});

test("a child scope is cancelled with its parent, closed gracefully when the parent closes, and waited for", async () => {
  const loop = new VirtualLoop();
  const parent = new Scope(loop, { name: "server" });
  const child = parent.child({ name: "session" });
  const events: string[] = [];
  child.defer(() => void events.push("child finalized"));
  child.spawn(async (t) => {
    await new Promise<void>((r) => child.closing.addEventListener("abort", () => r(), { once: true }));
    await t.sleep(30);
    events.push("child task drained");
  });
  parent.defer(() => void events.push("parent finalized"));
  await loop.run(() => parent.close());
  assert.deepEqual(events, ["child task drained", "child finalized", "parent finalized"]);

  // A child closed early leaves its parent.
  const p2 = new Scope(loop);
  const c2 = p2.child();
  assert.equal(p2.size, 1);
  await loop.run(() => c2.close());
  await loop.run(() => sleep(loop, 0));
  assert.equal(p2.size, 0);
  // Cancelling the parent cancels the child.
  const c3 = p2.child();
  const why = new CancelledError("down");
  p2.cancel(why);
  assert.equal(c3.signal.reason, why);
  await loop.run(() => p2.close());
  assert.throws(() => p2.child(), (e) => isTilthError(e, "ERR_CLOSED"));
});
