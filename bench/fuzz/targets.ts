/**
 * The fuzz targets. Each is an arbitrary of cases (mutated recorded traffic,
 * or messages built from the protocol's grammar with hostile field values),
 * a hex description of a case, and how to run one case with its checks.
 *
 * - drpc: messages on a drpc connection.
 * - zrpc: ZeroRPC events on a zrpc connection.
 * - msgpack: one value of any kind echoed through drpc or zrpc (plain values
 *   must come back equal; anything else must be answered or refused with a
 *   code, and never take the server down).
 * - framing: byte streams of length-prefixed frames: in process, the frame
 *   decoder against a reference reading of the same bytes in random chunks;
 *   with `--tcp`, the bytes written to a live drpc server over tcp.
 */
import net from "node:net";
import fc from "fast-check";
import type { Message } from "../../core/Transport.js";
import { FrameDecoder, framingLimits, MORE_FLAG, RESERVED_FLAG, type FramingLimits } from "../../transports/index.js";
import type { Corpus } from "./corpus.js";
import { heldBytes, MiB, within, type Fixture, type Mode, type Problem, type Protocol } from "./harness.js";
import { applyMutation, describeMessages, mutationArb, type Mutation } from "./mutate.js";
import { checkMemory, messageCase, short, LIVENESS_MS, type Checks, type MemoryWatch, type Observed } from "./session.js";
import { canon, drpcReader, encodeNode, hex, isPlain, tryDecode, W, wireValue, zrpcReader, type WireNode } from "./wire.js";

export type TargetName = "drpc" | "zrpc" | "msgpack" | "framing";
export const TARGETS: TargetName[] = ["drpc", "zrpc", "msgpack", "framing"];

export interface CaseContext {
  mode: Mode;
  /** The live server; absent for the in-process framing target. */
  fx: Fixture | undefined;
  corpus: Corpus;
  mem: MemoryWatch;
}

export interface Target<C> {
  name: TargetName;
  /** Whether the server listens with zrpc too, and the control client's protocol. */
  zrpc: boolean;
  control: Protocol;
  /** Whether the target needs a live server in `mode`. */
  live(mode: Mode): boolean;
  arbitrary(corpus: Corpus): fc.Arbitrary<C>;
  describe(c: C, corpus: Corpus): string;
  run(ctx: CaseContext, c: C): Promise<Problem | undefined>;
}

/** Longest text an error the server sends may carry (a message must not embed a whole value). */
const MAX_ERROR_TEXT = 1024;
/** The server's heartbeat (the default); a client's larger one must not stretch the server's idle rule. */
const SERVER_HEARTBEAT_MS = 5000;

/**
 * An error text past the bound is a finding. Known issues it may match: a
 * RangeError whose message is a huge integer, or a message that repeats a long
 * piece of the request (`o.sentText()`) whole.
 */
function errorTextProblem(o: Observed, where: string, text: unknown, max = MAX_ERROR_TEXT): Problem | undefined {
  if (typeof text !== "string" || text.length <= max) return undefined;
  const p: Problem = { kind: "reply", message: `${where} carries ${text.length} characters of text (bound ${max}): ${short(text, 120)}` };
  const mid = text.slice(Math.floor(text.length / 2) - 100, Math.floor(text.length / 2) + 100);
  if (/\d{200}/.test(text)) p.known = "huge-bigint";
  else if (o.sentText().includes(mid)) p.known = "error-echoes-input";
  return p;
}

// ---- drpc ----

const T = { HELLO: 0, CALL: 1, RESULT: 2, ERROR: 3, CANCEL: 4, ITEM: 5, END: 6, CREDIT: 7, PING: 8, GOAWAY: 9, ITEMS: 10 } as const;
const SERVER_SENDS = new Set<number>([T.HELLO, T.RESULT, T.ERROR, T.ITEM, T.END, T.PING, T.GOAWAY, T.ITEMS]);

const isObj = (x: unknown): x is Record<string, unknown> => typeof x === "object" && x !== null && !Array.isArray(x) && !(x instanceof Uint8Array);

/** The first message as the docs define a HELLO: one frame, `[0, "drpc", 1.x, {…}]`. */
function helloOf(msgs: readonly Message[]): { hello: Record<string, unknown> | undefined; first: unknown } {
  const m = msgs[0];
  if (m === undefined) return { hello: undefined, first: undefined };
  const d = m.length === 1 ? tryDecode(drpcReader, m[0]!) : undefined;
  const v = d?.value;
  const ok = Array.isArray(v) && v.length === 4 && v[0] === T.HELLO && v[1] === "drpc" && typeof v[2] === "number" && Math.trunc(v[2]) === 1 && isObj(v[3]);
  return { hello: ok ? (v[3] as Record<string, unknown>) : undefined, first: v };
}

