/**
 * What every datagram transport shares (udp on node:dgram, the in-memory
 * datagram network): a conversation per remote endpoint with a bounded
 * receive queue (tail drop), an idle timeout, a scope of its own that is
 * cancelled when it ends, and a listener that routes datagrams to
 * conversations by source, under a cap on live conversations.
 * Internal module: the public classes are re-exported by transports/udp.ts.
 */
import { ByteBudget } from "../../core/Budget.js";
import { CancelledError, ClosedError, TimeoutError } from "../../core/errors.js";
import type { Loop, Timer } from "../../core/Loop.js";
import { Ring } from "../../core/Ring.js";
import { Scope } from "../../core/Scope.js";
import { onAbort } from "../../core/abort.js";
import type { ConnectionEnd, Frame, ListenOptions, Message } from "../../core/Transport.js";
import { InvalidMessageError, MessageTooLargeError } from "../errors.js";
import { ConnectionBase, validHighWaterMark } from "./ConnectionBase.js";
import { ListenerBase } from "./ListenerBase.js";
import { validCloseTimeout } from "./socket.js";

/** Largest UDP payload over IPv4: 65,535 minus the 8-byte UDP and 20-byte IP headers. */
export const UDP4_MAX_PAYLOAD = 65_507;
/** Largest UDP payload over IPv6 (without jumbograms): 65,535 minus the 8-byte UDP header. */
export const UDP6_MAX_PAYLOAD = 65_527;
/** A conversation that neither receives nor sends a datagram this long ends (ERR_TIMEOUT). */
export const DEFAULT_IDLE_TIMEOUT_MS = 60_000;
/** Live conversations one datagram listener keeps; datagrams that would open more are dropped and counted. */
export const DEFAULT_MAX_CONVERSATIONS = 4096;
/** Datagrams one conversation queues while its handler is paused or not started; more are dropped (tail drop). */
export const DEFAULT_MAX_QUEUED = 256;
/** Bytes one conversation queues; more are dropped (tail drop). */
export const DEFAULT_MAX_QUEUED_BYTES = 1024 * 1024;
/** Bytes all conversations of one listener queue together; more are dropped. */
export const DEFAULT_LISTENER_QUEUED_BYTES = 16 * 1024 * 1024;
/** High-water mark of a conversation's send side (bytes handed to the OS, not yet sent). */
export const DEFAULT_DATAGRAM_HIGH_WATER_MARK = 256 * 1024;

/** Options of datagram connections and listeners (udp://, the in-memory network), on top of the common ones. */
export interface DatagramOptions extends ListenOptions {
  /** Largest datagram payload sent or accepted. Default and most: 65,507 B (IPv4), 65,527 B (IPv6). */
  maxMessageSize?: number;
  /** A conversation silent both ways this long ends with ERR_TIMEOUT. Default 60 000 ms; `Infinity`: never. */
  idleTimeoutMs?: number;
  /** Datagrams a conversation queues unread (paused, or before `start`); past it new ones are dropped. Default 256. */
  maxQueued?: number;
  /** Bytes a conversation queues unread; past it new ones are dropped. Default 1 MiB. */
  maxQueuedBytes?: number;
  /** Listener: live conversations at once; a datagram from a new source past it is dropped and counted. Default 4096. */
  maxConversations?: number;
  /** Listener: bytes queued unread by all its conversations together (a number or a shared ByteBudget). Default 16 MiB. */
  queueBudget?: number | ByteBudget;
}

/** Counters of a conversation. */
export interface ConversationStats {
  /** Datagrams handed to the handler or queued for it. */
  received: number;
  /** Datagrams dropped because the queue was full (tail drop). */
  dropped: number;
  /** Datagrams dropped because they were larger than `maxMessageSize`. */
  oversized: number;
  /** Datagrams sent. */
  sent: number;
}

