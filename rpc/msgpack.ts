/**
 * tilth's msgpack: the writer and reader of the value model (what crosses the
 * wire; see "Values" in docs/drpc.md and docs/zerorpc.md), used by both
 * protocols.
 *
 * Two tiers. The values most calls carry (nil, booleans, numbers, short ASCII
 * strings, binary, and short arrays of those) have a writer and a reader of
 * their own (`sizeOfSimple`/`writeSimple`, `readSimple`): these say "not
 * mine" (-1 or NOT_SIMPLE) for anything else. Everything else goes through
 * the general writer and reader (`packValue`, `readValue`), which check the
 * model in the same walk that writes or reads: a type outside it is
 * BadValueError (ERR_BAD_VALUE), a value past a limit (nesting depth, items,
 * integer size) is ValueLimitError (ERR_VALUE_LIMIT), malformed bytes are
 * ProtocolError. Work is bounded by the limits and the message's size; no
 * recursion goes deeper than MAX_VALUE_DEPTH.
 *
 * The simple writer writes exactly the bytes msgpackr writes for the same
 * value (`useRecords: false`); the general writer writes standard msgpack in
 * its smallest forms (msgpackr reads it, and zerorpc peers too). Binary
 * values are read as Buffers: up to BIN_COPY_MAX bytes copied out of the
 * received message, larger ones views of it.
 *
 * Why not msgpackr: its reader takes any of its extensions (Set, Error,
 * RegExp, typed arrays, records, structured clones, BigInts of any size) and
 * recurses without a limit; its writer turns Sets and Errors into arrays,
 * cannot write a map of more than 65535 keys, and describes a BigInt it
 * cannot write by its whole decimal form. Checking around it would take a
 * second pass over every value.
 * Internal module.
 */
import { excerpt } from "../core/errors.js";
import { BadValueError, ProtocolError, ValueError, ValueLimitError } from "./errors.js";
import { Float64 } from "./float64.js";
import { allocUnsafe, allocUnsafeSlow, asBuffer, bytesView, copyInto, isPlainBytes, readDoubleBE, readFloatBE, utf8Length, utf8Slice, utf8Write } from "./internal/bytes.js";

/** The simple reader's answer for a value it leaves to the general reader. */
export const NOT_SIMPLE: unique symbol = Symbol("not simple");

/** Longest string written or read by hand (ASCII only). */
const MAX_STR = 64;
/** Most items in an array written or read by hand (a fixarray). */
const MAX_ITEMS = 15;

/** Bytes `v` takes when written by hand; -1 when it is not a simple value. */
function sizeOfScalar(v: unknown): number {
  switch (typeof v) {
    case "number":
      if ((v | 0) === v) return v >= 0 ? (v < 0x80 ? 1 : v < 0x100 ? 2 : v < 0x10000 ? 3 : 5) : v >= -0x20 ? 1 : v >= -0x80 ? 2 : v >= -0x8000 ? 3 : 5;
      if (v >>> 0 === v) return 5;
      return 9;
    case "string": {
      const n = v.length;
      if (n > MAX_STR) return -1;
      for (let i = 0; i < n; i++) if (v.charCodeAt(i) >= 0x80) return -1;
      return n < 32 ? 1 + n : 2 + n;
    }
    case "boolean":
      return 1;
    case "undefined":
      return 3;
    case "object":
      if (v === null) return 1;
      if (v instanceof Uint8Array && isPlainBytes(v)) {
        const n = v.length;
        return n < 0x100 ? 2 + n : n < 0x10000 ? 3 + n : 5 + n;
      }
      return -1;
  }
  return -1;
}

/** Bytes `v` takes when written by hand (a scalar, or a short array of scalars); -1 otherwise. */
export function sizeOfSimple(v: unknown): number {
  if (!Array.isArray(v)) return sizeOfScalar(v);
  const n = v.length;
  if (n > MAX_ITEMS) return -1;
  let size = 1;
  for (let i = 0; i < n; i++) {
    const s = sizeOfScalar(v[i]);
    if (s < 0) return -1;
    size += s;
  }
  return size;
}

const f64 = new Float64Array(1);
const f64bytes = new Uint8Array(f64.buffer);
const littleEndian = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** Write a number as msgpackr does: an integer of 32 bits as the smallest msgpack integer, anything else as float64. */
function writeNumber(out: Uint8Array, p: number, v: number): number {
  if ((v | 0) === v) {
    if (v >= 0) {
      if (v < 0x80) out[p++] = v;
      else if (v < 0x100) {
        out[p++] = 0xcc;
        out[p++] = v;
      } else if (v < 0x10000) {
        out[p++] = 0xcd;
        out[p++] = v >>> 8;
        out[p++] = v & 0xff;
      } else {
        out[p++] = 0xce;
        p = writeU32(out, p, v);
      }
    } else if (v >= -0x20) out[p++] = v & 0xff;
    else if (v >= -0x80) {
      out[p++] = 0xd0;
      out[p++] = v & 0xff;
    } else if (v >= -0x8000) {
      out[p++] = 0xd1;
      out[p++] = (v >> 8) & 0xff;
      out[p++] = v & 0xff;
    } else {
      out[p++] = 0xd2;
      p = writeU32(out, p, v >>> 0);
    }
  } else if (v >>> 0 === v) {
    out[p++] = 0xce;
    p = writeU32(out, p, v);
  } else {
    out[p++] = 0xcb;
    f64[0] = v;
    if (littleEndian) for (let i = 7; i >= 0; i--) out[p++] = f64bytes[i]!;
    else for (let i = 0; i < 8; i++) out[p++] = f64bytes[i]!;
  }
  return p;
}

