/**
 * What both ends of a drpc connection share: decoding, the HELLO exchange,
 * heartbeats and liveness, and ending with a reason.
 *
 * The HELLO comes first and within `handshakeTimeoutMs`: anything else first
 * (a PING too) is a protocol error, and a connection that stays silent is
 * ended when the time is up.
 *
 * Liveness costs nothing per message: receiving sets a flag, and one timer per
 * connection checks every half heartbeat interval. A check that saw a message
 * notes the time; when the time since the last such check plus one interval
 * (the most the last message can be older) reaches the limit (`peerTimeoutMs`,
 * default three heartbeat intervals of the slower side), the peer is lost. So
 * a silent peer is declared lost within the limit, and never before the limit
 * less half a heartbeat. A PING goes out when nothing was sent for a heartbeat
 * interval, so a healthy peer is never silent for more than 1.5 intervals. A
 * call that is merely slow never looks like a dead peer: both sides keep
 * pinging while it runs.
 *
 * The peer's heartbeat is its own business, within this side's rules: an
 * interval above `maxPeerHeartbeatMs` (or none, or not a number) counts as
 * `maxPeerHeartbeatMs`, so no peer turns off this side's liveness checks.
 * Internal module.
 */
import type { Loop, Timer } from "../../core/Loop.js";
import type { Connection, ConnectionEnd, Message } from "../../core/Transport.js";
import { describe as describeError, excerpt, formatMs } from "../../core/errors.js";
import { ConnectionLostError, IncompatiblePeerError, ProtocolError, type RemoteErrorInfo } from "../errors.js";
import type { Metadata } from "../meta.js";
import type { PeerOptions } from "../protocol.js";
import { FRAME, PROTOCOL, T, VERSION, decode, encode, encodeCall, encodeValue, prepareCall, prepareValue, type HelloInfo, type Msg } from "./codec.js";

export type { PeerOptions } from "../protocol.js";

export const DEFAULT_HEARTBEAT_MS = 5000;
export const DEFAULT_MAX_MESSAGE_SIZE = 64 * 1024 * 1024;
/** Time the peer's HELLO may take after the connection opens, ms. */
export const DEFAULT_HANDSHAKE_TIMEOUT_MS = 5000;
/** Longest heartbeat interval a peer may announce, ms; a longer one (or 0) counts as this. */
export const DEFAULT_MAX_PEER_HEARTBEAT_MS = 30_000;

export abstract class Peer {
  readonly loop: Loop;
  readonly conn: Connection;
  readonly heartbeatMs: number;
  readonly maxMessageSize: number;
  /** Set once the peer's HELLO has arrived. */
  peerHello: HelloInfo | undefined;
  /** Set once the connection ended; why. */
  endError: Error | undefined;
  #ended = false;
  readonly #peerTimeoutMs: number | undefined;
  readonly #handshakeTimeoutMs: number;
  readonly #maxPeerHeartbeatMs: number;
  readonly #name: string | undefined;
  #hb: Timer | undefined;
  #handshake: Timer | undefined;
  /** Interval of liveness checks: half a heartbeat. */
  #checkMs = 0;
  /** Loop time of the last check that had seen a message (or of the start). */
  #heardAt = 0;
  /** Loop time of the last check that had seen something sent (or of the last PING). */
  #spokeAt = 0;
  #recvSinceTick = false;
  #sentSinceTick = false;
  /** Where hot messages are decoded (no array per message): read by onMsg, cleared after it. */
  readonly #scratch: unknown[] = [undefined, undefined, undefined, undefined, undefined, undefined, undefined, undefined];

  constructor(loop: Loop, conn: Connection, options: PeerOptions) {
    this.loop = loop;
    this.conn = conn;
    // Checked once by the server or client that owns the options (checkPeerOptions).
    this.heartbeatMs = options.heartbeatMs ?? DEFAULT_HEARTBEAT_MS;
    this.maxMessageSize = options.maxMessageSize ?? DEFAULT_MAX_MESSAGE_SIZE;
    this.#peerTimeoutMs = options.peerTimeoutMs;
    this.#handshakeTimeoutMs = options.handshakeTimeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS;
    this.#maxPeerHeartbeatMs = options.maxPeerHeartbeatMs ?? DEFAULT_MAX_PEER_HEARTBEAT_MS;
    this.#name = options.name;
  }

  get ended(): boolean {
    return this.#ended;
  }

