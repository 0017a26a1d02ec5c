/**
 * Mutations of recorded traffic: bit flips, byte sets, truncation, splicing
 * with other recorded messages, MessagePack length-field edits, inserted
 * bytes, duplicated, dropped, reordered and re-framed messages. A mutation's
 * indices are plain numbers taken modulo what they index when applied, so
 * any list of mutations applies to any session and fast-check can shrink
 * them freely (fewer mutations, smaller numbers).
 */
import fc from "fast-check";
import type { Message } from "../../core/Transport.js";
import { lengthFields } from "./wire.js";

export type Op =
  | { op: "flip"; msg: number; frame: number; at: number; bit: number }
  | { op: "set"; msg: number; frame: number; at: number; value: number }
  | { op: "truncate"; msg: number; frame: number; at: number }
  | { op: "splice"; msg: number; frame: number; at: number; from: number; fromMsg: number; fromAt: number }
  | { op: "length"; msg: number; frame: number; field: number; how: number }
  | { op: "insert"; msg: number; frame: number; at: number; bytes: Uint8Array }
  | { op: "dup"; msg: number; times: number }
  | { op: "drop"; msg: number }
  | { op: "swap"; a: number; b: number }
  | { op: "split"; msg: number; frame: number; at: number }
  | { op: "merge"; msg: number }
  | { op: "empty"; msg: number; first: boolean };

const idx = fc.nat(1 << 16);

export const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ op: fc.constant("flip" as const), msg: idx, frame: idx, at: idx, bit: fc.nat(7) }) },
  { weight: 3, arbitrary: fc.record({ op: fc.constant("set" as const), msg: idx, frame: idx, at: idx, value: fc.oneof(fc.nat(255), fc.constantFrom(0x00, 0x7f, 0x80, 0xc0, 0xc1, 0xcf, 0xd3, 0xdd, 0xdf, 0xff)) }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant("truncate" as const), msg: idx, frame: idx, at: idx }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant("splice" as const), msg: idx, frame: idx, at: idx, from: idx, fromMsg: idx, fromAt: idx }) },
  { weight: 4, arbitrary: fc.record({ op: fc.constant("length" as const), msg: idx, frame: idx, field: idx, how: fc.nat(7) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("insert" as const), msg: idx, frame: idx, at: idx, bytes: fc.uint8Array({ minLength: 1, maxLength: 8 }) }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant("dup" as const), msg: idx, times: fc.integer({ min: 1, max: 4 }) }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant("drop" as const), msg: idx }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant("swap" as const), a: idx, b: idx }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("split" as const), msg: idx, frame: idx, at: idx }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("merge" as const), msg: idx }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("empty" as const), msg: idx, first: fc.boolean() }) },
);

/** A recorded session to mutate: which one, and the mutations in order. */
export interface Mutation {
  session: number;
  ops: Op[];
}

export function mutationArb(maxOps = 6, minOps = 1): fc.Arbitrary<Mutation> {
  return fc.record({ session: fc.nat(1 << 16), ops: fc.array(opArb, { minLength: minOps, maxLength: maxOps }) });
}

/** The value a length field gets: 0, one less, one more, the most its width holds, or something between. */
function newLength(old: number, max: number, how: number): number {
  switch (how) {
    case 0:
      return 0;
    case 1:
      return Math.max(0, old - 1);
    case 2:
      return Math.min(max, old + 1);
    case 3:
      return max;
    case 4:
      return Math.min(max, old * 2 + 1);
    case 5:
      return Math.min(max, 0x10000);
    case 6:
      return Math.min(max, 0x7fffffff);
    default:
      return Math.floor(max / 2);
  }
}

function copy(b: Uint8Array): Uint8Array {
  return Uint8Array.prototype.slice.call(b);
}

/** Apply `m` to a copy of the chosen session (recorded sessions are never changed). */
export function applyMutation(sessions: readonly Message[][], m: Mutation): Message[] {
  const src = sessions[m.session % sessions.length]!;
  const msgs: Message[] = src.map((msg) => msg.map(copy));
  for (const op of m.ops) applyOp(sessions, msgs, op);
  return msgs;
}

function frameOf(msgs: Message[], msg: number, frame: number): { msg: Message; i: number } | undefined {
  if (msgs.length === 0) return undefined;
  const ms = msgs[msg % msgs.length]!;
  if (ms.length === 0) return undefined;
  return { msg: ms, i: frame % ms.length };
}

