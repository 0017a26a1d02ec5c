/**
 * The load engine of `tilth bench` against tilth servers over inproc: in
 * virtual time (coordinated omission, bounds, errors, streams, arguments) and
 * on the Node loop (closed and open loops).
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { NodeLoop } from "../../adapters/node.js";
import { VirtualLoop } from "../../adapters/virtual.js";
import { sleep } from "../../core/time.js";
import type { Loop } from "../../core/Loop.js";
import { registerTransports } from "../../transports/index.js";
import { RpcError, contextual, serve, type CallContext } from "../../rpc/index.js";
import { runLoad, type LoadPlan, type LoadResult } from "../../cli/bench/load.js";
import { rpcTarget } from "../../cli/bench/target.js";
import { leakCheck } from "../helpers/leaks.js";

const ms = (us: number): number => us / 1000;

/**
 * A server whose `work()` takes 1 ms, and which stalls for 200 ms once per
 * second (at 500 ms, 1500 ms, ...): a call that arrives during a stall waits
 * for its end.
 */
function stallingApi(loop: Loop) {
  let stalledUntil = -1;
  const stalls = { n: 0 };
  let t: ReturnType<Loop["timer"]> | undefined;
  const arm = (at: number): void => {
    t = loop.timer(at - loop.now(), () => {
      stalledUntil = loop.now() + 200;
      stalls.n++;
      arm(at + 1000);
    });
  };
  arm(loop.now() + 500);
  return {
    api: {
      work: async () => {
        const wait = Math.max(0, stalledUntil - loop.now());
        await sleep(loop, wait + 1);
        return 1;
      },
    },
    stalls,
    stop: () => t?.cancel(),
  };
}

const basePlan = (over: Partial<LoadPlan>): LoadPlan => ({
  connections: 1,
  inFlight: 1,
  durationMs: 5000,
  maxCalls: 1e9,
  warmupMs: 0,
  argLists: [[]],
  drainMs: 5000,
  ...over,
});

/** Serve `make(loop)`'s API over drpc+inproc in virtual time and run one load of `method` against it. */
async function virtualRun(
  make: (loop: VirtualLoop) => object,
  method: string,
  plan: Partial<LoadPlan>,
  during?: (loop: VirtualLoop) => void,
): Promise<{ r: LoadResult; loop: VirtualLoop }> {
  const loop = registerTransports(new VirtualLoop());
  let r!: LoadResult;
  await loop.run(async () => {
    const made = make(loop);
    const server = await serve(made, "drpc+inproc://bench", { loop });
    const target = rpcTarget(loop, "drpc+inproc://bench", { method, connections: plan.connections ?? 1, timeout: 60_000 });
    await target.open();
    during?.(loop);
    r = await runLoad(loop, target, basePlan(plan));
    await target.close();
    await server.close();
  });
  return { r, loop };
}

