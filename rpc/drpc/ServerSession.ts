/**
 * The server end of one drpc connection: the HELLO exchange and heartbeats
 * (in Peer), GOAWAY, and drpc's form of answers. Dispatch, deadlines, streams
 * with credit, cancellation and middleware are the call engine's (rpc/ServerCalls).
 * Internal module: not part of the public API.
 */
import type { Loop } from "../../core/Loop.js";
import type { Connection } from "../../core/Transport.js";
import { CancelledError } from "../../core/errors.js";
import { ProtocolError, errorInfo } from "../errors.js";
import type { ServerCore, ServerSessionLike } from "../protocol.js";
import { ServerCalls, type CallWire, type ServerCall } from "../ServerCalls.js";
import { OutputGuard } from "../internal/OutputGuard.js";
import { ItemBatch, T, type Msg } from "./codec.js";
import { Peer, type PeerOptions } from "./Peer.js";

/** The least byte window a client may ask for: one batch of items. */
const MIN_WINDOW_BYTES = 64 * 1024;

export class ServerSession extends Peer implements ServerSessionLike, CallWire<number> {
  readonly protocol = "drpc";
  readonly #server: ServerCore;
  readonly #calls: ServerCalls<number>;
  readonly #output: OutputGuard;
  #helloed = false;
  /** The client reads ITEMS: a stream's items go out in batches, one per call and turn. */
  #batching = false;
  /** Calls with items in their batch, sent at the end of the turn. */
  #batched: ServerCall<number>[] = [];
  #flushQueued = false;
  /** What the last send of items returned: false while the writer should wait for drain. */
  #writable = true;

  /** Over ws and wss (browsers), `.debug.*` is not served unless the server asks (`wsDebug`). */
  readonly #noDebug: boolean;

  constructor(server: ServerCore, conn: Connection, loop: Loop, options: PeerOptions & { wsDebug?: boolean }) {
    super(loop, conn, options);
    this.#server = server;
    this.#noDebug = (conn.scheme === "ws" || conn.scheme === "wss") && options.wsDebug !== true;
    this.#calls = new ServerCalls<number>(server, loop, this, conn.remoteUrl, conn.peerIdentity);
    this.#output = new OutputGuard(conn, server.outputBudget);
    this.startPeer();
  }

