/**
 * Length-prefixed framing of messages on a byte stream (tcp, ipc, tls).
 *
 * Wire format: a message is one or more frames; each frame is a 4-byte
 * big-endian header followed by its payload.
 *
 * ```
 *  bit 31     MORE: another frame of the same message follows
 *  bit 30     reserved, must be 0 (a set bit is ERR_MALFORMED_FRAME)
 *  bits 0-29  payload length in bytes (0 .. 2^30-1)
 * ```
 *
 * A message of frames `[a, b, c]` is `hdr(MORE|len a) a hdr(MORE|len b) b hdr(len c) c`.
 * A message has at least one frame (an "empty message" is one empty frame).
 * The receiver enforces `maxMessageSize` (sum of the payload lengths, default
 * {@link DEFAULT_MAX_MESSAGE_SIZE}) and `maxFrames` per message as soon as a
 * header announces more, before buffering it.
 *
 * @example
 * ```ts
 * const dec = new FrameDecoder((msg) => console.log(msg.length, "frames"), (err) => console.error(err.code));
 * dec.push(encodeMessage([Buffer.from("hi"), Buffer.from("there")]));
 * ```
 * @module
 */
import type { Frame, FrameWriter, Message } from "../core/Transport.js";
import { byteBudget, type ByteBudget } from "../core/Budget.js";
import { BusyError } from "../core/errors.js";
import { InvalidMessageError, MalformedFrameError, MessageTooLargeError } from "./errors.js";

/** Bytes of a frame header. */
export const HEADER_SIZE = 4;
/** Header bit: more frames of this message follow. */
export const MORE_FLAG = 0x8000_0000;
/** Header bit reserved for a future version; a peer that sets it is malformed. */
export const RESERVED_FLAG = 0x4000_0000;
/** Largest payload one frame can carry (2^30 - 1). */
export const MAX_FRAME_LENGTH = 0x3fff_ffff;
/** Default maximum message size: 64 MiB of payload, all frames together. */
export const DEFAULT_MAX_MESSAGE_SIZE = 64 * 1024 * 1024;
/** Default maximum number of frames in one message. */
export const DEFAULT_MAX_FRAMES = 65_536;

/** Limits of a framed connection. */
export interface FramingOptions {
  /** Largest message, in payload bytes of all frames together. Default 64 MiB. */
  maxMessageSize?: number;
  /** Most frames one message may have. Default 65536. */
  maxFrames?: number;
  /**
   * Bytes of messages in assembly (received, not yet complete) that every
   * connection sharing this budget may hold together: a number makes one for
   * this connection, a ByteBudget is shared (a server passes one to all its
   * listeners). Past it, the connection whose message would pass it ends with
   * ERR_BUSY. Default: no budget beyond `maxMessageSize` per connection.
   */
  inputBudget?: number | ByteBudget;
}

/** Resolved limits. */
export interface FramingLimits {
  readonly maxMessageSize: number;
  readonly maxFrames: number;
  readonly inputBudget?: ByteBudget;
}

export function framingLimits(options: FramingOptions = {}): FramingLimits {
  const maxMessageSize = options.maxMessageSize ?? DEFAULT_MAX_MESSAGE_SIZE;
  const maxFrames = options.maxFrames ?? DEFAULT_MAX_FRAMES;
  if (!(maxMessageSize >= 0) || !Number.isSafeInteger(maxMessageSize)) {
    throw new RangeError(`maxMessageSize must be a non-negative integer, got ${maxMessageSize}`);
  }
  if (!(maxFrames >= 1) || !Number.isSafeInteger(maxFrames)) {
    throw new RangeError(`maxFrames must be a positive integer, got ${maxFrames}`);
  }
  const inputBudget = byteBudget(options.inputBudget, "inputBudget");
  return inputBudget === undefined ? { maxMessageSize, maxFrames } : { maxMessageSize, maxFrames, inputBudget };
}

/**
 * Validate an outgoing message against `limits` and return its payload size.
 * Throws InvalidMessageError (no frames, a frame not a Uint8Array) or
 * MessageTooLargeError.
 */
