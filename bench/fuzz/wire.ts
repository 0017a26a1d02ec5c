/**
 * The fuzzer's own model of MessagePack, independent of the code under test:
 * a tree of wire nodes that fast-check generates and shrinks, written to
 * bytes here with a chosen encoding width (so non-canonical encodings reach
 * the readers too), the reference reading of bytes (msgpackr with the
 * protocols' options, which is what tilth's hand-written readers must agree
 * with), a canonical form to compare values, and a scanner that finds the
 * length fields of encoded bytes for mutation.
 */
import fc from "fast-check";
import { Unpackr } from "msgpackr";

/** One MessagePack value as the fuzzer builds it. `w` picks among the encodings that fit. */
export type WireNode =
  | { k: "nil" }
  | { k: "bool"; v: boolean }
  /** `narrow`: only encodings up to 32 bits (a 64-bit one reads back as a BigInt, which no field of a message accepts). */
  | { k: "int"; v: bigint; w: number; narrow?: boolean }
  | { k: "f64"; v: number }
  | { k: "f32"; v: number }
  | { k: "str"; v: string; w: number }
  | { k: "bin"; v: Uint8Array; w: number }
  | { k: "arr"; items: WireNode[]; w: number }
  | { k: "map"; entries: [WireNode, WireNode][]; w: number }
  | { k: "ext"; type: number; data: Uint8Array; w: number }
  /** Arrays nested `depth` deep around nil. */
  | { k: "deep"; depth: number }
  /** A map of `n` distinct short keys, each to nil. */
  | { k: "keys"; n: number }
  /** Bytes as they are (possibly not MessagePack at all). */
  | { k: "raw"; bytes: Uint8Array }
  /** One of msgpackr's own extensions, well formed: a RegExp, Set, Error, typed array, or a value that contains itself. */
  | { k: "foreign"; form: number; inner: WireNode };

const te = new TextEncoder();

/** Grows as needed; one writer per encode call. */
class Out {
  buf = new Uint8Array(256);
  pos = 0;
  ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.pos + n) size *= 2;
    const b = new Uint8Array(size);
    b.set(this.buf.subarray(0, this.pos));
    this.buf = b;
  }
  byte(b: number): void {
    this.ensure(1);
    this.buf[this.pos++] = b & 0xff;
  }
  uint(n: number | bigint, size: number): void {
    this.ensure(size);
    let v = BigInt.asUintN(size * 8, BigInt(n));
    for (let i = size - 1; i >= 0; i--) {
      this.buf[this.pos + i] = Number(v & 0xffn);
      v >>= 8n;
    }
    this.pos += size;
  }
  bytes(b: Uint8Array): void {
    this.ensure(b.length);
    this.buf.set(b, this.pos);
    this.pos += b.length;
  }
  take(): Uint8Array {
    return this.buf.slice(0, this.pos);
  }
}

const pick = <T>(options: T[], w: number): T => options[w % options.length]!;

/** Header of a str/bin/array/map/ext: the encodings that fit `n`, as [type byte or undefined for the fix form, length bytes]. */
function lengthHeader(out: Out, n: number, w: number, fix: { base: number; max: number } | undefined, sized: [number, number][]): void {
  const fits: (() => void)[] = [];
  if (fix && n <= fix.max) fits.push(() => out.byte(fix.base | n));
  for (const [type, size] of sized) {
    if (n < 2 ** (8 * size)) {
      fits.push(() => {
        out.byte(type);
        out.uint(n, size);
      });
    }
  }
  pick(fits, w)();
}

