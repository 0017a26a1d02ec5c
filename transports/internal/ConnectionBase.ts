/**
 * What every tilth connection shares, whatever carries its bytes: the end
 * reason (first cause wins), the `closed` promise, handler dispatch that is
 * never synchronous with `start()`, `drain()` waiters, the pull-style
 * `messages()` iterator and idempotent close/destroy. Subclasses supply the
 * I/O through a few hooks.
 * Internal module: not part of the public API.
 */
import { BrokenError, BusyError, ClosedError, TimeoutError, toError } from "../../core/errors.js";
import type { Loop } from "../../core/Loop.js";
import type { Connection, ConnectionEnd, ConnectionHandler, Message, PeerIdentity } from "../../core/Transport.js";
import { Ring } from "../../core/Ring.js";
import { InvalidStateError } from "../errors.js";
import type { FramingLimits } from "../framing.js";
import { RESOLVED } from "../../core/resolved.js";

/** Default high-water mark of a connection's send side: 1 MiB. */
export const DEFAULT_HIGH_WATER_MARK = 1024 * 1024;

export interface ConnectionParams {
  scheme: string;
  localUrl: string;
  remoteUrl: string;
  highWaterMark: number;
  /** Hard limit of buffered bytes: past it `send` throws BusyError. */
  maxBuffered: number;
  limits: FramingLimits;
  /** How long a graceful close waits for the peer to finish it before destroying, ms. Default {@link DEFAULT_CLOSE_TIMEOUT_MS}. */
  closeTimeoutMs?: number;
  /** The peer's verified identity, if the transport has one. */
  peerIdentity?: PeerIdentity | undefined;
}

/** Default bound of a graceful close: past it the connection is destroyed (ERR_TIMEOUT as the end's error). */
export const DEFAULT_CLOSE_TIMEOUT_MS = 2000;

const noop = (): void => {};

/** A rejected promise that never reports an unhandled rejection when nobody awaits it. */
export function quietReject<T>(e: Error): Promise<T> {
  const p = Promise.reject<T>(e);
  p.catch(noop);
  return p;
}

export function validHighWaterMark(v: unknown): number {
  if (v === undefined) return DEFAULT_HIGH_WATER_MARK;
  if (typeof v !== "number" || !(v >= 1) || !Number.isSafeInteger(v)) {
    throw new RangeError(`highWaterMark must be a positive integer, got ${String(v)}`);
  }
  return v;
}

/** `maxBuffered` option: default the high-water mark plus one largest message. */
export function validMaxBuffered(v: unknown, highWaterMark: number, maxMessageSize: number): number {
  if (v === undefined) return highWaterMark + maxMessageSize;
  if (typeof v !== "number" || !(v >= highWaterMark) || !Number.isSafeInteger(v)) {
    throw new RangeError(`maxBuffered must be an integer of at least highWaterMark (${highWaterMark}), got ${String(v)}`);
  }
  return v;
}

/** Total payload bytes of a message. */
function payloadOf(msg: Message): number {
  let n = 0;
  for (const f of msg) n += f.byteLength;
  return n;
}

export abstract class ConnectionBase implements Connection {
  readonly scheme: string;
  readonly localUrl: string;
  readonly remoteUrl: string;
  readonly peerIdentity: PeerIdentity | undefined;
  readonly closed: Promise<ConnectionEnd>;
  protected readonly loop: Loop;
  protected readonly highWaterMark: number;
  /** `drain()` resolves once buffered bytes are at or below this: half the high-water mark. */
  protected readonly lowWaterMark: number;
  protected readonly maxBuffered: number;
  protected readonly limits: FramingLimits;
  readonly #closeTimeoutMs: number;

  #resolveClosed!: (end: ConnectionEnd) => void;
  #reason: ConnectionEnd | undefined = undefined;
  #ended: ConnectionEnd | undefined = undefined;
  #handler: ConnectionHandler | undefined = undefined;
  /** The posted start has run: events may flow to the handler. */
  #started = false;
  #endDelivered = false;
  #destroyed = false;
  #closeP: Promise<void> | undefined = undefined;
  #drain: { promise: Promise<void>; resolve: () => void; reject: (e: Error) => void } | undefined = undefined;

