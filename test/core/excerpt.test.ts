/**
 * `excerpt`: the one description of a value in error messages, short and in
 * bounded work whatever the value; `describe` of a thrown non-Error uses it.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { describe, excerpt, toError } from "../../core/errors.js";

test("excerpt: short for any value, whatever its size", () => {
  const cases: [unknown, string | RegExp][] = [
    ["short", '"short"'],
    ["x".repeat(1_000_000), /^"x{40}…" \(1000000 chars\)$/],
    ['quote " and\nnewline', '"quote \\" and\\nnewline"'],
    [42, "42"],
    [-0.5, "-0.5"],
    [true, "true"],
    [undefined, "undefined"],
    [null, "null"],
    [2n ** 64n - 1n, "18446744073709551615n"],
    [-(2n ** 64n) + 1n, "-18446744073709551615n"],
    [2n ** 64n, "a BigInt of 68 bits"],
    [2n ** 8_000_000n, "a BigInt of 8000004 bits"],
    [Symbol("tag"), 'a symbol "tag"'],
    [function named() {}, 'a function "named"'],
    [[1, 2, 3], "an array of 3 items"],
    [Buffer.alloc(5), "a Buffer of 5 bytes"],
    [new Uint8Array(6), "a Uint8Array of 6 bytes"],
    [new Float64Array(2), "a Float64Array of 16 bytes"],
    [new ArrayBuffer(3), "an ArrayBuffer of 3 bytes"],
    [new Map([[1, 2]]), "a Map of 1 entries"],
    [new Set([1, 2]), "a Set of 2 items"],
    [new Date(0), "a Date (1970-01-01T00:00:00.000Z)"],
    [new Date(NaN), "an invalid Date"],
    [/ab+c/, 'a RegExp "ab+c"'],
    [new TypeError("bad"), 'an Error "TypeError: bad"'],
    [{}, "an empty object"],
    [{ a: 1, b: 2 }, 'an object with keys "a", "b"'],
    [Object.fromEntries(Array.from({ length: 100_000 }, (_, i) => [`k${i}`, i])), 'an object of 100000 keys ("k0", "k1", "k2", …)'],
    [Object.create(null), "an empty object"],
    [new (class Widget {})(), "an instance of Widget"],
    [new Proxy({}, { ownKeys() { throw new Error("trap"); }, getPrototypeOf() { throw new Error("trap"); } }), "a value that cannot be described (object)"],
  ];
  for (const [v, want] of cases) {
    const got = excerpt(v);
    if (typeof want === "string") assert.equal(got, want);
    else assert.match(got, want);
    assert.ok(got.length <= 100, `${got.length} chars`);
  }
});

test("describe and toError of a thrown non-Error value give an excerpt, not the whole value", () => {
  const huge = "y".repeat(10_000_000);
  assert.ok(describe(huge).length < 100);
  assert.match(describe(huge), /^non-Error thrown: "y{40}…" \(10000000 chars\)$/);
  assert.equal(describe({ a: 1 }), 'non-Error thrown: an object with keys "a"');
  const e = toError(huge);
  assert.ok(e.message.length < 100);
});