function writeInt(out: Out, v: bigint, w: number, narrow = false): void {
  const fits: (() => void)[] = [];
  if (v >= 0n && v < 128n) fits.push(() => out.byte(Number(v)));
  if (v < 0n && v >= -32n) fits.push(() => out.byte(Number(v) & 0xff));
  const u: [number, number][] = [[0xcc, 1], [0xcd, 2], [0xce, 4], [0xcf, 8]];
  const s: [number, number][] = [[0xd0, 1], [0xd1, 2], [0xd2, 4], [0xd3, 8]];
  const widest = narrow ? 4 : 8;
  for (const [type, size] of u) if (size <= widest && v >= 0n && v < 2n ** BigInt(8 * size)) fits.push(() => (out.byte(type), out.uint(v, size)));
  for (const [type, size] of s) {
    const half = 2n ** BigInt(8 * size - 1);
    if (size <= widest && v >= -half && v < half) fits.push(() => (out.byte(type), out.uint(v, size)));
  }
  if (fits.length === 0) {
    // Beyond 64 bits: msgpackr's BigInt extension (type 0x42), big-endian two's complement.
    const bytes: number[] = [];
    let x = v;
    do {
      bytes.unshift(Number(BigInt.asUintN(8, x)));
      x >>= 8n;
    } while (!(x === 0n && (bytes[0]! & 0x80) === 0) && !(x === -1n && (bytes[0]! & 0x80) !== 0));
    writeExt(out, 0x42, Uint8Array.from(bytes), w);
    return;
  }
  pick(fits, w)();
}

function writeExt(out: Out, type: number, data: Uint8Array, w: number): void {
  const n = data.length;
  const fixed: Record<number, number> = { 1: 0xd4, 2: 0xd5, 4: 0xd6, 8: 0xd7, 16: 0xd8 };
  const fits: (() => void)[] = [];
  if (fixed[n] !== undefined) fits.push(() => out.byte(fixed[n]!));
  for (const [t, size] of [[0xc7, 1], [0xc8, 2], [0xc9, 4]] as const) if (n < 2 ** (8 * size)) fits.push(() => (out.byte(t), out.uint(n, size)));
  pick(fits, w)();
  out.byte(type);
  out.bytes(data);
}

function write(out: Out, node: WireNode): void {
  switch (node.k) {
    case "nil":
      return out.byte(0xc0);
    case "bool":
      return out.byte(node.v ? 0xc3 : 0xc2);
    case "int":
      return writeInt(out, node.v, node.w, node.narrow);
    case "f64":
    case "f32": {
      const wide = node.k === "f64";
      out.byte(wide ? 0xcb : 0xca);
      out.ensure(8);
      const dv = new DataView(out.buf.buffer);
      if (wide) dv.setFloat64(out.pos, node.v);
      else dv.setFloat32(out.pos, node.v);
      out.pos += wide ? 8 : 4;
      return;
    }
    case "str": {
      const b = te.encode(node.v);
      lengthHeader(out, b.length, node.w, { base: 0xa0, max: 31 }, [[0xd9, 1], [0xda, 2], [0xdb, 4]]);
      return out.bytes(b);
    }
    case "bin":
      lengthHeader(out, node.v.length, node.w, undefined, [[0xc4, 1], [0xc5, 2], [0xc6, 4]]);
      return out.bytes(node.v);
    case "arr":
      lengthHeader(out, node.items.length, node.w, { base: 0x90, max: 15 }, [[0xdc, 2], [0xdd, 4]]);
      for (const x of node.items) write(out, x);
      return;
    case "map":
      lengthHeader(out, node.entries.length, node.w, { base: 0x80, max: 15 }, [[0xde, 2], [0xdf, 4]]);
      for (const [k, v] of node.entries) {
        write(out, k);
        write(out, v);
      }
      return;
    case "ext":
      return writeExt(out, node.type, node.data, node.w);
    case "deep":
      for (let i = 0; i < node.depth; i++) out.byte(0x91);
      return out.byte(0xc0);
    case "keys":
      lengthHeader(out, node.n, 0, { base: 0x80, max: 15 }, [[0xde, 2], [0xdf, 4]]);
      for (let i = 0; i < node.n; i++) {
        const k = te.encode(i.toString(36));
        out.byte(0xa0 | k.length);
        out.bytes(k);
        out.byte(0xc0);
      }
      return;
    case "raw":
      return out.bytes(node.bytes);
    case "foreign":
      return writeForeign(out, node.form, node.inner);
  }
}