export function checkMessage(msg: Message, limits: FramingLimits): number {
  const n = msg.length;
  if (n === 0) throw new InvalidMessageError("a message needs at least one frame (send [new Uint8Array(0)] for an empty one)");
  if (n > limits.maxFrames) throw new MessageTooLargeError(n, limits.maxFrames, "frames");
  let size = 0;
  for (let i = 0; i < n; i++) {
    const f = msg[i];
    if (!(f instanceof Uint8Array)) throw new InvalidMessageError(`frame ${i} is not a Uint8Array`);
    const len = f.byteLength;
    if (len > MAX_FRAME_LENGTH) throw new MessageTooLargeError(len, MAX_FRAME_LENGTH, "bytes in one frame");
    size += len;
  }
  if (size > limits.maxMessageSize) throw new MessageTooLargeError(size, limits.maxMessageSize);
  return size;
}

/** Check the size of a message of one frame written in place (`Connection.sendFrame`) against `limits`. */
export function checkFrameSize(size: number, limits: FramingLimits): void {
  if (size > MAX_FRAME_LENGTH) throw new MessageTooLargeError(size, MAX_FRAME_LENGTH, "bytes in one frame");
  if (size > limits.maxMessageSize) throw new MessageTooLargeError(size, limits.maxMessageSize);
}

/** Bytes a message takes on the wire, given its payload size and frame count. */
export function wireSize(payload: number, frames: number): number {
  return payload + HEADER_SIZE * frames;
}

/** Encode one message into a single buffer (for tools and tests; connections use {@link FrameEncoder}). */
export function encodeMessage(msg: Message): Buffer {
  let total = 0;
  for (const f of msg) total += HEADER_SIZE + f.byteLength;
  const out = Buffer.allocUnsafe(total);
  let pos = 0;
  for (let i = 0; i < msg.length; i++) {
    const f = msg[i]!;
    out.writeUInt32BE((f.byteLength | (i < msg.length - 1 ? MORE_FLAG : 0)) >>> 0, pos);
    out.set(f, pos + HEADER_SIZE);
    pos += HEADER_SIZE + f.byteLength;
  }
  return out;
}

/**
 * A frame split across chunks up to this size gets its whole buffer at once
 * (one copy, as the common large calls need); a larger one grows with the
 * bytes received, from at least GROW_FROM. The input budget bounds what all
 * connections hold either way.
 */
const EXACT_MAX = 256 * 1024;
const GROW_FROM = 16 * 1024;
/** Size of the slabs a decoder copies the kept parts of transient chunks into. */
const OWN_SLAB = 64 * 1024;

/** Frames up to this size are copied into the batch slab; larger ones are written as they are (no copy). */
const COPY_MAX = 8 * 1024;
const SLAB_SIZE = 64 * 1024;
/**
 * A frame written in place (`pushFrame`) up to this size goes into the slab,
 * which grows to hold it; a slab larger than this is not kept for reuse.
 */
const SLAB_KEEP = 256 * 1024;

/** Write a frame header (big-endian) at `p`; returns the position after it. */
function putHeader(slab: Uint8Array, p: number, word: number): number {
  slab[p] = word >>> 24;
  slab[p + 1] = word >>> 16;
  slab[p + 2] = word >>> 8;
  slab[p + 3] = word;
  return p + HEADER_SIZE;
}

/**
 * Collects encoded messages for one write batch. Small frames (and every
 * header) are copied into a shared slab, so a batch of a thousand 16-byte
 * messages becomes one buffer; large frames are referenced, not copied, so a
 * batch is a short list of chunks for one `writev`.
 *
 * A frame larger than 8 KiB is written from the caller's memory when the
 * batch flushes: the caller must not modify it after `push` (as with
 * `socket.write`).
 *
 * Once the writer says the batch taken last is out of its hands
 * (`written()`: the socket took every byte at once), the slab is written
 * over from its start again: a connection that keeps up reuses one slab
 * rather than a fresh one per batch, which spares the allocator, the page
 * faults of new memory and the garbage collector (at 64 KiB messages these
 * cost more than the copies themselves).
 */
export class FrameEncoder {
  #slab: Buffer = Buffer.allocUnsafeSlow(SLAB_SIZE);
  #pos = 0;
  /** Start of the slab bytes not yet cut into a chunk. */
  #runStart = 0;
  #chunks: Uint8Array[] = [];
  #pending = 0;

  /** Bytes pushed and not yet taken. */
  get pending(): number {
    return this.#pending;
  }

