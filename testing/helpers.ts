/**
 * Helpers for transport tests, as the conformance suite uses them: connected
 * pairs, message collectors, an echo handler, numbered and patterned
 * messages, waiting a number of loop turns, and a guard against unhandled
 * rejections. Each takes the loop it works on, so they run on any adapter,
 * in real or virtual time.
 *
 * @example
 * ```ts
 * import { collect, connectPair, echo } from "tilth/testing";
 * const { listener, client, server } = await connectPair(myCase, loop);
 * const got = collect(client);
 * void echo(server);
 * client.send([Buffer.from("ping")]);
 * await got.until(1); // got.msgs[0] is the echo
 * ```
 * @module
 */
import type { Loop } from "../core/Loop.js";
import type { Connection, ConnectionEnd, ConnectOptions, Listener, ListenOptions, Message } from "../core/Transport.js";

/**
 * How to exercise one transport on one kind of loop: what
 * {@link transportConformance} takes (through a factory, once per test).
 */
export interface TransportCase {
  /** Names the suite's `describe` block. */
  name: string;
  /** A new loop on which the transport is registered. */
  makeLoop(): Loop;
  /** A fresh URL to listen on (port 0, a new socket path, a new name). */
  listenUrl(): string;
  /** A URL nobody listens on. */
  refusedUrl(): Promise<string>;
  /** Options for every listen of the suite (a TLS key and certificate, say). */
  listenOptions: ListenOptions;
  /** Options for every connect of the suite. */
  connectOptions: ConnectOptions;
  /** Run `body` to completion on `loop` (auto-advancing virtual time when virtual). */
  run<T>(loop: Loop, body: () => Promise<T>): Promise<T>;
  /** Called after each test: remove temp files and the like. */
  cleanup(): void;
}

/** A promise with its resolve and reject at hand. */
export function defer<T = void>(): { promise: Promise<T>; resolve: (v: T) => void; reject: (e: unknown) => void } {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** One host turn of `loop` (a 0 ms timer needs a turn of its own; posts share one). */
export function turn(loop: Loop): Promise<void> {
  return new Promise((resolve) => loop.timer(0, resolve));
}

/** Whether `p` settles within `n` loop turns (I/O is polled between turns). */
export async function settlesWithin(loop: Loop, p: Promise<unknown>, n: number): Promise<boolean> {
  let settled = false;
  p.then(
    () => (settled = true),
    () => (settled = true),
  );
  for (let i = 0; i < n && !settled; i++) await turn(loop);
  return settled;
}

/** Listen, connect, and return both ends; `nextServer()` gives the server end of later connections. */
export async function connectPair(
  c: TransportCase,
  loop: Loop,
  opts: { listen?: ListenOptions; connect?: ConnectOptions } = {},
): Promise<{ listener: Listener; client: Connection; server: Connection; nextServer: () => Promise<Connection> }> {
  const listener = await loop.listen(c.listenUrl(), { ...c.listenOptions, ...opts.listen });
  const queue: Connection[] = [];
  let waiter: ((c: Connection) => void) | undefined;
  listener.start((conn) => {
    if (waiter) {
      const w = waiter;
      waiter = undefined;
      w(conn);
    } else queue.push(conn);
  });
  const nextServer = (): Promise<Connection> => {
    const q = queue.shift();
    if (q) return Promise.resolve(q);
    return new Promise((resolve) => (waiter = resolve));
  };
  const client = await loop.connect(listener.url, { ...c.connectOptions, ...opts.connect });
  const server = await nextServer();
  return { listener, client, server, nextServer };
}

/** Start `conn` collecting messages; wait for counts or the end. */
export function collect(conn: Connection): {
  msgs: Message[];
  until(n: number): Promise<void>;
  end: Promise<ConnectionEnd>;
  endCalls: () => number;
} {
  const msgs: Message[] = [];
  let waiting: { n: number; d: ReturnType<typeof defer<void>> } | undefined;
  const end = defer<ConnectionEnd>();
  let ended: ConnectionEnd | undefined;
  let endCalls = 0;
  conn.start({
    message(m) {
      msgs.push(m);
      if (waiting && msgs.length >= waiting.n) {
        waiting.d.resolve();
        waiting = undefined;
      }
    },
    end(e) {
      endCalls++;
      ended = e;
      end.resolve(e);
      if (waiting) {
        waiting.d.reject(new Error(`connection ended (${JSON.stringify(e)}) after ${msgs.length} of ${waiting.n} messages`));
        waiting = undefined;
      }
    },
  });
  return {
    msgs,
    until(n) {
      if (msgs.length >= n) return Promise.resolve();
      if (ended) return Promise.reject(new Error(`connection ended after ${msgs.length} of ${n} messages`));
      waiting = { n, d: defer<void>() };
      return waiting.d.promise;
    },
    end: end.promise,
    endCalls: () => endCalls,
  };
}

/** Echo every message back, pausing the reader while the writer is above its high-water mark. */
export function echo(conn: Connection): Promise<ConnectionEnd> {
  const end = defer<ConnectionEnd>();
  conn.start({
    message(m) {
      if (conn.ended) return;
      try {
        if (!conn.send(m)) {
          conn.pause();
          conn.drain().then(
            () => conn.resume(),
            () => {},
          );
        }
      } catch {
        // ended under us; the end handler reports it
      }
    },
    end: (e) => end.resolve(e),
  });
  return end.promise;
}

/** A buffer of `n` bytes with a recognisable pattern. */
export function pattern(n: number, seed = 0): Buffer {
  const b = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed) & 0xff;
  return b;
}

/** A 4-byte sequence number frame. */
export function seqFrame(i: number): Buffer {
  const b = Buffer.allocUnsafe(4);
  b.writeUInt32BE(i);
  return b;
}

export function seqOf(m: Message): number {
  return Buffer.from(m[0]!.buffer, m[0]!.byteOffset, m[0]!.byteLength).readUInt32BE(0);
}

/** Record unhandled rejections while `body` runs (plus a few turns after). */
export async function noUnhandledRejections<T>(loop: Loop, body: () => Promise<T>): Promise<T> {
  const seen: unknown[] = [];
  const on = (e: unknown): void => {
    seen.push(e);
  };
  process.on("unhandledRejection", on);
  try {
    const r = await body();
    for (let i = 0; i < 5; i++) await turn(loop);
    if (seen.length > 0) throw new Error(`unhandled rejections: ${seen.map(String).join("; ")}`);
    return r;
  } finally {
    process.removeListener("unhandledRejection", on);
  }
}