/** The drpc rules a server must keep whatever a client sends. */
function drpcChecks(fx: Fixture, msgs: readonly Message[]): Checks {
  const { hello, first } = helloOf(msgs);
  const isPing = Array.isArray(first) && first.length === 1 && first[0] === T.PING;
  const hb = hello?.heartbeatMs;
  const lazyHello = hello !== undefined && !(typeof hb === "number" && hb > 0 && hb <= SERVER_HEARTBEAT_MS);
  return {
    async answered(o: Observed) {
      let sawHello = false;
      for (const [i, r] of o.replies.entries()) {
        if (r.length !== 1) return { kind: "reply", message: `reply ${i} has ${r.length} frames (a drpc message has one)` };
        const d = tryDecode(drpcReader, r[0]!);
        const v = d?.value;
        if (!Array.isArray(v) || !SERVER_SENDS.has(v[0] as number)) return { kind: "reply", message: `reply ${i} is not a message a server sends: ${hex(r[0]!, 64)}` };
        if (i === 0 && v[0] !== T.HELLO && v[0] !== T.ERROR) return { kind: "protocol", message: `the server's first reply is type ${v[0]}, not HELLO` };
        if (v[0] === T.HELLO) sawHello = true;
        if (v[0] === T.ERROR) {
          const info = v[2] as Record<string, unknown> | undefined;
          if (!isObj(info) || typeof info.code !== "string") return { kind: "reply", message: `ERROR reply ${i} has no code` };
          const p = errorTextProblem(o, `ERROR reply ${i} (${info.code})`, info.message);
          if (p) return p;
        }
      }
      if (msgs.length > 0 && hello === undefined) {
        // Anything but a HELLO first is refused: an ERROR for the connection, then the end.
        const refused = o.replies.some((r) => {
          const v = tryDecode(drpcReader, r[0]!)?.value;
          return Array.isArray(v) && v[0] === T.ERROR && v[1] === 0;
        });
        let p: Problem | undefined;
        if (sawHello) p = { kind: "protocol", message: "the server answered HELLO to a first message that is not a HELLO" };
        else if (!refused && o.ended === undefined && !(await o.endsWithin(3000))) p = { kind: "protocol", message: "a first message that is not a HELLO was neither refused with ERROR 0 nor ended the connection" };
        if (p && isPing) p.known = "ping-before-hello";
        if (p) return p;
      }
      return undefined;
    },
    silentEnough: (o) => o.ended !== undefined,
    silent(o: Observed) {
      if (o.ended === undefined) {
        const p: Problem = { kind: "liveness", message: `a connection left silent was still open after ${LIVENESS_MS} ms (the server's heartbeat is ${SERVER_HEARTBEAT_MS} ms)` };
        if (lazyHello) p.known = "hello-heartbeat";
        return p;
      }
      // The server forgets a session (and its calls) when its connection ends: only the control client's is left.
      if (fx.server.connections > 1) return { kind: "liveness", message: `the server still counts ${fx.server.connections - 1} connection(s) besides the control client's ${LIVENESS_MS} ms after the case's ended` };
      return undefined;
    },
  };
}

// The grammar: mostly valid messages (a message that breaks the protocol ends the
// connection, so the messages after it would go untried), and now and then one
// hostile message, or one hostile field in an otherwise valid message.

/** A name far longer than any method's: what does an error about it say? */
const LONG_NAME = "n".repeat(2000);
const methodNames = ["ping", "echo", "add", "count", "wait", "fail", "blob", "greet", "control", "nope", ".inspect", ".ping", ".debug.status", ".debug.settings", "__proto__", "constructor", "toString", "valueOf", "hasOwnProperty", "_hidden", "", LONG_NAME];
const smallValue = wireValue({ maxBigIntBytes: 600, maxKeys: 200, maxDepth: 200 });
const plainValue = wireValue({ hostile: 0 });
/** An integer from `min` to `max` in any encoding of at most 32 bits. */
const uintNode = (min: number, max: number): fc.Arbitrary<WireNode> => fc.tuple(fc.integer({ min, max }), fc.nat(7)).map(([v, w]): WireNode => ({ k: "int", v: BigInt(v), w, narrow: true }));
/** Call ids: few, so that calls, cancels and credits meet. */
const idNode = uintNode(1, 8);
/** Numbers a field must cope with, and things that are not numbers at all. */
const numberNode = fc.oneof(
  fc.tuple(fc.integer({ min: -5, max: 70_000 }), fc.nat(7)).map(([v, w]) => W.int(v, w)),
  fc.constantFrom<WireNode>(W.int(0), W.int(-1), W.int(2 ** 31), W.int(2 ** 53), W.int(2n ** 64n - 1n), { k: "f64", v: NaN }, { k: "f64", v: 1e308 }, { k: "f64", v: -0 }, { k: "f64", v: 0.5 }, W.nil(), W.str("5")),
);
const hostileId = fc.constantFrom<WireNode>(W.int(0), W.int(-1), W.int(2 ** 31 - 1), W.int(2 ** 31), W.int(2 ** 32), W.int(5, 4), { k: "f64", v: 1.5 }, W.str("1"), W.nil());

