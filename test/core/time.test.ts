import assert from "node:assert/strict";
import { test } from "node:test";
import { VirtualLoop } from "../../adapters/virtual.js";
import { CancelledError, TimeoutError, isTilthError } from "../../core/errors.js";
import { deadline, sleep, timeout } from "../../core/time.js";

test("sleep waits exactly its loop time", async () => {
  const loop = new VirtualLoop();
  await loop.run(async () => {
    await sleep(loop, 1234);
    assert.equal(loop.now(), 1234);
  });
});

test("sleep rejects with the abort reason and cancels its timer", async () => {
  const loop = new VirtualLoop();
  const ac = new AbortController();
  const reason = new CancelledError("no longer needed");
  await loop.run(async () => {
    loop.timer(10, () => ac.abort(reason));
    await assert.rejects(sleep(loop, 10_000, { signal: ac.signal }), (e) => e === reason);
    assert.equal(loop.now(), 10);
  });
  assert.equal(loop.pendingTimers, 0);
  await assert.rejects(sleep(loop, 1, { signal: ac.signal }), (e) => e === reason);
});

test("sleep with a non-Error abort reason rejects with a CancelledError carrying it", async () => {
  const loop = new VirtualLoop();
  const ac = new AbortController();
  ac.abort("just because");
  await assert.rejects(sleep(loop, 5, { signal: ac.signal }), (e) => e instanceof CancelledError && e.reason === "just because");
});

test("timeout: the limit that was hit is in the error, and fn's signal aborts with it", async () => {
  const loop = new VirtualLoop();
  let inner: unknown;
  await loop.run(async () => {
    await assert.rejects(
      timeout(loop, 250, async (signal) => {
        await sleep(loop, 10_000, { signal }).catch((e: unknown) => {
          inner = e;
          throw e;
        });
      }),
      (e) => e instanceof TimeoutError && e.limitMs === 250 && e.code === "ERR_TIMEOUT" && e.retryable,
    );
    assert.equal(loop.now(), 250);
  });
  assert.ok(inner instanceof TimeoutError);
  assert.equal(loop.pendingTimers, 0);
});

test("timeout: a result in time is returned and the timer is cancelled", async () => {
  const loop = new VirtualLoop();
  const v = await loop.run(() => timeout(loop, 1000, async () => (await sleep(loop, 10), "ok")));
  assert.equal(v, "ok");
  assert.equal(loop.pendingTimers, 0);
});

test("timeout: rejects at the limit even when fn ignores its signal", async () => {
  const loop = new VirtualLoop();
  await loop.run(async () => {
    await assert.rejects(
      timeout(loop, 100, () => sleep(loop, 5000)),
      (e) => isTilthError(e, "ERR_TIMEOUT"),
    );
    assert.equal(loop.now(), 100);
    await sleep(loop, 5000); // let the stubborn sleep finish so nothing is left
  });
});

test("timeout: an outer signal cancels with its reason", async () => {
  const loop = new VirtualLoop();
  const ac = new AbortController();
  await loop.run(async () => {
    loop.timer(5, () => ac.abort(new CancelledError("user")));
    await assert.rejects(
      timeout(loop, 1000, (signal) => sleep(loop, 1e6, { signal }), { signal: ac.signal }),
      /user/,
    );
  });
  assert.equal(loop.pendingTimers, 0);
});

test("timeout: fn throwing synchronously rejects", async () => {
  const loop = new VirtualLoop();
  await assert.rejects(
    timeout(loop, 10, () => {
      throw new Error("sync");
    }),
    /sync/,
  );
  assert.equal(loop.pendingTimers, 0);
});

test("deadline takes an absolute loop time", async () => {
  const loop = new VirtualLoop({ start: 1000 });
  await loop.run(async () => {
    await assert.rejects(
      deadline(loop, 1500, (signal) => sleep(loop, 1e6, { signal })),
      (e) => e instanceof TimeoutError && e.limitMs === 500,
    );
    assert.equal(loop.now(), 1500);
  });
});
