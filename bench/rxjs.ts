/**
 * `npm run bench -- rxjs`: RxJS actions scheduled through
 * `toRxScheduler(new NodeLoop())` beside RxJS's own schedulers, same process
 * and run.
 *
 * - reschedule chain (1e6): each action reschedules itself with
 *   `this.schedule(state, 0)`                 vs asapScheduler's chain
 * - bursts of 1e4 delay-0 actions            vs asyncScheduler's bursts
 *   (and, for reference, vs asapScheduler's bursts)
 * - schedule+unsubscribe of a delayed action vs asyncScheduler's
 *
 * asyncScheduler clamps a delay-0 chain to about 1 ms per step, so a chain
 * against it would prove nothing; its bursts are the fair comparison.
 */
import { type SchedulerAction, type SchedulerLike, asapScheduler, asyncScheduler } from "rxjs";
import { NodeLoop } from "../adapters/node.js";
import { toRxScheduler } from "../adapters/rxjs.js";
import { type BenchResult, type Suite, formatRate, measure, median, result } from "./lib.js";

/** Run a chain of `n` actions, each scheduling the next from its own work. */
function chain(scheduler: SchedulerLike, n: number): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    let first: unknown;
    scheduler.schedule(
      function (this: SchedulerAction<number>, i?: number) {
        if (i === 1) first = this;
        if (i! < n) this.schedule(i! + 1, 0);
        else if (this !== first) reject(new Error("the chain did not reuse its action"));
        else resolve(i!);
      },
      0,
      1,
    );
  });
}

/** `bursts` times: schedule `size` delay-0 actions at once and wait until all ran. */
async function bursts(scheduler: SchedulerLike, size: number, count: number): Promise<number> {
  let total = 0;
  for (let b = 0; b < count; b++) {
    total += await new Promise<number>((resolve) => {
      let left = size;
      const work = (): void => {
        if (--left === 0) resolve(size);
      };
      for (let i = 0; i < size; i++) scheduler.schedule(work, 0);
    });
  }
  return total;
}

const turn = (): Promise<void> => new Promise((r) => setImmediate(r));

export const run: Suite = async ({ quick, progress }) => {
  const N = quick ? 100_000 : 1_000_000;
  const BURST = 10_000;
  const BURSTS = quick ? 10 : 100;
  const repeats = quick ? 1 : 5;
  const loop = new NodeLoop({ name: "bench" });
  const rx = toRxScheduler(loop);
  const out: BenchResult[] = [];
  const noop = (): void => {};

  const pair = async (
    name: string,
    baseline: string,
    tilth: () => Promise<number> | number,
    base: () => Promise<number> | number,
    expected: number,
  ): Promise<void> => {
    const checked = (fn: () => Promise<number> | number) => async (): Promise<number> => {
      const ops = await fn();
      if (ops !== expected) throw new Error(`${name}: did ${ops} operations, expected ${expected}`);
      return ops;
    };
    const a0 = checked(tilth);
    const b0 = checked(base);
    progress(`${name}: warming up`);
    await a0();
    await b0();
    progress(`${name}: measuring`);
    // Alternate repeats so neither side always runs on a warmer heap.
    const ra: number[] = [];
    const rb: number[] = [];
    for (let i = 0; i < repeats; i++) {
      ra.push(...(await measure(1, a0)).rates);
      rb.push(...(await measure(1, b0)).rates);
    }
    const a = { rate: median(ra), min: Math.min(...ra), max: Math.max(...ra) };
    const b = { rate: median(rb), min: Math.min(...rb), max: Math.max(...rb) };
    out.push(result(name, "actions/s", a.rate, baseline, b.rate, { n: expected, repeats, tilthSpread: [a.min, a.max], baselineSpread: [b.min, b.max] }));
    progress(`${name}: ${formatRate(a.rate)} vs ${formatRate(b.rate)} actions/s`);
  };

  await pair(`reschedule chain (${N})`, "asapScheduler chain", () => chain(rx, N), () => chain(asapScheduler, N), N);

  await pair(
    `bursts of ${BURST} (x${BURSTS})`,
    "asyncScheduler bursts",
    () => bursts(rx, BURST, BURSTS),
    () => bursts(asyncScheduler, BURST, BURSTS),
    BURST * BURSTS,
  );

  await pair(
    `bursts of ${BURST} (x${BURSTS})`,
    "asapScheduler bursts",
    () => bursts(rx, BURST, BURSTS),
    () => bursts(asapScheduler, BURST, BURSTS),
    BURST * BURSTS,
  );

  await pair(
    `schedule+unsubscribe 1 s action (${N / 10})`,
    "asyncScheduler schedule+unsubscribe",
    async () => {
      for (let i = 0; i < N / 10; i++) rx.schedule(noop, 1000).unsubscribe();
      await turn();
      if (loop.pendingTimers !== 0) throw new Error("timers left pending");
      return N / 10;
    },
    async () => {
      for (let i = 0; i < N / 10; i++) asyncScheduler.schedule(noop, 1000).unsubscribe();
      await turn();
      return N / 10;
    },
    N / 10,
  );

  return out;
};