/** Counters of a datagram listener. */
export interface DatagramListenerStats {
  /** Conversations live now. */
  live: number;
  /** Conversations opened so far. */
  opened: number;
  /** Datagrams from new sources dropped because `maxConversations` were live. */
  refused: number;
  /** Datagrams dropped by full conversation queues (and the listener's queue budget). */
  dropped: number;
  /** Datagrams dropped as larger than `maxMessageSize`. */
  oversized: number;
  /** Sends the system refused after the fact on the shared socket (they name no conversation). */
  sendErrors: number;
}

function positiveInt(name: string, v: unknown, dflt: number): number {
  if (v === undefined) return dflt;
  if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 1) throw new RangeError(`${name} must be a positive integer, got ${String(v)}`);
  return v;
}

/** Resolved options of one conversation. */
export interface DatagramParams {
  scheme: string;
  localUrl: string;
  remoteUrl: string;
  maxMessageSize: number;
  highWaterMark: number;
  closeTimeoutMs: number;
  idleTimeoutMs: number;
  maxQueued: number;
  maxQueuedBytes: number;
}

/** Validate datagram options; `familyMax` is the largest payload of the address family. */
export function datagramParams(scheme: string, localUrl: string, remoteUrl: string, o: DatagramOptions, familyMax: number): DatagramParams {
  const max = o.maxMessageSize;
  if (max !== undefined && (typeof max !== "number" || !Number.isSafeInteger(max) || max < 0 || max > familyMax)) {
    throw new RangeError(`maxMessageSize of a datagram must be an integer from 0 to ${familyMax} (the largest payload of this address family), got ${String(max)}`);
  }
  const idle = o.idleTimeoutMs;
  if (idle !== undefined && (typeof idle !== "number" || !(idle > 0))) throw new RangeError(`idleTimeoutMs must be a positive number of ms (Infinity: never), got ${String(idle)}`);
  return {
    scheme,
    localUrl,
    remoteUrl,
    maxMessageSize: max ?? familyMax,
    highWaterMark: o.highWaterMark === undefined ? DEFAULT_DATAGRAM_HIGH_WATER_MARK : validHighWaterMark(o.highWaterMark),
    closeTimeoutMs: validCloseTimeout(o.closeTimeoutMs),
    idleTimeoutMs: idle ?? DEFAULT_IDLE_TIMEOUT_MS,
    maxQueued: positiveInt("maxQueued", o.maxQueued, DEFAULT_MAX_QUEUED),
    maxQueuedBytes: positiveInt("maxQueuedBytes", o.maxQueuedBytes, DEFAULT_MAX_QUEUED_BYTES),
  };
}

/** Listener-wide limits, validated. */
export function listenerLimits(o: DatagramOptions): { maxConversations: number; queueBudget: ByteBudget } {
  const b = o.queueBudget;
  let queueBudget: ByteBudget;
  if (b === undefined) queueBudget = new ByteBudget(DEFAULT_LISTENER_QUEUED_BYTES);
  else if (b instanceof ByteBudget) queueBudget = b;
  else if (typeof b === "number") queueBudget = new ByteBudget(b);
  else throw new RangeError(`queueBudget must be a number of bytes or a ByteBudget, got ${String(b)}`);
  return { maxConversations: positiveInt("maxConversations", o.maxConversations, DEFAULT_MAX_CONVERSATIONS), queueBudget };
}

const noop = (): void => {};

/**
 * A conversation: the datagrams exchanged with one remote endpoint, as a
 * {@link Connection}. One message is one datagram of one frame. Nothing is
 * promised about order, delivery or uniqueness. It ends on `close()`/`destroy()`,
 * after `idleTimeoutMs` of silence both ways (ERR_TIMEOUT), when its listener
 * closes, or when the network says the peer is unreachable (a connected
 * conversation: ERR_CONNECTION_REFUSED). Its {@link scope} is cancelled then.
 */