/** Positional arguments: numbers (which handlers take), and plain values. */
const argsNode = fc.array(fc.oneof({ weight: 3, arbitrary: numberNode }, { weight: 2, arbitrary: plainValue }), { maxLength: 3 }).map((a) => W.arr(a));

/** The fields of a valid CALL: id, method, kwargs, deadline, credit, args. */
const callFields = fc.tuple(
  idNode,
  fc.constantFrom(...methodNames).map((m) => W.str(m)),
  fc.oneof({ weight: 6, arbitrary: fc.constant(W.nil()) }, { weight: 1, arbitrary: fc.array(fc.tuple(fc.constantFrom("greeting", "name", "n", "ms", "x", "a", "__proto__", "constructor", LONG_NAME), plainValue), { maxLength: 3 }).map((e) => W.map(e)) }),
  fc.oneof(fc.constant(W.nil()), uintNode(0, 100_000)),
  uintNode(0, 100),
  argsNode,
);
/** Hostile values for each field of a CALL, in the same order. */
const hostileFields: fc.Arbitrary<WireNode>[] = [hostileId, smallValue, smallValue, numberNode, numberNode, fc.oneof(smallValue, fc.array(smallValue, { maxLength: 3 }).map((a) => W.arr(a)))];

const validMessage: fc.Arbitrary<WireNode> = fc.oneof(
  { weight: 8, arbitrary: callFields.map((f) => W.arr([W.int(T.CALL), ...f])) },
  { weight: 2, arbitrary: idNode.map((id) => W.arr([W.int(T.CANCEL), id, W.str("changed my mind")])) },
  { weight: 2, arbitrary: fc.tuple(idNode, uintNode(1, 100)).map(([id, n]) => W.arr([W.int(T.CREDIT), id, n])) },
  { weight: 1, arbitrary: fc.tuple(idNode, uintNode(0, 100), uintNode(0, 1 << 20)).map(([id, n, b]) => W.arr([W.int(T.CREDIT), id, n, b])) },
  { weight: 1, arbitrary: fc.constant(W.arr([W.int(T.PING)])) },
);

const helloNode = fc.oneof(
  { weight: 4, arbitrary: fc.constant(W.arr([W.int(0), W.str("drpc"), W.int(1), W.map([["heartbeatMs", W.int(5000)], ["maxMessageSize", W.int(64 * MiB)]])])) },
  // A client that reads ITEMS, with a byte window of its choosing (the server holds it to its own floor).
  { weight: 4, arbitrary: fc.oneof(fc.constant(W.int(256 * 1024)), numberNode).map((wb) => W.arr([W.int(0), W.str("drpc"), W.int(1), W.map([["heartbeatMs", W.int(5000)], ["maxMessageSize", W.int(64 * MiB)], ["items", { k: "bool", v: true } as WireNode], ["windowBytes", wb]])])) },
  {
    weight: 1,
    arbitrary: fc
      .record({
        proto: fc.oneof({ weight: 5, arbitrary: fc.constant(W.str("drpc")) }, { weight: 1, arbitrary: fc.constantFrom(W.str("zrpc"), W.str(""), W.int(1), W.nil()) }),
        version: fc.oneof({ weight: 5, arbitrary: fc.constant(W.int(1)) }, { weight: 1, arbitrary: fc.constantFrom<WireNode>(W.int(0), W.int(2), { k: "f64", v: 1.9 }, W.str("1"), { k: "f64", v: NaN }) }),
        hb: fc.option(numberNode, { nil: undefined }),
        max: fc.option(numberNode, { nil: undefined }),
        name: fc.option(smallValue, { nil: undefined }),
      })
      .map(({ proto, version, hb, max, name }) =>
        W.arr([W.int(0), proto, version, { k: "map", w: 0, entries: [...(hb ? [[W.str("heartbeatMs"), hb] as [WireNode, WireNode]] : []), ...(max ? [[W.str("maxMessageSize"), max] as [WireNode, WireNode]] : []), ...(name ? [[W.str("name"), name] as [WireNode, WireNode]] : [])] }]),
      ),
  },
);

