/**
 * The value model's writer and reader (rpc/msgpack.ts): what is in the model
 * round-trips and agrees with msgpackr both ways; what is outside it, past a
 * limit, or malformed is refused with its code in bounded work.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import { Packr } from "msgpackr";
import { isTilthError } from "../../core/errors.js";
import { ARGS, INT64_AUTO, MAX_VALUE_DEPTH, MAX_VALUE_ITEMS, WIDE_INTS, packMessage, packValue, readEnd, readValue, unpackValue } from "../../rpc/msgpack.js";

const packr = new Packr({ useRecords: false, mapsAsObjects: true, int64AsType: "bigint" } as ConstructorParameters<typeof Packr>[0]);

const pack = (v: unknown, flags = 0): Buffer => packValue(v, 0, flags, "value");
const unpack = (b: Uint8Array, flags = 0): unknown => unpackValue(b, 0, b.length, flags, "value");

/** What a value of the model reads back as: -0 as 0, strings as UTF-8 makes them (a lone surrogate as U+FFFD). */
function norm(v: unknown): unknown {
  if (typeof v === "string") return Buffer.from(v).toString();
  if (Object.is(v, -0)) return 0;
  if (Array.isArray(v)) return v.map(norm);
  if (v instanceof Uint8Array) return Buffer.from(v);
  if (v instanceof Date || v === null || typeof v !== "object") return v;
  return Object.fromEntries(Object.entries(v).map(([k, x]) => [norm(k), norm(x)]));
}

const key = fc.oneof(fc.string({ maxLength: 12 }), fc.string({ unit: "binary", maxLength: 6 })).filter((k) => norm(k) !== "__proto__");
const leaf = fc.oneof(
  fc.constant(null),
  fc.constant(undefined),
  fc.boolean(),
  fc.integer(),
  fc.constantFrom(0, -0, 127, 128, 255, 256, 65535, 65536, -32, -33, -128, -129, 2 ** 31, 2 ** 32, -(2 ** 31) - 1, 2 ** 53, NaN, Infinity),
  fc.double(),
  fc.bigInt({ min: -(2n ** 63n), max: 2n ** 64n - 1n }),
  fc.string({ maxLength: 40 }),
  fc.string({ unit: "grapheme", maxLength: 40 }),
  fc.string({ unit: "binary", maxLength: 20 }),
  fc.uint8Array({ maxLength: 1500 }).map((u) => Buffer.from(u)),
  fc.date({ min: new Date(-1e15), max: new Date(1e15), noInvalidDate: true }),
);
const value = fc.letrec((tie) => ({
  v: fc.oneof({ depthSize: "small", withCrossShrink: true }, leaf, fc.array(tie("v"), { maxLength: 12 }), fc.dictionary(key, tie("v"), { maxKeys: 12 })),
})).v;

