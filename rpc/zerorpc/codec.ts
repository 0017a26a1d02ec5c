/**
 * ZeroRPC events: one msgpack array `[header, name, args]` in the last frame
 * of a transport message, the frame before it empty (see docs/zerorpc.md and
 * the recorded wire format it follows).
 * @internal
 */
import { randomBytes } from "node:crypto";
import { Packr } from "msgpackr";
import { ProtocolError } from "../errors.js";

/** Protocol version written in every header. */
export const ZRPC_VERSION = 3;

/** A message id as received: msgpack str or bin. Echoed in the same type. */
export type MessageId = string | Uint8Array;

export interface Header {
  message_id: MessageId;
  v: number;
  response_to?: MessageId;
}

export interface ZEvent {
  header: Header;
  name: string;
  args: unknown;
}

// int64AsType "auto": 64-bit integers decode as numbers while safe, as BigInt beyond (exact both ways).
const packr = new Packr({ useRecords: false, mapsAsObjects: true, int64AsType: "auto" } as unknown as ConstructorParameters<typeof Packr>[0]);

const EMPTY = new Uint8Array(0);

/**
 * msgpackr writes integers beyond 32 bits as float64 (as zerorpc-node does); a
 * ZeroRPC peer then sees a float. Such numbers become BigInt before packing, so
 * they go out as int64/uint64. Values without one are passed through untouched.
 */
function needsExact(v: unknown, depth: number): boolean {
  if (typeof v === "number") return Number.isInteger(v) && (v > 0xffffffff || v < -0x80000000);
  if (typeof v !== "object" || v === null || depth > 64 || ArrayBuffer.isView(v)) return false;
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) if (needsExact(v[i], depth + 1)) return true;
    return false;
  }
  if (v instanceof Map) {
    for (const x of v.values()) if (needsExact(x, depth + 1)) return true;
    return false;
  }
  if (Object.getPrototypeOf(v) !== Object.prototype && Object.getPrototypeOf(v) !== null) return false;
  for (const k in v) if (needsExact((v as Record<string, unknown>)[k], depth + 1)) return true;
  return false;
}

function exact(v: unknown, depth: number): unknown {
  if (typeof v === "number") return Number.isInteger(v) && (v > 0xffffffff || v < -0x80000000) ? BigInt(v) : v;
  if (typeof v !== "object" || v === null || depth > 64 || ArrayBuffer.isView(v)) return v;
  if (Array.isArray(v)) return v.map((x) => exact(x, depth + 1));
  if (v instanceof Map) return new Map([...v].map(([k, x]) => [k, exact(x, depth + 1)]));
  if (Object.getPrototypeOf(v) !== Object.prototype && Object.getPrototypeOf(v) !== null) return v;
  const o: Record<string, unknown> = {};
  for (const k in v) o[k] = exact((v as Record<string, unknown>)[k], depth + 1);
  return o;
}

const K_MESSAGE_ID = Buffer.from("aa6d6573736167655f6964", "hex"); // "message_id"
const K_V3 = Buffer.from("a17603", "hex"); // "v": 3
const K_RESPONSE_TO = Buffer.from("ab726573706f6e73655f746f", "hex"); // "response_to"

/** Bytes of an id as msgpack str or bin (the smallest header), written at `pos`; returns the new position. */
function writeId(out: Buffer, pos: number, id: MessageId): number {
  if (typeof id === "string") {
    const n = Buffer.byteLength(id);
    if (n < 32) out[pos++] = 0xa0 | n;
    else if (n < 256) {
      out[pos++] = 0xd9;
      out[pos++] = n;
    } else {
      out[pos++] = 0xda;
      out.writeUInt16BE(n, pos);
      pos += 2;
    }
    return pos + out.write(id, pos);
  }
  const n = id.byteLength;
  if (n < 256) {
    out[pos++] = 0xc4;
    out[pos++] = n;
  } else {
    out[pos++] = 0xc5;
    out.writeUInt16BE(n, pos);
    pos += 2;
  }
  out.set(id, pos);
  return pos + n;
}

/** Whether `v` (or an item of the array `v`) is binary above 4 KiB. */
function hasLargeBinary(v: unknown): boolean {
  if (ArrayBuffer.isView(v)) return v.byteLength > 4096;
  if (!Array.isArray(v)) return false;
  for (let i = 0; i < v.length && i < 16; i++) {
    const x: unknown = v[i];
    if (ArrayBuffer.isView(x) && x.byteLength > 4096) return true;
  }
  return false;
}

