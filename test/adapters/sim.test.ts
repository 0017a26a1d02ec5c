import assert from "node:assert/strict";
import { test } from "node:test";
import { HostLoop, SimLoop, SimTrace } from "../../adapters/sim.js";
import { sleep } from "../../core/time.js";
import { loopConformance } from "../../testing/index.js";
import { leakCheck } from "../helpers/leaks.js";

loopConformance("HostLoop (a simulated host)", () => {
  const done = leakCheck();
  const errors: unknown[] = [];
  const world = new SimLoop({ seed: 9, onError: (e) => errors.push(e) });
  const loop = new HostLoop(world, "h");
  return { loop, drive: (body) => world.run(body), reported: () => errors, teardown: done };
});

test("a SimLoop's random source is its seed's: the same seed, the same numbers", () => {
  const draw = (seed: number): number[] => {
    const w = new SimLoop({ seed });
    return Array.from({ length: 5 }, () => w.random());
  };
  assert.deepEqual(draw(5), draw(5));
  assert.notDeepEqual(draw(5), draw(6));
  const host = new HostLoop(new SimLoop({ seed: 5 }), "h");
  assert.deepEqual(Array.from({ length: 5 }, () => host.random()), draw(5), "a host draws from its world");
});

test("a host's wall clock is the world's plus its skew", () => {
  const world = new SimLoop();
  const host = new HostLoop(world, "h", { skewMs: -1500 });
  assert.equal(host.wallTime(), world.wallTime() - 1500);
});

test("timer firings are trace events; the hash follows the events", async () => {
  const run = async (ms: number): Promise<string> => {
    const world = new SimLoop({ seed: 1 });
    const host = new HostLoop(world, "h");
    await world.run(async () => {
      host.timer(5, () => {});
      await sleep(host, ms);
    });
    return world.trace.hex();
  };
  assert.equal(await run(10), await run(10));
  assert.notEqual(await run(10), await run(11));
});

test("a trace checked against another names the first event that differs, or the one left over", () => {
  const t = new SimTrace();
  t.replay(["1 a", "2 b", "3 c"]);
  t.record("1 a");
  t.record("2 x");
  t.record("3 c");
  assert.deepEqual(t.divergence, { event: 2, expected: "2 b", actual: "2 x" });
  const short = new SimTrace();
  short.replay(["1 a", "2 b"]);
  short.record("1 a");
  short.finish();
  assert.deepEqual(short.divergence, { event: 2, expected: "2 b", actual: undefined });
  const lines: string[] = [];
  const msg = new SimTrace();
  msg.writeTo((l) => lines.push(l));
  msg.record("1 c1> 1/5", [Buffer.from("hello")]);
  assert.match(lines[0]!, /^1 c1> 1\/5 #[0-9a-f]{12}$/, "a message's line carries a digest of its bytes");
});