/** msgpackr's extensions that read the value after them: RegExp [source, flags], Set [items], Error [name, message]; typed arrays; a cycle. */
function writeForeign(out: Out, form: number, inner: WireNode): void {
  switch (form % 5) {
    case 0:
      out.bytes(Uint8Array.from([0xd4, 0x78, 0x00]));
      return write(out, W.arr([W.str("a+"), W.str("g")]));
    case 1:
      out.bytes(Uint8Array.from([0xd4, 0x73, 0x00]));
      return write(out, W.arr([inner]));
    case 2:
      out.bytes(Uint8Array.from([0xd4, 0x65, 0x00]));
      return write(out, W.arr([W.str("TypeError"), W.str("from the wire")]));
    case 3:
      // A Float64Array of one element (type code 8).
      return writeExt(out, 0x74, Uint8Array.from([8, 0, 0, 0, 0, 0, 0, 0xf0, 0x3f]), 0);
    default:
      // id 1 = [inner, <pointer to id 1>]: an array that contains itself.
      out.bytes(Uint8Array.from([0xd6, 0x69, 0, 0, 0, 1, 0x92]));
      write(out, inner);
      return out.bytes(Uint8Array.from([0xd6, 0x70, 0, 0, 0, 1]));
  }
}

/** The bytes of `node`. */
export function encodeNode(node: WireNode): Uint8Array {
  const out = new Out();
  write(out, node);
  return out.take();
}

/** Shorthands for building messages. */
export const W = {
  nil: (): WireNode => ({ k: "nil" }),
  int: (v: number | bigint, w = 0): WireNode => ({ k: "int", v: BigInt(v), w }),
  str: (v: string, w = 0): WireNode => ({ k: "str", v, w }),
  arr: (items: WireNode[], w = 0): WireNode => ({ k: "arr", items, w }),
  map: (entries: [string, WireNode][], w = 0): WireNode => ({ k: "map", entries: entries.map(([k, v]) => [W.str(k), v]), w }),
};

/** Whether a node is in the plain value model every protocol carries unchanged (and small). */
export function isPlain(node: WireNode, depth = 0): boolean {
  if (depth > 8) return false;
  switch (node.k) {
    case "nil":
    case "bool":
    case "f64":
    case "f32":
      return true;
    case "int":
      return node.v >= -(2n ** 63n) && node.v < 2n ** 64n;
    case "str":
      return node.v.length <= 4096;
    case "bin":
      return node.v.length <= 4096;
    case "arr":
      return node.items.length <= 64 && node.items.every((x) => isPlain(x, depth + 1));
    case "map":
      // "__proto__" is no key of a plain object (the value model refuses it: as a property it would set the prototype).
      return node.entries.length <= 64 && node.entries.every(([k, v]) => k.k === "str" && k.v !== "__proto__" && isPlain(v, depth + 1));
    default:
      return false;
  }
}

// ---- generators ----

/** Sizes from `min` to `max`, mostly small: each tenfold range half as likely as the one below it. */
function sizes(min: number, max: number): fc.Arbitrary<number> {
  const ranges: fc.Arbitrary<number>[] = [];
  for (let lo = min; lo <= max; lo *= 10) ranges.push(fc.integer({ min: lo, max: Math.min(max, lo * 10 - 1) }));
  return fc.oneof(...ranges.map((arbitrary, i) => ({ arbitrary, weight: 2 ** (ranges.length - 1 - i) })));
}