describe("the value model's writer and reader", () => {
  test("property: every value of the model round-trips, msgpackr reads what the writer writes, and the reader reads what msgpackr writes", () => {
    fc.assert(
      fc.property(value, (v) => {
        const expected = norm(v);
        const ours = pack(v);
        assert.deepStrictEqual(unpack(ours), expected, "round trip");
        assert.deepStrictEqual(norm(packr.unpack(ours)), expected, "msgpackr reads our bytes");
        const theirs = packr.pack(v) as Uint8Array;
        assert.deepStrictEqual(unpack(theirs), expected, "we read msgpackr's bytes");
      }),
      { numRuns: 3000 },
    );
  });

  test("strings of every length class, binary of every size, and values past the first buffer come back whole; earlier results are not overwritten", () => {
    for (const s of ["", "a".repeat(31), "a".repeat(32), "é".repeat(20), "é".repeat(200), "é".repeat(30_000), "✓".repeat(22_000), "x".repeat(70_000), "\ud800 lone"]) {
      assert.equal(unpack(pack(s)), norm(s), `length ${s.length}`);
      if (!/[\ud800-\udfff]/.test(s)) assert.equal(unpack(packr.pack(s) as Uint8Array), s);
    }
    for (const n of [0, 255, 256, 65535, 65536, 200_000]) assert.deepEqual(unpack(pack(Buffer.alloc(n, 3))), Buffer.alloc(n, 3));
    const first = pack({ a: "first" });
    const copy = Buffer.from(first);
    for (let i = 0; i < 100; i++) pack({ big: Buffer.alloc(10_000, i) });
    assert.deepEqual(first, copy, "a packed value is never written again");
  });

  test("zrpc's flags: integers beyond 32 bits are written as int64/uint64 and read as numbers while exact", () => {
    const b = pack(2 ** 40, WIDE_INTS);
    assert.equal(b[0], 0xd3);
    assert.equal(unpack(b, INT64_AUTO), 2 ** 40);
    assert.equal(pack(2 ** 63, WIDE_INTS)[0], 0xcf);
    assert.equal(pack(2 ** 40)[0], 0xcb, "drpc writes them as float64, as msgpackr does");
    assert.equal(unpack(pack(2n ** 60n), INT64_AUTO), 2n ** 60n, "beyond 2^53: a BigInt");
    assert.equal(unpack(pack(5n), INT64_AUTO), 5);
    assert.equal(unpack(pack(5n)), 5n, "drpc: 64-bit integers are BigInts");
  });

  test("nesting: MAX_VALUE_DEPTH passes, one more is ERR_VALUE_LIMIT both ways (5000 deep too, no stack overflow); an argument list does not count", () => {
    const deep = (n: number): unknown => {
      let v: unknown = null;
      for (let i = 0; i < n; i++) v = [v];
      return v;
    };
    const bytes = (n: number): Buffer => Buffer.concat([Buffer.alloc(n, 0x91), Buffer.from([0xc0])]);
    assert.deepEqual(unpack(pack(deep(MAX_VALUE_DEPTH))), deep(MAX_VALUE_DEPTH));
    for (const n of [MAX_VALUE_DEPTH + 1, 5000, 100_000]) {
      assert.throws(() => pack(deep(n)), (e) => isTilthError(e, "ERR_VALUE_LIMIT") && (e as Error).message.length < 300, `write ${n}`);
      assert.throws(() => unpack(bytes(n)), (e) => isTilthError(e, "ERR_VALUE_LIMIT") && (e as Error).message.length < 300, `read ${n}`);
    }
    const cyclic: unknown[] = [];
    cyclic.push({ again: cyclic });
    assert.throws(() => pack(cyclic), (e) => isTilthError(e, "ERR_VALUE_LIMIT") && /contains itself/.test((e as Error).message) && (e as Error).message.length < 300);
    // As an argument list, the list itself is not a level.
    const args = [deep(MAX_VALUE_DEPTH)];
    assert.deepEqual(unpack(pack(args, ARGS), ARGS), args);
    assert.throws(() => pack(args), (e) => isTilthError(e, "ERR_VALUE_LIMIT"));
    const message = packMessage([1, args], 0, [undefined, "args"]);
    assert.deepEqual(unpackValue(message, 2, message.length, ARGS, "args"), args, "a message's item named args is an argument list");
    assert.throws(() => packMessage([1, args], 0, [undefined, "value"]), (e) => isTilthError(e, "ERR_VALUE_LIMIT") && /\(at value/.test((e as Error).message));
  });

  test("items: MAX_VALUE_ITEMS over a whole value passes, one more is ERR_VALUE_LIMIT both ways; maps of more than 65535 keys cross", () => {
    const half = MAX_VALUE_ITEMS / 2;
    const ok = [new Array<number>(half - 1).fill(1), new Array<number>(half - 1).fill(2)]; // 2 + 2 × (half - 1) items
    assert.equal((unpack(pack(ok)) as number[][])[1]!.length, half - 1);
    const over = [new Array<number>(half).fill(1), new Array<number>(half).fill(2)];
    assert.throws(() => pack(over), (e) => isTilthError(e, "ERR_VALUE_LIMIT"));
    assert.throws(() => unpack(packr.pack(over) as Uint8Array), (e) => isTilthError(e, "ERR_VALUE_LIMIT"));
    const wide: Record<string, number> = {};
    for (let i = 0; i < 70_000; i++) wide[`k${i}`] = i;
    assert.deepEqual(unpack(pack(wide)), wide);
    assert.deepEqual(unpack(pack(new Map(Object.entries(wide)))), wide);
  });

  test("a length announced past the message's end is refused at once as malformed (nothing is allocated for it)", () => {
    for (const hex of ["dfffffffff", "ddffffffff80", "dbffffffff41", "c6ffffffff00", "c9ffffffff4200", "de000200", "dc00030102", "a4616263", "d9", "cb0000"]) {
      assert.throws(() => unpack(Buffer.from(hex, "hex")), (e) => isTilthError(e, "ERR_PROTOCOL"), hex);
    }
    assert.throws(() => unpack(Buffer.from([0xc1])), (e) => isTilthError(e, "ERR_PROTOCOL") && /0xc1/.test((e as Error).message));
    assert.throws(() => unpack(Buffer.from([0x01, 0x02])), (e) => isTilthError(e, "ERR_PROTOCOL") && /after its end/.test((e as Error).message));
    assert.equal(readValue(Buffer.from([0x01, 0x02]), 0, 2, 0, "v"), 1);
    assert.equal(readEnd(), 1, "readValue stops after one value");
  });

  test("msgpack extensions: undefined and timestamps are read; every other type is ERR_BAD_VALUE naming it, a BigInt extension ERR_VALUE_LIMIT, in bounded work", () => {
    const more = new Packr({ useRecords: false, moreTypes: true } as ConstructorParameters<typeof Packr>[0]);
    const records = new Packr({ useRecords: true } as ConstructorParameters<typeof Packr>[0]);
    const clones = new Packr({ useRecords: false, structuredClone: true } as ConstructorParameters<typeof Packr>[0]);
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    const refused: [string, Uint8Array, RegExp][] = [
      ["Set", more.pack(new Set([1])), /Set/],
      ["Error", more.pack(new Error("x")), /Error/],
      ["RegExp", more.pack(/x/), /RegExp/],
      ["typed array", more.pack(new Float64Array(2)), /typed array/],
      ["record", records.pack({ a: 1 }), /record/],
      ["structured clone", clones.pack(cyclic), /structured clone/],
      ["a timestamp of 5 bytes", Buffer.from("c705ff0000000000", "hex"), /timestamp of 5 bytes/],
      ["an unknown type", Buffer.from("d50701ff", "hex"), /type 7/],
    ];
    for (const [name, b, re] of refused) assert.throws(() => unpack(b), (e) => isTilthError(e, "ERR_BAD_VALUE") && re.test((e as Error).message), name);
    const big = Buffer.concat([Buffer.from([0xc9, 0, 0x10, 0, 0, 0x42]), Buffer.alloc(1 << 20, 0x7f)]);
    assert.throws(() => unpack(big), (e) => isTilthError(e, "ERR_VALUE_LIMIT") && /8388608 bits/.test((e as Error).message));
    assert.equal(unpack(Buffer.from("d40000", "hex")), undefined);
    for (const d of [new Date(0), new Date(1_700_000_000_123), new Date(-1), new Date(2 ** 34 * 1000 + 7), new Date(8.64e15)]) assert.deepEqual(unpack(pack(d)), d, d.toISOString());
  });

  test("the writer refuses what the model does not carry, naming where: Sets, Errors, RegExps, typed arrays, class instances, functions, symbols, invalid Dates, BigInts beyond 64 bits, odd Map keys, __proto__", () => {
    class Widget {
      n = 1;
    }
    const cases: [unknown, string, RegExp][] = [
      [{ a: [1, new Set([1])] }, "ERR_BAD_VALUE", /a Set of 1 items is not carried: send an array \(at value\.a\[1\]\)/],
      [[new Error("x")], "ERR_BAD_VALUE", /Error.*throw it/],
      [/x/, "ERR_BAD_VALUE", /RegExp/],
      [new Float32Array(1), "ERR_BAD_VALUE", /Uint8Array of its bytes/],
      [new ArrayBuffer(1), "ERR_BAD_VALUE", /ArrayBuffer/],
      [new Widget(), "ERR_BAD_VALUE", /instance of Widget.*toJSON/],
      [{ f() {} }, "ERR_BAD_VALUE", /function "f" is not carried \(at value\.f\)/],
      [Symbol("s"), "ERR_BAD_VALUE", /symbol/],
      [Promise.resolve(1), "ERR_BAD_VALUE", /await it/],
      [new Date(NaN), "ERR_BAD_VALUE", /invalid Date/],
      [{ n: 2n ** 64n }, "ERR_VALUE_LIMIT", /beyond 64 bits/],
      [-(2n ** 63n) - 1n, "ERR_VALUE_LIMIT", /beyond 64 bits/],
      [2n ** 8_000_000n, "ERR_VALUE_LIMIT", /a BigInt of 8000004 bits is beyond 64 bits/],
      [new Map<unknown, unknown>([[[1], 2]]), "ERR_BAD_VALUE", /Map key/],
      [JSON.parse('{"__proto__": 1}'), "ERR_BAD_VALUE", /__proto__/],
      [new Map([["__proto__", 1]]), "ERR_BAD_VALUE", /__proto__/],
      [{ ["x".repeat(1000)]: new Set() }, "ERR_BAD_VALUE", /\(at value\["x{40}…" \(1000 chars\)\]\)/],
    ];
    for (const [v, code, re] of cases) {
      assert.throws(
        () => pack(v),
        (e) => {
          assert.ok(isTilthError(e, code), `${String(e)}`);
          assert.match((e as Error).message, re);
          assert.ok((e as Error).message.length < 300);
          return true;
        },
      );
    }
    // toJSON gives the form of a class instance (and may pack a value itself); Maps are maps.
    class Money {
      constructor(readonly cents: number) {}
      toJSON(): unknown {
        return { cents: this.cents, bytes: pack(this.cents) };
      }
    }
    assert.deepEqual(unpack(pack([new Money(5), new Map<unknown, unknown>([["a", 1], [2, "b"]])])), [{ cents: 5, bytes: Buffer.from([5]) }, { a: 1, "2": "b" }]);
    assert.deepEqual(unpack(pack({ n: 1 })), { n: 1 }, "the writer is fine after a refusal");
  });

  test("the reader refuses map keys that are not strings or numbers, and __proto__", () => {
    assert.deepEqual(unpack(Buffer.from("83a161010102cb3ff800000000000003", "hex")), { a: 1, "1": 2, "1.5": 3 });
    for (const hex of ["8190c0", "8180c0", "81c0c0", "81c3c0", "81c40100c0"]) assert.throws(() => unpack(Buffer.from(hex, "hex")), (e) => isTilthError(e, "ERR_BAD_VALUE") && /map key/.test((e as Error).message), hex);
    const proto = Buffer.concat([Buffer.from([0x81, 0xa9]), Buffer.from("__proto__"), Buffer.from([0x01])]);
    assert.throws(() => unpack(proto), (e) => isTilthError(e, "ERR_BAD_VALUE") && /__proto__/.test((e as Error).message));
  });
});
