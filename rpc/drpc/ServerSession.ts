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
import { T, encodeValue, type Msg } from "./codec.js";
import { Peer, type PeerOptions } from "./Peer.js";

export class ServerSession extends Peer implements ServerSessionLike, CallWire<number> {
  readonly #server: ServerCore;
  readonly #calls: ServerCalls<number>;
  readonly #output: OutputGuard;
  #helloed = false;

  constructor(server: ServerCore, conn: Connection, loop: Loop, options: PeerOptions) {
    super(loop, conn, options);
    this.#server = server;
    this.#calls = new ServerCalls<number>(server, loop, this, conn.remoteUrl, conn.peerIdentity);
    this.#output = new OutputGuard(conn, server.outputBudget);
    this.startPeer();
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
      this.sendHello();
      if (this.#calls.draining) this.trySend([T.GOAWAY, "server closing"]);
      return;
    }
    switch (m[0]) {
      case T.CALL:
        if (this.#reused(m[1])) return;
        this.#calls.dispatch(m[1], m[1], m[2], m[3], m[4], m[5], m[6]);
        return;
      case T.CANCEL:
        this.#calls.cancel(m[1], new CancelledError(`cancelled by the client: ${m[2]}`));
        return;
      case T.CREDIT:
        this.#calls.grant(m[1], m[2]);
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
    this.#output.sent(this.sendEncoded(encodeValue(T.RESULT, id, value)));
  }

  item(call: ServerCall<number>, value: unknown): boolean {
    const ok = this.sendEncoded(encodeValue(T.ITEM, call.id, value));
    if (!ok) this.#output.sent(ok);
    return ok;
  }

  end(call: ServerCall<number>): void {
    this.trySend([T.END, call.id]);
  }

  answerError(id: number, _id: number, error: unknown): void {
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
    return this.conn.drain().catch(() => {});
  }
}