const widths = fc.nat(7);
const smallInts = fc.oneof(
  fc.integer({ min: -40, max: 200 }),
  fc.constantFrom(0, -1, 127, 128, 255, 256, 32767, 32768, 65535, 65536, 2 ** 31 - 1, 2 ** 31, 2 ** 32 - 1, 2 ** 32, 2 ** 53 - 1, 2 ** 53, -(2 ** 31), -(2 ** 31) - 1),
);
const bigInts = fc.oneof(
  fc.constantFrom(2n ** 63n - 1n, -(2n ** 63n), 2n ** 64n - 1n, 2n ** 64n, -(2n ** 63n) - 1n),
  fc.bigInt({ min: -(2n ** 64n), max: 2n ** 64n }),
);
/** Integers beyond 64 bits, as msgpackr's BigInt extension: up to `maxBytes` bytes. */
const hugeInts = (maxBytes: number): fc.Arbitrary<bigint> =>
  // 2^(8n-9) plus up to 64 bits: n bytes long, shrinking by size first (a chain over the whole range shrinks slowly).
  fc.tuple(sizes(9, maxBytes), fc.bigInt({ min: 0n, max: 2n ** 64n }), fc.boolean()).map(([n, low, neg]) => (neg ? -1n : 1n) * (2n ** BigInt(8 * n - 9) + low));
const floats = fc.oneof(fc.double(), fc.constantFrom(-0, NaN, Infinity, -Infinity, 0.1, 1e308, 5e-324));
const strings = fc.oneof(
  { weight: 4, arbitrary: fc.string({ maxLength: 40 }) },
  // Any code point, lone surrogates included (fast-check's "binary" unit costs a second and a half to set up).
  { weight: 2, arbitrary: fc.string({ unit: fc.nat(0x10ffff).map((cp) => String.fromCodePoint(cp)), maxLength: 40 }) },
  { weight: 1, arbitrary: fc.constantFrom("__proto__", "constructor", "prototype", "toString", "hasOwnProperty", "", "a".repeat(64), "a".repeat(65), "é", "\u0000") },
  { weight: 1, arbitrary: sizes(1, 70_000).map((n) => "x".repeat(n)) },
);
const bins = fc.oneof({ weight: 4, arbitrary: fc.uint8Array({ maxLength: 64 }) }, { weight: 1, arbitrary: sizes(1, 70_000).map((n) => new Uint8Array(n)) });
/** msgpackr's built-in extension types, and a few it does not know. */
const extTypes = fc.constantFrom(0x00, 0x42, 0x65, 0x69, 0x70, 0x73, 0x74, 0x78, 0x62, 0xff, 0x01, 0x7f, 0x80, 0xfe);

export interface ValueOptions {
  /** Longest BigInt extension, bytes. */
  maxBigIntBytes?: number;
  /** Largest map of distinct keys. */
  maxKeys?: number;
  /** Deepest nesting of the `deep` form. */
  maxDepth?: number;
  /** Weight of hostile values against 10 of plain ones (default 1; 0 for plain values only). */
  hostile?: number;
}

