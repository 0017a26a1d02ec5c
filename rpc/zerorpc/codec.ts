/**
 * ZeroRPC events: one msgpack array `[header, name, args]` in the last frame
 * of a transport message, the frame before it empty (see docs/zerorpc.md and
 * the recorded wire format it follows).
 * Internal module: not part of the public API.
 */
import { randomBytes } from "node:crypto";
import { randomBytesFrom } from "../../core/random.js";
import { ProtocolError, ValueError } from "../errors.js";
import { ARGS, INT64_AUTO, NOT_SIMPLE, packValue, readArrayHead, readEnd, readName, readSimple, readValue, sizeOfSimple, unpackValue, WIDE_INTS, writeSimple } from "../msgpack.js";
import { IdCounter, type IdTable } from "../internal/IdTable.js";
import type { Metadata } from "../meta.js";

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
  /** The event's arguments (undefined when refused). */
  args: unknown;
  /** Set when the arguments are outside the value model: why. */
  refused?: ValueError;
}

/**
 * Integers beyond 32 bits are written as int64/uint64 (WIDE_INTS), never as
 * float64 as msgpackr writes them (and zerorpc-node): a ZeroRPC peer would see
 * a float. A simple value (written by hand) with one goes the general way.
 */
const wantsInt64 = (v: unknown): boolean => typeof v === "number" && Number.isInteger(v) && (v > 0xffffffff || v < -0x80000000) && v >= -(2 ** 63) && v < 2 ** 64;

function hasWideInt(v: unknown): boolean {
  if (!Array.isArray(v)) return wantsInt64(v);
  for (let i = 0; i < v.length; i++) if (wantsInt64(v[i])) return true;
  return false;
}

const K_MESSAGE_ID = Buffer.from("aa6d6573736167655f6964", "hex"); // "message_id"
const K_V3 = Buffer.from("a17603", "hex"); // "v": 3
const K_RESPONSE_TO = Buffer.from("ab726573706f6e73655f746f", "hex"); // "response_to"

/** Bytes of an id (or a name) as msgpack str or bin (the smallest header), written at `pos`; returns the new position. */
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

/** The bytes `writeId` writes for `id`; -1 when it is longer than 65535 bytes. */
function idSize(id: MessageId): number {
  const n = typeof id === "string" ? Buffer.byteLength(id) : id.byteLength;
  if (n > 0xffff) return -1;
  return n + (typeof id === "string" ? (n < 32 ? 1 : n < 256 ? 2 : 3) : n < 256 ? 2 : 3);
}

/**
 * Encode one event as the two frames `[b"", payload]`. The header is written
 * by hand as zerorpc-python writes it (a fixmap, keys in the order
 * `message_id`, `v`, `response_to`), then the name, in the space the value
 * model's writer leaves before the args. Throws a ValueError for args
 * outside the model (nothing is sent then).
 */
export function encodeEvent(header: Header, name: string, args: unknown): Uint8Array[] {
  const rt = header.response_to;
  const idBytes = idSize(header.message_id);
  const rtBytes = rt === undefined ? 0 : idSize(rt);
  const nameBytes = idSize(name);
  if (idBytes < 0 || rtBytes < 0) throw new ProtocolError("message id too long");
  if (nameBytes < 0) throw new ProtocolError("event name too long");
  const size = 2 + K_MESSAGE_ID.length + idBytes + K_V3.length + (rt === undefined ? 0 : K_RESPONSE_TO.length + rtBytes) + nameBytes;
  // Every event's args but a STREAM item's are a list ([result] for OK): the list counts toward no depth.
  const out = packValue(args, size, name === "STREAM" ? WIDE_INTS : WIDE_INTS | ARGS, "args");
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
  writeId(out, pos, name);
  return [EMPTY, out];
}

const EMPTY = new Uint8Array(0);

/**
 * Decode the event in a message's last frame (the frames before it, normally
 * one empty delimiter, are not looked at: a DEALER that sends `[payload]`
 * alone is served too). Throws ProtocolError for anything that is not
 * `[{message_id: str|bin, ...}, str, args]`; args outside the value model
 * are not thrown but given as `refused`, so the event can be answered.
 */