export abstract class DatagramConversation extends ConnectionBase {
  /** Counters: received, dropped (queue full), oversized, sent. */
  readonly stats: ConversationStats = { received: 0, dropped: 0, oversized: 0, sent: 0 };
  readonly #maxDatagram: number;
  readonly #maxQueued: number;
  readonly #maxQueuedBytes: number;
  readonly #idleMs: number;
  readonly #budget: ByteBudget | undefined;
  readonly #listenerStats: DatagramListenerStats | undefined;
  readonly #queue = new Ring<Frame>(8);
  #queuedBytes = 0;
  #paused = false;
  #flushPosted = false;
  /** Polls the system's send queue while someone waits in drain() or close(). */
  #sendPoll: Timer | undefined = undefined;
  #lastActive: number;
  #idleTimer: Timer | undefined = undefined;
  #scope: Scope | undefined = undefined;
  #gone = false;
  #closing = false;

  protected constructor(loop: Loop, p: DatagramParams, budget?: ByteBudget, listenerStats?: DatagramListenerStats) {
    const limits = { maxMessageSize: p.maxMessageSize, maxFrames: 1 };
    super(loop, {
      scheme: p.scheme,
      localUrl: p.localUrl,
      remoteUrl: p.remoteUrl,
      highWaterMark: p.highWaterMark,
      maxBuffered: p.highWaterMark + p.maxMessageSize,
      limits,
      closeTimeoutMs: p.closeTimeoutMs,
    });
    this.#maxDatagram = p.maxMessageSize;
    this.#maxQueued = p.maxQueued;
    this.#maxQueuedBytes = p.maxQueuedBytes;
    this.#idleMs = p.idleTimeoutMs;
    this.#budget = budget;
    this.#listenerStats = listenerStats;
    this.#lastActive = loop.now();
    if (this.#idleMs !== Infinity) this.#armIdle(this.#idleMs);
  }

  /**
   * Hand one datagram to the system, without a completion callback (one
   * costs a tick per datagram): a failure the system reports later ends the
   * conversation through {@link fail}.
   */
  protected abstract transmit(frame: Frame): void;
  /** Bytes handed to the system and not sent yet (its send queue). */
  protected abstract get queuedToSend(): number;
  /** The conversation ended: let go of the socket or of the listener's entry. Called once. */
  protected abstract detach(): void;

  /**
   * The conversation's own scope: tasks spawned here are cancelled when it
   * ends; a task that fails ends the conversation with its error. Created on
   * first use.
   */
  get scope(): Scope {
    if (this.#scope === undefined) {
      const scope = new Scope(this.loop, { name: `conversation ${this.remoteUrl}` });
      this.#scope = scope;
      if (this.#gone) this.#endScope();
      else {
        onAbort(scope.signal, (r) => {
          if (this.#gone) return;
          this.destroy(r instanceof CancelledError && r.cause instanceof Error ? r.cause : new ClosedError("the conversation's scope was cancelled", { cause: r }));
        });
      }
    }
    return this.#scope;
  }

  /** Largest datagram payload this conversation sends or accepts, bytes. */
  get maxMessageSize(): number {
    return this.#maxDatagram;
  }

  get bufferedAmount(): number {
    return this.#gone ? 0 : this.queuedToSend;
  }

  send(msg: Message, _owned?: boolean): boolean {
    if (this.reason !== undefined || this.ended !== undefined) throw this.sendError();
    if (!Array.isArray(msg) || msg.length !== 1) {
      throw new InvalidMessageError(`a datagram message has exactly one frame, got ${Array.isArray(msg) ? msg.length : typeof msg}`);
    }
    const f = msg[0];
    if (!(f instanceof Uint8Array)) throw new InvalidMessageError("frame 0 is not a Uint8Array");
    const n = f.byteLength;
    if (n > this.#maxDatagram) throw new MessageTooLargeError(n, this.#maxDatagram, "bytes in one datagram");
    // One look at the system's send queue per datagram: empty, and the system sends at once (libuv tries first).
    const queued = this.queuedToSend;
    if (queued > 0) this.checkBuffered(n);
    this.stats.sent++;
    if (this.#idleMs !== Infinity) this.#lastActive = this.loop.now();
    this.transmit(f);
    if (queued === 0) return true;
    // The system queues: someone may wait in drain() soon; watch the queue.
    this.#watchSendQueue();
    return queued + n < this.highWaterMark;
  }

  /** While datagrams wait in the system's send queue, look every millisecond whether drain() or close() may go on. */
  #watchSendQueue(): void {
    if (this.#sendPoll !== undefined || this.#gone) return;
    const t = this.loop.timer(1, () => {
      this.#sendPoll = undefined;
      if (this.#gone) return;
      if (this.draining) this.checkDrain();
      if (this.queuedToSend > 0) this.#watchSendQueue();
      else if (this.#closing) this.#teardown();
    });
    t.unref();
    this.#sendPoll = t;
  }

  /** A datagram from the peer arrived. */
  receive(frame: Frame): void {
    if (this.#gone || this.#closing) return;
    const n = frame.byteLength;
    if (n > this.#maxDatagram) {
      this.stats.oversized++;
      if (this.#listenerStats) this.#listenerStats.oversized++;
      return;
    }
    if (this.#idleMs !== Infinity) this.#lastActive = this.loop.now();
    if (this.started && !this.#paused && this.#queue.length === 0) {
      this.stats.received++;
      this.deliver([frame]);
      return;
    }
    // Tail drop: a full queue refuses the newest datagram, as a full socket buffer does.
    if (this.#queue.length >= this.#maxQueued || this.#queuedBytes + n > this.#maxQueuedBytes || (this.#budget !== undefined && !this.#budget.take(n))) {
      this.stats.dropped++;
      if (this.#listenerStats) this.#listenerStats.dropped++;
      return;
    }
    this.stats.received++;
    this.#queue.push(frame);
    this.#queuedBytes += n;
    this.#scheduleFlush();
  }

  /** The peer is unreachable or the socket broke: end with `error`, by the peer. */
  protected fail(error: Error): void {
    if (this.#gone) return;
    this.setReason({ by: "peer", error });
    this.#teardown();
  }

  pause(): void {
    this.#paused = true;
  }

  resume(): void {
    if (!this.#paused) return;
    this.#paused = false;
    this.#scheduleFlush();
  }

  protected onStart(): void {
    this.#scheduleFlush();
  }

  #scheduleFlush(): void {
    if (this.#flushPosted || !this.started || this.#paused || this.#queue.length === 0) return;
    this.#flushPosted = true;
    this.loop.post(this.#flush);
  }

  readonly #flush = (): void => {
    this.#flushPosted = false;
    for (let i = 0; i < 1024; i++) {
      if (this.#gone || this.#paused) return;
      const f = this.#queue.shift();
      if (f === undefined) return;
      this.#queuedBytes -= f.byteLength;
      this.#budget?.give(f.byteLength);
      this.deliver([f]);
    }
    this.#scheduleFlush();
  };

  #armIdle(ms: number): void {
    const t = this.loop.timer(ms, this.#onIdle);
    t.unref();
    this.#idleTimer = t;
  }

  readonly #onIdle = (): void => {
    this.#idleTimer = undefined;
    if (this.#gone) return;
    const quiet = this.loop.now() - this.#lastActive;
    if (quiet < this.#idleMs) {
      this.#armIdle(this.#idleMs - quiet);
      return;
    }
    this.fail(new TimeoutError(this.#idleMs, `conversation with ${this.remoteUrl} (no datagram either way)`, { context: { idle: true } }));
  };

  protected beginClose(): void {
    // Datagrams have no end-of-stream: the peer is not told. What was handed to the system is sent first.
    this.#closing = true;
    this.#dropQueue();
    if (this.queuedToSend === 0) this.#teardown();
    else this.#watchSendQueue();
  }

  protected beginDestroy(): void {
    this.#teardown();
  }

  #dropQueue(): void {
    if (this.#queuedBytes > 0) this.#budget?.give(this.#queuedBytes);
    this.#queuedBytes = 0;
    while (this.#queue.shift() !== undefined);
  }

  #teardown(): void {
    if (this.#gone) return;
    this.#gone = true;
    this.#idleTimer?.cancel();
    this.#idleTimer = undefined;
    this.#sendPoll?.cancel();
    this.#sendPoll = undefined;
    this.#dropQueue();
    this.detach();
    this.#endScope();
    this.loop.post(() => this.finish());
  }

  #endScope(): void {
    const scope = this.#scope;
    if (scope === undefined) return;
    const end: ConnectionEnd | undefined = this.reason;
    scope.cancel(new ClosedError(`conversation with ${this.remoteUrl} ended`, { cause: end?.error }));
    // A task failure already ended the conversation with that error; nothing else to report.
    scope.close().catch(noop);
  }
}

/**
 * A listener that routes datagrams to conversations by source. Subclasses
 * own the socket and call {@link route} for each datagram.
 */
export abstract class DatagramListener<C extends DatagramConversation> extends ListenerBase {
  readonly #byPeer = new Map<string, C>();
  readonly #maxConversations: number;
  readonly #counters: DatagramListenerStats = { live: 0, opened: 0, refused: 0, dropped: 0, oversized: 0, sendErrors: 0 };
  readonly #maxDatagram: number;
  protected readonly queueBudget: ByteBudget;

  protected constructor(loop: Loop, scheme: string, url: string, options: DatagramOptions, maxDatagram: number) {
    const l = listenerLimits(options);
    // Conversations waiting to be claimed are bounded by the cap already: a burst of new peers is not cut at the stream default of 511.
    super(loop, scheme, url, options.backlog ?? l.maxConversations);
    this.#maxConversations = l.maxConversations;
    this.queueBudget = l.queueBudget;
    this.#maxDatagram = options.maxMessageSize ?? maxDatagram;
  }

  /** A new conversation with the peer `key` names. */
  protected abstract open(key: string): C;
  /** Close the socket (every conversation has ended). */
  protected abstract closeSocket(): Promise<void>;

  /** Counters: live conversations, opened, refused past the cap, dropped, oversized. */
  stats(): DatagramListenerStats {
    return { ...this.#counters, live: this.#byPeer.size };
  }

  /** Bytes its conversations hold queued now (the shared `queueBudget`). */
  get queueBudgetUsed(): number {
    return this.queueBudget.used;
  }

  /** The listener's shared counters, for its conversations. */
  protected get counters(): DatagramListenerStats {
    return this.#counters;
  }

  /** A datagram from the peer `key` names: to its conversation, or to a new one (unless at the cap). */
  protected route(key: string, frame: Frame): void {
    let conv = this.#byPeer.get(key);
    if (conv === undefined) {
      if (this.closing) return;
      // An oversized first datagram opens nothing.
      if (frame.byteLength > this.#maxDatagram) {
        this.#counters.oversized++;
        return;
      }
      if (this.#byPeer.size >= this.#maxConversations) {
        this.#counters.refused++;
        return;
      }
      conv = this.open(key);
      this.#byPeer.set(key, conv);
      this.#counters.opened++;
      conv.receive(frame);
      this.accept(conv);
      return;
    }
    conv.receive(frame);
  }

  /** Forget a conversation that ended (so the next datagram from its peer opens a new one). */
  protected forget(key: string, conv: C): void {
    if (this.#byPeer.get(key) === conv) this.#byPeer.delete(key);
  }

  /** The conversation with the peer `key` names, if one is live. */
  protected conversation(key: string): C | undefined {
    return this.#byPeer.get(key);
  }

  protected async stopAccepting(): Promise<void> {
    // The socket is shared: every conversation ends with the listener (gracefully: what they sent goes out first).
    const all = [...this.#byPeer.values()];
    await Promise.all(all.map((c) => c.close()));
    this.#byPeer.clear();
    await this.closeSocket();
  }
}