/** Values of every kind, mostly plain, sometimes hostile (extensions, huge integers, deep nesting, many keys, raw bytes). */
export function wireValue(options: ValueOptions = {}): fc.Arbitrary<WireNode> {
  const maxBig = options.maxBigIntBytes ?? 4096;
  const { value } = fc.letrec<{ value: WireNode; scalar: WireNode; hostile: WireNode }>((tie) => ({
    scalar: fc.oneof(
      fc.constant<WireNode>({ k: "nil" }),
      fc.boolean().map((v): WireNode => ({ k: "bool", v })),
      fc.tuple(smallInts, widths).map(([v, w]): WireNode => ({ k: "int", v: BigInt(v), w })),
      fc.tuple(bigInts, widths).map(([v, w]): WireNode => ({ k: "int", v, w })),
      floats.map((v): WireNode => ({ k: "f64", v })),
      fc.float().map((v): WireNode => ({ k: "f32", v })),
      fc.tuple(strings, widths).map(([v, w]): WireNode => ({ k: "str", v, w })),
      fc.tuple(bins, widths).map(([v, w]): WireNode => ({ k: "bin", v, w })),
    ),
    hostile: fc.oneof(
      fc.tuple(hugeInts(maxBig), widths).map(([v, w]): WireNode => ({ k: "int", v, w })),
      fc.tuple(extTypes, fc.uint8Array({ maxLength: 40 }), widths).map(([type, data, w]): WireNode => ({ k: "ext", type, data, w })),
      sizes(1, options.maxDepth ?? 20_000).map((depth): WireNode => ({ k: "deep", depth })),
      sizes(16, options.maxKeys ?? 70_000).map((n): WireNode => ({ k: "keys", n })),
      fc.uint8Array({ minLength: 1, maxLength: 16 }).map((bytes): WireNode => ({ k: "raw", bytes })),
      fc.tuple(fc.nat(4), tie("scalar")).map(([form, inner]): WireNode => ({ k: "foreign", form, inner })),
    ),
    value: fc.oneof(
      { depthSize: "small", withCrossShrink: true },
      { weight: 6, arbitrary: tie("scalar") },
      { weight: 2, arbitrary: fc.tuple(fc.array(tie("value"), { maxLength: 5 }), widths).map(([items, w]): WireNode => ({ k: "arr", items, w })) },
      {
        weight: 2,
        arbitrary: fc
          .tuple(fc.array(fc.tuple(fc.oneof({ weight: 5, arbitrary: tie("scalar") }, { weight: 1, arbitrary: tie("value") }), tie("value")), { maxLength: 5 }), widths)
          .map(([entries, w]): WireNode => ({ k: "map", entries, w })),
      },
      { weight: options.hostile ?? 1, arbitrary: tie("hostile") },
    ),
  }));
  return value;
}

// ---- reading and comparing ----

/** The reference reader: msgpackr with the options drpc uses. */
export const drpcReader = new Unpackr({ useRecords: false, mapsAsObjects: true, int64AsType: "bigint" } as ConstructorParameters<typeof Unpackr>[0]);
/** The reference reader with the options zrpc uses. */
export const zrpcReader = new Unpackr({ useRecords: false, mapsAsObjects: true, int64AsType: "auto" } as unknown as ConstructorParameters<typeof Unpackr>[0]);

/** Decode, or undefined when the bytes are not one whole value. */
export function tryDecode(reader: Unpackr, bytes: Uint8Array): { value: unknown } | undefined {
  try {
    return { value: reader.unpack(bytes) };
  } catch {
    return undefined;
  }
}

/**
 * A canonical text of a decoded value, for comparing what was sent with what
 * came back: binary of any class as hex, BigInt as integers (equal to a
 * Number of the same value), -0 as 0 (MessagePack writers drop the sign), keys
 * in order.
 */
export function canon(v: unknown, depth = 0): string {
  if (depth > 200) return "…";
  switch (typeof v) {
    case "undefined":
      return "undef";
    case "boolean":
      return String(v);
    case "number":
      return Number.isInteger(v) ? `i${v === 0 ? 0 : BigInt(v)}` : `f${Number.isNaN(v) ? "NaN" : v}`;
    case "bigint":
      return `i${v}`;
    case "string":
      return JSON.stringify(v);
    case "object": {
      if (v === null) return "nil";
      if (v instanceof Uint8Array) return `bin:${Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString("hex")}`;
      if (Array.isArray(v)) return `[${v.map((x) => canon(x, depth + 1)).join(",")}]`;
      if (v instanceof Map) return `map{${[...v].map(([k, x]) => `${canon(k, depth + 1)}:${canon(x, depth + 1)}`).join(",")}}`;
      if (Object.getPrototypeOf(v) === Object.prototype || Object.getPrototypeOf(v) === null) {
        return `{${Object.keys(v).map((k) => `${JSON.stringify(k)}:${canon((v as Record<string, unknown>)[k], depth + 1)}`).join(",")}}`;
      }
      return `${(v as object).constructor?.name ?? "object"}:${String(v)}`;
    }
    default:
      return typeof v;
  }
}

