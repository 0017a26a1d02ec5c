/**
 * A fleet on NATS: instances of one service (each its own process) behind
 * `drpc+nats://…/SERVICE`, against real nats-server processes started here
 * on loopback and random ports. Balance, join, graceful leave, crash, none
 * left, and the loss of the NATS node a client and an instance use.
 */
import assert from "node:assert/strict";
import { after, describe, test } from "node:test";
import { NodeLoop } from "../../adapters/node.js";
import { isTilthError } from "../../core/errors.js";
import { registerTransports } from "../../transports/index.js";
import { clientOf, close, connect, withOptions, type Remote } from "../../rpc/index.js";
import { leakCheck } from "../helpers/leaks.js";
import { natsSkip, startNats, startNatsCluster, stopAllNats } from "../helpers/nats.js";
import { killAllInstances, shares, startInstance, type Instance } from "./fleet.js";

interface FleetAPI {
  work(tag: string, ms: number): Promise<number>;
  count(tag: string, n: number, ms: number): AsyncGenerator<number>;
}

const HEARTBEAT_MS = 500;
let seq = 0;
const service = (): string => `fleet${process.pid}x${++seq}`;

/** `total` calls of work(ms), `concurrency` at a time; each result's pid, or its error, by tag. */
async function load(api: Remote<FleetAPI>, total: number, concurrency: number, ms: number, prefix = "c"): Promise<{ pids: number[]; errors: Map<string, unknown> }> {
  const pids: number[] = [];
  const errors = new Map<string, unknown>();
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < total) {
      const tag = `${prefix}${next++}`;
      try {
        pids.push(await api.work(tag, ms));
      } catch (e) {
        errors.set(tag, e);
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return { pids, errors };
}

function assertShares(pids: number[], instances: Instance[]): void {
  const s = shares(pids);
  const fair = pids.length / instances.length;
  for (const i of instances) {
    const got = s.get(i.pid) ?? 0;
    assert.ok(Math.abs(got - fair) <= 0.2 * fair, `instance ${i.pid} took ${got} of ${pids.length} calls, fair share ${fair.toFixed(1)} (+-20%): ${JSON.stringify([...s])}`);
  }
}

describe("fleet on NATS", { skip: natsSkip, timeout: 120_000 }, () => {
  after(async () => {
    await killAllInstances();
    await stopAllNats();
  });

  const withFleet = async (n: number, fn: (ctx: { url: string; nats: string; loop: NodeLoop; instances: Instance[]; api: Remote<FleetAPI> }) => Promise<void>, client: Record<string, unknown> = {}): Promise<void> => {
    const done = leakCheck();
    const nats = await startNats();
    const url = `drpc+nats://${nats.hostPort}/${service()}`;
    const instances = await Promise.all(Array.from({ length: n }, () => startInstance(url, HEARTBEAT_MS)));
    const loop = registerTransports(new NodeLoop());
    const api = await connect<FleetAPI>(url, { loop, heartbeatMs: HEARTBEAT_MS, ...client });
    try {
      await fn({ url, nats: nats.hostPort, loop, instances, api });
    } finally {
      await close(api);
      await Promise.all(instances.map((i) => i.kill()));
      await nats.stop();
    }
    await done();
    assert.equal(loop.pendingTimers, 0, "timers left pending");
  };

  /** Wait until the client has an open connection to `n` instances. */
  const untilReady = async (api: Remote<FleetAPI>, n: number): Promise<void> => {
    const t0 = Date.now();
    while (clientOf(api).endpoints().filter((e) => e.ready).length < n) {
      if (Date.now() - t0 > 10_000) assert.fail(`the client did not reach ${n} instances: ${JSON.stringify(clientOf(api).endpoints())}`);
      await new Promise((r) => setTimeout(r, 10));
    }
  };

  for (const n of [2, 3]) {
    test(`balance: ${n} instances under uniform load each take their share (+-20%)`, async () => {
      await withFleet(n, async ({ api, instances }) => {
        await untilReady(api, n);
        // Each call waits 20 ms (a timer, not CPU), so that shares measure the balancing, not which process the shared cores favour.
        const { pids, errors } = await load(api, 600, 3 * n, 20);
        assert.equal(errors.size, 0, `errors: ${[...errors.values()].map(String).join("; ")}`);
        assertShares(pids, instances);
      });
    });
  }

  test("join: a new instance takes calls within 1 s of starting", async () => {
    await withFleet(2, async ({ api, url }) => {
      await untilReady(api, 2);
      let stop = false;
      const seen: { pid: number; at: number }[] = [];
      const running = (async () => {
        let i = 0;
        while (!stop) {
          const pid = await api.work(`j${i++}`, 5);
          seen.push({ pid, at: Date.now() });
        }
      })();
      const third = await startInstance(url, HEARTBEAT_MS);
      const t0 = Date.now();
      while (!seen.some((s) => s.pid === third.pid) && Date.now() - t0 < 3000) await new Promise((r) => setTimeout(r, 5));
      stop = true;
      await running;
      const first = seen.find((s) => s.pid === third.pid);
      assert.ok(first !== undefined, "the new instance took no call within 3 s");
      const ms = first.at - third.readyAt;
      assert.ok(ms <= 1000, `the new instance took its first call ${ms} ms after it started`);
      console.log(`# join: first call on the new instance ${ms} ms after it was ready`);
      await third.kill();
    });
  });

  test("graceful leave: the instance finishes its calls and streams in flight, gets no new ones; no caller sees an error", async () => {
    await withFleet(3, async ({ api, instances }) => {
      await untilReady(api, 3);
      const leaving = instances[0]!;
      // Long calls and streams spread over the three, then a steady stream of short calls.
      const long = Array.from({ length: 9 }, (_, i) => api.work(`long${i}`, 600));
      const streams = Array.from({ length: 6 }, async (_, i) => {
        const got: number[] = [];
        for await (const pid of api.count(`s${i}`, 5, 100)) got.push(pid);
        return got;
      });
      await new Promise((r) => setTimeout(r, 100));
      assert.ok(leaving.started.length >= 2, `the leaving instance had ${leaving.started.length} calls in flight`);
      const stopped = leaving.stop();
      const { pids, errors } = await load(api, 300, 6, 5, "after");
      const longPids = await Promise.all(long);
      const streamPids = await Promise.all(streams);
      await stopped;
      assert.equal(errors.size, 0, `callers saw errors: ${[...errors.values()].map(String).join("; ")}`);
      assert.ok(longPids.includes(leaving.pid), "a long call in flight on the leaving instance finished there");
      assert.ok(streamPids.some((s) => s.length === 5 && s.every((p) => p === leaving.pid)), "a stream in flight on the leaving instance finished there");
      for (const s of streamPids) assert.equal(s.length, 5);
      const late = leaving.started.filter((s) => s.at > leaving.stoppingAt!);
      assert.deepEqual(late, [], "the leaving instance began calls after it was told to stop");
      assert.ok(!pids.includes(leaving.pid) || leaving.started.every((s) => s.at <= leaving.stoppingAt!));
      console.log(`# leave: the leaving instance stopped ${leaving.stoppedAt! - leaving.stoppingAt!} ms after SIGTERM, its calls and streams done`);
    });
  });

  test("crash: SIGKILL fails only the calls in flight on it (ERR_CONNECTION_LOST, within the heartbeat bound); later calls go to the others", async () => {
    await withFleet(3, async ({ api, instances }) => {
      await untilReady(api, 3);
      const victim = instances[1]!;
      const others = instances.filter((i) => i !== victim);
      const failedAt = new Map<string, number>();
      const inFlight = Array.from({ length: 12 }, (_, i) =>
        api.work(`h${i}`, 5000).then(
          (pid) => ({ status: "fulfilled" as const, value: pid }),
          (e: unknown) => {
            failedAt.set(`h${i}`, Date.now());
            return { status: "rejected" as const, reason: e };
          },
        ),
      );
      await new Promise((r) => setTimeout(r, 200));
      const onVictim = new Set(victim.started.map((s) => s.tag));
      assert.ok(onVictim.size >= 2, `the victim had ${onVictim.size} calls in flight`);
      const killedAt = Date.now();
      await victim.kill();
      // Calls made in the moment the NATS server has not yet read the dead socket's close may be
      // delivered into it (a window of well under a millisecond on an idle host): counted, not asserted.
      const race = await load(api, 6, 3, 5, "r");
      await new Promise((r) => setTimeout(r, 100));
      // Calls made once the NATS server knows, while the others still hold their long calls.
      const { pids, errors } = await load(api, 60, 3, 5, "k");
      const outcomes = await Promise.all(inFlight);
      const failed = outcomes.flatMap((o, i) => (o.status === "rejected" ? [{ tag: `h${i}`, e: o.reason as unknown }] : []));
      for (const f of failed) {
        assert.ok(isTilthError(f.e, "ERR_CONNECTION_LOST"), `${f.tag} failed with ${String(f.e)}`);
        assert.ok(onVictim.has(f.tag), `${f.tag} failed but never reached the dead instance`);
      }
      assert.equal(failed.length, onVictim.size, "every call in flight on the dead instance failed");
      const detection = Math.max(...failed.map((f) => failedAt.get(f.tag)! - killedAt));
      assert.ok(detection <= 3 * HEARTBEAT_MS + 500, `calls failed ${detection} ms after the kill (heartbeat ${HEARTBEAT_MS} ms)`);
      const lostLater = [...errors].filter(([tag]) => !victim.started.some((s) => s.tag === tag));
      assert.deepEqual(lostLater.map(([t, e]) => `${t}: ${String(e)} ${JSON.stringify((e as { cause?: { context?: unknown } }).cause?.context)}`), [], "calls that never reached the dead instance failed");
      assert.ok(pids.every((p) => others.some((o) => o.pid === p)), "later calls went to the live instances");
      console.log(`# crash: ${failed.length} calls in flight failed ${detection} ms after SIGKILL; ${errors.size} of 60 calls made after it failed; ${race.errors.size} of 6 made at the moment of the kill failed`);
    });
  });

  test("heartbeats: a frozen instance (SIGSTOP, its NATS connection still up) is found out by drpc heartbeats; its calls fail ERR_CONNECTION_LOST, later ones go to the other", async () => {
    await withFleet(2, async ({ api, instances }) => {
      await untilReady(api, 2);
      const [frozen, live] = instances as [Instance, Instance];
      const held = Array.from({ length: 4 }, (_, i) => api.work(`f${i}`, 2000).then(() => undefined, (e: unknown) => ({ e, at: Date.now() })));
      await new Promise((r) => setTimeout(r, 100));
      assert.ok(frozen.started.length >= 1);
      const stoppedAt = Date.now();
      frozen.child.kill("SIGSTOP");
      try {
        const outcomes = await Promise.all(held);
        const failed = outcomes.filter((o) => o !== undefined);
        assert.equal(failed.length, frozen.started.length, "the calls on the frozen instance failed, the others finished");
        for (const f of failed) assert.ok(isTilthError(f.e, "ERR_CONNECTION_LOST"), String(f.e));
        const after = Math.max(...failed.map((f) => f.at - stoppedAt));
        assert.ok(after <= 3 * HEARTBEAT_MS + 2 * HEARTBEAT_MS, `found out after ${after} ms (peer timeout ${3 * HEARTBEAT_MS} ms)`);
        const { pids, errors } = await load(api, 20, 2, 0, "a");
        assert.equal(errors.size, 0);
        assert.ok(pids.every((p) => p === live.pid));
        console.log(`# heartbeats: a frozen instance found out ${after} ms after SIGSTOP (heartbeat ${HEARTBEAT_MS} ms, peer timeout ${3 * HEARTBEAT_MS} ms)`);
      } finally {
        frozen.child.kill("SIGCONT");
      }
    });
  });

  test("none left: ERR_UNAVAILABLE naming the service; with waitForReady a call waits for an instance", async () => {
    const done = leakCheck();
    const nats = await startNats();
    const name = service();
    const url = `drpc+nats://${nats.hostPort}/${name}`;
    const loop = registerTransports(new NodeLoop());
    try {
      await assert.rejects(connect<FleetAPI>(url, { loop }), (e) => isTilthError(e, "ERR_UNAVAILABLE") && (e as Error).message.includes(name));
      const one = await startInstance(url, HEARTBEAT_MS);
      const api = await connect<FleetAPI>(url, { loop, heartbeatMs: HEARTBEAT_MS });
      assert.equal(await api.work("n1", 0), one.pid);
      await one.stop();
      const t0 = Date.now();
      await assert.rejects(api.work("n2", 0), (e) => isTilthError(e, "ERR_UNAVAILABLE") && (e as Error).message.includes(name));
      assert.ok(Date.now() - t0 < 3000);
      await close(api);

      const waiting = await connect<FleetAPI>(url, { loop, heartbeatMs: HEARTBEAT_MS, waitForReady: true });
      const call = withOptions(waiting, { timeout: 15_000 }).work("n3", 0);
      await new Promise((r) => setTimeout(r, 300));
      const two = await startInstance(url, HEARTBEAT_MS);
      assert.equal(await call, two.pid);
      await close(waiting);
      await two.kill();
    } finally {
      await killAllInstances();
      await nats.stop();
    }
    await done();
  });

  test("NATS fails: killing the node a client and an instance use leaves the service reachable once the nats client has reconnected", async () => {
    const done = leakCheck();
    const [a, b, c] = await startNatsCluster();
    const name = service();
    const onA = `drpc+nats://${a!.hostPort}/${name}`;
    const onB = `drpc+nats://${b!.hostPort}/${name}`;
    const loop = registerTransports(new NodeLoop());
    const i1 = await startInstance(onA, HEARTBEAT_MS);
    const i2 = await startInstance(onB, HEARTBEAT_MS);
    const api = await connect<FleetAPI>(onA, { loop, heartbeatMs: HEARTBEAT_MS });
    try {
      await untilReady(api, 2);
      const before = shares((await load(api, 40, 4, 2, "p")).pids);
      assert.deepEqual([...before.keys()].sort(), [i1.pid, i2.pid].sort());
      const killedAt = Date.now();
      await a!.stop("SIGKILL");
      // Calls go on; some fail while the nats client is away, then they work again on both instances.
      let firstOk: number | undefined;
      const seen = new Set<number>();
      for (let k = 0; Date.now() - killedAt < 20_000 && seen.size < 2; k++) {
        try {
          seen.add(await withOptions(api, { timeout: 2000 }).work(`r${k}`, 0));
          firstOk ??= Date.now() - killedAt;
        } catch {
          await new Promise((r) => setTimeout(r, 50));
        }
      }
      assert.ok(firstOk !== undefined, "no call worked after the NATS node was killed");
      assert.deepEqual([...seen].sort(), [i1.pid, i2.pid].sort(), "both instances serve again");
      console.log(`# NATS node killed: first call answered ${firstOk} ms later, both instances after ${Date.now() - killedAt} ms`);
    } finally {
      await close(api);
      await killAllInstances();
      await stopAllNats();
      void c;
    }
    await done();
  });
});