test("coordinated omission: a server that stalls 200 ms once per second shows in the open loop's p99, not in the closed loop's", { timeout: 120_000 }, async () => {
  const done = leakCheck();
  // Closed loop: one call in flight. The stall delays one call a second; the 800 others a second are quick.
  let server!: ReturnType<typeof stallingApi>;
  const closed = await virtualRun((loop) => (server = stallingApi(loop)).api, "work", { durationMs: 5000 });
  server.stop();
  assert.ok(server.stalls.n >= 5, `the server stalled (${server.stalls.n} times)`);
  const c = closed.r.latency.stats();
  assert.equal(closed.r.mode, "closed");
  assert.ok(closed.r.calls > 3000, `closed loop made ${closed.r.calls} calls`);
  assert.ok(ms(c.max) >= 190, `the stall happened: closed-loop max ${ms(c.max)} ms`);
  assert.ok(ms(c.p99) < 5, `closed-loop p99 ${ms(c.p99)} ms hides the stalls`);
  assert.ok(ms(c.p90) < 5);

  // Open loop at 500 calls/s on the same single slot: every call due during a stall waits for it, and
  // is measured from when it was due.
  const open = await virtualRun((loop) => (server = stallingApi(loop)).api, "work", { durationMs: 5000, rate: 500 });
  server.stop();
  const o = open.r.latency.stats();
  const u = open.r.uncorrected.stats();
  assert.equal(open.r.mode, "open");
  assert.equal(open.r.calls, 2500, "every call of the schedule was made");
  assert.equal(open.r.behind, 0);
  assert.ok(ms(o.p99) >= 150, `open-loop p99 ${ms(o.p99)} ms reflects the 200 ms stalls`);
  assert.ok(ms(o.p90) >= 20, `open-loop p90 ${ms(o.p90)} ms: a tenth of the calls were delayed by a stall`);
  assert.ok(ms(o.max) >= 190);
  // The same calls measured from their actual send: the correction is what shows the stalls.
  assert.ok(ms(u.p99) < 5, `uncorrected p99 ${ms(u.p99)} ms`);
  // The calls left late because the one slot was busy (the server's doing), not because the client was.
  assert.ok(ms(open.r.sendLag.at(99)) >= 150);
  assert.ok(open.r.clientLag.count > 1000, `${open.r.clientLag.count} calls had a free slot`);
  assert.ok(open.r.clientLag.stats().max <= 1, "and left on time (1 µs is the histogram's floor)");
  await done();
});

test("open loop: calls start on schedule, spread evenly; the rate is kept exactly in virtual time", async () => {
  const starts: number[] = [];
  let loopRef: Loop | undefined;
  const { r } = await virtualRun(
    (loop) => {
      loopRef = loop;
      return { ping: async () => (starts.push(loop.now()), sleep(loop, 2).then(() => "pong")) };
    },
    "ping",
    { rate: 250, durationMs: 2000, warmupMs: 1000, inFlight: 10 },
  );
  assert.ok(loopRef);
  assert.equal(r.calls, 500, "250 calls/s for 2 s after the warm-up");
  assert.equal(starts.length, 750, "the warm-up's 250 calls were made too");
  const gaps = starts.slice(1).map((t, i) => t - starts[i]!);
  assert.ok(gaps.every((g) => Math.abs(g - 4) < 1e-6), "one call every 4 ms");
  assert.ok(Math.abs(r.windowMs - 2000) < 3, `window ${r.windowMs}`);
  assert.equal(r.intervals.length >= 2, true);
  assert.equal(r.intervals[0]!.calls, 250);
  assert.ok(r.bytesSent > 0 && r.bytesReceived > 0, "bytes counted both ways");
});

test("closed loop: each connection keeps M calls in flight; --calls bounds the run exactly", async () => {
  let inflight = 0;
  let most = 0;
  const { r } = await virtualRun(
    (loop) => ({
      work: async () => {
        most = Math.max(most, ++inflight);
        await sleep(loop, 5);
        inflight--;
      },
    }),
    "work",
    { connections: 3, inFlight: 4, maxCalls: 600, durationMs: 60_000 },
  );
  assert.equal(most, 12, "3 connections × 4 in flight");
  assert.equal(r.calls, 600);
  assert.ok(Math.abs(r.windowMs - 250) < 1, `600 calls of 5 ms, 12 at a time: 250 ms (${r.windowMs})`);
  assert.equal(r.latency.count, 600);
  assert.ok(Math.abs(ms(r.latency.at(50)) - 5) < 0.1);
});