function writeScalar(out: Uint8Array, p: number, v: unknown): number {
  switch (typeof v) {
    case "number":
      return writeNumber(out, p, v);
    case "string": {
      const n = v.length;
      if (n < 32) out[p++] = 0xa0 | n;
      else {
        out[p++] = 0xd9;
        out[p++] = n;
      }
      for (let i = 0; i < n; i++) out[p++] = v.charCodeAt(i);
      return p;
    }
    case "boolean":
      out[p] = v ? 0xc3 : 0xc2;
      return p + 1;
    case "undefined":
      // msgpackr's encoding of undefined: fixext 1 of type 0
      out[p] = 0xd4;
      out[p + 1] = 0;
      out[p + 2] = 0;
      return p + 3;
  }
  if (v === null) {
    out[p] = 0xc0;
    return p + 1;
  }
  const b = v as Uint8Array;
  const n = b.length;
  if (n < 0x100) {
    out[p++] = 0xc4;
    out[p++] = n;
    if (n <= 32) for (let i = 0; i < n; i++) out[p + i] = b[i]!;
    else out.set(b, p);
  } else {
    if (n < 0x10000) {
      out[p++] = 0xc5;
      out[p++] = n >>> 8;
      out[p++] = n & 0xff;
    } else {
      out[p++] = 0xc6;
      p = writeU32(out, p, n);
    }
    out.set(b, p);
  }
  return p + n;
}

function writeU32(out: Uint8Array, p: number, n: number): number {
  out[p] = n >>> 24;
  out[p + 1] = (n >>> 16) & 0xff;
  out[p + 2] = (n >>> 8) & 0xff;
  out[p + 3] = n & 0xff;
  return p + 4;
}

/** Write `v` (checked by `sizeOfSimple` first) at `p`; returns the position after it. */
export function writeSimple(out: Uint8Array, p: number, v: unknown): number {
  if (!Array.isArray(v)) return writeScalar(out, p, v);
  const n = v.length;
  out[p++] = 0x90 | n;
  for (let i = 0; i < n; i++) p = writeScalar(out, p, v[i]);
  return p;
}

// ---- reading ----

// The readers' and writers' state is module-level `var`, not `let`: a `let`
// is checked for its temporal dead zone at each use from a function, and
// these are used per byte (measured: about a quarter of the general
// reader's time on an array of small integers).

/** Where the reader is; set by each read (the position after what it read). */
var at = 0;

/** The position after the value the last successful read took. */
export function readEnd(): number {
  return at;
}

function u32(f: Uint8Array, p: number): number {
  return f[p]! * 0x1000000 + ((f[p + 1]! << 16) | (f[p + 2]! << 8) | f[p + 3]!);
}

// readScalar repeats the general reader's scalar cases (readAny, below) on
// purpose: it answers NOT_SIMPLE where that one throws, and skips its setup;
// measured, reading a small call through the general reader alone costs
// about a tenth more.
function readScalar(f: Uint8Array, p: number, end: number): unknown {
  const b = f[p]!;
  if (b < 0x80) {
    at = p + 1;
    return b;
  }
  if (b >= 0xe0) {
    at = p + 1;
    return b - 0x100;
  }
  if (b >= 0xa0 && b <= 0xbf) return readAscii(f, p + 1, b & 0x1f, end);
  switch (b) {
    case 0xc0:
      at = p + 1;
      return null;
    case 0xc2:
      at = p + 1;
      return false;
    case 0xc3:
      at = p + 1;
      return true;
    case 0xc4:
      if (p + 2 > end) break;
      return readBin(f, p + 2, f[p + 1]!, end);
    case 0xc5:
      if (p + 3 > end) break;
      return readBin(f, p + 3, (f[p + 1]! << 8) | f[p + 2]!, end);
    case 0xc6:
      if (p + 5 > end) break;
      return readBin(f, p + 5, u32(f, p + 1), end);
    case 0xcc:
      if (p + 2 > end) break;
      at = p + 2;
      return f[p + 1]!;
    case 0xcd:
      if (p + 3 > end) break;
      at = p + 3;
      return (f[p + 1]! << 8) | f[p + 2]!;
    case 0xce:
      if (p + 5 > end) break;
      at = p + 5;
      return u32(f, p + 1);
    case 0xd0:
      if (p + 2 > end) break;
      at = p + 2;
      return (f[p + 1]! << 24) >> 24;
    case 0xd1:
      if (p + 3 > end) break;
      at = p + 3;
      return (((f[p + 1]! << 8) | f[p + 2]!) << 16) >> 16;
    case 0xd2:
      if (p + 5 > end) break;
      at = p + 5;
      return (f[p + 1]! << 24) | (f[p + 2]! << 16) | (f[p + 3]! << 8) | f[p + 4]!;
    case 0xcb:
      if (p + 9 > end) break;
      if (littleEndian) for (let i = 0; i < 8; i++) f64bytes[7 - i] = f[p + 1 + i]!;
      else for (let i = 0; i < 8; i++) f64bytes[i] = f[p + 1 + i]!;
      at = p + 9;
      return f64[0];
    case 0xd4:
      if (p + 3 > end || f[p + 1] !== 0 || f[p + 2] !== 0) break;
      at = p + 3;
      return undefined;
    case 0xd9:
      if (p + 2 > end) break;
      return readAscii(f, p + 2, f[p + 1]!, end);
  }
  return NOT_SIMPLE;
}

