/**
 * What both ends of a drpc connection share: decoding, the HELLO exchange,
 * heartbeats and liveness, and ending with a reason.
 *
 * Liveness costs nothing per message: receiving sets a flag, and one timer per
 * connection ticks every heartbeat interval. A tick that saw no message counts
 * as silent; enough silent ticks (at least `peerTimeoutMs`) and the peer is
 * lost. A tick with nothing sent sends a PING. So a call that is merely slow
 * never looks like a dead peer: both sides keep pinging while it runs.
 * Internal module.
 */
import type { Loop, Timer } from "../../core/Loop.js";
import type { Connection, ConnectionEnd, Message } from "../../core/Transport.js";
import { describe as describeError, excerpt } from "../../core/errors.js";
import { ConnectionLostError, IncompatiblePeerError, ProtocolError, type RemoteErrorInfo } from "../errors.js";
import type { PeerOptions } from "../protocol.js";
import { PROTOCOL, T, VERSION, decode, encode, type HelloInfo, type Msg } from "./codec.js";

export type { PeerOptions } from "../protocol.js";

export const DEFAULT_HEARTBEAT_MS = 5000;
export const DEFAULT_MAX_MESSAGE_SIZE = 64 * 1024 * 1024;

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
  readonly #name: string | undefined;
  #hb: Timer | undefined;
  #recvSinceTick = false;
  #sentSinceTick = false;
  #silentTicks = 0;

  constructor(loop: Loop, conn: Connection, options: PeerOptions) {
    this.loop = loop;
    this.conn = conn;
    this.heartbeatMs = options.heartbeatMs ?? DEFAULT_HEARTBEAT_MS;
    this.maxMessageSize = options.maxMessageSize ?? DEFAULT_MAX_MESSAGE_SIZE;
    this.#peerTimeoutMs = options.peerTimeoutMs;
    this.#name = options.name;
  }

  get ended(): boolean {
    return this.#ended;
  }

  /** Begin reading; call once the subclass is ready. */
  protected startPeer(): void {
    this.conn.start({
      message: (m) => this.#onMessage(m),
      end: (e) => this.#onEnd(e),
    });
    if (this.heartbeatMs > 0) this.#hb = this.loop.timer(this.heartbeatMs, this.#tick).unref();
  }

  protected sendHello(): void {
    const info: HelloInfo = { heartbeatMs: this.heartbeatMs, maxMessageSize: this.maxMessageSize };
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
    this.peerHello = {
      heartbeatMs: typeof info.heartbeatMs === "number" ? info.heartbeatMs : 0,
      maxMessageSize: typeof info.maxMessageSize === "number" ? info.maxMessageSize : DEFAULT_MAX_MESSAGE_SIZE,
      ...(typeof info.name === "string" ? { name: info.name } : {}),
    };
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
    this.#recvSinceTick = true;
    if (frames.length !== 1) {
      this.fail(new ProtocolError(`a drpc message has exactly one frame, got ${frames.length}`));
      return;
    }
    let m: Msg;
    try {
      m = decode(frames[0]!);
    } catch (e) {
      this.fail(e as Error);
      return;
    }
    if (m[0] === T.PING) return;
    try {
      this.onMsg(m);
    } catch (e) {
      // A bug on our side must not take the process down; end this connection only.
      this.fail(new ProtocolError(`internal error handling a message: ${describeError(e)}`, { cause: e }));
    }
  }

  #onEnd(end: ConnectionEnd): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#hb?.cancel();
    this.#hb = undefined;
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
    if (this.#recvSinceTick) this.#silentTicks = 0;
    else this.#silentTicks++;
    this.#recvSinceTick = false;
    const peerHb = this.peerHello?.heartbeatMs ?? this.heartbeatMs;
    if (peerHb > 0) {
      const limit = this.#peerTimeoutMs ?? 3 * Math.max(peerHb, this.heartbeatMs);
      const silentMs = this.#silentTicks * this.heartbeatMs;
      if (silentMs >= limit) {
        this.fail(new ConnectionLostError(`peer silent for ${silentMs} ms (limit ${limit} ms)`, { silentMs }));
        return;
      }
    }
    if (!this.#sentSinceTick) this.trySend([T.PING]);
    this.#sentSinceTick = false;
    this.#hb = this.loop.timer(this.heartbeatMs, this.#tick).unref();
  };
}
