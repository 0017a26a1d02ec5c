/**
 * drpc wire messages: one msgpack array per transport message (one frame).
 * The layout is written down in docs/drpc.md; keep the two in step.
 *
 * The hot messages (CALL, RESULT, ITEM, END) have their fixed fields written
 * and read here by hand, with the value model's writer and reader
 * (rpc/msgpack) only for the one value they carry, which each puts last in
 * its array (a CALL's `args`). Anything else, and any encoding the fast
 * reader does not expect, is read item by item and gets the same checks.
 *
 * A value outside the model is refused without ending the connection when
 * the message's fixed fields say whose it is: the decoder then gives a
 * REFUSED message naming the call, and the session answers or fails that
 * call only.
 * Internal module: not part of the public API.
 */
import { excerpt } from "../../core/errors.js";
import type { FrameWriter } from "../../core/Transport.js";
import { ProtocolError, ValueError, type RemoteErrorInfo } from "../errors.js";
import type { Metadata } from "../meta.js";
import { ARGS, NOT_SIMPLE, packMessage, packValue, readArrayHead, readEnd, readName, readSimple, readValue, readValues, sizeOfSimple, unpackValue, writeSimple } from "../msgpack.js";
import { allocUnsafe, copyInto } from "../internal/bytes.js";

export const PROTOCOL = "drpc";
/** The wire format's version. A peer with another major version is refused at HELLO. */
export const VERSION = 1;

export const enum T {
  HELLO = 0,
  CALL = 1,
  RESULT = 2,
  ERROR = 3,
  CANCEL = 4,
  ITEM = 5,
  END = 6,
  CREDIT = 7,
  PING = 8,
  GOAWAY = 9,
  /** Several stream items of one call: `[ITEMS, id, [item, ...]]` (only to a peer whose HELLO has `items: true`). */
  ITEMS = 10,
  /** Not on the wire: a message whose value the decoder refused (see {@link Msg}). */
  REFUSED = -1,
}

export interface HelloInfo {
  /** Heartbeat interval the sender uses, ms (0: none). */
  heartbeatMs: number;
  /** Largest message the sender accepts, bytes. */
  maxMessageSize: number;
  /** Free-form name for logs. */
  name?: string;
  /**
   * The sender reads ITEMS messages and CREDIT's byte grant (wire format 1
   * with streams in batches; a peer without this key gets one ITEM per item).
   */
  items?: boolean;
  /** With `items`: the bytes of stream messages the sender takes per call before it grants more. */
  windowBytes?: number;
  /** The sender reads a CALL's metadata (its optional 8th item); a peer without this key is sent none. */
  meta?: boolean;
}

/**
 * A message as the code handles it. On the wire a CALL's `args` comes last:
 * `[CALL, id, method, kwargs, deadline, credit, args]` (see docs/drpc.md).
 */
export type Msg =
  | [T.HELLO, string, number, HelloInfo]
  /** [CALL, id, method, args, kwargs, deadline ms left or nil, initial stream credit, metadata (from a peer that sends it)] */
  | [T.CALL, number, string, unknown[], Record<string, unknown> | null, number | null, number, Metadata?]
  | [T.RESULT, number, unknown]
  | [T.ERROR, number, RemoteErrorInfo]
  | [T.CANCEL, number, string]
  | [T.ITEM, number, unknown]
  | [T.END, number]
  /** [ITEMS, id, items, bytes of the message] (the size is not on the wire: the decoder adds it, for byte credit) */
  | [T.ITEMS, number, unknown[], number]
  /** [CREDIT, id, items, bytes]: bytes is 0 from a peer that grants items only */
  | [T.CREDIT, number, number, number]
  | [T.PING]
  | [T.GOAWAY, string]
  /** A CALL, RESULT, ITEM or ERROR for call `id` whose value is outside the value model: `error` says why. */
  | [T.REFUSED, T.CALL | T.RESULT | T.ITEM | T.ITEMS | T.ERROR, number, ValueError];

