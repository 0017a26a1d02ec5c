/**
 * The in-memory datagram network: its faults come from the seed (the same
 * seed replays the same deliveries, another seed gives others), and the
 * conversation timing rules hold exactly in virtual time.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { isTilthError } from "../../core/errors.js";
import { sleep } from "../../core/time.js";
import type { Connection } from "../../core/Transport.js";
import { DEFAULT_IDLE_TIMEOUT_MS, DatagramNetwork } from "../../transports/index.js";
import { leakCheck } from "../helpers/leaks.js";
import { networkLoop } from "./datagram-cases.js";

/** Send 500 numbered datagrams, 1 ms apart, and return the order they arrived in (with duplicates) and the network's counters. */
async function trace(seed: number): Promise<{ order: number[]; stats: DatagramNetwork["stats"] }> {
  const { loop, network } = networkLoop({ seed, loss: 0.1, duplicate: 0.1, reorder: 0.3, latencyMs: 2, reorderMs: 20 });
  const order: number[] = [];
  await loop.run(async () => {
    const listener = await loop.listen("udp://10.0.0.1:7000");
    listener.start((c) => c.start({ message: (m) => order.push(Buffer.from(m[0]!).readUInt32BE(0)), end() {} }));
    const client = await loop.connect("udp://10.0.0.1:7000");
    for (let i = 0; i < 500; i++) {
      const b = Buffer.alloc(4);
      b.writeUInt32BE(i);
      client.send([b]);
      await sleep(loop, 1);
    }
    await sleep(loop, 50);
    await client.close();
    await listener.close();
  });
  assert.equal(loop.pendingTimers, 0);
  return { order, stats: { ...network.stats } };
}

test("datagram network: loss, duplication and reordering happen at about their rates, decided by the seed: a seed replays exactly", async () => {
  const done = leakCheck();
  const a = await trace(42);
  const b = await trace(42);
  const c = await trace(43);
  assert.deepEqual(a.order, b.order, "the same seed gives the same deliveries in the same order");
  assert.deepEqual(a.stats, b.stats);
  assert.notDeepEqual(a.order, c.order, "another seed gives others");
  const s = a.stats;
  assert.equal(s.sent, 500);
  assert.ok(s.lost > 25 && s.lost < 80, `lost ${s.lost} of 500 at 10%`);
  assert.ok(s.duplicated > 25 && s.duplicated < 80, `duplicated ${s.duplicated}`);
  assert.ok(s.reordered > 100 && s.reordered < 200, `reordered ${s.reordered}`);
  const unique = new Set(a.order);
  assert.equal(unique.size, 500 - s.lost, "every datagram not lost arrives");
  assert.equal(a.order.length, 500 - s.lost + s.duplicated, "a duplicated datagram arrives twice (a lost one has no duplicate)");
  let inversions = 0;
  for (let i = 1; i < a.order.length; i++) if (a.order[i]! < a.order[i - 1]!) inversions++;
  assert.ok(inversions > 20, `datagrams overtake each other (${inversions} inversions)`);
  await done();
});

test("datagram network: a conversation ends exactly idleTimeoutMs after its last datagram (virtual time); the default is 60 s", async () => {
  const done = leakCheck();
  const { loop } = networkLoop({ seed: 1 });
  await loop.run(async () => {
    const listener = await loop.listen("udp://10.0.0.1:0");
    const convs: Connection[] = [];
    listener.start((c) => {
      convs.push(c);
      c.start({ message() {}, end() {} });
    });
    const fast = await loop.connect(listener.url, { idleTimeoutMs: 500 });
    const slow = await loop.connect(listener.url);
    fast.send([Buffer.from("a")]);
    slow.send([Buffer.from("b")]);
    await sleep(loop, 300);
    const last = loop.now();
    fast.send([Buffer.from("c")]); // traffic restarts the idle time
    const end = await fast.closed;
    assert.equal(loop.now() - last, 500, "ended exactly 500 ms after its last datagram");
    assert.equal(end.by, "peer");
    assert.ok(isTilthError(end.error, "ERR_TIMEOUT"));
    const slowEnd = await slow.closed;
    assert.equal(DEFAULT_IDLE_TIMEOUT_MS, 60_000);
    assert.equal(loop.now(), 60_000, "the default idle timeout ends a conversation silent since time 0 at 60 s");
    assert.ok(isTilthError(slowEnd.error, "ERR_TIMEOUT"));
    const serverEnds = await Promise.all(convs.map((c) => c.closed));
    assert.ok(serverEnds.every((e) => isTilthError(e.error, "ERR_TIMEOUT")), "the listener's conversations time out too");
    assert.ok(loop.now() < 60_400);
    await listener.close();
  });
  assert.equal(loop.pendingTimers, 0);
  await done();
});

test("datagram network: options are checked", () => {
  assert.throws(() => new DatagramNetwork({ seed: 1, loss: 1.5 }), RangeError);
  assert.throws(() => new DatagramNetwork({ seed: Number.NaN }), RangeError);
  assert.throws(() => new DatagramNetwork({ seed: 1, latencyMs: -1 }), RangeError);
});
