/**
 * A listener over a node:net or node:tls server: each accepted socket becomes
 * a {@link StreamConnection}.
 * Internal module: not part of the public API.
 */
import type { Server, Socket } from "node:net";
import type { Loop } from "../../core/Loop.js";
import { StreamConnection } from "../StreamConnection.js";
import type { ConnectionParams } from "./ConnectionBase.js";
import { ListenerBase } from "./ListenerBase.js";

export class StreamListener extends ListenerBase {
  readonly #server: Server;

  constructor(
    loop: Loop,
    scheme: string,
    url: string,
    server: Server,
    acceptEvent: "connection" | "secureConnection",
    params: (socket: Socket) => ConnectionParams,
    backlog?: number,
  ) {
    super(loop, scheme, url, backlog);
    this.#server = server;
    server.on(acceptEvent, (socket: Socket) => {
      let conn: StreamConnection;
      try {
        conn = new StreamConnection(loop, socket, params(socket));
      } catch {
        socket.destroy();
        return;
      }
      this.accept(conn);
    });
    // After listening, server errors are per-accept failures (EMFILE…): the
    // server keeps listening, and the failed socket never became ours.
    server.on("error", () => {});
  }

  /** The underlying server (for options; do not accept from it). */
  get server(): Server {
    return this.#server;
  }

  protected stopAccepting(): Promise<void> {
    // server.close() closes the listening handle now (an ipc socket file is
    // unlinked with it) but calls back only when every accepted socket is gone;
    // accepted connections are not ours to wait for. The handle is released
    // two host turns later (uv_close completes in a later close phase); two
    // chained 0 ms timers span two turns (posts would all run in one).
    this.#server.close();
    return new Promise<void>((resolve) => this.loop.timer(0, () => this.loop.timer(0, resolve)));
  }
}
