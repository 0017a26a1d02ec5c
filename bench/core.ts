/**
 * `npm run bench -- core`: the hot-path primitives of core/, each beside the
 * host primitive it replaces, in the same process and run.
 *
 * - timer schedule+cancel (1e6)      vs setTimeout + clearTimeout
 * - post chain (1e6)                 vs a setImmediate chain
 * - task spawn+join (1e6)            vs awaited async calls
 * - channel, producer -> consumer    vs a queueMicrotask chain
 */
import { NodeLoop } from "../adapters/node.js";
import { Channel } from "../core/Channel.js";
import { scoped } from "../core/Scope.js";
import { type BenchResult, type Suite, formatRate, measure, result } from "./lib.js";

const turn = (): Promise<void> => new Promise((r) => setImmediate(r));

export const run: Suite = async ({ quick, progress }) => {
  const N = quick ? 100_000 : 1_000_000;
  const repeats = quick ? 1 : 3;
  const loop = new NodeLoop({ name: "bench" });
  const out: BenchResult[] = [];
  const noop = (): void => {};

  const pair = async (
    name: string,
    baseline: string,
    tilth: () => Promise<number> | number,
    base: () => Promise<number> | number,
  ): Promise<void> => {
    progress(`${name}: warming up`);
    await tilth();
    await base();
    progress(`${name}: measuring`);
    // Alternate so neither side always runs on a warmer heap.
    const a = await measure(repeats, tilth);
    const b = await measure(repeats, base);
    out.push(result(name, "ops/s", a.rate, baseline, b.rate, { n: N, repeats, tilthSpread: [a.min, a.max], baselineSpread: [b.min, b.max] }));
    progress(`${name}: ${formatRate(a.rate)} vs ${formatRate(b.rate)} ops/s`);
  };

  await pair(
    `timer schedule+cancel (${N})`,
    "setTimeout+clearTimeout",
    async () => {
      for (let i = 0; i < N; i++) loop.timer(1000, noop).cancel();
      await turn();
      if (loop.pendingTimers !== 0) throw new Error("timers left pending");
      return N;
    },
    async () => {
      for (let i = 0; i < N; i++) clearTimeout(setTimeout(noop, 1000));
      await turn();
      return N;
    },
  );

  await pair(
    `post chain (${N})`,
    "setImmediate chain",
    () =>
      new Promise<number>((resolve) => {
        let n = 0;
        const step = (): void => {
          if (++n < N) loop.post(step);
          else resolve(n);
        };
        loop.post(step);
      }),
    () =>
      new Promise<number>((resolve) => {
        let n = 0;
        const step = (): void => {
          if (++n < N) setImmediate(step);
          else resolve(n);
        };
        setImmediate(step);
      }),
  );

  const work = async (i: number): Promise<number> => i;
  await pair(
    `task spawn+join (${N})`,
    "awaited async calls",
    () =>
      scoped(loop, async (scope) => {
        let sum = 0;
        for (let i = 0; i < N; i++) sum += await scope.spawn(() => work(i)).join();
        if (sum !== (N * (N - 1)) / 2) throw new Error("wrong sum");
        return N;
      }),
    async () => {
      let sum = 0;
      for (let i = 0; i < N; i++) sum += await work(i);
      if (sum !== (N * (N - 1)) / 2) throw new Error("wrong sum");
      return N;
    },
  );

  await pair(
    `channel items (${N})`,
    "queueMicrotask chain",
    () =>
      scoped(loop, async (scope) => {
        const ch = new Channel<number>(loop, 1024);
        scope.spawn(async () => {
          for (let i = 0; i < N; i++) await ch.send(i);
          ch.close();
        });
        let expect = 0;
        for await (const x of ch) if (x !== expect++) throw new Error("out of order");
        if (expect !== N) throw new Error("items lost");
        return N;
      }),
    () =>
      new Promise<number>((resolve) => {
        let n = 0;
        const step = (): void => {
          if (++n < N) queueMicrotask(step);
          else resolve(n);
        };
        queueMicrotask(step);
      }),
  );

  return out;
};
