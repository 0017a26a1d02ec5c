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
 *   of it. `pause()` stops both the decoder (mid-chunk) and the socket, so a
 *   slow reader stops the kernel from reading and TCP holds the writer back.
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
import type { Socket } from "node:net";
import type { Loop } from "../core/Loop.js";
import type { Message } from "../core/Transport.js";
import { BrokenError, toError } from "../core/errors.js";
import { ioError } from "./errors.js";
import { checkMessage, FrameDecoder, FrameEncoder, wireSize } from "./framing.js";
import { ConnectionBase, type ConnectionParams } from "./internal/ConnectionBase.js";

/** A batch this large is written at once instead of waiting for the end of the turn. */
const BATCH_MAX = 256 * 1024;
const RESOLVED: Promise<void> = Promise.resolve();

export class StreamConnection extends ConnectionBase {
  readonly #socket: Socket;
  readonly #encoder = new FrameEncoder();
  readonly #decoder: FrameDecoder;
  #flushQueued = false;
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

  constructor(loop: Loop, socket: Socket, params: ConnectionParams) {
    super(loop, params);
    this.#socket = socket;
    this.#decoder = new FrameDecoder(this.#onMessage, this.#onBadInput, params.limits);
    socket.pause();
    socket.on("data", this.#onData);
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

  send(msg: Message): boolean {
    if (this.#writeClosed || this.ended !== undefined) throw this.sendError();
    this.checkBuffered(wireSize(checkMessage(msg, this.limits), msg.length));
    this.#encoder.push(msg);
    if (this.#encoder.pending >= BATCH_MAX) this.#flush();
    else if (!this.#flushQueued && !this.#inData) {
      // Sent from elsewhere than our own message handler: flush once this
      // synchronous run of code is over.
      this.#flushQueued = true;
      void RESOLVED.then(this.#flushTask);
    }
    return this.bufferedAmount < this.highWaterMark;
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
    try {
      if (n === 1) {
        socket.write(chunks[0]!, this.#onWritten);
      } else {
        socket.cork();
        for (let i = 0; i < n - 1; i++) socket.write(chunks[i]!);
        socket.write(chunks[n - 1]!, this.#onWritten);
        socket.uncork();
      }
    } catch (e) {
      this.destroy(toError(e));
    }
  }

  readonly #onWritten = (err?: Error | null): void => {
    if (!err && this.draining) this.checkDrain();
  };

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
    if (!this.#paused && !this.#discard) this.#socket.resume();
  }

  readonly #onData = (chunk: Buffer): void => {
    if (this.#discard) return;
    // Replies sent by the handler while this chunk is decoded (the echo and
    // RPC pattern) go out in one write right after it, without a microtask.
    this.#inData = true;
    try {
      this.#decoder.push(chunk);
    } finally {
      this.#inData = false;
    }
    if (this.#encoder.pending > 0) this.#flush();
  };

  readonly #onMessage = (msg: Message): void => {
    if (!this.#discard) this.deliver(msg);
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