  /** Append one validated message. */
  push(msg: Message): void {
    const n = msg.length;
    const last = n - 1;
    for (let i = 0; i < n; i++) {
      const f = msg[i]!;
      const len = f.byteLength;
      const word = i < last ? (len | MORE_FLAG) >>> 0 : len;
      if (len <= COPY_MAX) {
        this.#reserve(HEADER_SIZE + len);
        const slab = this.#slab;
        const p = putHeader(slab, this.#pos, word);
        if (len === 1) slab[p] = f[0]!;
        else if (len > 0) slab.set(f, p);
        this.#pos = p + len;
      } else {
        this.#reserve(HEADER_SIZE);
        this.#slab.writeUInt32BE(word, this.#pos);
        this.#pos += HEADER_SIZE;
        this.#cut();
        this.#chunks.push(f);
      }
      this.#pending += HEADER_SIZE + len;
    }
  }

  /** Append a message of one frame of `size` bytes that `writer` writes in place (its size checked by the caller). */
  pushFrame(size: number, writer: FrameWriter): void {
    if (size <= SLAB_KEEP - HEADER_SIZE) {
      this.#reserve(HEADER_SIZE + size);
      const p = putHeader(this.#slab, this.#pos, size);
      writer.writeFrame(this.#slab, p);
      this.#pos = p + size;
      this.#pending += HEADER_SIZE + size;
    } else {
      const frame = Buffer.allocUnsafe(size);
      writer.writeFrame(frame, 0);
      this.push([frame]);
    }
  }

  /** Take the batch as chunks to write in order (empty when nothing is pending). */
  take(): Uint8Array[] {
    this.#cut();
    const c = this.#chunks;
    if (c.length === 0) return c;
    this.#chunks = [];
    this.#pending = 0;
    return c;
  }

  /**
   * The chunks taken last are written and no longer referenced (the socket
   * took them whole, synchronously): the slab is reused from its start.
   */
  written(): void {
    if (this.#chunks.length > 0 || this.#pos > this.#runStart) return; // more came since: keep it
    if (this.#slab.length > SLAB_KEEP) this.#slab = Buffer.allocUnsafeSlow(SLAB_SIZE);
    this.#pos = 0;
    this.#runStart = 0;
  }

  /** Forget everything pending. */
  clear(): void {
    this.#chunks = [];
    this.#runStart = this.#pos;
    this.#pending = 0;
  }

  #reserve(n: number): void {
    if (this.#slab.length - this.#pos >= n) return;
    this.#cut();
    // The old slab's cut chunks stay alive until written; the new slab is ours
    // (for a large frame, its size rounded up to 16 KiB: room for the messages around it).
    this.#slab = Buffer.allocUnsafeSlow(n <= SLAB_SIZE ? SLAB_SIZE : Math.ceil(n / 16384) * 16384);
    this.#pos = 0;
    this.#runStart = 0;
  }

  #cut(): void {
    if (this.#pos > this.#runStart) {
      this.#chunks.push(this.#slab.subarray(this.#runStart, this.#pos));
      this.#runStart = this.#pos;
    }
  }
}

/**
 * Incremental decoder: feed it the chunks of a byte stream with `push`; it
 * calls `onMessage` for every complete message, in order, and `onError` once
 * (then ignores further input) for malformed or oversized input.
 *
 * A frame wholly contained in one chunk is delivered as a view of that chunk
 * (no copy); a frame split across chunks is copied into a buffer that grows
 * with the bytes actually received (doubling, up to the announced length), so
 * a header announcing 64 MiB costs nothing until the bytes come. Memory held
 * for a message in assembly is charged to the `inputBudget` when there is one.
 *
 * With `onFrame`, a message of one frame wholly within a chunk goes there
 * instead, as the chunk and the frame's bounds in it (no view, no array).
 *
 * `halt()` (typically called from `onMessage`) stops delivery after the
 * current message and keeps the rest of the input; `resume()` delivers it.
 */
export class FrameDecoder {
  readonly #onMessage: (msg: Message) => void;
  readonly #onFrame: ((chunk: Buffer, start: number, end: number) => void) | undefined;
  readonly #onError: (err: Error) => void;
  readonly #max: number;
  readonly #maxFrames: number;

  readonly #hdr = Buffer.alloc(HEADER_SIZE);
  #hdrLen = 0;
  /** Frames of the message being assembled. */
  #frames: Frame[] = [];
  #size = 0;
  /** A frame being filled across chunks (capacity may be short of its length), and whether its MORE bit was set. */
  #partial: Buffer | undefined = undefined;
  #partialPos = 0;
  #partialLen = 0;
  #more = false;
  readonly #budget: ByteBudget | undefined;
  /** Bytes charged to the budget for the message in assembly. */
  #charged = 0;
  /** Input kept while halted: the chunk in progress and its offset, then later chunks. */
  #held: Buffer[] = [];
  #heldOffset = 0;
  #halted = false;
  #failed = false;

  constructor(onMessage: (msg: Message) => void, onError: (err: Error) => void, limits: FramingLimits = framingLimits(), onFrame?: (chunk: Buffer, start: number, end: number) => void) {
    this.#onMessage = onMessage;
    this.#onFrame = onFrame;
    this.#onError = onError;
    this.#max = limits.maxMessageSize;
    this.#maxFrames = limits.maxFrames;
    this.#budget = limits.inputBudget;
  }

  /** Bytes held for the message in assembly (a partial frame's buffer). */
  get assembling(): number {
    return this.#partial === undefined ? 0 : this.#partial.length;
  }

  /** True while part of a message has been received (a stream ending now is truncated). */
  get midMessage(): boolean {
    return this.#hdrLen > 0 || this.#partial !== undefined || this.#frames.length > 0;
  }

  /** Whether input is held back by `halt()`. */
  get holding(): boolean {
    return this.#held.length > 0;
  }

  /** Whether the decoder has met bad input. */
  get failed(): boolean {
    return this.#failed;
  }

  /** Whether `halt()` holds input back. */
  get halted(): boolean {
    return this.#halted;
  }

  /**
   * Feed the next chunk of the stream. `transient`: the chunk's memory is
   * written over once this returns (a socket's shared read buffer): what the
   * decoder hands on or keeps is copied out of it first, and only that (the
   * bytes of a frame split across chunks go straight into its own buffer).
   */
  push(chunk: Buffer, transient = false): void {
    if (this.#failed) return;
    if (this.#halted || this.#held.length > 0) {
      this.#held.push(transient ? this.#own(chunk, 0) : chunk);
      return;
    }
    this.#decode(chunk, 0, transient);
  }

  /** Decoder-owned memory for copies out of transient chunks: a slab cut in turn. */
  #slab: Buffer | undefined = undefined;
  #slabPos = 0;

  /** A copy of `chunk` from `off` to its end, in memory of the decoder's own. */
  #own(chunk: Buffer, off: number): Buffer {
    const n = chunk.length - off;
    let slab = this.#slab;
    if (slab === undefined || slab.length - this.#slabPos < n) {
      // The old slab stays alive while what was cut from it is kept.
      slab = this.#slab = Buffer.allocUnsafeSlow(Math.max(OWN_SLAB, n));
      this.#slabPos = 0;
    }
    const start = this.#slabPos;
    chunk.copy(slab, start, off);
    this.#slabPos = start + n;
    return slab.subarray(start, start + n);
  }

  /** Stop delivering after the current message; input is kept. */
  halt(): void {
    this.#halted = true;
  }

  /** Deliver kept input, until it is used up or `halt()` is called again. */
  resume(): void {
    this.#halted = false;
    while (this.#held.length > 0 && !this.#halted && !this.#failed) {
      const chunk = this.#held[0]!;
      const off = this.#heldOffset;
      this.#held.shift();
      this.#heldOffset = 0;
      if (this.#held.length > 0) {
        // #decode saves a halted remainder at the front; keep later chunks behind it.
        const later = this.#held;
        this.#held = [];
        this.#decode(chunk, off);
        for (const c of later) this.#held.push(c);
      } else {
        this.#decode(chunk, off);
      }
    }
  }

  /** Drop all state and input (the connection is going away). */
  discard(): void {
    this.#failed = true;
    this.#held = [];
    this.#frames = [];
    this.#partial = undefined;
    this.#release();
  }

  #release(): void {
    if (this.#charged === 0) return;
    this.#budget?.give(this.#charged);
    this.#charged = 0;
  }

  /** A buffer of `cap` bytes for a frame in assembly, charged to the budget; undefined (the decoder failed with ERR_BUSY) when the budget refuses it. */
  #allocate(cap: number, replacing = 0): Buffer | undefined {
    const budget = this.#budget;
    if (budget !== undefined) {
      // A buffer that replaces a smaller one is charged the difference.
      if (!budget.take(cap - replacing)) {
        this.#fail(new BusyError(
          `input budget exhausted: ${budget.used} bytes of messages in assembly held across connections (limit ${budget.limit}); a message needing ${cap - replacing} more was refused`,
          { context: { used: budget.used, limit: budget.limit, wanted: cap - replacing } },
        ));
        return undefined;
      }
      this.#charged += cap - replacing;
    }
    return cap > 4096 ? Buffer.allocUnsafeSlow(cap) : Buffer.allocUnsafe(cap);
  }

  #fail(err: Error): void {
    this.discard();
    this.#onError(err);
  }

