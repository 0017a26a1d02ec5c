/**
 * How a tilth message rides in one WebSocket binary message: its frames in
 * the stream framing of tcp (a 4-byte big-endian header per frame, bit 31 set
 * while more frames follow, bits 0-29 the length), so a message of one frame
 * costs 4 bytes more than its payload. Plain Uint8Array and DataView only: the
 * browser client uses this module too.
 * Internal module: not part of the public API.
 */

/** Bytes of a frame header. */
export const WS_HEADER = 4;
const MORE = 0x8000_0000;
const RESERVED = 0x4000_0000;
const LENGTH = 0x3fff_ffff;

/** Bytes a message of `frames` frames and `payload` bytes takes in one WebSocket message. */
export function wsWireSize(payload: number, frames: number): number {
  return payload + WS_HEADER * frames;
}

/** Write a frame header at `at`. */
export function putWsHeader(dst: Uint8Array, at: number, length: number, more: boolean): void {
  const w = (more ? length | MORE : length) >>> 0;
  dst[at] = w >>> 24;
  dst[at + 1] = (w >>> 16) & 0xff;
  dst[at + 2] = (w >>> 8) & 0xff;
  dst[at + 3] = w & 0xff;
}

/**
 * Encode a message (frames already checked) into one buffer of `wsWireSize`
 * bytes, made by `alloc`.
 */
export function encodeWsMessage(msg: readonly Uint8Array[], payload: number, alloc: (n: number) => Uint8Array): Uint8Array {
  const out = alloc(wsWireSize(payload, msg.length));
  putWsMessage(msg, out, 0);
  return out;
}

/** Write a message's frames, each after its header, into `dst` from `at` (room for `wsWireSize` bytes). */
export function putWsMessage(msg: readonly Uint8Array[], dst: Uint8Array, at: number): void {
  const last = msg.length - 1;
  for (let i = 0; i <= last; i++) {
    const f = msg[i]!;
    putWsHeader(dst, at, f.byteLength, i < last);
    dst.set(f, at + WS_HEADER);
    at += WS_HEADER + f.byteLength;
  }
}

/** Why a WebSocket message is not a tilth message (as a sentence), or the frames it carries. */
export type WsDecoded = { frames: Uint8Array[]; payload: number } | { error: string; tooLarge?: boolean; size?: number };

/**
 * Decode one WebSocket message into its frames: views of `buf`, no copy.
 * Checks every header before using it: a length past the end, a reserved bit,
 * bytes after the last frame, more than `maxFrames` frames or more than
 * `maxMessageSize` bytes of payload are errors.
 */
export function decodeWsMessage(buf: Uint8Array, maxMessageSize: number, maxFrames: number): WsDecoded {
  const len = buf.byteLength;
  const frames: Uint8Array[] = [];
  let p = 0;
  let payload = 0;
  for (;;) {
    if (p + WS_HEADER > len) return { error: `a frame header is cut short at byte ${p} of ${len}` };
    const w = ((buf[p]! << 24) | (buf[p + 1]! << 16) | (buf[p + 2]! << 8) | buf[p + 3]!) >>> 0;
    if ((w & RESERVED) !== 0) return { error: "reserved header bit set" };
    const n = w & LENGTH;
    p += WS_HEADER;
    if (p + n > len) return { error: `a frame announces ${n} bytes, ${len - p} remain` };
    payload += n;
    if (payload > maxMessageSize) return { error: "too large", tooLarge: true, size: payload };
    if (frames.length >= maxFrames) return { error: `more than ${maxFrames} frames`, tooLarge: true, size: frames.length + 1 };
    frames.push(buf.subarray(p, p + n));
    p += n;
    if ((w & MORE) === 0) break;
  }
  if (p !== len) return { error: `${len - p} bytes after the last frame` };
  return { frames, payload };
}
