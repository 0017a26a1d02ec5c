/**
 * A by-hand msgpack writer and reader for the values most calls carry: nil,
 * booleans, numbers, short ASCII strings, binary, and short arrays of those.
 * General msgpack (objects, nested values, big integers, extensions) stays
 * with msgpackr; these functions say "not mine" (-1 or NOT_SIMPLE) and the
 * caller hands the value to it.
 *
 * The bytes are exactly the ones msgpackr writes for the same value with the
 * options the protocols use (`useRecords: false`): a peer cannot tell which
 * wrote them. The reader accepts only the encodings listed here and leaves
 * anything else (and any error) to msgpackr. Binary values are read as
 * Buffers that are views of the received frame, not copies (as msgpackr's
 * own reader gives them): transports hand every message its own memory.
 *
 * Why: a one-argument call through msgpackr costs its general setup on both
 * ends. These paths are what an echo of a small value needs, and nothing more.
 * Internal module.
 */

/** The reader's answer for a value it leaves to msgpackr. */
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
      if (v instanceof Uint8Array && (v.constructor === Buffer || v.constructor === Uint8Array)) {
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

function writeScalar(out: Uint8Array, p: number, v: unknown): number {
  switch (typeof v) {
    case "number":
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

/** Where the reader is; set by each read (the position after what it read). */
let at = 0;

/** The position after the value the last successful read took. */
export function readEnd(): number {
  return at;
}

function u32(f: Uint8Array, p: number): number {
  return f[p]! * 0x1000000 + ((f[p + 1]! << 16) | (f[p + 2]! << 8) | f[p + 3]!);
}

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
export function readName(f: Uint8Array, p: number): unknown {
  const b = f[p];
  let n: number;
  if (b !== undefined && b >= 0xa0 && b <= 0xbf) {
    n = b & 0x1f;
    p++;
  } else if (b === 0xd9 && p + 1 < f.length) {
    n = f[p + 1]!;
    p += 2;
  } else return NOT_SIMPLE;
  if (n === 0 || n > MAX_STR || p + n > f.length) return n === 0 ? ((at = p), "") : NOT_SIMPLE;
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
  const s = readAscii(f, p, n, f.length);
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
  if (n > BIN_COPY_MAX) return Buffer.from(f.buffer, f.byteOffset + p, n);
  // A small value kept by the handler must not keep the whole received chunk (up to 64 KiB) alive.
  const b = Buffer.allocUnsafe(n);
  copyBytes(b, f, p, n);
  return b;
}

/**
 * Read the one value that fills `f` from `p` to its end. NOT_SIMPLE when it
 * is not one this reader knows, or does not end exactly there: the caller
 * hands it to msgpackr, which decides (and reports malformed data).
 */
export function readSimple(f: Uint8Array, p: number): unknown {
  const end = f.length;
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
