/**
 * The soak run's fixed mixed load, each kind a loop bounded in count and in
 * time (it stops at `until`, or after `max` rounds, or when `signal` aborts):
 * unary calls, streams, cancellations (by signal and by deadline),
 * reconnects, slow readers that never read what they asked for, and clients
 * that announce a large frame and stall.
 */
import net from "node:net";
import type { Loop } from "../../core/Loop.js";
import type { Connection } from "../../core/Transport.js";
import { sleep } from "../../core/time.js";
import { close, connect, withOptions, type Remote } from "../../rpc/index.js";
import type { FuzzApi } from "../fuzz/api.js";
import { encodeNode, W } from "../fuzz/wire.js";

export interface LoadOptions {
  loop: Loop;
  /** The server's drpc URL. */
  url: string;
  /** Loop time at which every load loop stops. */
  until: number;
  signal: AbortSignal;
  /** Seconds a slow reader or a stalled client stays before it is replaced. */
  holdSeconds: number;
}

/** What each kind of load did. */
export interface LoadCounts {
  [kind: string]: { rounds: number; errors: number; lastError?: string };
}

/** Rounds a load loop runs at the most (a bound besides time). */
const MAX_ROUNDS = 10_000_000;

/** Run `round` until time, count or the signal says stop; errors are counted, and a pause follows each round. */
async function loadLoop(o: LoadOptions, counts: LoadCounts, kind: string, pauseMs: number, round: (i: number) => Promise<void>): Promise<void> {
  const c = (counts[kind] ??= { rounds: 0, errors: 0 });
  for (let i = 0; i < MAX_ROUNDS && o.loop.now() < o.until && !o.signal.aborted; i++) {
    try {
      await round(i);
      c.rounds++;
    } catch (e) {
      if (o.signal.aborted) break;
      c.errors++;
      c.lastError = e instanceof Error ? `${(e as { code?: string }).code ?? e.name}: ${e.message}` : String(e);
    }
    await sleep(o.loop, pauseMs, { signal: o.signal }).catch(() => {});
  }
}

const isAbort = (e: unknown): boolean => (e as { code?: string })?.code === "ERR_CANCELLED" || (e as Error)?.name === "AbortError";

/** The messages of a raw drpc client that asks for large results: HELLO, then `n` calls of blob(1 MiB) and a long stream. */
function greedyMessages(n: number): Uint8Array[] {
  const hello = encodeNode(W.arr([W.int(0), W.str("drpc"), W.int(1), W.map([["heartbeatMs", W.int(5000)], ["maxMessageSize", W.int(64 * 1024 * 1024)]])]));
  const calls = Array.from({ length: n }, (_, i) => encodeNode(W.arr([W.int(1), W.int(i + 1), W.str("blob"), W.nil(), W.nil(), W.int(0), W.arr([W.int(1 << 20)])])));
  const stream = encodeNode(W.arr([W.int(1), W.int(n + 1), W.str("count"), W.nil(), W.nil(), W.int(1000), W.arr([W.int(1000)])]));
  return [hello, ...calls, stream];
}

/** Start every kind of load; resolves when all have stopped. */
export async function runLoad(o: LoadOptions, counts: LoadCounts): Promise<void> {
  const { loop, url } = o;
  const tcp = url.slice("drpc+".length);
  const hold = o.holdSeconds * 1000;
  const clients: Remote<FuzzApi>[] = [];
  const client = async (): Promise<Remote<FuzzApi>> => {
    const c = await connect<FuzzApi>(url, { loop, timeout: 10_000 });
    clients.push(c);
    return c;
  };
  const [a, b, s, k] = [await client(), await client(), await client(), await client()];
  const text = "x".repeat(200);
  const loops = [
    loadLoop(o, counts, "unary", 2, async (i) => {
      if ((await a.echo({ i, text })) === undefined) throw new Error("echo answered nothing");
    }),
    loadLoop(o, counts, "unary", 2, async (i) => {
      if (i % 50 === 0) await b.blob(64 * 1024);
      else if ((await b.add(i, 1)) !== i + 1) throw new Error("add answered wrong");
    }),
    loadLoop(o, counts, "stream", 20, async () => {
      let n = 0;
      for await (const _ of s.count(200)) n++;
      if (n !== 200) throw new Error(`the stream gave ${n} items of 200`);
    }),
    loadLoop(o, counts, "cancel", 10, async (i) => {
      if (i % 3 === 2) {
        // A stream left after a few items.
        for await (const x of k.count(1000)) if (x >= 3) break;
        return;
      }
      const ac = new AbortController();
      const p = i % 3 === 0 ? withOptions(k, { signal: ac.signal }).wait(10_000) : withOptions(k, { timeout: 5 }).wait(10_000);
      loop.timer(5, () => ac.abort("soak cancel"));
      await p.then(
        () => {
          throw new Error("a cancelled call answered");
        },
        (e: unknown) => {
          if (!isAbort(e) && (e as { code?: string }).code !== "ERR_TIMEOUT") throw e;
        },
      );
    }),
    loadLoop(o, counts, "reconnect", 100, async () => {
      const c = await connect<FuzzApi>(url, { loop, timeout: 10_000 });
      try {
        await c.ping();
      } finally {
        await close(c);
      }
    }),
    // Slow readers: ask for 8 MiB of results and a long stream, never read; replaced after `hold`.
    ...Array.from({ length: 4 }, () =>
      loadLoop(o, counts, "slow reader", 0, async () => {
        const conn: Connection = await loop.connect(tcp);
        try {
          conn.start({ message() {}, end() {} });
          conn.pause();
          for (const m of greedyMessages(8)) conn.send([m]);
          await sleep(loop, Math.min(hold, Math.max(0, o.until - loop.now())), { signal: o.signal }).catch(() => {});
        } finally {
          conn.destroy();
        }
      }),
    ),
    // Stalled writers: announce a 16 MiB frame, send 1 KiB of it, and stall; replaced after `hold`.
    ...Array.from({ length: 4 }, () =>
      loadLoop(o, counts, "stalled writer", 0, async () => {
        const u = new URL(tcp);
        const sock = net.connect({ host: u.hostname, port: Number(u.port) });
        sock.on("error", () => {});
        const closed = new Promise<void>((resolve) => sock.once("close", () => resolve()));
        try {
          await new Promise<void>((resolve, reject) => sock.once("connect", resolve).once("error", reject));
          const head = Buffer.alloc(4 + 1024, 0x61);
          head.writeUInt32BE(16 * 1024 * 1024, 0);
          sock.write(head);
          await Promise.race([sleep(loop, Math.min(hold, Math.max(0, o.until - loop.now())), { signal: o.signal }).catch(() => {}), closed]);
        } finally {
          sock.destroy();
          await closed;
        }
      }),
    ),
  ];
  try {
    await Promise.all(loops);
  } finally {
    await Promise.all(clients.map((c) => close(c).catch(() => {})));
  }
}