/**
 * Names recently read (method and event names), so that a name read again is
 * the same string, its hash already computed, and not built again.
 */
const names: ({ bytes: Uint8Array; s: string } | undefined)[] = new Array(64).fill(undefined);

/** A short ASCII string (a msgpack fixstr or str8) at `p`, from a small cache of names; NOT_SIMPLE otherwise. */
export function readName(f: Uint8Array, p: number, e: number = f.length): unknown {
  const b = p < e ? f[p] : undefined;
  let n: number;
  if (b !== undefined && b >= 0xa0 && b <= 0xbf) {
    n = b & 0x1f;
    p++;
  } else if (b === 0xd9 && p + 1 < e) {
    n = f[p + 1]!;
    p += 2;
  } else return NOT_SIMPLE;
  if (n === 0 || n > MAX_STR || p + n > e) return n === 0 ? ((at = p), "") : NOT_SIMPLE;
  const slot = (n * 7 + f[p]! * 3 + f[p + n - 1]!) & 63;
  const hit = names[slot];
  if (hit !== undefined && hit.bytes.length === n) {
    const h = hit.bytes;
    let i = 0;
    while (i < n && h[i] === f[p + i]) i++;
    if (i === n) {
      at = p + n;
      return hit.s;
    }
  }
  const s = readAscii(f, p, n, e);
  // A copy of the bytes (a Buffer's slice() is a view: it would keep the whole received chunk alive).
  if (typeof s === "string") names[slot] = { bytes: Uint8Array.prototype.slice.call(f, p, p + n), s };
  return s;
}

function readAscii(f: Uint8Array, p: number, n: number, end: number): unknown {
  if (n > MAX_STR || p + n > end) return NOT_SIMPLE;
  let s = "";
  for (let i = 0; i < n; i++) {
    const c = f[p + i]!;
    if (c >= 0x80) return NOT_SIMPLE;
    s += String.fromCharCode(c);
  }
  at = p + n;
  return s;
}

/** Binary values up to this size are copied out of the received message; larger ones are views of it. */
export const BIN_COPY_MAX = 1024;

/** Copy `n` bytes of `src` from `start` to the start of `dst`: by hand when few (cheaper than making a view to `set` from). */
export function copyBytes(dst: Uint8Array, src: Uint8Array, start: number, n: number): void {
  if (n <= 64) for (let i = 0; i < n; i++) dst[i] = src[start + i]!;
  else dst.set(new Uint8Array(src.buffer, src.byteOffset + start, n));
}

function readBin(f: Uint8Array, p: number, n: number, end: number): unknown {
  if (p + n > end) return NOT_SIMPLE;
  at = p + n;
  if (n > BIN_COPY_MAX) return bytesView(f.buffer, f.byteOffset + p, n);
  // A small value kept by the handler must not keep the whole received chunk (up to 64 KiB) alive.
  const b = allocUnsafe(n);
  copyBytes(b, f, p, n);
  return b;
}

/**
 * Read the one value that fills `f` from `p` to `end` (default: its end).
 * NOT_SIMPLE when it is not one this reader knows, or does not end exactly
 * there: the caller hands it to the general reader, which decides (and
 * reports malformed data).
 */
export function readSimple(f: Uint8Array, p: number, end: number = f.length): unknown {
  if (p >= end) return NOT_SIMPLE;
  const b = f[p]!;
  let v: unknown;
  if (b >= 0x90 && b <= 0x9f) {
    const n = b & 0x0f;
    const a = new Array<unknown>(n);
    at = p + 1;
    for (let i = 0; i < n; i++) {
      if (at >= end) return NOT_SIMPLE;
      const x = readScalar(f, at, end);
      if (x === NOT_SIMPLE) return NOT_SIMPLE;
      a[i] = x;
    }
    v = a;
  } else v = readScalar(f, p, end);
  return at === end ? v : NOT_SIMPLE;
}

// ---- the value model: the general writer and reader ----

/** Deepest nesting of arrays and maps in one value: `[]` is 1 deep, `[[1]]` 2 deep. */
export const MAX_VALUE_DEPTH = 100;
/** Most items in one value, counted over all its arrays (elements) and maps (entries). */
export const MAX_VALUE_ITEMS = 1 << 20;

/** Flag of `readValue`: int64/uint64 read as a number while exact (|n| < 2^53), else a BigInt (zrpc). Without it, always a BigInt (drpc). */
export const INT64_AUTO = 1;
/** Flag of `packValue`: integer numbers beyond 32 bits written as int64/uint64 (zrpc: exact for its peers). Without it, float64 (drpc, as msgpackr). */
export const WIDE_INTS = 2;
/** Flag of `packValue` and `readValue`: the value is an array of arguments, which counts toward no depth (an argument nests as deep as a result). */
export const ARGS = 4;

function within(e: unknown, key: string | number): unknown {
  if (e instanceof ValueError) e.within(key);
  return e;
}

function tooDeep(): ValueLimitError {
  return new ValueLimitError(`nested deeper than ${MAX_VALUE_DEPTH} arrays and maps (a value that contains itself never ends)`, MAX_VALUE_DEPTH);
}

function tooMany(): ValueLimitError {
  return new ValueLimitError(`more than ${MAX_VALUE_ITEMS} items (array elements and map entries, counted over the whole value)`, MAX_VALUE_ITEMS);
}