const hostileMessage: fc.Arbitrary<WireNode> = fc.oneof(
  { weight: 4, arbitrary: fc.tuple(callFields, fc.nat(5), fc.nat(100)).chain(([f, i]) => hostileFields[i]!.map((h) => W.arr([W.int(T.CALL), ...f.map((x, k) => (k === i ? h : x))]))) },
  { weight: 1, arbitrary: fc.tuple(callFields, fc.nat(3)).map(([f, drop]) => W.arr([W.int(T.CALL), ...f.slice(0, 5 - drop)])) },
  { weight: 1, arbitrary: fc.tuple(hostileId, smallValue).map(([id, r]) => W.arr([W.int(T.CANCEL), id, r])) },
  { weight: 1, arbitrary: fc.tuple(idNode, numberNode).map(([id, n]) => W.arr([W.int(T.CREDIT), id, n])) },
  { weight: 1, arbitrary: fc.tuple(idNode, numberNode, numberNode).map(([id, n, b]) => W.arr([W.int(T.CREDIT), id, n, b])) },
  { weight: 1, arbitrary: helloNode },
  { weight: 1, arbitrary: fc.tuple(fc.constantFrom(T.RESULT, T.ITEM, T.ITEMS, T.END, T.ERROR, T.GOAWAY, 11, 99, -1), idNode, smallValue).map(([t, id, v]) => W.arr([W.int(t), id, v])) },
  { weight: 1, arbitrary: smallValue },
);

/** drpc: a HELLO (usually), valid messages, and sometimes one hostile message among them. */
const drpcGrammar = fc
  .record({
    hello: fc.oneof({ weight: 12, arbitrary: helloNode.map((h) => [h]) }, { weight: 1, arbitrary: fc.constant([] as WireNode[]) }),
    valid: fc.array(validMessage, { maxLength: 5 }),
    hostile: fc.option(hostileMessage, { freq: 2, nil: undefined }),
    at: fc.nat(5),
  })
  .map(({ hello, valid, hostile, at }) => {
    const msgs = [...valid];
    if (hostile !== undefined) msgs.splice(at % (msgs.length + 1), 0, hostile);
    return [...hello, ...msgs];
  });

/** A case of a message target: a mutated recording, or messages from the protocol's grammar. */
type MessageCase<G> = { mutation: Mutation } | { grammar: G };

/** A target that sends messages of `protocol` (mutated recordings 3 times in 5, else `grammar`) and checks them with `checks`. */
function messageTarget<G>(name: TargetName, protocol: Protocol, grammar: fc.Arbitrary<G>, encode: (g: G) => Message[], checks: (fx: Fixture, msgs: readonly Message[]) => Checks): Target<MessageCase<G>> {
  const messages = (c: MessageCase<G>, corpus: Corpus): Message[] => ("mutation" in c ? applyMutation(corpus[protocol], c.mutation) : encode(c.grammar));
  return {
    name,
    zrpc: protocol === "zrpc",
    control: protocol,
    live: () => true,
    arbitrary: () => fc.oneof({ weight: 3, arbitrary: mutationArb().map((mutation): MessageCase<G> => ({ mutation })) }, { weight: 2, arbitrary: grammar.map((g): MessageCase<G> => ({ grammar: g })) }),
    describe: (c, corpus) => describeMessages(messages(c, corpus)),
    run: (ctx, c) => {
      const msgs = messages(c, ctx.corpus);
      return messageCase(ctx.fx!, protocol, msgs, ctx.mem, checks(ctx.fx!, msgs));
    },
  };
}

/** drpc: a HELLO, usually, then a few messages. */
const drpcTarget = messageTarget(
  "drpc",
  "drpc",
  drpcGrammar,
  (g) => g.map((n) => [encodeNode(n)]),
  drpcChecks,
);

// ---- zrpc ----

/** Message ids the grammar picks from, so that events answer each other's channels. */
const zIds = ["a", "b", "c"];
const zIdNode = fc.oneof(
  { weight: 8, arbitrary: fc.constantFrom(...zIds).map((s) => W.str(s)) },
  { weight: 1, arbitrary: fc.constantFrom<WireNode>({ k: "bin", v: new Uint8Array([1, 2]), w: 0 }, W.int(7), W.nil(), W.str("")) },
);
const zNames = ["ping", "echo", "add", "count", "wait", "fail", "blob", "control", "nope", "_zpc_hb", "_zpc_more", "_zerorpc_inspect", "_zerorpc_ping", "_zerorpc_name", "_zerorpc_list", "_zerorpc_help", "_zerorpc_args", "OK", "ERR", "STREAM", ".inspect", "__proto__", LONG_NAME];
const zEventNode: fc.Arbitrary<WireNode> = fc
  .record({
    id: zIdNode,
    v: fc.oneof({ weight: 5, arbitrary: fc.constant(W.int(3)) }, { weight: 1, arbitrary: numberNode }),
    rt: fc.option(zIdNode, { nil: undefined, freq: 2 }),
    name: fc.oneof({ weight: 8, arbitrary: fc.constantFrom(...zNames).map((s) => W.str(s)) }, { weight: 1, arbitrary: smallValue }),
    args: argsNode,
  })
  .map(({ id, v, rt, name, args }) => W.arr([{ k: "map", w: 0, entries: [[W.str("message_id"), id], [W.str("v"), v], ...(rt ? [[W.str("response_to"), rt] as [WireNode, WireNode]] : [])] }, name, args]));
