/**
 * A message connection over a Node byte stream (`net.Socket`, `tls.TLSSocket`):
 * the one implementation behind tcp://, ipc:// and tls://.
 *
 * - Sending encodes into a batch ({@link FrameEncoder}); the batch is written
 *   once per synchronous run of code (a microtask after the first `send`, or
 *   right after the received chunk when the sends come from our own message
 *   handler), as one `write` or one corked `writev`. A thousand sends in one
 *   turn cost one syscall, not a thousand.
 * - Receiving decodes each chunk as it arrives ({@link FrameDecoder}) and
 *   hands messages straight to the handler; frames inside one chunk are views
 *   of it. A socket made with a {@link SocketReader}'s `onread` skips the
 *   stream's 'data' path: its chunks come straight from the read. `pause()`
 *   stops both the decoder (mid-chunk) and the socket, so a slow reader stops
 *   the kernel from reading and TCP holds the writer back.
 * - A peer's EOF ends the connection (`{by: "peer"}`): our FIN follows (after
 *   our queued writes, where the socket is half-open capable).
 *
 * @example
 * ```ts
 * const conn = new StreamConnection(loop, socket, params);
 * conn.start({ message: (m) => conn.send(m), end: (e) => console.log(e) });
 * ```
 * @module
 */
import type { OnReadOpts, Socket } from "node:net";
import type { Loop } from "../core/Loop.js";
import type { FrameWriter, Message } from "../core/Transport.js";
import { BrokenError, toError } from "../core/errors.js";
import { ioError } from "./errors.js";
import { checkFrameSize, checkMessage, FrameDecoder, FrameEncoder, HEADER_SIZE, wireSize } from "./framing.js";
import { ConnectionBase, type ConnectionParams } from "./internal/ConnectionBase.js";
import { RESOLVED } from "../core/resolved.js";

/** A batch this large is written at once instead of waiting for the end of the turn. */
const BATCH_MAX = 256 * 1024;
const EMPTY = Buffer.alloc(0);

/** Where every socket read through `onread` lands; what is kept of a read is copied out of it at once. */
const READ_BUFFER = Buffer.allocUnsafeSlow(64 * 1024);

/**
 * The `onread` option of `net.connect()`, for a StreamConnection to read
 * through: Node reads into one buffer shared by all such sockets and calls
 * back with the count; the decoder takes the read from there as a transient
 * chunk and copies out only what it keeps (the rest of the read from the
 * first whole frame on, into a slab of the connection's own; the bytes of a
 * frame split across reads, straight into that frame's buffer). What the
 * handler keeps is the connection's own memory, holding no other
 * connection's bytes, and a large message is copied once, not twice. This skips the stream
 * machinery's 'data' path (push, flowing state, emit, a nextTick per read),
 * which costs about as much per small message as all the rest of a read.
 * `pause()` and `resume()` work as usual. Node offers it only for sockets it
 * connects, not for accepted ones.
 *
 * Build the StreamConnection in the socket's 'connect' event, before
 * anything is read: bytes read earlier are kept for it, but an EOF read
 * earlier is not seen.
 */
export class SocketReader {
  /** Pass as `net.connect({ onread })`. */
  readonly onread: OnReadOpts = { buffer: READ_BUFFER, callback: (n) => this.#read(n) };
  /** Set by the StreamConnection built on the socket: takes each read as a transient chunk. */
  target: ((chunk: Buffer, transient: boolean) => void) | undefined = undefined;
  /** Reads before the connection was built (none expected: it pauses the socket first), copied. */
  early: Buffer[] | undefined = undefined;

  #read(n: number): boolean {
    const t = this.target;
    if (t !== undefined) t(READ_BUFFER.subarray(0, n), true);
    else (this.early ??= []).push(Buffer.from(READ_BUFFER.subarray(0, n)));
    return true;
  }
}

export class StreamConnection extends ConnectionBase {
  readonly #socket: Socket;
  readonly #encoder = new FrameEncoder();
  readonly #decoder: FrameDecoder;
  #flushQueued = false;
  /**
   * Whether a batch the socket took at once leaves no reference behind (a
   * plain socket; a TLS socket's writes go through its own layers).
   */
  readonly #reuse: boolean;
  /** Inside our socket's 'data' event: sends are flushed when it returns. */
  #inData = false;
  /** No more sends: we closed, the peer ended, or we are destroyed. */
  #writeClosed = false;
  /** Incoming bytes are dropped (closing or ended). */
  #discard = false;
  #paused = false;
  #reading = false;
  #endSent = false;
  /** The peer's EOF arrived while input was held by pause(); handled on resume. */
  #endPending = false;
  #resumePosted = false;
  #peerEnded = false;
  /**
   * The last write went without a callback: nothing calls back once the bytes
   * Node holds are out. (Once someone waits in drain(), every write has one.)
   */
  #uncovered = false;