function protoKey(): BadValueError {
  return new BadValueError('the key "__proto__" is not carried (as a property of a plain object it would set its prototype)');
}

// -- writing --

/** The buffer values are written into; each value is handed out as a view of it, and the next starts after. */
const SLAB = 64 * 1024;
var out: Buffer = allocUnsafeSlow(SLAB);
var view = new DataView(out.buffer, out.byteOffset, out.length);
/** Write position in `out`. */
var w = 0;
/** Where the value being written starts in `out` (its reserved space first). */
var base = 0;
/** Items written so far in the value being written. */
var wItems = 0;
var wideInts = false;
var packing = false;

function newSlab(size: number): void {
  out = allocUnsafeSlow(size);
  view = new DataView(out.buffer, out.byteOffset, out.length);
}

/** Make room for `n` more bytes at `w`, moving the value written so far to a larger buffer if needed. */
function room(n: number): void {
  if (w + n <= out.length) return;
  const used = w - base;
  const need = used + n;
  const old = out;
  // Doubling while small; past 16 MiB, 16 MiB more at a time.
  newSlab(Math.max(SLAB, need + Math.min(need, 16 * 1024 * 1024)));
  copyInto(old, out, 0, base, w);
  base = 0;
  w = used;
}

/**
 * Write `v` as msgpack, with `reserve` bytes left free before it (for a
 * header the caller writes there). Throws BadValueError or ValueLimitError,
 * whose path starts at `root`, when `v` is outside the value model; nothing
 * is written then. The result is a view of a shared buffer that is never
 * written again.
 */
export function packValue(v: unknown, reserve: number, flags: number, root: string): Buffer {
  return pack(v, reserve, flags, root);
}

/**
 * Write a protocol message: the array `items`, each item a value of its own
 * (the array itself counts toward no limit). A refused item's path starts at
 * `roots[i]`, or `message[i]`; the item named "args" is an array of arguments (ARGS).
 */
export function packMessage(items: readonly unknown[], flags: number, roots: readonly (string | undefined)[] = []): Buffer {
  return pack(items, 0, flags | ENVELOPE, roots);
}

/** Flag of `pack`: `v` is a message, an array of values. */
const ENVELOPE = 0x100;

function pack(v: unknown, reserve: number, flags: number, root: string | readonly (string | undefined)[]): Buffer {
  if (packing) return packReentered(v, reserve, flags, root);
  if (out.length - w < 4096) newSlab(SLAB), (w = 0);
  base = w;
  w += reserve;
  wItems = 0;
  wideInts = (flags & WIDE_INTS) !== 0;
  packing = true;
  try {
    if ((flags & ENVELOPE) !== 0) writeEnvelope(v as readonly unknown[], root as readonly (string | undefined)[]);
    else writeAny(v, (flags & ARGS) !== 0 && Array.isArray(v) ? -1 : 0);
  } catch (e) {
    w = base;
    if (e instanceof ValueError) nameRoot(e, root);
    throw e;
  } finally {
    packing = false;
  }
  const r = out.subarray(base, w);
  w = (w + 7) & ~7;
  return r;
}

function writeEnvelope(items: readonly unknown[], roots: readonly (string | undefined)[]): void {
  writeHead(0x90, items.length);
  let i = 0;
  try {
    for (; i < items.length; i++) writeAny(items[i], roots[i] === "args" && Array.isArray(items[i]) ? -1 : 0);
  } catch (e) {
    throw within(e, i);
  }
}

/** Write the root of a refused value's path into its message: `root`, or the name of the message's item it is in. */
function nameRoot(e: ValueError, root: string | readonly (string | undefined)[]): void {
  if (typeof root === "string") e.rooted(root);
  else {
    const i = e.path.shift() as number;
    e.rooted(root[i] ?? `message[${i}]`);
  }
}

/** A `toJSON` that packs a value itself: it gets a buffer of its own, and the outer value's state is kept. */
function packReentered(v: unknown, reserve: number, flags: number, root: string | readonly (string | undefined)[]): Buffer {
  const saved = { out, view, w, base, wItems, wideInts };
  newSlab(SLAB);
  w = 0;
  packing = false;
  try {
    return pack(v, reserve, flags, root);
  } finally {
    ({ out, view, w, base, wItems, wideInts } = saved);
    packing = true;
  }
}

function writeAny(v: unknown, d: number): void {
  switch (typeof v) {
    case "string":
      writeStr(v);
      return;
    case "number":
      writeNum(v);
      return;
    case "object":
      if (v === null) {
        room(1);
        out[w++] = 0xc0;
      } else writeObj(v, d);
      return;
    case "boolean":
      room(1);
      out[w++] = v ? 0xc3 : 0xc2;
      return;
    case "undefined":
      room(3);
      w = writeScalar(out, w, undefined);
      return;
    case "bigint":
      writeBig(v);
      return;
  }
  throw new BadValueError(`${excerpt(v)} is not carried`);
}

const TWO_63 = 2 ** 63;
const TWO_64 = 2 ** 64;

function writeNum(v: number): void {
  room(9);
  if (v >= 0 && v < 0x80 && (v | 0) === v) {
    out[w++] = v;
    return;
  }
  if (wideInts && (v > 0xffffffff || v < -0x80000000) && Number.isInteger(v) && v >= -TWO_63 && v < TWO_64) {
    if (v < TWO_63) {
      out[w] = 0xd3;
      view.setBigInt64(w + 1, BigInt(v));
    } else {
      out[w] = 0xcf;
      view.setBigUint64(w + 1, BigInt(v));
    }
    w += 9;
    return;
  }
  w = writeNumber(out, w, v);
}