/** How an event is framed: `["", payload]` as ZeroRPC does, the payload alone, or more envelope frames. */
const zFraming = fc.constantFrom(0, 0, 0, 1, 2);

function zrpcMessages(grammar: [number, WireNode][]): Message[] {
  const empty = new Uint8Array(0);
  return grammar.map(([framing, n]) => {
    const payload = encodeNode(n);
    return framing === 0 ? [empty, payload] : framing === 1 ? [payload] : [new Uint8Array([1]), empty, payload];
  });
}

function zrpcReplyProblem(o: Observed, r: Message, i: number): Problem | undefined {
  const last = r[r.length - 1];
  const v = last === undefined ? undefined : tryDecode(zrpcReader, last)?.value;
  if (!Array.isArray(v) || v.length !== 3 || !isObj(v[0]) || typeof v[1] !== "string") return { kind: "reply", message: `reply ${i} is not a ZeroRPC event: ${last ? hex(last, 64) : "(no frames)"}` };
  if (v[1] === "ERR") {
    const a = v[2] as unknown[];
    if (!Array.isArray(a)) return { kind: "reply", message: `ERR reply ${i} has no [name, message, traceback]` };
    return errorTextProblem(o, `ERR reply ${i}`, a[1]) ?? errorTextProblem(o, `ERR reply ${i}'s traceback`, a[2], 4 * MAX_ERROR_TEXT);
  }
  return undefined;
}

const zrpcTarget = messageTarget(
  "zrpc",
  "zrpc",
  fc.array(fc.tuple(zFraming, fc.oneof({ weight: 8, arbitrary: zEventNode }, { weight: 1, arbitrary: smallValue })), { minLength: 1, maxLength: 6 }),
  zrpcMessages,
  (fx) => ({
    answered: (o) => {
      for (const [i, r] of o.replies.entries()) {
        const p = zrpcReplyProblem(o, r, i);
        if (p) return p;
      }
      return undefined;
    },
    silent: async () => {
      // ZeroRPC has no connection-level heartbeat: a silent client's calls end by their channel's heartbeat.
      const n = await fx.activeCalls();
      return n > 0 ? { kind: "liveness", message: `${n} call(s) of a client silent for ${LIVENESS_MS} ms were still in flight` } : undefined;
    },
  }),
);

// ---- msgpack ----

interface ValueCase {
  protocol: Protocol;
  value: WireNode;
}

function valueMessages(c: ValueCase): Message[] {
  const v = encodeNode(c.value);
  const concat = (head: Uint8Array): Uint8Array => {
    const out = new Uint8Array(head.length + v.length);
    out.set(head);
    out.set(v, head.length);
    return out;
  };
  if (c.protocol === "drpc") {
    const hello = encodeNode(W.arr([W.int(T.HELLO), W.str("drpc"), W.int(1), W.map([["heartbeatMs", W.int(5000)], ["maxMessageSize", W.int(64 * MiB)]])]));
    // [CALL, 1, "echo", nil, nil, 0, [value]]: the header, then a one-item array around the value.
    const call = (id: number, method: string): Uint8Array => concat(Uint8Array.from([0x97, T.CALL, id, 0xa0 | method.length, ...Buffer.from(method), 0xc0, 0xc0, 0, 0x91]));
    // A last call whose answer marks that the others were answered (the server answers them at once, in order).
    const barrier = encodeNode(W.arr([W.int(T.CALL), W.int(2), W.str(".ping"), W.nil(), W.nil(), W.int(0), W.arr([])]));
    return [[hello], [call(1, "echo")], [call(3, "types")], [barrier]];
  }
  // [{message_id: "m1", v: 3}, "echo", [value]] (and "m3", "types"), then a built-in's call as the barrier
  const event = (id: string, method: string): Uint8Array => {
    const head = encodeNode(W.arr([W.map([["message_id", W.str(id)], ["v", W.int(3)]]), W.str(method), W.nil()]));
    return concat(Uint8Array.from([...head.subarray(0, head.length - 1), 0x91]));
  };
  const barrier = encodeNode(W.arr([W.map([["message_id", W.str("m2")], ["v", W.int(3)]]), W.str("_zerorpc_ping"), W.arr([])]));
  const empty = new Uint8Array(0);
  return [
    [empty, event("m1", "echo")],
    [empty, event("m3", "types")],
    [empty, barrier],
  ];
}

