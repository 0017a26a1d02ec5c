/**
 * Streams at the speed of the wire, in virtual time: items go out in
 * batches (one ITEMS message per call and turn) to a client that reads them,
 * one ITEM each to a client that does not; credit is a window in items and
 * bytes that grows while the consumer keeps up; a generator streams without
 * a promise per item.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { VirtualLoop } from "../../adapters/virtual.js";
import type { Connection } from "../../core/Transport.js";
import { sleep } from "../../core/time.js";
import { registerTransports } from "../../transports/index.js";
import { close, connect, serve } from "../../rpc/index.js";
import { BATCH_BYTES, ItemBatch, T, decode, encode, type Msg } from "../../rpc/drpc/codec.js";
import { MAX_STREAM_WINDOW, STREAM_WINDOW } from "../../rpc/PendingCall.js";

function setup(): VirtualLoop {
  return registerTransports(new VirtualLoop());
}

async function rawClient(loop: VirtualLoop, url: string, hello: Record<string, unknown>): Promise<{ conn: Connection; got: Msg[] }> {
  const conn = await loop.connect(url);
  const got: Msg[] = [];
  conn.start({ message: (m) => got.push(decode(m[0]!)), end: () => {} });
  conn.send([encode([T.HELLO, "drpc", 1, { heartbeatMs: 0, maxMessageSize: 1 << 20, ...hello } as never])]);
  return { conn, got };
}

const call = (id: number, method: string, args: unknown[], credit: number): Uint8Array => encode([T.CALL, id, method, args, null, null, credit]);

function counting() {
  const c = { produced: 0, finallyRan: 0 };
  const api = {
    async *count(n: number): AsyncGenerator<number> {
      try {
        for (let i = 0; i < n; i++) {
          c.produced++;
          yield i;
        }
      } finally {
        c.finallyRan++;
      }
    },
    *countSync(n: number): Generator<unknown> {
      try {
        for (let i = 0; i < n; i++) {
          c.produced++;
          yield i === 5 && n === 7 ? new Set([1]) : i; // count(7): the item at 5 is outside the value model
        }
      } finally {
        c.finallyRan++;
      }
    },
    async *blobs(n: number, size: number): AsyncGenerator<Uint8Array> {
      for (let i = 0; i < n; i++) {
        c.produced++;
        yield new Uint8Array(size).fill(i);
      }
    },
  };
  return { c, api };
}

test("a stream's items go out in one ITEMS message per turn, as far as the credit goes", async () => {
  const loop = setup();
  const { c, api } = counting();
  await loop.run(async () => {
    const server = await serve(api, "drpc+inproc://s", { loop });
    const raw = await rawClient(loop, "inproc://s", { items: true });
    raw.conn.send([call(1, "count", [100], 64)]);
    await sleep(loop, 10);
    const hello = raw.got[0] as Extract<Msg, { 0: T.HELLO }>;
    assert.equal(hello[3].items, true, "the server says it sends ITEMS");
    const first = raw.got.slice(1);
    assert.equal(first.length, 1, "one message for the first window");
    assert.equal(first[0]![0], T.ITEMS);
    assert.deepEqual((first[0] as [T.ITEMS, number, unknown[], number])[2], Array.from({ length: 64 }, (_, i) => i));
    assert.equal(c.produced, 64, "the producer waits at the end of the credit");
    raw.conn.send([encode([T.CREDIT, 1, 37, 0])]); // one more than the items left: the producer finds its end
    await sleep(loop, 10);
    const rest = raw.got.slice(2);
    assert.deepEqual(rest.map((m) => m[0]), [T.ITEMS, T.END], "the items before the END");
    assert.deepEqual((rest[0] as [T.ITEMS, number, unknown[], number])[2], Array.from({ length: 36 }, (_, i) => 64 + i));
    assert.equal(c.finallyRan, 1);
    await raw.conn.close();
    await server.close();
  });
});

test("a client that does not announce `items` gets one ITEM per item, and its three-item CREDIT works", async () => {
  const loop = setup();
  const { api } = counting();
  await loop.run(async () => {
    const server = await serve(api, "drpc+inproc://s", { loop });
    const raw = await rawClient(loop, "inproc://s", {});
    raw.conn.send([call(1, "count", [5], 2)]);
    await sleep(loop, 10);
    assert.deepEqual(raw.got.slice(1), [[T.ITEM, 1, 0], [T.ITEM, 1, 1]]);
    raw.conn.send([encode([T.CREDIT, 1, 4, 0])]); // encoded as [7, 1, 4], as a peer without `items` sends it
    await sleep(loop, 10);
    assert.deepEqual(raw.got.slice(3), [[T.ITEM, 1, 2], [T.ITEM, 1, 3], [T.ITEM, 1, 4], [T.END, 1]]);
    await raw.conn.close();
    await server.close();
  });
});

test("the byte window holds large items back however much item credit there is", async () => {
  const loop = setup();
  const { c, api } = counting();
  await loop.run(async () => {
    const server = await serve(api, "drpc+inproc://s", { loop });
    const raw = await rawClient(loop, "inproc://s", { items: true, windowBytes: 64 * 1024 });
    raw.conn.send([call(1, "blobs", [100, 16 * 1024], 1000)]);
    await sleep(loop, 10);
    // 64 KiB of credit: four items of 16 KiB and their headers use it up.
    assert.equal(c.produced, 4, `produced ${c.produced}`);
    const items = raw.got.filter((m) => m[0] === T.ITEMS) as [T.ITEMS, number, unknown[], number][];
    const bytes = items.reduce((n, m) => n + m[3], 0);
    assert.equal(items.reduce((n, m) => n + m[2].length, 0), 4);
    raw.conn.send([encode([T.CREDIT, 1, 0, bytes])]); // bytes only: the item credit is plenty
    await sleep(loop, 10);
    assert.equal(c.produced, 8, "the bytes given back let as many more go");
    await raw.conn.close();
    await server.close();
  });
});

test("a consumer that keeps up grows its window (to MAX_STREAM_WINDOW); one that does not holds the producer at the first window", async () => {
  const loop = setup();
  const { c, api } = counting();
  await loop.run(async () => {
    const server = await serve(api, "drpc+inproc://s", { loop });
    const remote = await connect<typeof api>("drpc+inproc://s", { loop });
    let consumed = 0;
    let ahead = 0;
    for await (const x of remote.count(200_000)) {
      assert.equal(x, consumed++);
      ahead = Math.max(ahead, c.produced - consumed);
    }
    assert.equal(consumed, 200_000);
    assert.ok(ahead > 4 * STREAM_WINDOW, `the window grew: ${ahead} items ahead at most`);
    assert.ok(ahead <= MAX_STREAM_WINDOW + 1, `and no further than its limit: ${ahead}`);

    c.produced = 0;
    const it = remote.count(100_000)[Symbol.asyncIterator]();
    await it.next();
    await sleep(loop, 1000);
    assert.ok(c.produced <= STREAM_WINDOW + 1, `a consumer that took one item: ${c.produced} produced`);
    await it.return!();
    await close(remote);
    await server.close();
  });
});

test("a generator streams without a promise per item; an item outside the value model ends it after the items before", async () => {
  const loop = setup();
  const { c, api } = counting();
  await loop.run(async () => {
    const server = await serve(api, "drpc+inproc://s", { loop, log: () => {} });
    const remote = await connect<typeof api>("drpc+inproc://s", { loop });
    const got: unknown[] = [];
    for await (const x of remote.countSync(20_000)) got.push(x);
    assert.deepEqual(got, Array.from({ length: 20_000 }, (_, i) => i));
    assert.equal(c.finallyRan, 1);

    // abandoned midway: the generator is returned (its finally runs)
    for await (const x of remote.countSync(1_000_000)) if (x === 3) break;
    await sleep(loop, 10);
    assert.equal(c.finallyRan, 2);
    assert.ok(c.produced < 20_000 + 20_000, "the abandoned generator stopped");

    const partial: unknown[] = [];
    await assert.rejects(async () => {
      for await (const x of remote.countSync(7)) partial.push(x);
    }, (e: Error & { code?: string }) => e.code === "ERR_BAD_VALUE" && /items?\b/.test(e.message));
    assert.deepEqual(partial, [0, 1, 2, 3, 4], "the items before the bad one arrive");
    await close(remote);
    await server.close();
  });
});

test("ItemBatch: items written as they come, split before BATCH_BYTES, read back each as its own value", () => {
  const b = new ItemBatch(16);
  const big = new Uint8Array(BATCH_BYTES - 4);
  assert.equal(b.add(1, 7), undefined);
  assert.equal(b.add({ a: [1, "x"] }, 7), undefined);
  const full = b.add(big, 7);
  assert.ok(full !== undefined, "the big item does not fit with the others");
  assert.deepEqual(decode(full), [T.ITEMS, 7, [1, { a: [1, "x"] }], full.length]);
  const alone = b.take(7);
  const m = decode(alone) as [T.ITEMS, number, Uint8Array[], number];
  assert.equal(m[2].length, 1);
  assert.equal(m[2][0]!.length, big.length);
  assert.throws(() => b.add(new Set(), 7), /ERR_BAD_VALUE|not carried/);
  assert.equal(b.count, 0, "a refused item leaves the batch as it was");
  // Many small items: an array16 header.
  for (let i = 0; i < 300; i++) b.add(i, 9);
  const many = decode(b.take(9)) as [T.ITEMS, number, number[], number];
  assert.deepEqual(many[2], Array.from({ length: 300 }, (_, i) => i));
});

test("an ITEMS message with a value outside the model is refused for its call only, naming the item", () => {
  const b = new ItemBatch();
  b.add(1, 3);
  b.add(2, 3);
  const frame = Buffer.from(b.take(3));
  // Turn the second item (the last byte, fixint 2) into the byte 0xd4 ... : a fixext 1 of type 5 (not carried).
  const bad = Buffer.concat([frame.subarray(0, frame.length - 1), Buffer.from([0xd4, 5, 0])]);
  const m = decode(bad);
  assert.equal(m[0], T.REFUSED);
  assert.equal(m[1], T.ITEMS);
  assert.equal(m[2], 3);
  assert.match((m[3] as Error).message, /items\[1\]/);
});

test("against a server that does not announce `items`, the client grants items only, in the three-item CREDIT", async () => {
  const loop = setup();
  await loop.run(async () => {
    const listener = await loop.listen("inproc://old");
    const frames: Buffer[] = [];
    let server: Connection | undefined;
    listener.start((conn) => {
      server = conn;
      conn.start({ message: (m) => frames.push(Buffer.from(m[0]!)), end: () => {} });
      conn.send([encode([T.HELLO, "drpc", 1, { heartbeatMs: 0, maxMessageSize: 1 << 20 }])]);
    });
    const remote = await connect<{ count(n: number): AsyncGenerator<number> }>("drpc+inproc://old", { loop, heartbeatMs: 0 });
    const it = remote.count(100)[Symbol.asyncIterator]();
    await sleep(loop, 10);
    const hello = decode(frames[0]!) as Extract<Msg, { 0: T.HELLO }>;
    assert.equal(hello[3].items, true);
    assert.equal(typeof hello[3].windowBytes, "number");
    const c = decode(frames[1]!) as Extract<Msg, { 0: T.CALL }>;
    for (let i = 0; i < c[6]; i++) server!.send([encode([T.ITEM, c[1], i])]);
    for (let i = 0; i < STREAM_WINDOW / 2; i++) assert.equal((await it.next()).value, i);
    await sleep(loop, 10);
    const credit = frames[2]!;
    assert.equal(credit[0], 0x93, "a three-item array");
    assert.deepEqual(decode(credit).slice(0, 3), [T.CREDIT, c[1], STREAM_WINDOW / 2]);
    await it.return!();
    await close(remote);
    await server!.close();
    await listener.close();
  });
});
