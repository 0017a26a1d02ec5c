import assert from "node:assert/strict";
import { test } from "node:test";
import { NodeLoop } from "../../adapters/node.js";
import { VirtualLoop } from "../../adapters/virtual.js";
import type { Loop } from "../../core/Loop.js";
import type { Connection } from "../../core/Transport.js";
import { sleep } from "../../core/time.js";
import { registerTransports } from "../../transports/index.js";
import { leakCheck } from "../helpers/leaks.js";
import { transportConformance } from "../../testing/index.js";
import { cases } from "./util.js";

transportConformance(cases.inprocNode);
transportConformance(cases.inprocVirtual);

/**
 * A ping-pong that never waits on anything but the peer: deliveries go on
 * microtasks, but a posted callback and a timer still get their turn within
 * the loop's budget of deliveries.
 */
async function pingPongYields(loop: Loop, name: string, drive: (body: () => Promise<void>) => Promise<void>): Promise<void> {
  const listener = await loop.listen(`inproc://${name}`);
  const ends: Connection[] = [];
  listener.start((c) => {
    ends.push(c);
    c.start({ message: (m) => c.send(m), end() {} });
  });
  const client = await loop.connect(`inproc://${name}`);
  const ROUNDS = 20 * loop.budget;
  let rounds = 0;
  let atPost = -1;
  let atTimer = -1;
  await drive(async () => {
    const done = new Promise<void>((resolve) => {
      client.start({
        message: (m) => {
          if (++rounds === ROUNDS) resolve();
          else client.send(m);
          if (rounds === 10) {
            // Both ends are up and the ping-pong runs: ask for a turn now.
            loop.post(() => (atPost = rounds));
            loop.timer(0, () => (atTimer = rounds));
          }
        },
        end() {},
      });
    });
    client.send([Buffer.from("ping")]);
    await done;
  });
  assert.equal(rounds, ROUNDS);
  // Two deliveries a round: the posted callback and the timer ran within the budget's deliveries (and a turn or two) of being asked for.
  assert.ok(atPost > 10 && atPost <= 10 + loop.budget, `the posted callback ran at round ${atPost}`);
  assert.ok(atTimer > 10 && atTimer <= 10 + 2 * loop.budget, `the 0 ms timer ran at round ${atTimer}`);
  await client.close();
  await listener.close();
  await Promise.all(ends.map((c) => c.closed));
}

test("inproc: a busy ping-pong, delivered on microtasks, lets posted work and timers run within the budget (NodeLoop)", async () => {
  const done = leakCheck();
  const loop = registerTransports(new NodeLoop());
  await pingPongYields(loop, "yield-node", (body) => body());
  assert.equal(loop.pendingTimers, 0);
  await done();
});

test("inproc: the same on the virtual loop, where time does not move", async () => {
  const loop = registerTransports(new VirtualLoop());
  await pingPongYields(loop, "yield-virtual", (body) => loop.run(body));
  assert.equal(loop.now(), 0);
  assert.equal(loop.pendingTimers, 0);
});

/** A client on a virtual loop, connected to a listener that collects what it receives. */
async function receiving(name: string): Promise<{ loop: VirtualLoop; client: Connection; received: Uint8Array[][]; until(n: number): Promise<void>; close(): Promise<void> }> {
  const loop = registerTransports(new VirtualLoop());
  const listener = await loop.listen(`inproc://${name}`);
  const got: Connection[] = [];
  const received: Uint8Array[][] = [];
  listener.start((c) => {
    got.push(c);
    c.start({ message: (m) => received.push(m as Uint8Array[]), end() {} });
  });
  const client = await loop.connect(`inproc://${name}`);
  client.start({ message() {}, end() {} });
  return {
    loop,
    client,
    received,
    until: (n) =>
      loop.run(async () => {
        while (received.length < n) await sleep(loop, 1);
      }),
    close: async () => {
      await client.close();
      await listener.close();
      await Promise.all(got.map((c) => c.closed));
      assert.equal(loop.pendingTimers, 0);
    },
  };
}

test("inproc: send copies the frames unless the sender hands them over (send(msg, true))", async () => {
  const { client, received, until, close } = await receiving("handover");
  const copied = Buffer.from("copied");
  const owned = Buffer.from("owned");
  const ownedMsg = [owned];
  client.send([copied]);
  client.send(ownedMsg, true);
  copied.fill(0); // the sender may reuse its buffer at once
  await until(2);
  assert.equal(Buffer.from(received[0]![0]!).toString(), "copied");
  assert.notEqual(received[0]![0], copied);
  assert.equal(received[1], ownedMsg, "handed over: the same message, no copy");
  assert.equal(received[1]![0], owned);
  await close();
});

test("inproc: a handed-over frame that is a small view of a large buffer is copied (the receiver must not keep the large buffer alive)", async () => {
  const { client, received, until, close } = await receiving("handover-view");
  const large = Buffer.alloc(1024 * 1024, 7);
  const view = large.subarray(100, 116);
  client.send([view], true);
  await until(1);
  const f = received[0]![0]!;
  assert.notEqual(f, view);
  assert.ok(f.buffer.byteLength < 64 * 1024, `the frame's memory is ${f.buffer.byteLength} bytes`);
  assert.deepEqual(Buffer.from(f), Buffer.alloc(16, 7));
  await close();
});
