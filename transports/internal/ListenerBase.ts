/**
 * What every listener shares: a bounded queue of accepted connections handed
 * to a `start()` handler (on later turns) or to an async iterator, and an
 * idempotent close that destroys connections nobody has claimed.
 * Internal module.
 */
import type { Loop } from "../../core/Loop.js";
import type { Connection, Listener } from "../../core/Transport.js";
import { Ring } from "../../core/Ring.js";
import { InvalidStateError } from "../errors.js";

/** Default bound of accepted connections waiting to be claimed (as the OS backlog default). */
export const DEFAULT_BACKLOG = 511;

export abstract class ListenerBase implements Listener {
  readonly scheme: string;
  readonly url: string;
  protected readonly loop: Loop;
  readonly #backlog: number;
  readonly #queue = new Ring<Connection>(16);
  #handler: ((conn: Connection) => void) | undefined = undefined;
  #iterating = false;
  #wake: (() => void) | undefined = undefined;
  #posted = false;
  #closing = false;
  #closeP: Promise<void> | undefined = undefined;
  /** Connections dropped because the accept queue was full. */
  dropped = 0;

  protected constructor(loop: Loop, scheme: string, url: string, backlog = DEFAULT_BACKLOG) {
    this.loop = loop;
    this.scheme = scheme;
    this.url = url;
    this.#backlog = backlog;
  }

  /** Stop the underlying endpoint from accepting. */
  protected abstract stopAccepting(): Promise<void>;

  /** Whether the listener was closed. */
  get closing(): boolean {
    return this.#closing;
  }

  /** A connection was accepted: queue it for the handler or iterator. */
  protected accept(conn: Connection): void {
    if (this.#closing || this.#queue.length >= this.#backlog) {
      if (!this.#closing) this.dropped++;
      conn.destroy();
      return;
    }
    this.#queue.push(conn);
    if (this.#handler !== undefined) this.#schedule();
    else if (this.#wake !== undefined) {
      const w = this.#wake;
      this.#wake = undefined;
      w();
    }
  }

  start(handler: (conn: Connection) => void): void {
    if (this.#handler !== undefined || this.#iterating) throw new InvalidStateError("start() or iteration already began on this listener");
    this.#handler = handler;
    if (this.#queue.length > 0) this.#schedule();
  }

  #schedule(): void {
    if (this.#posted) return;
    this.#posted = true;
    this.loop.post(this.#deliver);
  }

  readonly #deliver = (): void => {
    this.#posted = false;
    const h = this.#handler!;
    for (;;) {
      const conn = this.#queue.shift();
      if (conn === undefined) return;
      try {
        h(conn);
      } catch (e) {
        this.loop.post(() => {
          throw e;
        });
      }
    }
  };

  [Symbol.asyncIterator](): AsyncIterator<Connection> {
    if (this.#handler !== undefined || this.#iterating) throw new InvalidStateError("start() or iteration already began on this listener");
    this.#iterating = true;
    return {
      next: async (): Promise<IteratorResult<Connection>> => {
        for (;;) {
          const conn = this.#queue.shift();
          if (conn !== undefined) return { value: conn, done: false };
          if (this.#closing) return { value: undefined, done: true };
          await new Promise<void>((resolve) => (this.#wake = resolve));
        }
      },
      // Leaving a for-await early closes the listener.
      return: async (): Promise<IteratorResult<Connection>> => {
        await this.close();
        return { value: undefined, done: true };
      },
    };
  }

  close(): Promise<void> {
    if (this.#closeP === undefined) {
      this.#closing = true;
      for (let c = this.#queue.shift(); c !== undefined; c = this.#queue.shift()) c.destroy();
      if (this.#wake !== undefined) {
        const w = this.#wake;
        this.#wake = undefined;
        w();
      }
      this.#closeP = this.stopAccepting();
    }
    return this.#closeP;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