/** What the `types` call (drpc id 3, zrpc "m3") answered: the classes outside the plain model its handler saw. */
function typesSeen(protocol: Protocol, replies: readonly Message[]): string[] {
  for (const r of replies) {
    const v = tryDecode(protocol === "drpc" ? drpcReader : zrpcReader, r[r.length - 1]!)?.value;
    if (!Array.isArray(v)) continue;
    const answer = protocol === "drpc" ? (v[0] === T.RESULT && v[1] === 3 ? v[2] : undefined) : isObj(v[0]) && v[0].response_to === "m3" && v[1] === "OK" && Array.isArray(v[2]) ? v[2][0] : undefined;
    if (Array.isArray(answer)) return answer.map(String);
  }
  return [];
}

/** The answer to a case's barrier call (drpc id 2, zrpc "m2"). */
function isBarrier(protocol: Protocol, m: Message): boolean {
  const v = tryDecode(protocol === "drpc" ? drpcReader : zrpcReader, m[m.length - 1]!)?.value;
  if (!Array.isArray(v)) return false;
  return protocol === "drpc" ? (v[0] === T.RESULT || v[0] === T.ERROR) && v[1] === 2 : isObj(v[0]) && v[0].response_to === "m2";
}

/** The value echoed back, from a drpc RESULT or a zrpc OK; an error's code or name; or nothing yet. */
function echoed(protocol: Protocol, replies: readonly Message[]): { value: unknown } | { error: string; text: unknown } | undefined {
  for (const r of replies) {
    const last = r[r.length - 1]!;
    const v = tryDecode(protocol === "drpc" ? drpcReader : zrpcReader, last)?.value;
    if (!Array.isArray(v)) continue;
    if (protocol === "drpc") {
      if (v[0] === T.RESULT && v[1] === 1) return { value: v[2] };
      if (v[0] === T.ERROR && (v[1] === 1 || v[1] === 0)) return { error: String((v[2] as Record<string, unknown>)?.code), text: (v[2] as Record<string, unknown>)?.message };
    } else {
      if (v[1] === "OK" && Array.isArray(v[2])) return { value: v[2][0] };
      if (v[1] === "ERR" && Array.isArray(v[2])) return { error: String(v[2][0]), text: v[2][1] };
    }
  }
  return undefined;
}

const msgpackTarget: Target<ValueCase> = {
  name: "msgpack",
  zrpc: true,
  control: "drpc",
  live: () => true,
  arbitrary: () => fc.record({ protocol: fc.constantFrom<Protocol>("drpc", "zrpc"), value: wireValue() }),
  describe: (c) => `    ${c.protocol} calls echo and types of ${hex(encodeNode(c.value))}`,
  run: (ctx, c) => {
    const fx = ctx.fx!;
    const bytes = encodeNode(c.value);
    const sent = tryDecode(c.protocol === "drpc" ? drpcReader : zrpcReader, bytes);
    const plain = isPlain(c.value) && sent !== undefined;
    return messageCase(fx, c.protocol, valueMessages(c), ctx.mem, {
      settle: false,
      answered: async (o) => {
        await o.replyWithin((m) => isBarrier(c.protocol, m), 3000);
        const got = echoed(c.protocol, o.replies);
        if (got === undefined) {
          if (o.ended !== undefined) return plain ? { kind: "reply", message: `the connection ended instead of echoing a plain value` } : undefined;
          // zrpc leaves undecodable events unanswered, as ZeroRPC does.
          if (c.protocol === "zrpc" && sent === undefined) return undefined;
          return { kind: "reply", message: "an echo of this value was never answered" };
        }
        if ("error" in got) {
          const p = errorTextProblem(o, `the error answering the echo (${got.error})`, got.text);
          if (p) return p;
          return plain ? { kind: "reply", message: `a plain value was refused: ${got.error}: ${short(String(got.text), 200)}` } : undefined;
        }
        const types = typesSeen(c.protocol, o.replies);
        if (types.length > 0) return { kind: "reply", message: `values outside the plain model reached a handler: ${types.join(", ")}`, known: "ext-types" };
        if (plain && canon(got.value) !== canon(sent!.value)) {
          return { kind: "reply", message: `the echo differs from what was sent: sent ${short(canon(sent!.value), 200)}, got ${short(canon(got.value), 200)}` };
        }
        return undefined;
      },
    });
  },
};

// ---- framing ----

type StreamOp = { op: "header"; which: number; how: number; value: number } | { op: "flip"; at: number; bit: number } | { op: "cut"; at: number };

interface StreamCase {
  mutation: Mutation;
  ops: StreamOp[];
  /** Sizes of the chunks the stream is written (or pushed) in. */
  chunks: number[];
  /** Messages at which the in-process reader halts (and resumes later). */
  halts: number[];
}