  /** CallWire: the methods this connection may call (the debug API is off on ws unless enabled). */
  serves(method: string): boolean {
    return !(this.#noDebug && method.startsWith(".debug."));
  }

  /** Calls in flight. */
  get active(): number {
    return this.#calls.size;
  }

  /** The calls in flight: id, method, peer and loop time of arrival. */
  activeCalls(): { id: number; method: string; peer: string; startedAt: number }[] {
    return this.#calls.list();
  }

  /** Stop taking calls: tell the client to go elsewhere for new ones. */
  goaway(reason: string): void {
    if (this.#calls.draining) return;
    this.#calls.drain();
    if (this.#helloed) this.trySend([T.GOAWAY, reason]);
  }

  /** Resolves when no call is in flight. */
  idle(): Promise<void> {
    return this.#calls.idle();
  }

  /** Cancel what is still running (answering each with ERR_UNAVAILABLE), then close. */
  async shutdown(reason: string): Promise<void> {
    this.#calls.cancelAll(reason);
    await this.conn.close();
  }

  /** Close the connection at once. */
  destroy(reason: Error): void {
    this.conn.destroy(reason);
  }

  protected onMsg(m: Msg): void {
    if (!this.#helloed) {
      if (!this.acceptHello(m)) return;
      this.#helloed = true;
      const hello = this.peerHello!;
      if (hello.items === true) {
        this.#batching = true;
        if (hello.windowBytes !== undefined) this.#calls.windowBytes = Math.max(hello.windowBytes, MIN_WINDOW_BYTES);
      }
      this.sendHello();
      if (this.#calls.draining) this.trySend([T.GOAWAY, "server closing"]);
      return;
    }
    switch (m[0]) {
      case T.CALL:
        if (this.#reused(m[1])) return;
        this.#calls.dispatch(m[1], m[1], m[2], m[3], m[4], m[5], m[6], m[7]);
        return;
      case T.CANCEL:
        this.#calls.cancel(m[1], new CancelledError(`cancelled by the client: ${m[2]}`));
        return;
      case T.CREDIT:
        this.#calls.grant(m[1], m[2], m[3]);
        return;
      case T.REFUSED:
        // A CALL whose arguments are outside the value model: that call is answered with why; the connection goes on.
        if (m[1] !== T.CALL) break;
        if (!this.#reused(m[2])) this.answerError(m[2], m[2], m[3]);
        return;
    }
    this.fail(new ProtocolError(`unexpected message type ${m[0]} from a client`));
  }

  /** A call id already in flight is a protocol error: the connection ends. */
  #reused(id: number): boolean {
    if (!this.#calls.has(id)) return false;
    this.fail(new ProtocolError(`call id ${id} reused while in flight`));
    return true;
  }

  protected onEnded(error: Error): void {
    this.#output.ended();
    this.#calls.ended(error);
    this.#server.sessionEnded(this);
  }

  // ---- CallWire: drpc's form of answers ----

  answer(id: number, _id: number, value: unknown): void {
    this.#output.sent(this.sendValue(T.RESULT, id, value));
  }

  item(call: ServerCall<number>, value: unknown): boolean {
    if (!this.#batching) {
      const ok = this.sendValue(T.ITEM, call.id, value);
      if (!ok) this.#output.sent(ok);
      return ok;
    }
    let batch = call.out as ItemBatch | undefined;
    // A batch stays within the smaller message size limit of the two sides (the header's 12 bytes spare).
    if (batch === undefined) call.out = batch = new ItemBatch(1024, Math.min(this.maxMessageSize, this.peerHello!.maxMessageSize) - 12);
    const full = batch.add(value, call.id);
    call.creditBytes -= batch.lastSize;
    if (full !== undefined) this.#sendFrame(call, batch, full);
    if (batch.full) {
      // Sent now, so an item too large for any message fails its call here.
      this.#sendFrame(call, batch, batch.take(call.id));
    } else if (batch.count === 1) {
      // The first item of this turn: the batch goes out at its end (or once full).
      this.#batched.push(call);
      if (!this.#flushQueued) {
        this.#flushQueued = true;
        this.loop.post(this.#flush);
      }
    }
    return this.#writable;
  }

  /** Send an ITEMS message taken from a call's batch; its header's bytes are charged to the call's byte credit (its items' were, as they came). */
  #sendFrame(call: ServerCall<number>, batch: ItemBatch, frame: Uint8Array): void {
    call.creditBytes -= batch.lastHead;
    const ok = this.sendEncoded(frame);
    this.#writable = ok;
    if (!ok) this.#output.sent(ok);
  }

  /** The end of the turn: every batch still held goes out, but those of calls that ended unanswered (cancelled, lost). */
  readonly #flush = (): void => {
    this.#flushQueued = false;
    const calls = this.#batched;
    this.#batched = [];
    for (const call of calls) {
      const batch = call.out as ItemBatch;
      if (batch.count === 0) continue;
      const frame = batch.take(call.id);
      if (call.done || this.ended) continue;
      try {
        this.#sendFrame(call, batch, frame);
      } catch {
        // The connection is closing (its end follows): nothing more can be sent.
        // A batch is never too large here: each stays within the message size limit.
        return;
      }
    }
  };

  /** Before a call's last message (END, ERROR): the items it still holds go first. */
  #flushCall(id: number): void {
    for (const call of this.#batched) {
      if (call.id !== id) continue;
      const batch = call.out as ItemBatch;
      if (batch.count > 0) this.#sendFrame(call, batch, batch.take(call.id));
    }
  }

  end(call: ServerCall<number>): void {
    if (this.#batching && !this.ended) {
      try {
        this.#flushCall(call.id);
      } catch {
        // the connection ended meanwhile: nothing more can be sent
      }
    }
    this.trySend([T.END, call.id]);
  }

  answerError(id: number, _id: number, error: unknown): void {
    if (this.#batching && !this.ended) {
      try {
        this.#flushCall(id);
      } catch {
        // the connection ended meanwhile, or the batch could not be sent (too large): the error says why
      }
    }
    const info = errorInfo(error, this.#server.exposeStack);
    try {
      this.#output.sent(this.send([T.ERROR, id, info]));
    } catch {
      // data that cannot be encoded (or the connection ended): send the error without it
      delete info.data;
      this.sendError(id, info);
    }
  }

  drain(): Promise<void> {
    return this.conn.drain().then(this.#drained, this.#drained);
  }

  readonly #drained = (): void => {
    this.#writable = true;
  };
}
