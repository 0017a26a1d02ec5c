/**
 * Bytes on any host: Node's Buffer where the host has one (its allocation
 * and UTF-8 paths are the fastest there), plain Uint8Array with
 * TextEncoder/TextDecoder and DataView in a browser. The value codec and the
 * drpc codec allocate and convert through these, so the RPC client runs in a
 * browser, where no `Buffer` exists. Values made here are typed Buffer for the
 * Node code that uses them; in a browser they are Uint8Array, and only
 * Uint8Array methods are called on them on the client's paths.
 * Internal module: not part of the public API.
 */

/** Node's Buffer, or undefined in a browser. */
export const NodeBuffer: typeof Buffer | undefined = (globalThis as { Buffer?: typeof Buffer }).Buffer;

const encoder = NodeBuffer === undefined ? new TextEncoder() : undefined;
const decoder = NodeBuffer === undefined ? new TextDecoder() : undefined;

/** Uninitialised bytes (pooled on Node). */
export const allocUnsafe: (n: number) => Buffer = NodeBuffer !== undefined ? (n) => NodeBuffer.allocUnsafe(n) : (n) => new Uint8Array(n) as Buffer;
/** Uninitialised bytes of their own (not pooled). */
export const allocUnsafeSlow: (n: number) => Buffer = NodeBuffer !== undefined ? (n) => NodeBuffer.allocUnsafeSlow(n) : (n) => new Uint8Array(n) as Buffer;
/** A view of `n` bytes of `buf` from `offset`, no copy. */
export const bytesView: (buf: ArrayBufferLike, offset: number, n: number) => Buffer =
  NodeBuffer !== undefined ? (buf, offset, n) => NodeBuffer.from(buf, offset, n) : (buf, offset, n) => new Uint8Array(buf, offset, n) as Buffer;
/** `b` as a Buffer on Node (a view, no copy), as it is elsewhere. */
export const asBuffer: (b: Uint8Array) => Buffer =
  NodeBuffer !== undefined ? (b) => (NodeBuffer.isBuffer(b) ? b : NodeBuffer.from(b.buffer, b.byteOffset, b.byteLength)) : (b) => b as Buffer;

/** Whether `v` is exactly a Uint8Array or a Buffer (not another view type or a subclass). */
export function isPlainBytes(v: Uint8Array): boolean {
  return v.constructor === Uint8Array || (NodeBuffer !== undefined && v.constructor === NodeBuffer);
}

/** UTF-8 bytes of `s`. */
export const utf8Length: (s: string) => number = NodeBuffer !== undefined ? (s) => NodeBuffer.byteLength(s) : (s) => encoder!.encode(s).length;

/** Write `s` as UTF-8 into `dst` at `at`, at most `max` bytes; returns the bytes written. */
export const utf8Write: (dst: Buffer, s: string, at: number, max: number) => number =
  NodeBuffer !== undefined ? (dst, s, at, max) => dst.write(s, at, max, "utf8") : (dst, s, at, max) => encoder!.encodeInto(s, dst.subarray(at, at + max)).written;

type Utf8Sliced = Buffer & { utf8Slice(start: number, end: number): string };
/** UTF-8 text of `b` from `start` to `end`: Node's decoding without `toString`'s argument handling (half the cost for short strings). */
export const utf8Slice: (b: Buffer, start: number, end: number) => string =
  NodeBuffer === undefined
    ? (b, start, e) => decoder!.decode(b.subarray(start, e))
    : typeof (NodeBuffer.prototype as Utf8Sliced).utf8Slice === "function"
      ? (b, start, e) => (b as Utf8Sliced).utf8Slice(start, e)
      : (b, start, e) => b.toString("utf8", start, e);

/** Copy `src[start, end)` into `dst` at `at`. */
export const copyInto: (src: Uint8Array, dst: Uint8Array, at: number, start: number, end: number) => void =
  NodeBuffer !== undefined
    ? (src, dst, at, start, end) => void NodeBuffer.prototype.copy.call(src, dst, at, start, end)
    : (src, dst, at, start, end) => dst.set(src.subarray(start, end), at);

/** The big-endian float32 at `p` of `b` (a Buffer on Node). */
export const readFloatBE: (b: Uint8Array, p: number) => number =
  NodeBuffer !== undefined ? (b, p) => (b as Buffer).readFloatBE(p) : (b, p) => new DataView(b.buffer, b.byteOffset, b.byteLength).getFloat32(p);
/** The big-endian float64 at `p` of `b` (a Buffer on Node). */
export const readDoubleBE: (b: Uint8Array, p: number) => number =
  NodeBuffer !== undefined ? (b, p) => (b as Buffer).readDoubleBE(p) : (b, p) => new DataView(b.buffer, b.byteOffset, b.byteLength).getFloat64(p);