export function decodeEvent(frames: readonly Uint8Array[]): ZEvent {
  const last = frames[frames.length - 1];
  if (last === undefined || last.byteLength === 0) throw new ProtocolError("empty zerorpc message");
  if (readArrayHead(last, 0) !== 3) throw new ProtocolError("a zerorpc event is an array of 3 items");
  let h: unknown;
  let name: unknown;
  try {
    h = readValue(last, readEnd(), last.length, INT64_AUTO, "header");
    name = readValue(last, readEnd(), last.length, INT64_AUTO, "name");
  } catch (e) {
    if (e instanceof ProtocolError) throw e;
    throw new ProtocolError(`undecodable zerorpc event: ${(e as Error).message}`, { cause: e });
  }
  if (typeof h !== "object" || h === null || Array.isArray(h) || h instanceof Uint8Array || h instanceof Date) throw new ProtocolError("zerorpc event header is not a map");
  const id = (h as Record<string, unknown>).message_id;
  if (typeof id !== "string" && !(id instanceof Uint8Array)) throw new ProtocolError("zerorpc header without a str/bin message_id");
  const rt = (h as Record<string, unknown>).response_to;
  if (rt !== undefined && rt !== null && typeof rt !== "string" && !(rt instanceof Uint8Array)) throw new ProtocolError("zerorpc response_to is not str/bin");
  if (typeof name !== "string") throw new ProtocolError("zerorpc event name is not a string");
  let args: unknown;
  try {
    args = unpackValue(last, readEnd(), last.length, name === "STREAM" ? INT64_AUTO : INT64_AUTO | ARGS, "args");
  } catch (e) {
    if (e instanceof ValueError) return { header: h as Header, name, args: undefined, refused: e };
    throw e;
  }
  return { header: h as Header, name, args };
}

/** Largest counter of an IdGenerator's ids (31 bits, so a counter is an IdTable key). */
const MAX_COUNTER = 0x7fffffff;
const HEX = Buffer.from("0123456789abcdef");

/**
 * Message ids unique across clients: an 8-hex-digit counter, then 16 random
 * hex digits fixed per generator (zerorpc-python's layout, shorter), sent as
 * str. 24 characters keep a small reply under 128 bytes, the size above which
 * zeromq.js sends zero-copy and pays an extra main-thread callback per message.
 * The counter (1 to 2^31 - 1, wrapping) names a client's channel.
 */
export class IdGenerator {
  readonly #suffix: string;
  readonly #suffixBytes: Buffer;
  readonly #counter: IdCounter;

  /**
   * `max`: the largest counter (smaller only in tests of the wrap). `random`:
   * the source of the suffix and the first counter, the loop's (so a
   * simulation replays the ids); default node:crypto.
   */
  constructor(max = MAX_COUNTER, random?: () => number) {
    const bytes = random ? Buffer.from(randomBytesFrom(random, 12)) : randomBytes(12);
    this.#suffix = bytes.subarray(0, 8).toString("hex");
    this.#suffixBytes = Buffer.from(this.#suffix, "latin1");
    this.#counter = new IdCounter(max, (bytes.readUInt32BE(8) % max) + 1);
  }

  /** The next id, as a string. */
  next(): string {
    return this.text(this.advance());
  }

  /** The next id's counter (for an event that opens no channel). */
  advance(): number {
    return this.#counter.skip();
  }

  /** The next counter that names no channel still open in `open` (for an event that opens one). */
  advanceFree(open: IdTable<unknown>): number {
    return this.#counter.next(open);
  }

  /** The id of counter `n`. */
  text(n: number): string {
    return n.toString(16).padStart(8, "0") + this.#suffix;
  }