  /** `reader`: the SocketReader whose `onread` the socket was made with, if any. */
  constructor(loop: Loop, socket: Socket, params: ConnectionParams, reader?: SocketReader) {
    super(loop, params);
    this.#socket = socket;
    this.#reuse = (socket as { encrypted?: boolean }).encrypted !== true;
    this.#decoder = new FrameDecoder(this.#onMessage, this.#onBadInput, params.limits, this.#onFrame);
    socket.pause();
    if (reader === undefined) socket.on("data", this.#onData);
    else {
      reader.target = this.#onData;
      const early = reader.early;
      reader.early = undefined;
      if (early !== undefined) {
        // Held, and delivered once started.
        this.#decoder.halt();
        for (const chunk of early) this.#decoder.push(chunk);
      }
    }
    socket.on("end", this.#onEnd);
    socket.on("error", this.#onError);
    socket.on("close", this.#onClose);
  }

  /** The underlying socket (for socket options; do not read or write it). */
  get socket(): Socket {
    return this.#socket;
  }

  get bufferedAmount(): number {
    return this.#encoder.pending + this.#socket.writableLength;
  }

  /** The socket's own count of bytes read (no work per message). */
  get bytesIn(): number {
    return this.#socket.bytesRead;
  }

  /** The socket's own count of bytes written, plus the batch not yet handed to it. */
  get bytesOut(): number {
    return this.#socket.bytesWritten + this.#encoder.pending;
  }

  send(msg: Message): boolean {
    if (this.#writeClosed || this.ended !== undefined) throw this.sendError();
    this.checkBuffered(wireSize(checkMessage(msg, this.limits), msg.length));
    this.#encoder.push(msg);
    return this.#queued();
  }

  sendFrame(size: number, writer: FrameWriter): boolean {
    if (this.#writeClosed || this.ended !== undefined) throw this.sendError();
    checkFrameSize(size, this.limits);
    // The buffered bytes read once (the socket's count is a getter chain): checked, then what the answer is told from.
    const buffered = this.#encoder.pending + this.#socket.writableLength;
    const wire = size + HEADER_SIZE;
    if (buffered > 0 && buffered + wire > this.maxBuffered) this.checkBuffered(wire);
    this.#encoder.pushFrame(size, writer);
    if (this.#encoder.pending >= BATCH_MAX) {
      this.#flush();
      return this.bufferedAmount < this.highWaterMark;
    }
    this.#queueFlush();
    return buffered + wire < this.highWaterMark;
  }

  /** A message was queued: flush now, or once this run of code is over. */
  #queued(): boolean {
    if (this.#encoder.pending >= BATCH_MAX) this.#flush();
    else this.#queueFlush();
    return this.bufferedAmount < this.highWaterMark;
  }

  #queueFlush(): void {
    if (!this.#flushQueued && !this.#inData) {
      // Sent from elsewhere than our own message handler: flush once this
      // synchronous run of code is over.
      this.#flushQueued = true;
      void RESOLVED.then(this.#flushTask);
    }
  }

  readonly #flushTask = (): void => {
    this.#flushQueued = false;
    this.#flush();
  };

  #flush(): void {
    const socket = this.#socket;
    if (socket.destroyed || this.#endSent) {
      this.#encoder.clear();
      return;
    }
    const chunks = this.#encoder.take();
    const n = chunks.length;
    if (n === 0) return;
    // A write with a callback costs Node a nextTick; only a drain() waiter needs one.
    const done = this.draining ? this.#onWritten : undefined;
    this.#uncovered = done === undefined;
    try {
      if (n === 1) {
        socket.write(chunks[0]!, done);
      } else {
        socket.cork();
        for (let i = 0; i < n - 1; i++) socket.write(chunks[i]!);
        socket.write(chunks[n - 1]!, done);
        socket.uncork();
      }
      // Nothing left in Node's hands: the kernel took every byte, and the slab may be written over.
      if (this.#reuse && socket.writableLength === 0) this.#encoder.written();
    } catch (e) {
      this.destroy(toError(e));
    }
  }

  readonly #onWritten = (err?: Error | null): void => {
    if (!err && this.draining) this.checkDrain();
  };

  override drain(): Promise<void> {
    const p = super.drain();
    // Bytes Node holds that no callback follows: an empty write queued behind
    // them calls back once they are out.
    const socket = this.#socket;
    if (this.draining && this.#uncovered && socket.writableLength > 0 && socket.writable && !this.#endSent) {
      this.#uncovered = false;
      socket.write(EMPTY, this.#onWritten);
    }
    return p;
  }

  pause(): void {
    if (this.#paused) return;
    this.#paused = true;
    this.#decoder.halt();
    if (!this.#discard) this.#socket.pause();
  }

  resume(): void {
    if (!this.#paused) return;
    this.#paused = false;
    if (this.#reading && !this.#resumePosted) {
      this.#resumePosted = true;
      // Held messages are delivered on a later turn, never inside resume().
      this.loop.post(this.#resumeTask);
    }
  }

  readonly #resumeTask = (): void => {
    this.#resumePosted = false;
    if (this.#paused || this.#discard) return;
    this.#decoder.resume();
    if (this.#paused || this.#discard) return;
    if (this.#endPending) {
      this.#endPending = false;
      this.#handleEnd();
    } else {
      this.#socket.resume();
    }
  };

  protected onStart(): void {
    this.#reading = true;
    // Input held since before the start goes first, as after a pause.
    this.#resumeTask();
  }

  /** A received chunk; `transient` (from a SocketReader): its memory is reused once this returns. */
  readonly #onData = (chunk: Buffer, transient = false): void => {
    if (this.#discard) return;
    // Replies sent by the handler while this chunk is decoded (the echo and
    // RPC pattern) go out in one write right after it, without a microtask.
    this.#inData = true;
    try {
      this.#decoder.push(chunk, transient);
    } finally {
      this.#inData = false;
    }
    if (this.#encoder.pending > 0) this.#flush();
  };

  readonly #onMessage = (msg: Message): void => {
    if (!this.#discard) this.deliver(msg);
  };

  readonly #onFrame = (chunk: Buffer, start: number, end: number): void => {
    if (!this.#discard) this.deliverFrame(chunk, start, end);
  };

  /** Malformed or oversized input from the peer: this connection ends, with that error. */
  readonly #onBadInput = (err: Error): void => {
    this.setReason({ by: "peer", error: err });
    this.#teardown();
  };

  readonly #onEnd = (): void => {
    this.#peerEnded = true;
    if (this.#decoder.holding && !this.#discard) {
      this.#endPending = true;
      return;
    }
    this.#handleEnd();
  };

  #handleEnd(): void {
    if (!this.#discard && this.#decoder.midMessage) {
      this.setReason({
        by: "peer",
        error: new BrokenError("the peer ended the connection in the middle of a message", { context: { truncated: true } }),
      });
      this.#teardown();
      return;
    }
    this.setReason({ by: "peer" });
    this.#discard = true;
    this.#writeClosed = true;
    this.#decoder.discard();
    this.#endWrites();
  }

  /** Flush what was sent, then send our FIN. */
  #endWrites(): void {
    if (this.#endSent) return;
    // A socket that is not half-open capable (the tls server's) refuses writes
    // once the peer's FIN arrived, and Node ends it by itself; what we queued
    // would only reach a peer that is gone.
    if (this.#socket.allowHalfOpen || !this.#peerEnded) this.#flush();
    else this.#encoder.clear();
    this.#endSent = true;
    this.#socket.end();
  }

  readonly #onError = (err: Error): void => {
    this.setReason({ by: "peer", error: ioError(err) });
  };

  readonly #onClose = (): void => {
    this.#discard = true;
    this.#writeClosed = true;
    this.#decoder.discard();
    this.#encoder.clear();
    this.finish();
  };

  protected beginClose(): void {
    this.#writeClosed = true;
    this.#discard = true;
    this.#decoder.discard();
    this.#endWrites();
    // Keep reading (and dropping) until the peer's FIN completes the close.
    this.#socket.resume();
  }

  protected beginDestroy(): void {
    this.#teardown();
  }

  #teardown(): void {
    this.#writeClosed = true;
    this.#discard = true;
    this.#decoder.discard();
    this.#encoder.clear();
    this.#socket.destroy();
  }
}