function writeBig(v: bigint): void {
  room(9);
  if (v >= -0x8000000000000000n && v < 0x8000000000000000n) {
    out[w] = 0xd3;
    view.setBigInt64(w + 1, v);
  } else if (v > 0n && v < 0x10000000000000000n) {
    out[w] = 0xcf;
    view.setBigUint64(w + 1, v);
  } else throw new ValueLimitError(`${excerpt(v)} is beyond 64 bits, the widest integer carried`, 64);
  w += 9;
}

function strHead(n: number): number {
  return n < 32 ? 1 : n < 0x100 ? 2 : n < 0x10000 ? 3 : 5;
}

function writeStr(s: string): void {
  const n = s.length;
  if (n < 32) {
    room(1 + n);
    // ASCII (most keys and short strings) by hand; anything else natively.
    let p = w + 1;
    let i = 0;
    for (; i < n; i++) {
      const c = s.charCodeAt(i);
      if (c >= 0x80) break;
      out[p++] = c;
    }
    if (i === n) {
      out[w] = 0xa0 | n;
      w = p;
      return;
    }
  }
  // At most 3 bytes per UTF-16 unit; a long string is measured instead of reserving 3x its length.
  const max = n < 0x100000 ? n * 3 : utf8Length(s);
  const h = strHead(max);
  room(h + max);
  const len = utf8Write(out, s, w + h, max);
  const hh = strHead(len);
  if (hh !== h) out.copyWithin(w + hh, w + h, w + h + len);
  if (hh === 1) out[w] = 0xa0 | len;
  else if (hh === 2) {
    out[w] = 0xd9;
    out[w + 1] = len;
  } else if (hh === 3) {
    out[w] = 0xda;
    out[w + 1] = len >>> 8;
    out[w + 2] = len & 0xff;
  } else {
    out[w] = 0xdb;
    writeU32(out, w + 1, len);
  }
  w += hh + len;
}

/** An array (0x90, 0xdc, 0xdd) or map (0x80, 0xde, 0xdf) header of `n` items. */
function writeHead(fix: number, n: number): void {
  room(5);
  if (n < 16) out[w++] = fix | n;
  else if (n < 0x10000) {
    out[w] = fix === 0x90 ? 0xdc : 0xde;
    out[w + 1] = n >>> 8;
    out[w + 2] = n & 0xff;
    w += 3;
  } else {
    out[w] = fix === 0x90 ? 0xdd : 0xdf;
    w = writeU32(out, w + 1, n);
  }
}

function writeObj(o: object, d: number): void {
  if (Array.isArray(o)) {
    writeArr(o, d);
    return;
  }
  const proto: unknown = Object.getPrototypeOf(o);
  if (proto === Object.prototype || proto === null) writePlain(o as Record<string, unknown>, d);
  else if (o instanceof Uint8Array) writeBin(o);
  else if (o instanceof Date) writeDate(o);
  else if (o instanceof Map) writeMap(o, d);
  else if (o instanceof Float64) {
    room(9);
    out[w] = 0xcb;
    view.setFloat64(w + 1, o.value);
    w += 9;
  }
  else if (typeof (o as { toJSON?: unknown }).toJSON === "function") {
    // As JSON.stringify: the object's chosen form. A chain of toJSON results counts as nesting.
    if (d >= MAX_VALUE_DEPTH) throw tooDeep();
    writeAny((o as { toJSON(): unknown }).toJSON(), d + 1);
  } else throw new BadValueError(`${excerpt(o)} is not carried${advice(o)}`);
}

function advice(o: object): string {
  if (o instanceof Set) return ": send an array";
  if (o instanceof Error) return ": throw it, or send its fields in a plain object";
  if (o instanceof RegExp) return ": send its source";
  if (ArrayBuffer.isView(o) || o instanceof ArrayBuffer) return ": send a Uint8Array of its bytes";
  if (typeof (o as { then?: unknown }).then === "function") return ": await it first";
  return ": send a plain object, or give the class a toJSON method";
}

function writeArr(a: readonly unknown[], d: number): void {
  if (d >= MAX_VALUE_DEPTH) throw tooDeep();
  const n = a.length;
  if ((wItems += n) > MAX_VALUE_ITEMS) throw tooMany();
  writeHead(0x90, n);
  let i = 0;
  try {
    for (; i < n; i++) writeAny(a[i], d + 1);
  } catch (e) {
    throw within(e, i);
  }
}

function writePlain(o: Record<string, unknown>, d: number): void {
  if (d >= MAX_VALUE_DEPTH) throw tooDeep();
  const keys = Object.keys(o);
  const n = keys.length;
  if ((wItems += n) > MAX_VALUE_ITEMS) throw tooMany();
  writeHead(0x80, n);
  let k = "";
  try {
    for (let i = 0; i < n; i++) {
      k = keys[i]!;
      if (k === "__proto__") throw protoKey();
      writeStr(k);
      writeAny(o[k], d + 1);
    }
  } catch (e) {
    throw within(e, k);
  }
}

