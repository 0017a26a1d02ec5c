/**
 * One fuzz case over a message connection: open a raw connection to the live
 * server, send the case's messages, make a control call, read memory, run the
 * target's checks on what came back, and (in virtual time) leave the
 * connection silent to see the server's liveness rules end it.
 */
import type { Connection, ConnectionEnd, Message } from "../../core/Transport.js";
import { sleep } from "../../core/time.js";
import { describe as describeError } from "../../core/errors.js";
import { collectGarbage, heldBytes, MiB, within, type Fixture, type Problem, type Protocol } from "./harness.js";
import { drpcReader, tryDecode } from "./wire.js";

/** Virtual ms a case's connection stays silent before the server must have ended it (3 heartbeats of 5 s, one more tick, and room). */
export const LIVENESS_MS = 25_000;
/** Replies kept per case (the rest are counted). */
const MAX_REPLIES = 64;

/** What a case saw of its connection. */
export interface Observed {
  readonly conn: Connection;
  readonly replies: Message[];
  /** Replies received, kept or not. */
  replyCount: number;
  /** Messages the connection refused to send (it had ended, or refused the size). */
  unsent: number;
  /** Whether the connection ended within `ms` (loop time). */
  endsWithin(ms: number): Promise<boolean>;
  /** What the case sent, as text (its bytes read as UTF-8 and as Latin-1, and its values as JSON): to tell whether a reply repeats it. */
  sentText(): string;
  /** Whether a reply for which `pred` holds arrived (before now, or within `ms`) before the connection ended. */
  replyWithin(pred: (m: Message) => boolean, ms: number): Promise<boolean>;
  readonly ended: ConnectionEnd | undefined;
}

/** Checks a target runs on a case; each returns the first problem it sees. */
export interface Checks {
  /** After the control call: the replies so far, the connection's state. */
  answered?(o: Observed): Problem | undefined | Promise<Problem | undefined>;
  /** In virtual time only, after the connection stayed silent for LIVENESS_MS (or less, when `silentEnough` says so). */
  silent?(o: Observed): Problem | undefined | Promise<Problem | undefined>;
  /** Whether the silent check can be made without waiting (the server already ended the connection, say). */
  silentEnough?(o: Observed): boolean;
  /** False when the checks wait for the replies they need themselves (no general wait for the server to settle). */
  settle?: boolean;
  /** Name a memory problem after a known issue. */
  memoryKnown?(): string | undefined;
}

/** Memory bookkeeping shared by the cases of one run. */
export interface MemoryWatch {
  /** Held bytes after the last full collection. */
  floor: number;
  /** Bytes a case may hold above the floor with its connection open. */
  caseBound: number;
  /** Whether a known issue is allowed: its memory problems are counted without the cost of a collection to confirm them. */
  allowed(known: string): boolean;
}

/** `v` as JSON.stringify writes it (as error messages embed values), or "" when it cannot. */
function asJson(v: unknown): string {
  try {
    return JSON.stringify(v, (_k, x: unknown) => (typeof x === "bigint" ? x.toString() : x)) ?? "";
  } catch {
    return "";
  }
}

/** A message short enough for a report line. */
export function short(s: string, max = 300): string {
  return s.length <= max ? s : `${s.slice(0, max)}… (${s.length} characters)`;
}

/**
 * Check memory with the case's connection still open: only a collection that
 * still leaves more than the bound is a problem. `confirm` false skips the
 * collection, where everything the case allocated is still referenced.
 */
export function checkMemory(mem: MemoryWatch, before: number, known: (() => string | undefined) | undefined, confirm = true): Problem | undefined {
  if (heldBytes() - before <= mem.caseBound) return undefined;
  const k = known?.();
  if (k !== undefined && mem.allowed(k)) return { kind: "memory", message: "held memory past the bound (not confirmed by a collection)", known: k };
  if (confirm) collectGarbage();
  const held = heldBytes() - (confirm ? mem.floor : before);
  if (held <= mem.caseBound) return undefined;
  const p: Problem = { kind: "memory", message: `with this case's connection open, the process held ${(held / MiB).toFixed(1)} MiB more than before (bound ${(mem.caseBound / MiB).toFixed(0)} MiB)` };
  if (k !== undefined) p.known = k;
  return p;
}