  #decode(chunk: Buffer, off: number, transient = false): void {
    let end = chunk.length;
    while (off < end) {
      let frame: Buffer;
      let more: boolean;
      if (this.#partial !== undefined) {
        let partial = this.#partial;
        const pos = this.#partialPos;
        const take = Math.min(this.#partialLen - pos, end - off);
        if (pos + take > partial.length) {
          // Grow with the bytes that came: double, up to the frame's length.
          const grown = this.#allocate(Math.min(this.#partialLen, Math.max(partial.length * 2, pos + take)), partial.length);
          if (grown === undefined) return;
          partial.copy(grown, 0, 0, pos);
          partial = this.#partial = grown;
        }
        chunk.copy(partial, pos, off, off + take);
        off += take;
        this.#partialPos = pos + take;
        if (this.#partialPos < this.#partialLen) return;
        frame = partial;
        more = this.#more;
        this.#partial = undefined;
      } else {
        let word: number;
        if (this.#hdrLen === 0 && end - off >= HEADER_SIZE) {
          word = chunk.readUInt32BE(off);
          off += HEADER_SIZE;
        } else {
          const hdr = this.#hdr;
          while (this.#hdrLen < HEADER_SIZE && off < end) hdr[this.#hdrLen++] = chunk[off++]!;
          if (this.#hdrLen < HEADER_SIZE) return;
          this.#hdrLen = 0;
          word = hdr.readUInt32BE(0);
        }
        if ((word & RESERVED_FLAG) !== 0) {
          this.#fail(new MalformedFrameError(`reserved header bit set (header 0x${word.toString(16).padStart(8, "0")})`, { context: { header: word } }));
          return;
        }
        const len = word & MAX_FRAME_LENGTH;
        more = (word & MORE_FLAG) !== 0;
        if (this.#size + len > this.#max) {
          this.#fail(new MessageTooLargeError(this.#size + len, this.#max, "bytes (announced by a frame header)", { context: { header: word } }));
          return;
        }
        if (this.#frames.length + 1 > this.#maxFrames) {
          this.#fail(new MessageTooLargeError(this.#frames.length + 1, this.#maxFrames, "frames"));
          return;
        }
        if (end - off >= len) {
          if (transient) {
            // A whole frame is handed on as a view: from here on, the rest of the chunk is a copy of our own.
            chunk = this.#own(chunk, off);
            off = 0;
            end = chunk.length;
            transient = false;
          }
          if (!more && this.#frames.length === 0 && this.#onFrame !== undefined) {
            // A whole message in this chunk: its bounds, without a view or an array.
            if (this.#charged !== 0) this.#release();
            const start = off;
            off += len;
            this.#onFrame(chunk, start, off);
            if (this.#stopped(chunk, off, false)) return;
            continue;
          }
          frame = chunk.subarray(off, off + len);
          off += len;
        } else {
          // Split across chunks: the whole frame's buffer when it is small, else
          // a buffer for what is here (at least 16 KiB, twice what came, at most
          // the length), grown as more comes.
          const partial = this.#allocate(len <= EXACT_MAX ? len : Math.min(len, Math.max(GROW_FROM, 2 * (end - off))));
          if (partial === undefined) return;
          this.#partial = partial;
          this.#partialPos = 0;
          this.#partialLen = len;
          this.#more = more;
          continue;
        }
      }
      // A frame is complete.
      if (more) {
        this.#frames.push(frame);
        this.#size += frame.length;
        continue;
      }
      let msg: Message;
      if (this.#charged !== 0) this.#release();
      if (this.#frames.length === 0) msg = [frame];
      else {
        msg = this.#frames;
        msg.push(frame);
        this.#frames = [];
        this.#size = 0;
      }
      this.#onMessage(msg);
      if (this.#stopped(chunk, off, transient)) return;
    }
  }

  /**
   * After a delivery: whether the handler halted the decoder (or it failed).
   * When halted, the rest of `chunk` from `off` is kept for `resume()` (a
   * copy of its own when the chunk is transient).
   */
  #stopped(chunk: Buffer, off: number, transient: boolean): boolean {
    if (!this.#halted && !this.#failed) return false;
    if (!this.#failed && off < chunk.length) {
      this.#held.unshift(transient ? this.#own(chunk, off) : chunk);
      this.#heldOffset = transient ? 0 : off;
    }
    return true;
  }
}