  protected constructor(loop: Loop, p: ConnectionParams) {
    this.loop = loop;
    this.scheme = p.scheme;
    this.localUrl = p.localUrl;
    this.remoteUrl = p.remoteUrl;
    this.peerIdentity = p.peerIdentity;
    this.highWaterMark = p.highWaterMark;
    this.lowWaterMark = Math.floor(p.highWaterMark / 2);
    this.maxBuffered = p.maxBuffered;
    this.limits = p.limits;
    this.#closeTimeoutMs = p.closeTimeoutMs ?? DEFAULT_CLOSE_TIMEOUT_MS;
    this.closed = new Promise<ConnectionEnd>((resolve) => (this.#resolveClosed = resolve));
  }

  abstract get bufferedAmount(): number;
  abstract send(msg: Message, owned?: boolean): boolean;
  abstract pause(): void;
  abstract resume(): void;
  /** The handler is in place (on a later turn than `start()`): begin delivering. */
  protected abstract onStart(): void;
  /** Graceful close was asked: flush, then end; `finish()` when done. */
  protected abstract beginClose(): void;
  /** Forceful close was asked: drop buffers, end now; `finish()` when done. */
  protected abstract beginDestroy(): void;

  get ended(): ConnectionEnd | undefined {
    return this.#ended;
  }

  /** The reason recorded so far (the connection may still be finishing). */
  protected get reason(): ConnectionEnd | undefined {
    return this.#reason;
  }

  /** Whether events may be delivered to the handler now. */
  protected get started(): boolean {
    return this.#started;
  }

  /** Record why the connection ends, unless a reason is known already. Returns whether it was recorded. */
  protected setReason(end: ConnectionEnd): boolean {
    if (this.#reason !== undefined || this.#ended !== undefined) return false;
    this.#reason = end;
    return true;
  }

  start(handler: ConnectionHandler): void {
    if (this.#handler !== undefined) throw new InvalidStateError("start() or messages() was already called on this connection");
    this.#handler = handler;
    this.loop.post(() => {
      this.#started = true;
      if (this.#ended !== undefined) this.#deliverEnd();
      else this.onStart();
    });
  }

  /** Hand one message to the handler. A handler that throws destroys the connection with its error. */
  protected deliver(msg: Message): void {
    try {
      this.#handler!.message(msg);
    } catch (e) {
      this.destroy(toError(e));
    }
  }

  /**
   * Hand a message of one frame, `bytes[start]` to `bytes[end]`, to the
   * handler: as it is where the handler takes frames so, else as a view.
   */
  protected deliverFrame(bytes: Buffer, start: number, end: number): void {
    const h = this.#handler!;
    if (h.frame === undefined) return this.deliver([bytes.subarray(start, end)]);
    try {
      h.frame(bytes, start, end);
    } catch (e) {
      this.destroy(toError(e));
    }
  }

  /** The connection has ended: settle `closed`, reject waiters, tell the handler. Idempotent. */
  protected finish(): void {
    if (this.#ended !== undefined) return;
    const end: ConnectionEnd = this.#reason ?? { by: "peer", error: new BrokenError("connection closed") };
    this.#ended = end;
    if (this.#drain !== undefined) {
      const d = this.#drain;
      this.#drain = undefined;
      d.reject(this.sendError());
    }
    this.#resolveClosed(end);
    this.#deliverEnd();
  }

  #deliverEnd(): void {
    if (!this.#started || this.#endDelivered || this.#ended === undefined) return;
    this.#endDelivered = true;
    try {
      this.#handler!.end(this.#ended);
    } catch (e) {
      // Nothing of ours to fail any more: report it where the loop reports errors.
      this.loop.post(() => {
        throw e;
      });
    }
  }

  /**
   * A writer that ignores `send() === false` meets a hard limit instead of an
   * unbounded buffer: past `maxBuffered` bytes, `send` throws BusyError. A
   * message always fits when nothing is buffered.
   */
  protected checkBuffered(wire: number): void {
    const buffered = this.bufferedAmount;
    if (buffered > 0 && buffered + wire > this.maxBuffered) {
      throw new BusyError(`send buffer full: ${buffered} bytes buffered, limit ${this.maxBuffered}; wait for drain()`, {
        context: { buffered, limit: this.maxBuffered, message: wire },
      });
    }
  }

  /** The error `send` throws once the connection can no longer send. */
  protected sendError(): Error {
    const r = this.#ended ?? this.#reason;
    if (r === undefined || r.by === "local") {
      return new ClosedError(r?.error ? "connection was destroyed" : "connection is closed", { cause: r?.error });
    }
    return new BrokenError(r.error ? `connection broken by peer: ${r.error.message}` : "the peer closed the connection", {
      cause: r.error,
    });
  }

  drain(): Promise<void> {
    if (this.#ended !== undefined) return quietReject(this.sendError());
    if (this.bufferedAmount <= this.lowWaterMark) return RESOLVED;
    if (this.#drain === undefined) {
      let resolve!: () => void;
      let reject!: (e: Error) => void;
      const promise = new Promise<void>((res, rej) => {
        resolve = res;
        reject = rej;
      });
      // A drain nobody awaits must not become an unhandled rejection.
      promise.catch(noop);
      this.#drain = { promise, resolve, reject };
    }
    return this.#drain.promise;
  }

  /** Call when buffered bytes went down: resolves `drain()` at the low-water mark. */
  protected checkDrain(): void {
    const d = this.#drain;
    if (d !== undefined && this.bufferedAmount <= this.lowWaterMark) {
      this.#drain = undefined;
      d.resolve();
    }
  }

  /** Whether someone waits in `drain()`. */
  protected get draining(): boolean {
    return this.#drain !== undefined;
  }

  close(): Promise<void> {
    if (this.#closeP === undefined) {
      if (this.#ended !== undefined || this.#destroyed) {
        this.#closeP = this.closed.then(noop);
      } else {
        this.setReason({ by: "local" });
        this.#closeP = this.closed.then(noop);
        this.beginClose();
        this.#boundClose();
      }
    }
    return this.#closeP;
  }

  /** No graceful close waits for a peer without a limit: past `closeTimeoutMs` it is destroyed. */
  #boundClose(): void {
    const ms = this.#closeTimeoutMs;
    if (this.#ended !== undefined || ms === Infinity) return;
    const t = this.loop.timer(ms, () => this.destroy(new TimeoutError(ms, `graceful close of ${this.remoteUrl} (the peer did not finish it)`)));
    t.unref();
    void this.closed.then(() => t.cancel());
  }

  destroy(reason?: Error): void {
    if (this.#ended !== undefined || this.#destroyed) return;
    this.#destroyed = true;
    const r = this.#reason;
    // A graceful close still in progress becomes this forceful one, with its reason.
    if (r === undefined || (r.by === "local" && r.error === undefined && reason !== undefined)) {
      this.#reason = reason === undefined ? { by: "local" } : { by: "local", error: reason };
    }
    this.beginDestroy();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  messages(): AsyncIterable<Message> {
    const queue = new Ring<Message>(64);
    let queuedBytes = 0;
    let end: ConnectionEnd | undefined;
    let wake: (() => void) | undefined;
    let paused = false;
    // Bounded like the send side: past the high-water mark (or 4096 messages) stop reading.
    const maxBytes = this.highWaterMark;
    const maxCount = 4096;
    this.start({
      message: (msg) => {
        queue.push(msg);
        queuedBytes += payloadOf(msg);
        if (!paused && (queuedBytes >= maxBytes || queue.length >= maxCount)) {
          paused = true;
          this.pause();
        }
        if (wake) {
          const w = wake;
          wake = undefined;
          w();
        }
      },
      end: (e) => {
        end = e;
        if (wake) {
          const w = wake;
          wake = undefined;
          w();
        }
      },
    });
    const next = async (): Promise<IteratorResult<Message>> => {
      for (;;) {
        const msg = queue.shift();
        if (msg !== undefined) {
          queuedBytes -= payloadOf(msg);
          if (paused && queuedBytes <= maxBytes / 2 && queue.length <= maxCount / 2) {
            paused = false;
            this.resume();
          }
          return { value: msg, done: false };
        }
        if (end !== undefined) {
          if (end.error !== undefined) throw end.error;
          return { value: undefined, done: true };
        }
        await new Promise<void>((resolve) => (wake = resolve));
      }
    };
    const iterator: AsyncIterator<Message> = {
      next,
      // Leaving a for-await early closes the connection (as it destroys a Node stream).
      return: async () => {
        await this.close();
        return { value: undefined, done: true };
      },
    };
    return { [Symbol.asyncIterator]: () => iterator };
  }
}
