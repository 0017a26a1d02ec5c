/**
 * RPC streams as Observables, and Observables served as streams.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { interval, map, take, toArray, firstValueFrom, Observable } from "rxjs";
import { VirtualLoop } from "../../adapters/virtual.js";
import { toObservable, toRxScheduler } from "../../adapters/rxjs.js";
import { sleep } from "../../core/time.js";
import { registerTransports } from "../../transports/index.js";
import { close, connect, serve } from "../../rpc/index.js";

test("an RPC stream consumed as an Observable with take(3) stops the server's generator", async () => {
  const loop = registerTransports(new VirtualLoop());
  let produced = 0;
  let finallyRan = false;
  await loop.run(async () => {
    const api = {
      async *numbers() {
        try {
          for (let i = 0; ; i++) {
            produced++;
            yield i;
            await sleep(loop, 10);
          }
        } finally {
          finallyRan = true;
        }
      },
    };
    const server = await serve(api, "drpc+inproc://rx", { loop });
    const remote = await connect<typeof api>("drpc+inproc://rx", { loop });
    const got = await firstValueFrom(toObservable(remote.numbers()).pipe(take(3), toArray()));
    assert.deepEqual(got, [0, 1, 2]);
    await sleep(loop, 100); // virtual: lets the cancellation reach the server and its generator's next step end
    assert.ok(produced <= 4, `the generator ran on to ${produced}`);
    await close(remote);
    await server.close();
  });
  assert.equal(finallyRan, true);
  assert.equal(loop.pendingTimers, 0);
});

test("a server method may return an Observable: it is streamed to the caller, in virtual time", async () => {
  const loop = registerTransports(new VirtualLoop());
  let unsubscribed = false;
  await loop.run(async () => {
    const api = {
      ticks: (n: number) => interval(1000, toRxScheduler(loop)).pipe(map((i) => `tick ${i} at ${loop.now()}`), take(n)),
      forever: () =>
        new Observable<number>((sub) => {
          let i = 0;
          const t = setInterval0(() => sub.next(i++));
          return () => {
            unsubscribed = true;
            t();
          };
        }),
    };
    const server = await serve(api, "drpc+inproc://obs", { loop });
    const remote = await connect<{ ticks(n: number): AsyncIterable<string>; forever(): AsyncIterable<number> }>("drpc+inproc://obs", { loop });
    const got: string[] = [];
    for await (const t of remote.ticks(3)) got.push(t);
    assert.deepEqual(got, ["tick 0 at 1000", "tick 1 at 2000", "tick 2 at 3000"]);
    for await (const x of remote.forever()) if (x === 5) break;
    await sleep(loop, 100);
    await close(remote);
    await server.close();
  });
  assert.equal(unsubscribed, true);
  assert.equal(loop.pendingTimers, 0);

  function setInterval0(fn: () => void): () => void {
    let stop = false;
    const tick = (): void => {
      if (stop) return;
      fn();
      loop.timer(1, tick);
    };
    const t = loop.timer(1, tick);
    return () => {
      stop = true;
      t.cancel();
    };
  }
});

test("examples/rx: the watcher app averages the ticker's Observable over RPC, in virtual time", async () => {
  const { Settings, startApp } = await import("../../app/index.js");
  const { TickerApp, WatcherApp } = await import("../../examples/rx/apps.js");
  const loop = new VirtualLoop();
  const lines: string[] = [];
  const settings = Settings.from({
    apps: {
      ticker: { class: TickerApp, bind: "drpc+inproc://ticker" },
      watcher: { class: WatcherApp, uses: ["ticker"], options: { count: 6 } },
    },
  });
  await loop.run(async () => {
    const log = { write: (l: string) => lines.push(l), color: false };
    const ticker = await startApp("ticker", settings, { loop, log });
    const watcher = await startApp("watcher", settings, { loop, log });
    await watcher.done;
    assert.equal(loop.now(), 1500, "6 prices, one every 250 virtual ms");
    await watcher.stop();
    await ticker.stop();
  });
  const avgs = lines.filter((l) => l.includes("ACME average of 3"));
  assert.equal(avgs.length, 2, lines.join("\n"));
  assert.ok(lines.some((l) => l.endsWith("stream complete")));
  assert.equal(loop.pendingTimers, 0);
});