const streamOpArb: fc.Arbitrary<StreamOp> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ op: fc.constant("header" as const), which: fc.nat(1 << 16), how: fc.nat(8), value: fc.nat(0x3fffffff) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("flip" as const), at: fc.nat(1 << 20), bit: fc.nat(7) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("cut" as const), at: fc.nat(1 << 20) }) },
);

/** The stream of a case: its messages framed, then the stream-level edits applied. */
function streamOf(c: StreamCase, corpus: Corpus): Uint8Array {
  const msgs = applyMutation(corpus.drpc, c.mutation);
  const headers: number[] = [];
  const parts: Uint8Array[] = [];
  let pos = 0;
  for (const m of msgs) {
    for (let i = 0; i < m.length; i++) {
      const f = m[i]!;
      const h = Buffer.alloc(4);
      h.writeUInt32BE((f.length | (i < m.length - 1 ? MORE_FLAG : 0)) >>> 0);
      headers.push(pos);
      parts.push(h, f);
      pos += 4 + f.length;
    }
  }
  let s: Uint8Array = Buffer.concat(parts);
  for (const op of c.ops) {
    if (op.op === "cut") s = s.subarray(0, op.at % (s.length + 1));
    else if (op.op === "flip") {
      if (s.length > 0) s[op.at % s.length] ^= 1 << op.bit;
    } else if (headers.length > 0) {
      const at = headers[op.which % headers.length]!;
      if (at + 4 > s.length) continue;
      const dv = new DataView(s.buffer, s.byteOffset, s.length);
      const w = dv.getUint32(at);
      const len = w & 0x3fffffff;
      const flags = w & ~0x3fffffff;
      const nw = [
        flags | op.value,
        flags | Math.min(len + 1, 0x3fffffff),
        flags | Math.max(len - 1, 0),
        w | MORE_FLAG,
        w & ~MORE_FLAG,
        w | RESERVED_FLAG,
        flags | (64 * MiB),
        flags | (64 * MiB + 1),
        flags | 0x3fffffff,
      ][op.how % 9]!;
      dv.setUint32(at, nw >>> 0);
    }
  }
  return s;
}

/** An independent reading of a framed stream: the messages, and where and why it stops. */
export function referenceFrames(s: Uint8Array, limits: FramingLimits): { messages: string[]; error?: "malformed" | "too-large"; partial: boolean; announced: number } {
  const messages: string[] = [];
  let frames: string[] = [];
  let size = 0;
  let p = 0;
  const dv = new DataView(s.buffer, s.byteOffset, s.length);
  while (p < s.length) {
    if (p + 4 > s.length) return { messages, partial: true, announced: 0 };
    const w = dv.getUint32(p);
    if (w & RESERVED_FLAG) return { messages, error: "malformed", partial: false, announced: 0 };
    const len = w & 0x3fffffff;
    if (size + len > limits.maxMessageSize || frames.length + 1 > limits.maxFrames) return { messages, error: "too-large", partial: false, announced: 0 };
    if (p + 4 + len > s.length) return { messages, partial: true, announced: len };
    frames.push(Buffer.from(s.subarray(p + 4, p + 4 + len)).toString("hex"));
    size += len;
    p += 4 + len;
    if ((w & MORE_FLAG) === 0) {
      messages.push(frames.join("|"));
      frames = [];
      size = 0;
    }
  }
  return { messages, partial: frames.length > 0, announced: 0 };
}

function chunksOf(s: Uint8Array, sizes: number[]): Uint8Array[] {
  const out: Uint8Array[] = [];
  let p = 0;
  for (let i = 0; p < s.length; i++) {
    const n = sizes.length === 0 ? s.length : 1 + (sizes[i % sizes.length]! % 4096);
    out.push(s.subarray(p, Math.min(s.length, p + n)));
    p += n;
  }
  return out;
}

