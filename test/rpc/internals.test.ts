import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { Packr } from "msgpackr";
import { isTilthError } from "../../core/errors.js";
import { IdCounter, IdTable, idSlot } from "../../rpc/internal/IdTable.js";
import { BIN_COPY_MAX, NOT_SIMPLE, readSimple, sizeOfSimple, writeSimple } from "../../rpc/msgpack.js";

test("property: IdTable behaves as a Map of call ids under set, get and delete", () => {
  const id = fc.oneof(fc.integer({ min: 1, max: 64 }), fc.integer({ min: 1, max: 0x7fffffff }));
  fc.assert(
    fc.property(fc.array(fc.tuple(fc.constantFrom("set", "delete", "get"), id), { maxLength: 400 }), (ops) => {
      const table = new IdTable<string>(2);
      const model = new Map<number, string>();
      for (const [op, k] of ops) {
        if (op === "set") {
          if (model.has(k)) continue; // the table's contract: set only what is absent
          table.set(k, `v${k}`);
          model.set(k, `v${k}`);
        } else if (op === "delete") assert.equal(table.delete(k), model.delete(k));
        assert.equal(table.get(k), model.get(k));
        assert.equal(table.size, model.size);
      }
      for (const [k, v] of model) assert.equal(table.get(k), v);
      assert.deepEqual(table.values().sort(), [...model.values()].sort());
    }),
  );
});

test("IdTable: ids that collide on their slot are all found, and deleting one keeps the others reachable", () => {
  const t = new IdTable<number>(16);
  // Four ids with the same home slot, and one whose home is the next slot: one probe run.
  const home = idSlot(1, 4);
  const same = [1];
  let next = -1;
  for (let id = 2; same.length < 4 || next < 0; id++) {
    const s = idSlot(id, 4);
    if (s === home && same.length < 4) same.push(id);
    else if (s === ((home + 1) & 15) && next < 0) next = id;
  }
  const ids = [same[0]!, same[1]!, same[2]!, next, same[3]!];
  for (const i of ids) t.set(i, i);
  assert.equal(t.delete(same[1]!), true);
  for (const i of ids.filter((x) => x !== same[1])) assert.equal(t.get(i), i);
  assert.equal(t.get(same[1]!), undefined);
  assert.equal(t.delete(same[1]!), false);
});

test("IdTable: a hundred consecutive ids land apart (short probe runs), and a table grown past them finds them all", () => {
  const slots = new Set<number>();
  for (let id = 1000; id < 1100; id++) slots.add(idSlot(id, 8));
  assert.ok(slots.size >= 95, `${slots.size} distinct slots of 256 for 100 consecutive ids`);
  const t = new IdTable<number>();
  for (let id = 1; id <= 5000; id++) t.set(id, id);
  for (let id = 1; id <= 5000; id += 2) assert.equal(t.delete(id), true);
  for (let id = 1; id <= 5000; id++) assert.equal(t.get(id), id % 2 === 0 ? id : undefined);
  assert.equal(t.size, 2500);
});

test("IdCounter: ids go 1..max and wrap, skipping the ids a table still holds (a call left open across a wrap keeps its id)", () => {
  const open = new IdTable<string>();
  const ids = new IdCounter(5);
  const first = [1, 2, 3].map(() => ids.next(open));
  assert.deepEqual(first, [1, 2, 3]);
  open.set(2, "a stream that stays open");
  open.set(4, "another");
  // 4 is held: skipped; then 5, then the wrap to 1; 2 still held: skipped.
  assert.deepEqual([ids.next(open), ids.next(open), ids.next(open)], [5, 1, 3]);
  open.set(1, "x");
  open.set(3, "y");
  open.set(5, "z");
  assert.throws(() => ids.next(open), (e: unknown) => isTilthError(e, "ERR_BUSY"));
  open.delete(3);
  assert.equal(ids.next(open), 3);
  // skip() hands out the next id whether held or not (message ids that open nothing).
  assert.equal(ids.skip(), 4);
  assert.throws(() => new IdCounter(0), RangeError);
  assert.throws(() => new IdCounter(5, 6), RangeError);
});

test("zrpc IdGenerator: a call's counter never names a channel still open, across the counter's wrap", async () => {
  const { IdGenerator } = await import("../../rpc/zerorpc/codec.js");
  const gen = new IdGenerator(8);
  const open = new IdTable<string>();
  const held = gen.advanceFree(open);
  open.set(held, "a stream left open");
  const seen: number[] = [];
  for (let i = 0; i < 40; i++) {
    const n = i % 3 === 0 ? gen.advance() : gen.advanceFree(open); // heartbeats and credit use counters too
    assert.ok(n >= 1 && n <= 8);
    if (i % 3 !== 0) {
      assert.notEqual(n, held);
      seen.push(n);
    }
    const id = Buffer.from(gen.text(n));
    assert.equal(gen.counterOf(id, 0, id.length), n);
  }
  assert.ok(seen.length > 8, "the counter wrapped");
});

const packr = new Packr({ useRecords: false, mapsAsObjects: true, int64AsType: "bigint" } as ConstructorParameters<typeof Packr>[0]);

const scalar = fc.oneof(
  fc.integer(),
  fc.integer({ min: -40, max: 300 }),
  fc.constantFrom(0, -0, 2 ** 31, 2 ** 32 - 1, 2 ** 32, -(2 ** 31), -(2 ** 31) - 1, 2 ** 53, NaN, Infinity, -Infinity, 1.5, -33, -129, -32769),
  fc.double(),
  fc.boolean(),
  fc.constant(null),
  fc.constant(undefined),
  fc.string({ maxLength: 70 }),
  fc.string({ unit: "grapheme", maxLength: 8 }),
  fc.uint8Array({ maxLength: 300 }),
);
const simple = fc.oneof(scalar, fc.array(scalar, { maxLength: 16 }));