  /** Begin reading; call once the subclass is ready. */
  protected startPeer(): void {
    this.conn.start({
      message: (m) => this.#onMessage(m),
      frame: (b, start, end) => this.#onFrame(b, start, end),
      end: (e) => this.#onEnd(e),
    });
    const now = this.loop.now();
    this.#heardAt = this.#spokeAt = now;
    if (this.heartbeatMs > 0) {
      this.#checkMs = this.heartbeatMs / 2;
      this.#hb = this.loop.timer(this.#checkMs, this.#tick).unref();
    }
    const hs = this.#handshakeTimeoutMs;
    if (hs > 0 && hs !== Infinity) this.#handshake = this.loop.timer(hs, this.#handshakeOver).unref();
  }

  readonly #handshakeOver = (): void => {
    this.#handshake = undefined;
    if (this.peerHello !== undefined || this.#ended) return;
    this.fail(new ProtocolError(`no HELLO within ${formatMs(this.#handshakeTimeoutMs)} of connecting (handshakeTimeoutMs)`, {
      context: { handshakeTimeoutMs: this.#handshakeTimeoutMs },
    }));
  };

  /** Sends HELLO; `windowBytes` (a client's) is the byte window of its streams. */
  protected sendHello(windowBytes?: number): void {
    const info: HelloInfo = { heartbeatMs: this.heartbeatMs, maxMessageSize: this.maxMessageSize, items: true, meta: true };
    if (windowBytes !== undefined) info.windowBytes = windowBytes;
    if (this.#name !== undefined) info.name = this.#name;
    this.send([T.HELLO, PROTOCOL, VERSION, info]);
  }

  /** Check a HELLO; on mismatch answer with a connection-level ERROR and end. */
  protected acceptHello(m: Msg): boolean {
    if (m[0] !== T.HELLO) {
      this.fail(new ProtocolError(`expected HELLO first, got message type ${m[0]}`));
      return false;
    }
    const [, proto, version, info] = m;
    if (proto !== PROTOCOL || Math.trunc(version) !== VERSION) {
      this.fail(
        new IncompatiblePeerError(`peer speaks ${excerpt(proto)} version ${excerpt(version)}; this side speaks "${PROTOCOL}" version ${VERSION}`, {
          context: { peerProtocol: proto, peerVersion: version, version: VERSION },
        }),
      );
      return false;
    }
    const hb = info.heartbeatMs;
    this.peerHello = {
      // This side's rules hold whatever the peer asks: no interval above the maximum, none means the maximum.
      heartbeatMs: typeof hb === "number" && hb > 0 ? Math.min(hb, this.#maxPeerHeartbeatMs) : this.#maxPeerHeartbeatMs,
      maxMessageSize: typeof info.maxMessageSize === "number" ? info.maxMessageSize : DEFAULT_MAX_MESSAGE_SIZE,
      ...(typeof info.name === "string" ? { name: info.name } : {}),
    };
    if (info.items === true) {
      this.peerHello.items = true;
      const wb = info.windowBytes;
      if (typeof wb === "number" && wb > 0) this.peerHello.windowBytes = wb;
    }
    if (info.meta === true) this.peerHello.meta = true;
    this.#handshake?.cancel();
    this.#handshake = undefined;
    return true;
  }

  /** Send one message; false when the writer should wait for drain. Throws if the connection ended. */
  send(m: Msg): boolean {
    this.#sentSinceTick = true;
    return this.conn.send([encode(m)], true);
  }

  /** Send one message already encoded (by the codec's `encodeCall`, `encodeValue`); as `send`. */
  sendEncoded(frame: Uint8Array): boolean {
    this.#sentSinceTick = true;
    return this.conn.send([frame], true);
  }

  /** Send a RESULT or an ITEM: written straight into the transport's buffer where the transport and the value allow. As `send`. */
  sendValue(type: T.RESULT | T.ITEM, id: number, value: unknown): boolean {
    this.#sentSinceTick = true;
    const conn = this.conn;
    if (conn.sendFrame !== undefined) {
      const size = prepareValue(type, id, value);
      if (size >= 0) return conn.sendFrame(size, FRAME);
    }
    return conn.send([encodeValue(type, id, value)], true);
  }

  /** Send a CALL, as {@link sendValue}. */
  sendCallMessage(id: number, method: string, args: readonly unknown[], kwargs: Record<string, unknown> | null, deadline: number | null, credit: number, meta?: Metadata): boolean {
    this.#sentSinceTick = true;
    const conn = this.conn;
    if (meta !== undefined) return conn.send([encodeCall(id, method, args, kwargs, deadline, credit, meta)], true);
    if (conn.sendFrame !== undefined) {
      const size = prepareCall(id, method, args, kwargs, deadline, credit);
      if (size >= 0) return conn.sendFrame(size, FRAME);
    }
    return conn.send([encodeCall(id, method, args, kwargs, deadline, credit)], true);
  }

  /** Send without throwing (the connection may have ended meanwhile). */
  trySend(m: Msg): boolean {
    if (this.#ended) return false;
    try {
      return this.send(m);
    } catch {
      return false;
    }
  }

  sendError(id: number, info: RemoteErrorInfo): void {
    this.trySend([T.ERROR, id, info]);
  }

  /**
   * End the connection for `error`. A lost peer is dropped at once; a peer that
   * broke the protocol is first told why (an ERROR with call id 0 carrying the
   * code), then the connection closes after flushing.
   */
  fail(error: Error): void {
    if (this.#ended || this.endError !== undefined) return;
    this.endError = error;
    if (error instanceof ProtocolError || error instanceof IncompatiblePeerError) {
      this.sendError(0, { name: error.name, message: error.message, code: error.code });
      void this.conn.close();
    } else this.conn.destroy(error);
  }

  /** A decoded message arrived (after the HELLO exchange is the subclass's business). */
  protected abstract onMsg(m: Msg): void;
  /** The connection ended; `error` says why (ConnectionLostError, ProtocolError, ...). */
  protected abstract onEnded(error: Error): void;

  #onMessage(frames: Message): void {
    if (frames.length !== 1) {
      this.#recvSinceTick = true;
      this.fail(new ProtocolError(`a drpc message has exactly one frame, got ${frames.length}`));
      return;
    }
    const f = frames[0]!;
    this.#onFrame(f, 0, f.length);
  }

  /** A message of one frame: `bytes[start]` to `bytes[end]`. */
  #onFrame(bytes: Uint8Array, start: number, end: number): void {
    this.#recvSinceTick = true;
    const scratch = this.#scratch;
    let m: Msg;
    try {
      m = decode(bytes, start, end, scratch);
    } catch (e) {
      this.fail(e as Error);
      return;
    }
    if (m[0] === T.PING) {
      if (this.peerHello === undefined) this.fail(new ProtocolError("expected HELLO first, got PING"));
      return;
    }
    try {
      this.onMsg(m);
    } catch (e) {
      // A bug on our side must not take the process down; end this connection only.
      this.fail(new ProtocolError(`internal error handling a message: ${describeError(e)}`, { cause: e }));
    }
    if (m === scratch) {
      // The values are the session's now: the scratch array keeps none alive.
      scratch[2] = undefined;
      scratch[3] = undefined;
    }
  }

  #onEnd(end: ConnectionEnd): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#hb?.cancel();
    this.#hb = undefined;
    this.#handshake?.cancel();
    this.#handshake = undefined;
    const error =
      this.endError ??
      (end.by === "local"
        ? new ConnectionLostError("connection closed by this side", { cause: end.error })
        : new ConnectionLostError(
            end.error ? `connection broken by peer: ${end.error.message}` : "connection closed by peer",
            { cause: end.error },
          ));
    this.endError = error;
    this.onEnded(error);
  }

  readonly #tick = (): void => {
    if (this.#ended) return;
    const now = this.loop.now();
    const check = this.#checkMs;
    if (this.#recvSinceTick) this.#heardAt = now;
    this.#recvSinceTick = false;
    // The last message came after the check before #heardAt: at most one interval before it.
    const limit = this.#peerTimeoutMs ?? 3 * Math.max(this.peerHello?.heartbeatMs ?? this.heartbeatMs, this.heartbeatMs);
    const silentMs = now - this.#heardAt;
    if (silentMs + check >= limit) {
      this.fail(new ConnectionLostError(`peer silent for ${formatMs(silentMs)} or more (limit ${formatMs(limit)})`, { silentMs: Math.round(silentMs) }));
      return;
    }
    if (this.#sentSinceTick) this.#spokeAt = now;
    this.#sentSinceTick = false;
    if (now - this.#spokeAt >= this.heartbeatMs) {
      this.trySend([T.PING]);
      this.#sentSinceTick = false;
      this.#spokeAt = now;
    }
    // Check again in one interval, or sooner when the limit falls before it.
    const due = this.#heardAt + limit - check - now;
    this.#hb = this.loop.timer(due > 0 && due < check ? due : check, this.#tick).unref();
  };
}
