import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { NodeLoop } from "../../adapters/node.js";
import { leakCheck } from "../helpers/leaks.js";
import { loopConformance } from "../../testing/index.js";

loopConformance("NodeLoop", () => {
  const errors: unknown[] = [];
  const done = leakCheck();
  const loop = new NodeLoop({ onError: (e) => errors.push(e) });
  return {
    loop,
    drive: (body) => body(),
    reported: () => errors,
    teardown: done,
  };
});

const loopModule = fileURLToPath(new URL("../../adapters/node.js", import.meta.url));

test("NodeLoop: an unref'd timer does not keep the process alive, a ref'd one does", () => {
  const script = (unref: boolean): string => `
    import { NodeLoop } from ${JSON.stringify(loopModule)};
    const loop = new NodeLoop();
    const t = loop.timer(${unref ? 60_000 : 30}, () => console.log("fired"));
    ${unref ? "t.unref();" : ""}
  `;
  const a = spawnSync(process.execPath, ["--input-type=module", "-e", script(true)], { timeout: 20_000, encoding: "utf8" });
  assert.equal(a.status, 0);
  assert.equal(a.stdout, "", "the unref'd timer should not have fired");
  const b = spawnSync(process.execPath, ["--input-type=module", "-e", script(false)], { timeout: 20_000, encoding: "utf8" });
  assert.equal(b.status, 0);
  assert.equal(b.stdout.trim(), "fired");
});

test("NodeLoop: a cancelled long timer does not keep the process alive", () => {
  const src = `
    import { NodeLoop } from ${JSON.stringify(loopModule)};
    const loop = new NodeLoop();
    const t = loop.timer(60_000, () => console.log("fired"));
    loop.post(() => t.cancel());
  `;
  const r = spawnSync(process.execPath, ["--input-type=module", "-e", src], { timeout: 20_000, encoding: "utf8" });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout, "");
});

test("NodeLoop: a throwing callback without onError surfaces as an uncaught exception", () => {
  const src = `
    import { NodeLoop } from ${JSON.stringify(loopModule)};
    const loop = new NodeLoop();
    process.on("uncaughtException", (e) => { console.log("caught", e.message); });
    loop.post(() => { throw new Error("bad callback"); });
    loop.post(() => console.log("next ran"));
  `;
  const r = spawnSync(process.execPath, ["--input-type=module", "-e", src], { timeout: 20_000, encoding: "utf8" });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /caught bad callback/);
  assert.match(r.stdout, /next ran/);
});

test("NodeLoop: a timer beyond 2^31-1 ms is reached in hops that setTimeout can take, and fires at its deadline", async () => {
  // The host timer is faked (its delays recorded, its callback called by hand)
  // and the clock shifted, so 3e9 ms pass in no time.
  class ShiftedLoop extends NodeLoop {
    shift = 0;
    override now(): number {
      return super.now() + this.shift;
    }
  }
  type Fake = { fn: () => void; ms: number; cleared: boolean; ref(): Fake; unref(): Fake };
  const asked: Fake[] = [];
  const real = { setTimeout: globalThis.setTimeout, clearTimeout: globalThis.clearTimeout };
  globalThis.setTimeout = ((fn: () => void, ms: number) => {
    const h: Fake = { fn, ms, cleared: false, ref: () => h, unref: () => h };
    asked.push(h);
    return h;
  }) as unknown as typeof setTimeout;
  globalThis.clearTimeout = ((h: unknown) => {
    if (asked.includes(h as Fake)) (h as Fake).cleared = true;
    else real.clearTimeout(h as NodeJS.Timeout);
  }) as typeof clearTimeout;
  const turn = (): Promise<void> => new Promise((r) => setImmediate(r));
  try {
    const loop = new ShiftedLoop();
    let firedAt: number | undefined;
    const t = loop.timer(3e9, () => (firedAt = loop.now()));
    await turn(); // the host wake-up is armed once per synchronous batch
    const live = (): Fake[] => asked.filter((h) => !h.cleared);
    assert.equal(live().length, 1);
    const first = live()[0]!;
    assert.ok(first.ms <= 2 ** 31 - 1, `setTimeout was asked for ${first.ms} ms`);
    loop.shift += first.ms;
    first.fn(); // the first hop ends: nothing is due, the next hop is armed
    first.cleared = true;
    assert.equal(firedAt, undefined);
    assert.equal(t.pending, true);
    const second = live()[0]!;
    assert.ok(second !== undefined && second.ms <= 2 ** 31 - 1 && second.ms >= t.deadline - loop.now() - 1, `second hop of ${second?.ms} ms`);
    loop.shift += second.ms;
    second.fn();
    second.cleared = true;
    assert.ok(firedAt !== undefined && firedAt >= t.deadline, "the timer fired at its deadline");
    assert.equal(loop.pendingTimers, 0);
    assert.equal(live().length, 0, "no host timer left");
  } finally {
    globalThis.setTimeout = real.setTimeout;
    globalThis.clearTimeout = real.clearTimeout;
  }
});