/** The decoder against the reference, for one set of limits. */
function decodeCheck(s: Uint8Array, c: StreamCase, limits: FramingLimits, mem: MemoryWatch): Problem | undefined {
  const ref = referenceFrames(s, limits);
  const got: string[] = [];
  const errors: string[] = [];
  const halts = new Set(c.halts);
  let dec!: FrameDecoder;
  dec = new FrameDecoder(
    (m) => {
      got.push(m.map((f) => Buffer.from(f.buffer, f.byteOffset, f.byteLength).toString("hex")).join("|"));
      if (halts.has(got.length)) dec.halt();
    },
    (e) => errors.push((e as { code?: string }).code ?? e.message),
    limits,
  );
  const before = heldBytes();
  try {
    for (const [i, chunk] of chunksOf(s, c.chunks).entries()) {
      // Copied: the decoder may keep views of what it is given.
      dec.push(Buffer.from(chunk));
      if (dec.halted && i % 2 === 0) dec.resume();
    }
    for (let i = 0; dec.halted && i < 100_000; i++) dec.resume();
  } catch (e) {
    return { kind: "uncaught", message: `the frame decoder threw: ${short(String(e))}` };
  }
  // The decoder is still referenced: what it allocated is live, no collection needed to tell.
  const memory = checkMemory(mem, before, () => (ref.partial && ref.announced > MiB ? "header-alloc" : undefined), false);
  if (memory) return memory;
  if (errors.length > 1) return { kind: "protocol", message: `the decoder reported ${errors.length} errors (${errors.join(", ")}); it reports one and stops` };
  const wantCode = ref.error === "malformed" ? "ERR_MALFORMED_FRAME" : ref.error === "too-large" ? "ERR_MESSAGE_TOO_LARGE" : undefined;
  if ((errors[0] ?? undefined) !== wantCode) return { kind: "protocol", message: `the decoder reported ${errors[0] ?? "no error"}; the reference reading says ${wantCode ?? "no error"}` };
  if (got.length !== ref.messages.length || got.some((m, i) => m !== ref.messages[i])) {
    const i = got.findIndex((m, k) => m !== ref.messages[k]);
    return { kind: "protocol", message: `the decoder delivered ${got.length} message(s), the reference ${ref.messages.length}; first difference at message ${i < 0 ? Math.min(got.length, ref.messages.length) : i}` };
  }
  if (!wantCode && dec.midMessage !== ref.partial) return { kind: "protocol", message: `the decoder says midMessage=${dec.midMessage}; the reference says ${ref.partial}` };
  return undefined;
}

/** Write the stream to a live drpc server over tcp with a raw socket. */
async function streamOverTcp(ctx: CaseContext, s: Uint8Array, c: StreamCase): Promise<Problem | undefined> {
  const fx = ctx.fx!;
  const loop = fx.loop;
  const url = new URL(fx.raw.drpc!);
  const before = heldBytes();
  const sock = net.connect({ host: url.hostname, port: Number(url.port), noDelay: true });
  sock.on("error", () => {});
  sock.resume();
  const closed = new Promise<void>((resolve) => sock.once("close", () => resolve()));
  try {
    const open = await within(loop, new Promise<void>((resolve, reject) => sock.once("connect", resolve).once("error", reject)), 5000);
    if (open === undefined) return { kind: "control", message: "a raw tcp connection to the server did not open within 5000 ms" };
    for (const chunk of chunksOf(s, c.chunks)) if (!sock.destroyed) sock.write(chunk);
    await within(loop, new Promise<void>((resolve) => sock.write(new Uint8Array(0), () => resolve())), 5000);
    const ref = referenceFrames(s, framingLimits());
    const problem = (await fx.control()) ?? checkMemory(ctx.mem, before, () => (ref.partial && ref.announced > MiB ? "header-alloc" : undefined));
    if (problem) return problem;
    if (ref.error !== undefined && (await within(loop, closed, 3000)) === undefined) {
      return { kind: "protocol", message: `the server kept a connection open 3000 ms after ${ref.error === "malformed" ? "a malformed frame header" : "a frame header past its limits"}` };
    }
    return undefined;
  } finally {
    sock.destroy();
    await within(loop, closed, 5000);
  }
}

const framingTarget: Target<StreamCase> = {
  name: "framing",
  zrpc: false,
  control: "drpc",
  live: (mode) => mode === "tcp",
  arbitrary: () =>
    fc.record({
      mutation: mutationArb(3, 0),
      ops: fc.array(streamOpArb, { minLength: 1, maxLength: 4 }),
      chunks: fc.array(fc.nat(1 << 16), { maxLength: 6 }),
      halts: fc.array(fc.integer({ min: 1, max: 40 }), { maxLength: 4 }),
    }),
  describe: (c, corpus) => `    stream ${hex(streamOf(c, corpus))}\n    chunk sizes ${JSON.stringify(c.chunks.map((n) => 1 + (n % 4096)))}, halts at ${JSON.stringify(c.halts)}`,
  run: async (ctx, c) => {
    const s = streamOf(c, ctx.corpus);
    if (ctx.mode === "tcp") return streamOverTcp(ctx, s, c);
    return decodeCheck(s, c, framingLimits(), ctx.mem) ?? decodeCheck(s, c, framingLimits({ maxMessageSize: 4096, maxFrames: 8 }), ctx.mem);
  },
};

export function targetNamed(name: TargetName): Target<unknown> {
  const t = { drpc: drpcTarget, zrpc: zrpcTarget, msgpack: msgpackTarget, framing: framingTarget }[name];
  return t as Target<unknown>;
}
