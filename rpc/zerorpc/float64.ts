/**
 * `float64(3)`: a number that a ZeroRPC peer must see as a float. msgpack
 * writers (msgpackr, zerorpc-node) write a whole number as an integer, so a
 * Python peer gets `3` for `3.0`; a Float64 is written as msgpack float64
 * whatever its value. Over other protocols and in-process it is an object
 * whose `valueOf()` is the number.
 *
 * How: each Float64 in an event is swapped for a placeholder string of 8
 * characters before packing (msgpack writes it as a fixstr: 0xa8 and 8 bytes)
 * and the placeholder's 9 bytes are then overwritten by float64's 9 (0xcb and
 * 8 bytes), so the packer needs to know nothing of it.
 * @module
 */
import { randomBytes } from "node:crypto";
import { ProtocolError } from "../errors.js";

/** A number sent as msgpack float64 on zrpc. */
export class Float64 {
  readonly value: number;
  constructor(value: number) {
    this.value = value;
    created = true;
  }
  valueOf(): number {
    return this.value;
  }
  toJSON(): number {
    return this.value;
  }
}

/** Whether any Float64 was ever made: events are scanned for one only then. */
let created = false;

/**
 * Mark `n` to be sent as a float: `client.call("scale", [float64(3)])` gives a
 * Python peer `3.0`.
 */
export function float64(n: number): Float64 {
  return new Float64(n);
}

/** Every Float64 in `v` (arrays and plain objects, to depth 64), swapped by `swap`; undefined when there is none. */
function replaceFloats(v: unknown, swap: (f: Float64) => string, depth = 0): { value: unknown } | undefined {
  if (v instanceof Float64) return { value: swap(v) };
  if (typeof v !== "object" || v === null || depth > 64 || ArrayBuffer.isView(v)) return undefined;
  if (Array.isArray(v)) {
    let out: unknown[] | undefined;
    v.forEach((x, i) => {
      const r = replaceFloats(x, swap, depth + 1);
      if (r) (out ??= [...v])[i] = r.value;
    });
    return out && { value: out };
  }
  const proto = Object.getPrototypeOf(v);
  if (proto !== Object.prototype && proto !== null) return undefined;
  let out: Record<string, unknown> | undefined;
  for (const k of Object.keys(v)) {
    const r = replaceFloats((v as Record<string, unknown>)[k], swap, depth + 1);
    if (r) (out ??= { ...(v as Record<string, unknown>) })[k] = r.value;
  }
  return out && { value: out };
}

/**
 * `encode(args)`, with each Float64 in `args` written as msgpack float64.
 * Without one (the usual case) it is `encode(args)` and nothing more.
 */
export function encodeWithFloats(args: unknown, encode: (args: unknown) => Uint8Array[]): Uint8Array[] {
  if (!created) return encode(args);
  const marks = new Map<string, number>();
  const swapped = replaceFloats(args, (f) => {
    let mark: string;
    do mark = randomBytes(6).toString("base64url"); // 8 characters
    while (marks.has(mark));
    marks.set(mark, f.value);
    return mark;
  });
  if (swapped === undefined) return encode(args);
  const frames = encode(swapped.value);
  const last = Buffer.from(frames[frames.length - 1]!.buffer, frames[frames.length - 1]!.byteOffset, frames[frames.length - 1]!.byteLength);
  for (const [mark, value] of marks) {
    const at = last.indexOf(Buffer.concat([Buffer.of(0xa8), Buffer.from(mark, "latin1")]));
    if (at < 0) throw new ProtocolError("a float64 placeholder was not written as a msgpack fixstr: cannot encode the event");
    last[at] = 0xcb;
    last.writeDoubleBE(value, at + 1);
  }
  return frames;
}