/** What a refused value of each message was, for its error's path. */
const ROOTS: Record<number, readonly (string | undefined)[]> = {
  [T.CALL]: [undefined, undefined, "method", "kwargs", "deadline", "credit", "args", "meta"],
  [T.RESULT]: [undefined, undefined, "result"],
  [T.ITEM]: [undefined, undefined, "item"],
  [T.ITEMS]: [undefined, undefined, "items"],
  [T.ERROR]: [undefined, undefined, "error"],
};

// ---- encoding ----

/** Scratch space for a header; it is copied into the space reserved before the value. */
const head = new Uint8Array(256);
/** Longest header written by hand. */
const MAX_HEAD = 255;

/** Write a non-negative integer below 2^32 at `p`; returns the position after it. */
function putUint(p: number, n: number): number {
  return writeSimple(head, p, n);
}

const isUint32 = (n: unknown): n is number => typeof n === "number" && Number.isInteger(n) && n >= 0 && n <= 0xffffffff;

/** Write an ASCII string; -1 when it is not ASCII or too long for a header. */
function putAscii(p: number, s: string): number {
  const n = s.length;
  if (n > 200) return -1;
  if (n < 32) head[p++] = 0xa0 | n;
  else {
    head[p++] = 0xd9;
    head[p++] = n;
  }
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0x80) return -1;
    head[p++] = c;
  }
  return p;
}

/** Pack `value` after the header of `len` bytes in `head`. Throws a ValueError (its path from `root`) for a value outside the model. */
function withHead(len: number, value: unknown, root: string): Uint8Array {
  const size = sizeOfSimple(value);
  if (size >= 0) {
    const frame = allocUnsafe(len + size);
    for (let i = 0; i < len; i++) frame[i] = head[i]!;
    writeSimple(frame, len, value);
    return frame;
  }
  const out = packValue(value, len, root === "args" ? ARGS : 0, root);
  for (let i = 0; i < len; i++) out[i] = head[i]!;
  return out;
}

/** A RESULT or an ITEM, without building the message first. */
export function encodeValue(type: T.RESULT | T.ITEM, id: number, value: unknown): Uint8Array {
  if (!isUint32(id)) return encode([type, id, value] as Msg);
  head[0] = 0x93;
  head[1] = type;
  return withHead(putUint(2, id), value, type === T.RESULT ? "result" : "item");
}

// ---- writing in place (Connection.sendFrame) ----

/** The header and value of the message last prepared, for {@link FRAME} to write. */
let preparedHead = 0;
let preparedTail: unknown;

/** The message last prepared (by {@link prepareValue} or {@link prepareCall}), written in place by the transport. */
export const FRAME: FrameWriter = {
  writeFrame(dst: Uint8Array, at: number): void {
    const n = preparedHead;
    for (let i = 0; i < n; i++) dst[at + i] = head[i]!;
    writeSimple(dst, at + n, preparedTail);
    preparedTail = undefined;
  },
};

/** The size of the prepared message whose header is `len` bytes and whose value is `value`; -1 when the value is not simple. */
function prepare(len: number, value: unknown): number {
  const size = sizeOfSimple(value);
  if (size < 0) return -1;
  preparedHead = len;
  preparedTail = value;
  return len + size;
}

/**
 * Prepare a RESULT or an ITEM for {@link FRAME}: its size, or -1 for a
 * message that needs {@link encodeValue} (a value that is not simple).
 */
export function prepareValue(type: T.RESULT | T.ITEM, id: number, value: unknown): number {
  if (!isUint32(id)) return -1;
  head[0] = 0x93;
  head[1] = type;
  return prepare(putUint(2, id), value);
}

/** An ITEMS message grows to about this size before it is sent; an item larger than this goes in one of its own. */
export const BATCH_BYTES = 64 * 1024;
/** Room for an ITEMS header: fixarray, type, id (up to a uint32), array32 head. */
const ITEMS_HEAD = 12;

/**
 * Stream items of one call, each encoded as it comes (so a value outside the
 * model is refused at its own item), sent together as one ITEMS message.
 */