function applyOp(sessions: readonly Message[][], msgs: Message[], op: Op): void {
  switch (op.op) {
    case "flip":
    case "set":
    case "truncate":
    case "insert":
    case "splice":
    case "length":
    case "split": {
      const f = frameOf(msgs, op.msg, op.frame);
      if (f === undefined) return;
      const b = f.msg[f.i]!;
      if (op.op === "insert") {
        const at = op.at % (b.length + 1);
        const n = new Uint8Array(b.length + op.bytes.length);
        n.set(b.subarray(0, at));
        n.set(op.bytes, at);
        n.set(b.subarray(at), at + op.bytes.length);
        f.msg[f.i] = n;
        return;
      }
      if (op.op === "splice") {
        const other = sessions[op.from % sessions.length]!;
        if (other.length === 0) return;
        const om = other[op.fromMsg % other.length]!;
        const ob = om[om.length - 1]!;
        const at = op.at % (b.length + 1);
        const fromAt = op.fromAt % (ob.length + 1);
        const n = new Uint8Array(at + ob.length - fromAt);
        n.set(b.subarray(0, at));
        n.set(ob.subarray(fromAt), at);
        f.msg[f.i] = n;
        return;
      }
      if (op.op === "length") {
        const fields = lengthFields(b);
        if (fields.length === 0) return;
        const fl = fields[op.field % fields.length]!;
        if (fl.size === 0) {
          const old = b[fl.pos]! & fl.mask;
          b[fl.pos] = (b[fl.pos]! & ~fl.mask) | newLength(old, fl.mask, op.how);
        } else {
          let old = 0;
          for (let i = 0; i < fl.size; i++) old = old * 256 + b[fl.pos + i]!;
          let v = newLength(old, 2 ** (8 * fl.size) - 1, op.how);
          for (let i = fl.size - 1; i >= 0; i--) {
            b[fl.pos + i] = v & 0xff;
            v = Math.floor(v / 256);
          }
        }
        return;
      }
      if (b.length === 0) return;
      const at = op.at % b.length;
      if (op.op === "flip") b[at] = b[at]! ^ (1 << op.bit);
      else if (op.op === "set") b[at] = op.value;
      else if (op.op === "truncate") f.msg[f.i] = b.subarray(0, at);
      else f.msg.splice(f.i, 1, b.subarray(0, at), b.subarray(at));
      return;
    }
    case "dup": {
      if (msgs.length === 0) return;
      const i = op.msg % msgs.length;
      for (let k = 0; k < op.times; k++) msgs.splice(i, 0, msgs[i]!.map(copy));
      return;
    }
    case "drop":
      if (msgs.length > 0) msgs.splice(op.msg % msgs.length, 1);
      return;
    case "swap": {
      if (msgs.length < 2) return;
      const a = op.a % msgs.length;
      const b = op.b % msgs.length;
      [msgs[a], msgs[b]] = [msgs[b]!, msgs[a]!];
      return;
    }
    case "merge": {
      if (msgs.length < 2) return;
      const i = op.msg % (msgs.length - 1);
      const [x, y] = msgs.splice(i, 2);
      msgs.splice(i, 0, [...x!, ...y!]);
      return;
    }
    case "empty": {
      if (msgs.length === 0) return;
      const ms = msgs[op.msg % msgs.length]!;
      if (op.first) ms.unshift(new Uint8Array(0));
      else ms.push(new Uint8Array(0));
      return;
    }
  }
}

/** Messages as hex lines, frames separated by ` | `. */
export function describeMessages(msgs: readonly Message[], maxBytes = 2048): string {
  if (msgs.length === 0) return "    (no messages)";
  let budget = maxBytes;
  const lines: string[] = [];
  for (let i = 0; i < msgs.length; i++) {
    if (budget <= 0) {
      lines.push(`    … ${msgs.length - i} more message(s)`);
      break;
    }
    const frames = msgs[i]!.map((f) => {
      const shown = Math.max(0, Math.min(f.byteLength, budget, 256));
      budget -= shown;
      const h = Buffer.from(f.buffer, f.byteOffset, shown).toString("hex");
      return (h || "(empty)") + (shown < f.byteLength ? `…(${f.byteLength} bytes)` : "");
    });
    lines.push(`    #${i} ${frames.join(" | ")}`);
  }
  return lines.join("\n");
}