function writeMap(m: ReadonlyMap<unknown, unknown>, d: number): void {
  if (d >= MAX_VALUE_DEPTH) throw tooDeep();
  const n = m.size;
  if ((wItems += n) > MAX_VALUE_ITEMS) throw tooMany();
  writeHead(0x80, n);
  let k: string | number = "";
  try {
    for (const [key, v] of m) {
      if (typeof key === "string") {
        k = key;
        if (key === "__proto__") throw protoKey();
        writeStr(key);
      } else if (typeof key === "number") {
        k = key;
        writeNum(key);
      } else {
        k = "(key)";
        throw new BadValueError(`a Map key that is ${excerpt(key)}: keys are strings or numbers`);
      }
      writeAny(v, d + 1);
    }
  } catch (e) {
    throw within(e, k);
  }
}

function writeBin(b: Uint8Array): void {
  const n = b.length;
  room(5 + n);
  if (n < 0x100) {
    out[w] = 0xc4;
    out[w + 1] = n;
    w += 2;
  } else if (n < 0x10000) {
    out[w] = 0xc5;
    out[w + 1] = n >>> 8;
    out[w + 2] = n & 0xff;
    w += 3;
  } else {
    out[w] = 0xc6;
    w = writeU32(out, w + 1, n);
  }
  if (n <= 32) for (let i = 0; i < n; i++) out[w + i] = b[i]!;
  else out.set(b, w);
  w += n;
}

/** The msgpack timestamp extension (type -1), in its smallest form. */
function writeDate(date: Date): void {
  const ms = date.getTime();
  if (Number.isNaN(ms)) throw new BadValueError("an invalid Date is not carried");
  const s = Math.floor(ms / 1000);
  const ns = (ms - s * 1000) * 1e6;
  room(15);
  if (ns === 0 && s >= 0 && s < 0x100000000) {
    out[w] = 0xd6;
    out[w + 1] = 0xff;
    w = writeU32(out, w + 2, s);
  } else if (s >= 0 && s < 0x400000000) {
    // timestamp 64: nanoseconds in 30 bits, then seconds in 34
    out[w] = 0xd7;
    out[w + 1] = 0xff;
    view.setUint32(w + 2, ns * 4 + Math.floor(s / 0x100000000));
    view.setUint32(w + 6, s % 0x100000000);
    w += 10;
  } else {
    out[w] = 0xc7;
    out[w + 1] = 12;
    out[w + 2] = 0xff;
    view.setUint32(w + 3, ns);
    view.setBigInt64(w + 7, BigInt(s));
    w += 15;
  }
}

// -- reading --

/** The message being read (as a Buffer, for its native UTF-8 decoding) and where its value must end. */
var src: Buffer = allocUnsafe(0);
var end = 0;
/** Items read so far in the value being read. */
var rItems = 0;
var int64Auto = false;

function truncated(): ProtocolError {
  return new ProtocolError("undecodable value: it ends before its last item");
}

/**
 * Read the value at `p` of `f` (it must end by `e`); `readEnd()` is then the
 * position after it. Throws ProtocolError for bytes that are not msgpack, and
 * BadValueError or ValueLimitError, whose path starts at `root`, for a value
 * outside the model.
 */
export function readValue(f: Uint8Array, p: number, e: number, flags: number, root: string): unknown {
  src = asBuffer(f);
  end = e;
  at = p;
  rItems = 0;
  int64Auto = (flags & INT64_AUTO) !== 0;
  try {
    return readAny((flags & ARGS) !== 0 && f[p]! >= 0x90 && (f[p]! <= 0x9f || f[p] === 0xdc || f[p] === 0xdd) ? -1 : 0);
  } catch (err) {
    if (err instanceof ValueError) err.rooted(root);
    throw err;
  } finally {
    src = EMPTY;
  }
}

const EMPTY = allocUnsafe(0);

/** The number of items of the array header at `p` of `f` (then `readEnd()` is after it); -1 when there is none. */
export function readArrayHead(f: Uint8Array, p: number, e: number = f.length): number {
  const b = p < e ? f[p] : undefined;
  if (b === undefined) return -1;
  if (b >= 0x90 && b <= 0x9f) {
    at = p + 1;
    return b & 0x0f;
  }
  if (b === 0xdc && p + 3 <= e) {
    at = p + 3;
    return (f[p + 1]! << 8) | f[p + 2]!;
  }
  if (b === 0xdd && p + 5 <= e) {
    at = p + 5;
    return u32(f, p + 1);
  }
  return -1;
}

/**
 * Read `count` values one after another from `p` to `e` (default: the end
 * of `f`), each a value of its own (its own depth and item limits), as the
 * items of a batch. A refused value's path is `root[i]`; bytes after the last
 * value are a ProtocolError.
 */
export function readValues(f: Uint8Array, p: number, count: number, root: string, e: number = f.length): unknown[] {
  const a = new Array<unknown>(count);
  for (let i = 0; i < count; i++) {
    if (p >= e) throw new ProtocolError("undecodable message: fewer values than its array announces");
    let v = readScalar(f, p, e);
    if (v === NOT_SIMPLE) {
      try {
        v = readValue(f, p, e, 0, root);
      } catch (err) {
        if (err instanceof ValueError) err.within(i).rooted(root);
        throw err;
      }
    }
    a[i] = v;
    p = at;
  }
  if (p !== e) throw new ProtocolError("undecodable message: bytes after its end");
  return a;
}

