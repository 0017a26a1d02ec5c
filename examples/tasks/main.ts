/**
 * A tour of tilth's core in one file: a scope of cooperative tasks on Node's
 * loop, a bounded channel between a producer and a consumer, a periodic
 * ticker, a time limit, and cancellation with a reason.
 *
 * Run it: `npm start`
 */
import { NodeLoop } from "../../adapters/node.js";
import { CancelledError, Channel, isTilthError, scoped, sleep, timeout } from "../../core/index.js";

const loop = new NodeLoop({ name: "example" });
const t0 = loop.now();
const log = (msg: string): void => console.log(`${String(Math.round(loop.now() - t0)).padStart(5)} ms  ${msg}`);

await scoped(loop, async (scope) => {
  // A ticker that runs until the scope is cancelled.
  scope.spawn(async (task) => {
    for (let n = 1; ; n++) {
      await task.sleep(100).catch(() => undefined);
      if (task.signal.aborted) return log(`ticker stopped: ${(task.signal.reason as Error).message}`);
      log(`tick ${n}`);
    }
  });

  // A producer and a consumer with backpressure: the buffer holds 2 orders.
  const orders = new Channel<string>(loop, 2);
  scope.spawn(async () => {
    for (const dish of ["soup", "bread", "salad", "pie"]) {
      await orders.send(dish);
      log(`ordered ${dish} (${orders.size} waiting)`);
    }
    orders.close();
  });
  const consumer = scope.spawn(async (task) => {
    let served = 0;
    for await (const dish of orders) {
      await task.sleep(60); // cooking takes time; the producer waits when the buffer is full
      log(`served ${dish}`);
      served++;
    }
    return served;
  });
  log(`all ${await consumer.join()} dishes served`);

  // A call that takes too long is cut off at its limit.
  try {
    await timeout(loop, 150, (signal) => sleep(loop, 10_000, { signal }), { what: "slow lookup" });
  } catch (e) {
    if (isTilthError(e, "ERR_TIMEOUT")) log(`gave up: ${e.message}`);
    else throw e;
  }

  scope.cancel(new CancelledError("closing time"));
});
log("scope closed: every task has ended, no timer is left");