  /** Write the id of counter `n` as a msgpack str at `pos`; returns the position after it. */
  write(out: Uint8Array, pos: number, n: number): number {
    out[pos++] = 0xa0 | ID_LENGTH;
    for (let i = 7; i >= 0; i--) out[pos + 7 - i] = HEX[(n >>> (i * 4)) & 15]!;
    out.set(this.#suffixBytes, pos + 8);
    return pos + ID_LENGTH;
  }

  /** The counter of one of this generator's ids held in `buf[start, end)`; -1 for any other id. */
  counterOf(buf: Uint8Array, start: number, end: number): number {
    if (end - start !== ID_LENGTH) return -1;
    const sfx = this.#suffixBytes;
    for (let i = 0; i < 16; i++) if (buf[start + 8 + i] !== sfx[i]) return -1;
    let n = 0;
    for (let i = 0; i < 8; i++) {
      const c = buf[start + i]!;
      const d = c >= 0x30 && c <= 0x39 ? c - 0x30 : c >= 0x61 && c <= 0x66 ? c - 0x57 : -1;
      if (d < 0) return -1;
      n = n * 16 + d;
    }
    return n >= 1 && n <= MAX_COUNTER ? n : -1;
  }
}

/** Characters of an IdGenerator id. */
const ID_LENGTH = 24;

// ---- the hot path: events written and read by hand ----

/** A message id where it lies in a buffer (a received id, echoed without decoding it). */
export interface IdRef {
  readonly buf: Uint8Array;
  readonly start: number;
  readonly end: number;
  /** msgpack bin (else str). */
  readonly bin: boolean;
}

/** A Map key for an id that keeps str and bin apart. */
export function idRefKey(r: IdRef): string {
  return (r.bin ? "b" : "s") + Buffer.from(r.buf.buffer, r.buf.byteOffset + r.start, r.end - r.start).toString("latin1");
}

/** The id as a MessageId (str decoded as UTF-8, bin copied). */
export function idRefValue(r: IdRef): MessageId {
  const b = Buffer.from(r.buf.buffer, r.buf.byteOffset + r.start, r.end - r.start);
  return r.bin ? Uint8Array.prototype.slice.call(b) : b.toString("utf8");
}

function refOf(id: MessageId): IdRef {
  const buf = typeof id === "string" ? Buffer.from(id, "utf8") : id;
  return { buf, start: 0, end: buf.byteLength, bin: typeof id !== "string" };
}

function idRefSize(r: IdRef): number {
  const n = r.end - r.start;
  return n + (r.bin ? (n < 256 ? 2 : 3) : n < 32 ? 1 : n < 256 ? 2 : 3);
}

function writeIdRef(out: Uint8Array, pos: number, r: IdRef): number {
  const n = r.end - r.start;
  if (r.bin) {
    if (n < 256) {
      out[pos++] = 0xc4;
      out[pos++] = n;
    } else {
      out[pos++] = 0xc5;
      out[pos++] = n >>> 8;
      out[pos++] = n & 0xff;
    }
  } else if (n < 32) out[pos++] = 0xa0 | n;
  else if (n < 256) {
    out[pos++] = 0xd9;
    out[pos++] = n;
  } else {
    out[pos++] = 0xda;
    out[pos++] = n >>> 8;
    out[pos++] = n & 0xff;
  }
  out.set(r.buf.subarray(r.start, r.end), pos);
  return pos + n;
}

/**
 * One event `[{message_id, v: 3, response_to?}, name, args]` as `[b"", payload]`,
 * with `own` (a counter of `ids`) as its message id and `rt` (a received id, or
 * a counter of `ids`) as the id it answers. Small plain values are written by
 * hand; anything else goes through `encodeEvent`. The bytes are the same.
 */
export function encodeWith(ids: IdGenerator, own: number, rt: IdRef | number | undefined, name: string, args: unknown): Uint8Array[] {
  const nameSize = sizeOfSimple(name);
  const argSize = nameSize < 0 || hasWideInt(args) ? -1 : sizeOfSimple(args);
  if (argSize < 0 || (typeof rt === "object" && rt.end - rt.start > 0xffff)) {
    const header: Header = { message_id: ids.text(own), v: ZRPC_VERSION };
    if (rt !== undefined) header.response_to = typeof rt === "number" ? ids.text(rt) : idRefValue(rt);
    return encodeEvent(header, name, args);
  }
  const rtSize = rt === undefined ? 0 : K_RESPONSE_TO.length + (typeof rt === "number" ? ID_LENGTH + 1 : idRefSize(rt));
  const out = Buffer.allocUnsafe(2 + K_MESSAGE_ID.length + ID_LENGTH + 1 + K_V3.length + rtSize + nameSize + argSize);
  out[0] = 0x93;
  out[1] = rt === undefined ? 0x82 : 0x83;
  out.set(K_MESSAGE_ID, 2);
  let pos = ids.write(out, 2 + K_MESSAGE_ID.length, own);
  out.set(K_V3, pos);
  pos += K_V3.length;
  if (rt !== undefined) {
    out.set(K_RESPONSE_TO, pos);
    pos += K_RESPONSE_TO.length;
    pos = typeof rt === "number" ? ids.write(out, pos, rt) : writeIdRef(out, pos, rt);
  }
  pos = writeSimple(out, pos, name);
  writeSimple(out, pos, args);
  return [EMPTY, out];
}

/**
 * An event as read by `readEvent`: where its ids are, its name and args. One
 * object, reused by every read: take what you need before reading the next.
 */
export interface EventView {
  id: IdRef;
  /** The id it answers; undefined for a request. */
  rt: IdRef | undefined;
  name: string;
  /** The arguments (undefined when refused). */
  args: unknown;
  /** Set when the arguments are outside the value model: why. */
  refused: ValueError | undefined;
  /** Call metadata: the header's keys other than ZeroRPC's own whose values are strings or bytes. */
  meta?: Metadata | undefined;
}

/** The header keys ZeroRPC itself writes; any other carries call metadata. */
const OWN_KEYS = new Set(["message_id", "v", "response_to"]);

/** The metadata in a header (undefined when there is none). */
function headerMeta(h: Record<string, unknown>): Metadata | undefined {
  let meta: Metadata | undefined;
  for (const k in h) {
    if (OWN_KEYS.has(k)) continue;
    const v = h[k];
    if (typeof v === "string" || v instanceof Uint8Array) (meta ??= {})[k] = v;
  }
  return meta;
}

/**
 * An event whose header carries `meta` as extra keys (ZeroRPC peers ignore
 * keys they do not know), as `[b"", payload]`: a request, or with `rt` the
 * answer to one (an ERR with the error's code).
 */
export function encodeWithMeta(ids: IdGenerator, own: number, name: string, args: unknown, meta: Metadata, rt?: IdRef): Uint8Array[] {
  const header: Record<string, unknown> = { message_id: ids.text(own), v: ZRPC_VERSION };
  if (rt !== undefined) header.response_to = idRefValue(rt);
  for (const k in meta) if (!OWN_KEYS.has(k)) header[k] = meta[k];
  const head = packValue(header, 1, 0, "header");
  const nameBytes = idSize(name);
  if (nameBytes < 0) throw new ProtocolError("event name too long");
  const out = packValue(args, 1 + (head.length - 1) + nameBytes, WIDE_INTS | ARGS, "args");
  out[0] = 0x93;
  head.copy(out, 1, 1);
  writeId(out, head.length, name);
  return [EMPTY, out];
}

/** Read an id (str or bin) at `p`; undefined for anything else. */
function readIdRef(f: Uint8Array, p: number): IdRef | undefined {
  const b = f[p];
  let n: number;
  let bin = false;
  if (b === undefined) return undefined;
  if (b >= 0xa0 && b <= 0xbf) {
    n = b & 0x1f;
    p += 1;
  } else if (b === 0xd9 || b === 0xc4) {
    n = f[p + 1] ?? -1;
    bin = b === 0xc4;
    p += 2;
  } else if (b === 0xda || b === 0xc5) {
    n = ((f[p + 1] ?? 0) << 8) | (f[p + 2] ?? 0);
    bin = b === 0xc5;
    p += 3;
  } else return undefined;
  if (n < 0 || p + n > f.length) return undefined;
  return { buf: f, start: p, end: p + n, bin };
}

/** Whether the fixstr key at `p` is `key` (given with its 0xa0|n byte). */
function keyIs(f: Uint8Array, p: number, key: Uint8Array): boolean {
  for (let i = 0; i < key.length; i++) if (f[p + i] !== key[i]) return false;
  return true;
}

const K_V = Buffer.from("a176", "hex"); // "v"

function readFast(f: Uint8Array): EventView | undefined {
  if (f[0] !== 0x93) return undefined;
  const h = f[1]!;
  if ((h & 0xf0) !== 0x80) return undefined;
  let p = 2;
  let id: IdRef | undefined;
  let rt: IdRef | undefined;
  for (let k = h & 0x0f; k > 0; k--) {
    if (keyIs(f, p, K_MESSAGE_ID)) {
      id = readIdRef(f, p + K_MESSAGE_ID.length);
      if (id === undefined) return undefined;
      p = id.end;
    } else if (keyIs(f, p, K_RESPONSE_TO)) {
      p += K_RESPONSE_TO.length;
      if (f[p] === 0xc0) p++;
      else {
        rt = readIdRef(f, p);
        if (rt === undefined) return undefined;
        p = rt.end;
      }
    } else if (keyIs(f, p, K_V) && (f[p + 2] ?? 0x80) < 0x80) p += 3;
    else return undefined;
  }
  if (id === undefined) return undefined;
  const name = readName(f, p);
  if (typeof name !== "string") return undefined;
  const args = readSimple(f, readEnd());
  if (args === NOT_SIMPLE) return undefined;
  return { id, rt, name, args, refused: undefined };
}

/**
 * Read the event in a message's last frame, as `decodeEvent` does (same
 * checks, same errors), without building strings for its ids.
 */
export function readEvent(frames: readonly Uint8Array[]): EventView {
  const last = frames[frames.length - 1];
  if (last !== undefined && last.byteLength > 0) {
    const v = readFast(last);
    if (v !== undefined) return v;
  }
  const ev = decodeEvent(frames);
  const rt = ev.header.response_to;
  return { id: refOf(ev.header.message_id), rt: rt === undefined || rt === null ? undefined : refOf(rt), name: ev.name, args: ev.args, refused: ev.refused, meta: headerMeta(ev.header as unknown as Record<string, unknown>) };
}