/**
 * Wait until the server has dealt with what the case sent (the control
 * client's call is no barrier: the server may answer it first). In virtual
 * time, one loop millisecond: every post runs before time moves. In real
 * time, until no reply has come for two waits of 5 ms (at most 2 s), or the
 * connection ended: a reply later than that is not looked at (the checks that
 * need one wait for it themselves).
 */
async function settled(fx: Fixture, replies: () => number, ended: () => boolean): Promise<void> {
  if (fx.virtual) {
    await sleep(fx.loop, 1);
    return;
  }
  let quiet = 0;
  for (let i = 0, seen = replies(); i < 400 && quiet < 2 && !ended(); i++) {
    await sleep(fx.loop, 5);
    quiet = replies() === seen ? quiet + 1 : 0;
    seen = replies();
  }
}

/** Run one case of `msgs` on a fresh raw connection of `protocol`. */
export async function messageCase(fx: Fixture, protocol: Protocol, msgs: readonly Message[], mem: MemoryWatch, checks: Checks): Promise<Problem | undefined> {
  const loop = fx.loop;
  const before = heldBytes();
  let conn: Connection;
  try {
    const c = await within(loop, loop.connect(fx.raw[protocol]!), 5000);
    if (c === undefined) return { kind: "control", message: "a new connection to the server did not open within 5000 ms" };
    conn = c.value;
  } catch (e) {
    return { kind: "control", message: `a new connection to the server failed: ${short(describeError(e))}` };
  }
  let ended: ConnectionEnd | undefined;
  const seen: Message[] = [];
  let waiter: ((m: Message | undefined) => void) | undefined;
  let text: string | undefined;
  const o: Observed = {
    sentText() {
      if (text === undefined) {
        const all = Buffer.concat(msgs.flat());
        const json = msgs.flatMap((m) => m.map((f) => asJson(tryDecode(drpcReader, f)?.value)));
        text = [all.toString("utf8"), all.toString("latin1"), ...json].join("\n");
      }
      return text;
    },
    conn,
    replies: [],
    replyCount: 0,
    unsent: 0,
    get ended() {
      return ended;
    },
    async endsWithin(ms) {
      if (ended !== undefined) return true;
      return (await within(loop, conn.closed, ms)) !== undefined;
    },
    async replyWithin(pred, ms) {
      if (seen.some(pred)) return true;
      if (ended !== undefined) return false;
      const got = await within(
        loop,
        new Promise<boolean>((resolve) => {
          waiter = (m) => {
            if (m !== undefined && !pred(m)) return;
            waiter = undefined;
            resolve(m !== undefined);
          };
        }),
        ms,
      );
      waiter = undefined;
      return got?.value === true;
    },
  };
  conn.start({
    message: (m) => {
      if (o.replyCount++ < MAX_REPLIES) o.replies.push(m);
      // Only small replies are looked at later by replyWithin (a barrier's answer is small).
      if (seen.length < 4 * MAX_REPLIES && m.every((f) => f.byteLength <= 256)) seen.push(m);
      waiter?.(m);
    },
    end: (e) => {
      ended = e;
      waiter?.(undefined);
    },
  });
  try {
    for (const m of msgs) {
      if (conn.ended !== undefined) break;
      try {
        conn.send(m);
      } catch {
        o.unsent++;
      }
    }
    if (checks.settle !== false) await settled(fx, () => o.replyCount, () => ended !== undefined);
    const problem = (await fx.control()) ?? checkMemory(mem, before, checks.memoryKnown) ?? (await checks.answered?.(o));
    if (problem !== undefined) return problem;
    if (fx.virtual && checks.silent) {
      // A short wait lets the server finish what ending the connection starts.
      await sleep(loop, checks.silentEnough?.(o) ? 1000 : LIVENESS_MS);
      const p = await checks.silent(o);
      if (p !== undefined) return p;
    }
    // Once more at the end, so that what the case's last messages did is the case's own finding.
    return await fx.control();
  } finally {
    conn.destroy();
    await within(loop, conn.closed, 5000);
  }
}
