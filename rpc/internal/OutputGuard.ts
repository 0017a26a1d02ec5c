/**
 * Output a server holds for a client that does not read: once a connection's
 * send buffer passes its high-water mark, the server stops reading that
 * connection (no new calls from a client that does not take its results)
 * until the buffer drains, and charges what it holds to the server-wide
 * output budget. A client whose held output would pass the budget is cut off
 * with ERR_BUSY, so the total stays bounded whatever the number of clients.
 * Costs nothing while the connection keeps up: only a `false` from `send`
 * wakes it.
 * Internal module.
 */
import type { ByteBudget } from "../../core/Budget.js";
import type { Connection } from "../../core/Transport.js";
import { BusyError } from "../../core/errors.js";

export class OutputGuard {
  readonly #conn: Connection;
  readonly #budget: ByteBudget | undefined;
  /** Bytes charged to the budget while backed up. */
  #held = 0;
  #backedUp = false;

  constructor(conn: Connection, budget: ByteBudget | undefined) {
    this.#conn = conn;
    this.#budget = budget;
  }

  /** Whether reading is stopped until the client takes its results. */
  get backedUp(): boolean {
    return this.#backedUp;
  }

  /** After a send: `ok` is what `send` returned. */
  sent(ok: boolean): void {
    if (ok && !this.#backedUp) return;
    const conn = this.#conn;
    if (conn.ended !== undefined) return;
    const budget = this.#budget;
    if (budget !== undefined) {
      const now = conn.bufferedAmount;
      if (now > this.#held) {
        if (!budget.take(now - this.#held)) {
          conn.destroy(new BusyError(
            `output budget exhausted: ${budget.used} bytes held for clients that do not read (limit ${budget.limit}); this client held ${now} and was cut off`,
            { context: { used: budget.used, limit: budget.limit, held: now } },
          ));
          this.#release();
          return;
        }
        this.#held = now;
      }
    }
    if (this.#backedUp) return;
    this.#backedUp = true;
    conn.pause();
    conn.drain().then(
      () => {
        this.#release();
        this.#backedUp = false;
        if (conn.ended === undefined) conn.resume();
      },
      () => this.#release(),
    );
  }

  #release(): void {
    if (this.#held === 0) return;
    this.#budget?.give(this.#held);
    this.#held = 0;
  }

  /** The connection ended: give back what was charged. */
  ended(): void {
    this.#release();
  }
}