// ---- length fields, for mutation ----

/** Where a length is written in encoded bytes: in the low bits of the type byte (`size` 0), or in 1, 2 or 4 bytes after it. */
export interface LengthField {
  pos: number;
  size: 0 | 1 | 2 | 4;
  /** For `size` 0: the bits of the type byte that hold the length. */
  mask: number;
}

/**
 * The length fields of the values in `b` from `start`, in order, as far as
 * the bytes parse (a scan of malformed bytes stops where they stop making
 * sense). At most `max` fields.
 */
export function lengthFields(b: Uint8Array, start = 0, max = 256): LengthField[] {
  const out: LengthField[] = [];
  let p = start;
  let pending = 1; // values still to read
  const readLen = (size: number): number => {
    let n = 0;
    for (let i = 0; i < size; i++) n = n * 256 + (b[p + 1 + i] ?? 0);
    return n;
  };
  while (pending > 0 && p < b.length && out.length < max) {
    pending--;
    const t = b[p]!;
    if (t <= 0x7f || t >= 0xe0 || t === 0xc0 || t === 0xc2 || t === 0xc3) p += 1;
    else if (t >= 0x80 && t <= 0x8f) {
      out.push({ pos: p, size: 0, mask: 0x0f });
      pending += 2 * (t & 0x0f);
      p += 1;
    } else if (t >= 0x90 && t <= 0x9f) {
      out.push({ pos: p, size: 0, mask: 0x0f });
      pending += t & 0x0f;
      p += 1;
    } else if (t >= 0xa0 && t <= 0xbf) {
      out.push({ pos: p, size: 0, mask: 0x1f });
      p += 1 + (t & 0x1f);
    } else if (t === 0xc4 || t === 0xc5 || t === 0xc6 || t === 0xd9 || t === 0xda || t === 0xdb) {
      const size = t === 0xc4 || t === 0xd9 ? 1 : t === 0xc5 || t === 0xda ? 2 : 4;
      out.push({ pos: p + 1, size, mask: 0 });
      p += 1 + size + readLen(size);
    } else if (t === 0xc7 || t === 0xc8 || t === 0xc9) {
      const size = t === 0xc7 ? 1 : t === 0xc8 ? 2 : 4;
      out.push({ pos: p + 1, size, mask: 0 });
      p += 2 + size + readLen(size);
    } else if (t === 0xdc || t === 0xdd) {
      const size = t === 0xdc ? 2 : 4;
      out.push({ pos: p + 1, size, mask: 0 });
      pending += readLen(size);
      p += 1 + size;
    } else if (t === 0xde || t === 0xdf) {
      const size = t === 0xde ? 2 : 4;
      out.push({ pos: p + 1, size, mask: 0 });
      pending += 2 * readLen(size);
      p += 1 + size;
    } else if (t === 0xca) p += 5;
    else if (t === 0xcb) p += 9;
    else if (t === 0xcc || t === 0xd0) p += 2;
    else if (t === 0xcd || t === 0xd1) p += 3;
    else if (t === 0xce || t === 0xd2) p += 5;
    else if (t === 0xcf || t === 0xd3) p += 9;
    else if (t >= 0xd4 && t <= 0xd8) p += 2 + 2 ** (t - 0xd4);
    else break; // 0xc1: never used
  }
  return out;
}

/** Hex of bytes, in groups, shortened past `max` bytes. */
export function hex(b: Uint8Array, max = 4096): string {
  const s = Buffer.from(b.buffer, b.byteOffset, Math.min(b.byteLength, max)).toString("hex");
  return s + (b.byteLength > max ? `… (${b.byteLength} bytes)` : "");
}