test("bounds: the duration ends the run; calls that never answer are cancelled after the drain limit; an abort ends it at once", async () => {
  let cancelled = 0;
  const never = (loop: VirtualLoop) => ({
    hang: contextual(async (ctx: CallContext) => {
      await new Promise<void>((resolve) => ctx.signal.addEventListener("abort", () => resolve(), { once: true }));
      cancelled++;
      void loop;
    }),
  });
  const { r, loop } = await virtualRun(never, "hang", { connections: 2, inFlight: 3, durationMs: 1000, drainMs: 300 });
  assert.equal(r.calls, 0);
  assert.equal(r.unfinished, 6, "the 6 calls in flight were cancelled");
  assert.ok(loop.now() >= 1300 && loop.now() < 1400, `ended after duration + drain (${loop.now()})`);
  assert.equal(cancelled, 6, "the server saw the cancellations");

  const ac = new AbortController();
  const aborted = await virtualRun(
    (l) => ({ work: () => sleep(l, 1) }),
    "work",
    { durationMs: 3_600_000, signal: ac.signal },
    (l) => void l.timer(500, () => ac.abort()),
  );
  assert.equal(aborted.r.interrupted, true);
  assert.ok(aborted.r.calls > 100, "the figures so far");
  assert.ok(aborted.loop.now() < 600, "an abort ends an hour-long run at once");
});

test("errors count by code, with a sample message; time limits count as ERR_TIMEOUT", async () => {
  let n = 0;
  const { r } = await virtualRun(
    (loop) => ({
      flaky: async () => {
        await sleep(loop, 1);
        if (++n % 4 === 0) throw new RpcError("ERR_OUT_OF_STOCK", "no more widgets");
        if (n % 10 === 0) await sleep(loop, 120_000);
        return n;
      },
    }),
    "flaky",
    { maxCalls: 100, durationMs: 600_000, inFlight: 5 },
  );
  assert.equal(r.calls, 100);
  assert.equal(r.errors.ERR_OUT_OF_STOCK, 25);
  assert.equal(r.errors.ERR_TIMEOUT, 5, "every 10th call, not a 4th, outlives the 60 s limit");
  assert.equal(r.failed, 30);
  assert.equal(r.errorSamples.ERR_OUT_OF_STOCK, "no more widgets");
  assert.equal(r.latency.count, 70, "latency of successful calls only");
});

test("arguments are cycled; a streamed method is measured in items and time to first item", async () => {
  const seen: number[] = [];
  const { r } = await virtualRun(
    (loop) => ({
      async *count(n: number) {
        seen.push(n);
        await sleep(loop, 3);
        for (let i = 0; i < n; i++) {
          yield i;
          await sleep(loop, 1);
        }
      },
    }),
    "count",
    { maxCalls: 30, durationMs: 600_000, argLists: [[1], [2], [3]] },
  );
  assert.deepEqual(seen.slice(0, 6), [1, 2, 3, 1, 2, 3]);
  assert.equal(r.streams, 30);
  assert.equal(r.items, 60, "10 × (1 + 2 + 3) items");
  assert.ok(Math.abs(ms(r.latency.at(50)) - 3) < 0.1, `time to first item ${ms(r.latency.at(50))} ms`);
  assert.ok(ms(r.streamTime.at(100)) >= 5.9, "a whole stream of 3 takes 3 + 3 ms");
});

test("on the Node loop over inproc: a closed and an open loop run, bounded by calls and by time", { timeout: 30_000 }, async () => {
  const done = leakCheck();
  const loop = registerTransports(new NodeLoop());
  const server = await serve({ echo: (x: unknown) => x }, "drpc+inproc://bench-node", { loop });
  const target = rpcTarget(loop, "drpc+inproc://bench-node", { method: "echo", connections: 2, timeout: 10_000 });
  try {
    await target.open();
    const closed = await runLoad(loop, target, basePlan({ connections: 2, inFlight: 8, maxCalls: 5000, durationMs: 20_000, argLists: [["x"]] }));
    assert.equal(closed.calls, 5000);
    assert.equal(closed.failed, 0);
    const open = await runLoad(loop, target, basePlan({ connections: 2, inFlight: 100, rate: 2000, durationMs: 500, argLists: [["y"]] }));
    // Every call of the schedule was made, or (on a starved machine) reported as due and never sent.
    assert.equal(open.calls + open.behind, 1000, "2000 calls/s for 0.5 s");
    assert.ok(open.calls > 0);
    assert.equal(open.failed, 0);
  } finally {
    await target.close();
    await server.close();
  }
  await done();
});
