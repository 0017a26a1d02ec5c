/**
 * examples/tick-loop: a Loop adapter driven by a host's `tick(time)`, checked
 * by the conformance suite tilth ships in tilth/testing, as a third party's
 * adapter would be. The host clock lives here, in the driver: the adapter
 * reads none.
 */
import assert from "node:assert/strict";
import { performance } from "node:perf_hooks";
import { test } from "node:test";
import { sleep } from "../../core/time.js";
import { TickLoop } from "../../examples/tick-loop/TickLoop.js";
import { leakCheck, loopConformance, type LoopHarness } from "../../testing/index.js";

/** A harness whose loop is ticked by `drive(loop)`, which returns how to stop the ticks. */
function ticked(makeLoop: (onError: (e: unknown) => void) => TickLoop, drive: (loop: TickLoop) => () => void): () => LoopHarness {
  return () => {
    const done = leakCheck();
    const errors: unknown[] = [];
    const loop = makeLoop((e) => errors.push(e));
    const stop = drive(loop);
    return {
      loop,
      drive: (body) => body(),
      reported: () => errors,
      teardown: async () => {
        stop();
        await done();
      },
    };
  };
}

// A game loop at 60 Hz: a frame timer ticks the loop with the frame's time.
loopConformance(
  "TickLoop ticked by a 60 Hz game loop",
  ticked(
    (onError) => new TickLoop({ start: performance.now(), wallOrigin: Date.now() - performance.now(), onError }),
    (loop) => {
      const frames = setInterval(() => loop.tick(performance.now()), 1000 / 60);
      return () => clearInterval(frames);
    },
  ),
);

// A fixed-step simulation run as fast as the host allows: each host turn is a
// frame 1/60 s after the last, whatever the real time.
loopConformance(
  "TickLoop stepped 1/60 s per host turn",
  ticked(
    (onError) => new TickLoop({ wallOrigin: Date.UTC(2000, 0, 1), onError }),
    (loop) => {
      let t = 0;
      let running = true;
      const frame = (): void => {
        if (!running) return;
        loop.tick((t += 1000 / 60));
        setImmediate(frame);
      };
      setImmediate(frame);
      return () => (running = false);
    },
  ),
);

test("TickLoop: a sleep resumes on the first frame at or past its deadline, and a frame runs one turn", async () => {
  const loop = new TickLoop();
  const seen: string[] = [];
  const slept = sleep(loop, 40).then(() => seen.push(`woke at ${loop.now()}`));
  loop.post(() => seen.push("post"));
  assert.deepEqual(seen, [], "nothing runs before a tick");
  const frame = async (t: number): Promise<void> => {
    loop.tick(t);
    await new Promise((r) => setImmediate(r)); // the host's next task: the turn's continuations ran
  };
  await frame(16);
  assert.deepEqual(seen, ["post"]);
  await frame(33);
  assert.deepEqual(seen, ["post"], "33 ms < 40 ms: still asleep");
  await frame(10); // a frame time that goes back is held at 33
  assert.equal(loop.now(), 33);
  await frame(50);
  await slept;
  assert.deepEqual(seen, ["post", "woke at 50"]);
  assert.equal(loop.pendingTimers, 0);
});