/** Read the one value that fills `f` from `p` to `e`, as `readValue`; anything after it is a ProtocolError. */
export function unpackValue(f: Uint8Array, p: number, e: number, flags: number, root: string): unknown {
  const v = readValue(f, p, e, flags, root);
  if (at !== e) throw new ProtocolError("undecodable value: bytes after its end");
  return v;
}

function need(p: number, n: number): void {
  if (p + n > end) throw truncated();
}

function u16(p: number): number {
  return (src[p]! << 8) | src[p + 1]!;
}

function readAny(d: number): unknown {
  const p = at;
  if (p >= end) throw truncated();
  const f = src;
  const b = f[p]!;
  if (b < 0x80) {
    at = p + 1;
    return b;
  }
  if (b >= 0xe0) {
    at = p + 1;
    return b - 0x100;
  }
  if (b >= 0xa0 && b < 0xc0) return readStr(p + 1, b & 0x1f);
  if (b < 0x90) return readMap(p + 1, b & 0x0f, d);
  if (b < 0xa0) return readArr(p + 1, b & 0x0f, d);
  switch (b) {
    case 0xc0:
      at = p + 1;
      return null;
    case 0xc2:
      at = p + 1;
      return false;
    case 0xc3:
      at = p + 1;
      return true;
    case 0xc4:
      need(p, 2);
      return readBinAt(p + 2, f[p + 1]!);
    case 0xc5:
      need(p, 3);
      return readBinAt(p + 3, u16(p + 1));
    case 0xc6:
      need(p, 5);
      return readBinAt(p + 5, u32(f, p + 1));
    case 0xc7:
      need(p, 3);
      return readExt(f[p + 2]!, p + 3, f[p + 1]!);
    case 0xc8:
      need(p, 4);
      return readExt(f[p + 3]!, p + 4, u16(p + 1));
    case 0xc9:
      need(p, 6);
      return readExt(f[p + 5]!, p + 6, u32(f, p + 1));
    case 0xca:
      need(p, 5);
      at = p + 5;
      return readFloatBE(f, p + 1);
    case 0xcb:
      need(p, 9);
      at = p + 9;
      return readDoubleBE(f, p + 1);
    case 0xcc:
      need(p, 2);
      at = p + 2;
      return f[p + 1]!;
    case 0xcd:
      need(p, 3);
      at = p + 3;
      return u16(p + 1);
    case 0xce:
      need(p, 5);
      at = p + 5;
      return u32(f, p + 1);
    case 0xcf:
      need(p, 9);
      at = p + 9;
      return int64(u32(f, p + 1), u32(f, p + 5));
    case 0xd0:
      need(p, 2);
      at = p + 2;
      return (f[p + 1]! << 24) >> 24;
    case 0xd1:
      need(p, 3);
      at = p + 3;
      return (u16(p + 1) << 16) >> 16;
    case 0xd2:
      need(p, 5);
      at = p + 5;
      return u32(f, p + 1) | 0;
    case 0xd3:
      need(p, 9);
      at = p + 9;
      return int64(u32(f, p + 1) | 0, u32(f, p + 5));
    case 0xd4:
      need(p, 2);
      return readExt(f[p + 1]!, p + 2, 1);
    case 0xd5:
      need(p, 2);
      return readExt(f[p + 1]!, p + 2, 2);
    case 0xd6:
      need(p, 2);
      return readExt(f[p + 1]!, p + 2, 4);
    case 0xd7:
      need(p, 2);
      return readExt(f[p + 1]!, p + 2, 8);
    case 0xd8:
      need(p, 2);
      return readExt(f[p + 1]!, p + 2, 16);
    case 0xd9:
      need(p, 2);
      return readStr(p + 2, f[p + 1]!);
    case 0xda:
      need(p, 3);
      return readStr(p + 3, u16(p + 1));
    case 0xdb:
      need(p, 5);
      return readStr(p + 5, u32(f, p + 1));
    case 0xdc:
      need(p, 3);
      return readArr(p + 3, u16(p + 1), d);
    case 0xdd:
      need(p, 5);
      return readArr(p + 5, u32(f, p + 1), d);
    case 0xde:
      need(p, 3);
      return readMap(p + 3, u16(p + 1), d);
    case 0xdf:
      need(p, 5);
      return readMap(p + 5, u32(f, p + 1), d);
  }
  throw new ProtocolError("undecodable value: the byte 0xc1, which msgpack never uses");
}

/** An int64 (`hi` signed) or uint64 (`hi` unsigned) of two 32-bit halves. */
function int64(hi: number, lo: number): number | bigint {
  if (int64Auto && hi >= -0x200000 && hi < 0x200000) return hi * 0x100000000 + lo;
  return (BigInt(hi) << 32n) + BigInt(lo);
}

const utf8 = utf8Slice;

function readStr(p: number, n: number): string {
  const e = p + n;
  if (e > end) throw truncated();
  at = e;
  const f = src;
  if (n < 10) {
    // Very short ASCII strings are cheaper built here than by a call into Node.
    let s = "";
    for (let i = p; i < e; i++) {
      const c = f[i]!;
      if (c >= 0x80) return utf8(f, p, e);
      s += String.fromCharCode(c);
    }
    return s;
  }
  return utf8(f, p, e);
}

function readBinAt(p: number, n: number): Buffer {
  const e = p + n;
  if (e > end) throw truncated();
  at = e;
  if (n > BIN_COPY_MAX) return bytesView(src.buffer, src.byteOffset + p, n);
  const b = allocUnsafe(n);
  copyBytes(b, src, p, n);
  return b;
}