const idSize = (id: MessageId): number => (typeof id === "string" ? Buffer.byteLength(id) : id.byteLength) + 3;

/**
 * Encode one event as the two frames `[b"", payload]`. The header is written
 * by hand as zerorpc-python writes it (a fixmap, keys in the order
 * `message_id`, `v`, `response_to`); name and args go through msgpackr.
 */
export function encodeEvent(header: Header, name: string, args: unknown): Uint8Array[] {
  if (typeof header.message_id === "string" && Buffer.byteLength(header.message_id) > 0xffff) throw new ProtocolError("message id too long");
  const a = needsExact(args, 0) ? exact(args, 0) : args;
  // Large binary values: one msgpackr pass over the whole event, no second copy
  // (the header is then a map16 rather than a fixmap: the same msgpack map).
  if (hasLargeBinary(a)) return [EMPTY, packr.pack([header, name, a])];
  const body = packr.pack([name, a]); // 0x92, then name and args
  const rt = header.response_to;
  const size = 2 + K_MESSAGE_ID.length + idSize(header.message_id) + K_V3.length + (rt === undefined ? 0 : K_RESPONSE_TO.length + idSize(rt)) + body.length - 1;
  const out = Buffer.allocUnsafe(size);
  out[0] = 0x93;
  out[1] = rt === undefined ? 0x82 : 0x83;
  let pos = 2;
  pos += K_MESSAGE_ID.copy(out, pos);
  pos = writeId(out, pos, header.message_id);
  pos += K_V3.copy(out, pos);
  if (rt !== undefined) {
    pos += K_RESPONSE_TO.copy(out, pos);
    pos = writeId(out, pos, rt);
  }
  pos += body.copy(out, pos, 1);
  return [EMPTY, out.subarray(0, pos)];
}

/**
 * Decode the event in a message's last frame (the frames before it, normally
 * one empty delimiter, are not looked at: a DEALER that sends `[payload]`
 * alone is served too). Throws ProtocolError for anything that is not
 * `[{message_id: str|bin, ...}, str, args]`.
 */
export function decodeEvent(frames: readonly Uint8Array[]): ZEvent {
  const last = frames[frames.length - 1];
  if (last === undefined || last.byteLength === 0) throw new ProtocolError("empty zerorpc message");
  let m: unknown;
  try {
    m = packr.unpack(last);
  } catch (e) {
    throw new ProtocolError(`undecodable zerorpc event: ${(e as Error).message}`, { cause: e });
  }
  if (!Array.isArray(m) || m.length !== 3) throw new ProtocolError("a zerorpc event is an array of 3 items");
  const [h, name, args] = m as [unknown, unknown, unknown];
  if (typeof h !== "object" || h === null || Array.isArray(h) || h instanceof Map) throw new ProtocolError("zerorpc event header is not a map");
  const id = (h as Record<string, unknown>).message_id;
  if (typeof id !== "string" && !(id instanceof Uint8Array)) throw new ProtocolError("zerorpc header without a str/bin message_id");
  const rt = (h as Record<string, unknown>).response_to;
  if (rt !== undefined && rt !== null && typeof rt !== "string" && !(rt instanceof Uint8Array)) throw new ProtocolError("zerorpc response_to is not str/bin");
  if (typeof name !== "string") throw new ProtocolError("zerorpc event name is not a string");
  return { header: h as Header, name, args };
}

/** A Map key for an id that keeps str and bin apart. */
export function idKey(id: MessageId): string {
  return typeof id === "string" ? `s${id}` : `b${Buffer.from(id.buffer, id.byteOffset, id.byteLength).toString("latin1")}`;
}

/**
 * Message ids unique across clients: an 8-hex-digit counter, then 16 random
 * hex digits fixed per generator (zerorpc-python's layout, shorter), sent as
 * str. 24 characters keep a small reply under 128 bytes, the size above which
 * zeromq.js sends zero-copy and pays an extra main-thread callback per message.
 */
export class IdGenerator {
  readonly #suffix = randomBytes(8).toString("hex");
  #n = randomBytes(4).readUInt32BE(0);

  next(): string {
    this.#n = (this.#n + 1) >>> 0;
    return this.#n.toString(16).padStart(8, "0") + this.#suffix;
  }
}