test("property: the by-hand msgpack writer writes exactly msgpackr's bytes, and reads back what msgpackr reads", () => {
  fc.assert(
    fc.property(simple, (v) => {
      const expected = packr.pack(v) as Uint8Array;
      const size = sizeOfSimple(v);
      if (size >= 0) {
        const out = new Uint8Array(size + 3);
        assert.equal(writeSimple(out, 3, v), size + 3);
        assert.deepEqual(Buffer.from(out.subarray(3)), Buffer.from(expected));
      }
      const framed = new Uint8Array(expected.length + 2);
      framed.set(expected, 2);
      const r = readSimple(framed, 2);
      if (r !== NOT_SIMPLE) assert.deepEqual(norm(r), norm(packr.unpack(expected)));
      else assert.equal(size, -1, "what the writer writes, the reader reads");
    }),
    { numRuns: 2000 },
  );
});

test("the by-hand msgpack reader leaves trailing, truncated and unknown data to msgpackr", () => {
  const ok = packr.pack([1, "a", new Uint8Array([1, 2])]) as Uint8Array;
  assert.notEqual(readSimple(ok, 0), NOT_SIMPLE);
  assert.equal(readSimple(Buffer.concat([ok, Buffer.from([0])]), 0), NOT_SIMPLE, "trailing byte");
  assert.equal(readSimple(ok.subarray(0, ok.length - 1), 0), NOT_SIMPLE, "truncated");
  assert.equal(readSimple(Buffer.from([0xc1]), 0), NOT_SIMPLE, "never-used byte");
  assert.equal(readSimple(packr.pack({ a: 1 }) as Uint8Array, 0), NOT_SIMPLE, "maps");
  assert.equal(readSimple(Buffer.from([]), 0), NOT_SIMPLE, "nothing");
  assert.equal(sizeOfSimple({ a: 1 }), -1);
  assert.equal(sizeOfSimple([[1]]), -1, "nested arrays");
  assert.equal(sizeOfSimple(new Float64Array(1)), -1, "other typed arrays");
  assert.equal(sizeOfSimple(10n), -1);
  const bin = readSimple(packr.pack(new Uint8Array([9, 8])) as Uint8Array, 0);
  assert.ok(Buffer.isBuffer(bin), "binary values arrive as Buffers, as from msgpackr");
  // A small one is a copy (keeping it must not keep the received chunk alive); a large one a view.
  const chunk = Buffer.concat([Buffer.alloc(100), packr.pack(Buffer.alloc(BIN_COPY_MAX, 7)) as Buffer]);
  const small = readSimple(chunk, 100) as Buffer;
  const bigChunk = Buffer.concat([Buffer.alloc(100), packr.pack(Buffer.alloc(BIN_COPY_MAX + 1, 7)) as Buffer]);
  const big = readSimple(bigChunk, 100) as Buffer;
  assert.equal(small.length, BIN_COPY_MAX);
  assert.equal(big.length, BIN_COPY_MAX + 1);
  chunk.fill(0);
  bigChunk.fill(0);
  assert.ok(small.every((x) => x === 7), "the small value is a copy");
  assert.ok(big.every((x) => x === 0), "the large value is a view");
});

/** Buffers and Uint8Arrays compare by bytes; -0 and 0 are one value on the wire. */
function norm(v: unknown): unknown {
  if (v instanceof Uint8Array) return [...v];
  if (Array.isArray(v)) return v.map(norm);
  if (Object.is(v, -0)) return 0;
  return v;
}

test("property: zrpc events written by hand are byte for byte what encodeEvent writes, and read back as decodeEvent reads them", async () => {
  const { IdGenerator, encodeEvent, encodeWith, readEvent, decodeEvent, idRefValue } = await import("../../rpc/zerorpc/codec.js");
  const ids = new IdGenerator();
  const idArb = fc.oneof(
    fc.string({ minLength: 1, maxLength: 40 }),
    fc.uint8Array({ minLength: 1, maxLength: 40 }),
    fc.constant(null),
  );
  fc.assert(
    fc.property(fc.constantFrom("OK", "echo", "STREAM", "_zpc_hb", "a_much_longer_method_name_than_thirty_two_chars"), simple, idArb, fc.boolean(), (name, args, rt, ours) => {
      const own = ids.advance();
      const rtArg = rt === null ? undefined : ours ? ids.advance() : { buf: typeof rt === "string" ? Buffer.from(rt) : rt, start: 0, end: typeof rt === "string" ? Buffer.byteLength(rt) : rt.length, bin: typeof rt !== "string" };
      const fast = encodeWith(ids, own, rtArg, name, args);
      const header: { message_id: string; v: number; response_to?: string | Uint8Array } = { message_id: ids.text(own), v: 3 };
      if (rtArg !== undefined) header.response_to = typeof rtArg === "number" ? ids.text(rtArg) : idRefValue(rtArg);
      const slow = encodeEvent(header, name, args);
      assert.equal(fast.length, 2);
      assert.deepEqual(Buffer.from(fast[1]!), Buffer.from(slow[1]!));
      const v = readEvent(fast);
      const d = decodeEvent(fast);
      assert.equal(v.name, d.name);
      assert.deepEqual(norm(v.args), norm(d.args));
      assert.deepEqual(idRefValue(v.id), d.header.message_id);
      assert.equal(ids.counterOf(v.id.buf, v.id.start, v.id.end), own);
      if (rtArg === undefined) assert.equal(v.rt, undefined);
      else assert.deepEqual(norm(idRefValue(v.rt!)), norm(d.header.response_to));
    }),
    { numRuns: 1000 },
  );
});