function readArr(p: number, n: number, d: number): unknown[] {
  if (d >= MAX_VALUE_DEPTH) throw tooDeep();
  if (n > end - p) throw truncated(); // every item takes a byte at least
  if ((rItems += n) > MAX_VALUE_ITEMS) throw tooMany();
  at = p;
  const a = new Array<unknown>(n);
  let i = 0;
  try {
    for (; i < n; i++) a[i] = readAny(d + 1);
  } catch (e) {
    throw within(e, i);
  }
  return a;
}

function readMap(p: number, n: number, d: number): Record<string, unknown> {
  if (d >= MAX_VALUE_DEPTH) throw tooDeep();
  if (n > (end - p) >> 1) throw truncated(); // every entry takes two bytes at least
  if ((rItems += n) > MAX_VALUE_ITEMS) throw tooMany();
  at = p;
  const o: Record<string, unknown> = {};
  let k = "";
  try {
    for (let i = 0; i < n; i++) {
      k = `(key of entry ${i})`;
      k = readKey();
      if (k === "__proto__") throw protoKey();
      o[k] = readAny(d + 1);
    }
  } catch (e) {
    throw within(e, k);
  }
  return o;
}

/**
 * Keys read recently, so that a key read again is the same string (already
 * internalized as a property name) and is not built again. Short ASCII keys
 * only; a slot holds the key's bytes (ASCII codes) and its string.
 */
const KEY_SLOTS = 1024;
const keyBytes: (Uint8Array | undefined)[] = new Array<Uint8Array | undefined>(KEY_SLOTS).fill(undefined);
const keyStrings: string[] = new Array<string>(KEY_SLOTS).fill("");

function readCachedKey(p: number, n: number): string {
  const e = p + n;
  if (e > end) throw truncated();
  const f = src;
  const slot = n === 0 ? 0 : (n * 31 + f[p]! * 7 + f[e - 1]! * 3 + f[p + (n >> 1)]!) & (KEY_SLOTS - 1);
  const hit = keyBytes[slot];
  if (hit !== undefined && hit.length === n) {
    let i = 0;
    while (i < n && hit[i] === f[p + i]) i++;
    if (i === n) {
      at = e;
      return keyStrings[slot]!;
    }
  }
  const s = readStr(p, n);
  if (s.length === n) {
    // ASCII: as many characters as bytes. A copy of the bytes: a view would keep the received message alive.
    keyBytes[slot] = Uint8Array.prototype.slice.call(f, p, e);
    keyStrings[slot] = s;
  }
  return s;
}

/** A map key: a string, or a number as its decimal string (as a JavaScript property key is). */
function readKey(): string {
  const p = at;
  if (p >= end) throw truncated();
  const b = src[p]!;
  if (b >= 0xa0 && b < 0xc0) return (b & 0x1f) < 16 ? readCachedKey(p + 1, b & 0x1f) : readStr(p + 1, b & 0x1f);
  if (b === 0xd9 || b === 0xda || b === 0xdb) return readAny(0) as string;
  if (b < 0x80 || b >= 0xe0 || (b >= 0xca && b <= 0xd3)) return String(readAny(0));
  throw new BadValueError(`a map key that is ${b >= 0x80 && b < 0xa0 ? "a map or an array" : b === 0xc0 ? "nil" : b === 0xc2 || b === 0xc3 ? "a boolean" : b >= 0xc4 && b <= 0xc6 ? "binary" : "an extension"}: keys are strings or numbers`);
}

/** What msgpackr writes with its extensions of these types (none is carried). */
const MSGPACKR_EXT: Record<number, string> = {
  0x42: "msgpackr's BigInt",
  0x62: "msgpackr's bundled strings",
  0x65: "msgpackr's Error",
  0x69: "msgpackr's structured clone",
  0x70: "msgpackr's structured clone reference",
  0x72: "msgpackr's record definition",
  0x73: "msgpackr's Set",
  0x74: "msgpackr's typed array",
  0x78: "msgpackr's RegExp",
};

function readExt(type: number, p: number, n: number): unknown {
  if (p + n > end) throw truncated();
  at = p + n;
  if (type === 0 && n === 1) return undefined; // msgpackr's undefined
  if (type === 0xff && (n === 4 || n === 8 || n === 12)) return readDate(p, n);
  if (type === 0x42) throw new ValueLimitError(`an integer of ${n * 8} bits (msgpackr's BigInt extension): integers are carried up to 64 bits`, 64);
  const name = type === 0xff ? `a timestamp of ${n} bytes` : MSGPACKR_EXT[type];
  throw new BadValueError(`the msgpack extension of type ${type > 127 ? type - 256 : type}${name === undefined ? "" : ` (${name})`} is not carried`);
}

function readDate(p: number, n: number): Date {
  const f = src;
  let s: number;
  let ns = 0;
  if (n === 4) s = u32(f, p);
  else if (n === 8) {
    const hi = u32(f, p);
    ns = Math.floor(hi / 4);
    s = (hi % 4) * 0x100000000 + u32(f, p + 4);
  } else {
    ns = u32(f, p);
    s = (u32(f, p + 4) | 0) * 0x100000000 + u32(f, p + 8);
  }
  const date = new Date(s * 1000 + Math.floor(ns / 1e6));
  if (ns >= 1e9 || Number.isNaN(date.getTime())) throw new BadValueError("a timestamp outside what a Date holds is not carried");
  return date;
}