export class ItemBatch {
  #buf: Buffer;
  #p = ITEMS_HEAD;
  /** Items in the batch. */
  count = 0;

  /** Largest ITEMS message, bytes: {@link BATCH_BYTES}, or less where the connection's message size limit is lower. */
  readonly #limit: number;

  constructor(capacity = 1024, limit = BATCH_BYTES) {
    this.#buf = allocUnsafe(capacity);
    this.#limit = Math.min(limit, BATCH_BYTES);
  }

  /** Whether the batch is as large as it grows: send it now. */
  get full(): boolean {
    return this.#p >= this.#limit;
  }

  /** Bytes the ITEMS message would have now, header included. */
  get size(): number {
    return this.#p;
  }

  /** Bytes the last item added takes. */
  lastSize = 0;
  /** Bytes of the header of the last message taken. */
  lastHead = 0;

  /**
   * Append `v` (an item of call `id`). Returns the ITEMS message of the items
   * before it when `v` would take the message past its limit (send it first;
   * the batch then holds `v` alone). Throws a ValueError (at `item`)
   * for a value outside the model; the batch is unchanged then.
   */
  add(v: unknown, id: number): Uint8Array | undefined {
    let full: Uint8Array | undefined;
    const simple = sizeOfSimple(v);
    if (simple >= 0) {
      if (this.count > 0 && this.#p + simple > this.#limit) full = this.take(id);
      this.#room(simple);
      this.#p = writeSimple(this.#buf, this.#p, v);
      this.lastSize = simple;
    } else {
      const packed = packValue(v, 0, 0, "item");
      const n = packed.length;
      if (this.count > 0 && this.#p + n > this.#limit) full = this.take(id);
      this.#room(n);
      copyInto(packed, this.#buf, this.#p, 0, packed.length);
      this.#p += n;
      this.lastSize = n;
    }
    this.count++;
    return full;
  }

  #room(n: number): void {
    const need = this.#p + n;
    if (need <= this.#buf.length) return;
    const next = allocUnsafe(Math.max(need, this.#buf.length * 2));
    copyInto(this.#buf, next, 0, 0, this.#p);
    this.#buf = next;
  }

  /** The ITEMS message of call `id` (a uint32); the batch is empty after, with room for as much again. */
  take(id: number): Uint8Array {
    const n = this.count;
    let h = 0;
    head[h++] = 0x93;
    head[h++] = T.ITEMS;
    h = putUint(h, id);
    if (n < 16) head[h++] = 0x90 | n;
    else if (n < 0x10000) {
      head[h++] = 0xdc;
      head[h++] = n >>> 8;
      head[h++] = n & 0xff;
    } else {
      head[h++] = 0xdd;
      head[h++] = n >>> 24;
      head[h++] = (n >>> 16) & 0xff;
      head[h++] = (n >>> 8) & 0xff;
      head[h++] = n & 0xff;
    }
    const buf = this.#buf;
    const start = ITEMS_HEAD - h;
    for (let i = 0; i < h; i++) buf[start + i] = head[i]!;
    const frame = buf.subarray(start, this.#p);
    this.lastHead = h;
    this.#buf = allocUnsafe(Math.min(Math.max(this.#p, 1024), BATCH_BYTES + ITEMS_HEAD));
    this.#p = ITEMS_HEAD;
    this.count = 0;
    return frame;
  }
}

/** Write a CALL's header into `head`; its length, or -1 for a CALL the header cannot carry (kwargs, a long or non-ASCII name). */
function callHead(id: number, method: string, kwargs: Record<string, unknown> | null, deadline: number | null, credit: number): number {
  if (kwargs !== null || !isUint32(id) || !isUint32(credit) || (deadline !== null && !isUint32(deadline))) return -1;
  head[0] = 0x97;
  head[1] = T.CALL;
  let p = putAscii(putUint(2, id), method);
  if (p < 0 || p > MAX_HEAD - 12) return -1;
  head[p++] = 0xc0; // kwargs: nil
  p = deadline === null ? ((head[p] = 0xc0), p + 1) : putUint(p, deadline);
  return putUint(p, credit);
}

/**
 * A CALL, without building the message first. With metadata it has an 8th
 * item (only for a peer whose HELLO has `meta: true`) and takes the general
 * encoder.
 */
export function encodeCall(id: number, method: string, args: readonly unknown[], kwargs: Record<string, unknown> | null, deadline: number | null, credit: number, meta?: Metadata): Uint8Array {
  if (meta !== undefined) return packMessage([T.CALL, id, method, kwargs, deadline, credit, args, meta], 0, ROOTS[T.CALL]);
  const len = callHead(id, method, kwargs, deadline, credit);
  if (len >= 0) return withHead(len, args, "args");
  return packMessage([T.CALL, id, method, kwargs, deadline, credit, args], 0, ROOTS[T.CALL]);
}

/** Prepare a CALL for {@link FRAME}: its size, or -1 for one that needs {@link encodeCall}. */
export function prepareCall(id: number, method: string, args: readonly unknown[], kwargs: Record<string, unknown> | null, deadline: number | null, credit: number): number {
  const len = callHead(id, method, kwargs, deadline, credit);
  return len < 0 ? -1 : prepare(len, args);
}

/** Encode a message. Throws a ValueError for a value outside the model (nothing is sent then). */
export function encode(m: Msg): Uint8Array {
  switch (m[0]) {
    case T.RESULT:
    case T.ITEM:
      if (isUint32(m[1])) return encodeValue(m[0], m[1], m[2]);
      break;
    case T.CALL:
      return encodeCall(m[1], m[2], m[3], m[4], m[5], m[6], m[7]);
    case T.ITEMS:
      return packMessage([T.ITEMS, m[1], m[2]], 0, ROOTS[T.ITEMS]);
    case T.CREDIT:
      // No byte grant: the three-item form every peer reads.
      if (m[3] === 0) return packMessage([T.CREDIT, m[1], m[2]], 0);
      break;
    case T.REFUSED:
      throw new TypeError("a refused message is not sent");
  }
  return packMessage(m, 0, ROOTS[m[0]]);
}

// ---- decoding ----

/** Call ids are positive 31-bit integers. */
export const MAX_ID = 0x7fffffff;
const isId = (x: unknown): x is number => typeof x === "number" && Number.isInteger(x) && x > 0 && x <= MAX_ID;
const isCount = (x: unknown): x is number => typeof x === "number" && Number.isInteger(x) && x >= 0 && x <= 0xffffffff;
const isObj = (x: unknown): x is Record<string, unknown> => typeof x === "object" && x !== null && !Array.isArray(x);

/** Where the fast reader is in the frame it reads; -1 when it gave up. */
let pos = 0;
/** Where the frame the fast reader reads ends. */
let lim = 0;

/** Read a msgpack unsigned integer of up to 32 bits; -1 (and pos -1) on anything else. */
function getUint(f: Uint8Array): number {
  const p = pos;
  if (p >= lim) return (pos = -1);
  const b = f[p]!;
  if (b < 0x80) {
    pos = p + 1;
    return b;
  }
  const n = lim;
  if (b === 0xcc && p + 2 <= n) {
    pos = p + 2;
    return f[p + 1]!;
  }
  if (b === 0xcd && p + 3 <= n) {
    pos = p + 3;
    return (f[p + 1]! << 8) | f[p + 2]!;
  }
  if (b === 0xce && p + 5 <= n) {
    pos = p + 5;
    return f[p + 1]! * 0x1000000 + ((f[p + 2]! << 16) | (f[p + 3]! << 8) | f[p + 4]!);
  }
  return (pos = -1);
}

/** Read a short ASCII string (a method name, from readName's cache); undefined (and pos -1) on anything else. */
function getAscii(f: Uint8Array): string | undefined {
  const s = readName(f, pos, lim);
  if (typeof s !== "string") {
    pos = -1;
    return undefined;
  }
  pos = readEnd();
  return s;
}

/** The value that ends a frame, from `start` to `end`. */
function unpackTail(frame: Uint8Array, start: number, end: number, root: string): unknown {
  const simple = readSimple(frame, start, end);
  if (simple !== NOT_SIMPLE) return simple;
  return unpackValue(frame, start, end, root === "args" ? ARGS : 0, root);
}

/**
 * The hot messages in their usual encodings, from `f[start]` to `f[end]`;
 * undefined for anything else. With `out`, the message is written into it
 * (no array per message; the caller reads it before the next decode).
 */
function decodeFast(f: Uint8Array, start: number, end: number, out: unknown[] | undefined): Msg | undefined {
  if (end - start < 3) return undefined;
  const b0 = f[start]!;
  const type = f[start + 1]!;
  pos = start + 2;
  lim = end;
  switch (type) {
    case T.RESULT:
    case T.ITEM: {
      if (b0 !== 0x93) return undefined;
      const id = getUint(f);
      if (pos < 0 || pos >= end || id === 0 || id > MAX_ID) return undefined;
      let v: unknown;
      try {
        v = unpackTail(f, pos, end, type === T.RESULT ? "result" : "item");
      } catch (e) {
        if (e instanceof ValueError) return [T.REFUSED, type, id, e];
        throw e;
      }
      // Items past the third are not read for these types (a session reads a CALL only as a server, a RESULT only as a client).
      const m = out ?? [];
      m[0] = type;
      m[1] = id;
      m[2] = v;
      return m as Msg;
    }
    case T.CALL: {
      if (b0 !== 0x97) return undefined;
      const id = getUint(f);
      if (pos < 0 || id === 0 || id > MAX_ID) return undefined;
      const method = getAscii(f);
      if (pos < 0 || pos + 3 >= end || f[pos] !== 0xc0) return undefined; // kwargs other than nil: the slow way
      pos++;
      let deadline: number | null = null;
      if (f[pos] === 0xc0) pos++;
      else {
        deadline = getUint(f);
        if (pos < 0) return undefined;
      }
      const credit = getUint(f);
      if (pos < 0 || pos >= end) return undefined;
      let args: unknown;
      try {
        args = unpackTail(f, pos, end, "args");
      } catch (e) {
        if (e instanceof ValueError) return [T.REFUSED, T.CALL, id, e];
        throw e;
      }
      if (!Array.isArray(args)) throw new ProtocolError(`malformed message of type ${T.CALL}`);
      const m = out ?? [];
      m[0] = T.CALL;
      m[1] = id;
      m[2] = method;
      m[3] = args;
      m[4] = null;
      m[5] = deadline;
      m[6] = credit;
      return m as Msg;
    }
    case T.ITEMS: {
      if (b0 !== 0x93) return undefined;
      const id = getUint(f);
      if (pos < 0 || id === 0 || id > MAX_ID) return undefined;
      const count = readArrayHead(f, pos, end);
      if (count <= 0) return undefined;
      try {
        return [T.ITEMS, id, readValues(f, readEnd(), count, "items", end), end - start];
      } catch (e) {
        if (e instanceof ValueError) return [T.REFUSED, T.ITEMS, id, e];
        throw e;
      }
    }
    case T.END:
      if (b0 !== 0x92) return undefined;
      {
        const id = getUint(f);
        if (pos !== end || id === 0 || id > MAX_ID) return undefined;
        return [T.END, id];
      }
  }
  return undefined;
}

/**
 * Decode and check the shape of one message, `f[start]` to `f[end]` (default:
 * all of `f`); throws ProtocolError on anything else. With `out`, a RESULT,
 * ITEM or CALL is written into it rather than a new array: the caller takes
 * what it needs from it before the next decode into the same array (whose
 * 8th item, a CALL's metadata, it never sets).
 */
export function decode(f: Uint8Array, start = 0, end = f.length, out?: unknown[]): Msg {
  return decodeFast(f, start, end, out) ?? decodeSlow(start === 0 && end === f.length ? f : f.subarray(start, end));
}

/**
 * Read a message item by item: a value outside the model in a message whose
 * type and call id were read gives a REFUSED message for that call.
 */
function readMessage(frame: Uint8Array): unknown[] | Msg {
  const n = readArrayHead(frame, 0);
  if (n <= 0) throw new ProtocolError("message is not a non-empty array");
  if (n > 16) throw new ProtocolError(`message of ${n} items`);
  const m = new Array<unknown>(n);
  let p = readEnd();
  for (let i = 0; i < n; i++) {
    try {
      const root = ROOTS[m[0] as number]?.[i] ?? `message[${i}]`;
      // An argument list and a batch of items count toward no depth: each of their values nests as deep as one alone.
      m[i] = readValue(frame, p, frame.length, root === "args" || root === "items" ? ARGS : 0, root);
    } catch (e) {
      const type = m[0];
      if (e instanceof ValueError && i >= 2 && (type === T.CALL || type === T.RESULT || type === T.ITEM || type === T.ITEMS || type === T.ERROR) && isId(m[1])) return [T.REFUSED, type, m[1], e];
      if (e instanceof ProtocolError) throw e;
      throw new ProtocolError(`malformed message: ${(e as Error).message}`, { cause: e });
    }
    p = readEnd();
  }
  if (p !== frame.length) throw new ProtocolError("undecodable message: bytes after its end");
  return m;
}

function decodeSlow(frame: Uint8Array): Msg {
  const m = readMessage(frame) as unknown[];
  switch (m[0]) {
    case T.REFUSED:
      return m as Msg;
    case T.CALL:
      // on the wire: [CALL, id, method, kwargs, deadline, credit, args] and, from a client that sends metadata, a map after them
      if (
        (m.length === 7 || (m.length === 8 && isObj(m[7]))) &&
        isId(m[1]) &&
        typeof m[2] === "string" &&
        (m[3] === null || isObj(m[3])) &&
        (m[4] === null || (typeof m[4] === "number" && m[4] >= 0)) &&
        Number.isInteger(m[5]) &&
        (m[5] as number) >= 0 &&
        Array.isArray(m[6])
      )
        return m.length === 7
          ? [T.CALL, m[1], m[2], m[6], m[3] as Record<string, unknown> | null, m[4] as number | null, m[5] as number]
          : [T.CALL, m[1], m[2], m[6], m[3] as Record<string, unknown> | null, m[4] as number | null, m[5] as number, m[7] as Metadata];
      break;
    case T.RESULT:
    case T.ITEM:
      if (m.length === 3 && isId(m[1])) return m as Msg;
      break;
    case T.ERROR:
      if (m.length === 3 && typeof m[1] === "number" && isObj(m[2]) && typeof m[2].message === "string" && typeof m[2].code === "string")
        return m as Msg;
      break;
    case T.CANCEL:
      if (m.length === 3 && isId(m[1]) && typeof m[2] === "string") return m as Msg;
      break;
    case T.END:
      if (m.length === 2 && isId(m[1])) return m as Msg;
      break;
    case T.CREDIT:
      // [CREDIT, id, items] or, from a peer that announced `items`, [CREDIT, id, items, bytes]
      if (m.length === 3 && isId(m[1]) && isCount(m[2]) && (m[2] as number) > 0) return [T.CREDIT, m[1], m[2] as number, 0];
      if (m.length === 4 && isId(m[1]) && isCount(m[2]) && isCount(m[3]) && (m[2] as number) + (m[3] as number) > 0) return m as Msg;
      break;
    case T.ITEMS:
      if (m.length === 3 && isId(m[1]) && Array.isArray(m[2]) && m[2].length > 0) return [T.ITEMS, m[1], m[2], frame.length];
      break;
    case T.PING:
      if (m.length === 1) return m as Msg;
      break;
    case T.GOAWAY:
      if (m.length === 2 && typeof m[1] === "string") return m as Msg;
      break;
    case T.HELLO:
      if (m.length === 4 && typeof m[1] === "string" && typeof m[2] === "number" && isObj(m[3])) return m as Msg;
      break;
    default:
      throw new ProtocolError(`unknown message type ${excerpt(m[0])}`);
  }
  throw new ProtocolError(`malformed message of type ${m[0]}`);
}
