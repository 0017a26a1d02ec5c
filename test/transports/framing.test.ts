/**
 * The framing codec on its own: round trips under any chunking, zero-copy
 * views, halting mid-chunk, batching into few chunks, and coded errors for
 * bad input.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import { isTilthError } from "../../core/errors.js";
import { ByteBudget } from "../../core/Budget.js";
import type { FrameWriter, Message } from "../../core/Transport.js";
import {
  checkMessage,
  DEFAULT_MAX_MESSAGE_SIZE,
  encodeMessage,
  FrameDecoder,
  FrameEncoder,
  framingLimits,
  MORE_FLAG,
  RESERVED_FLAG,
} from "../../transports/framing.js";
import { leakCheck } from "../helpers/leaks.js";

/** Pure codec tests; the leak check still proves they leave nothing behind. */
function it(title: string, fn: () => void): void {
  test(title, async () => {
    const done = leakCheck();
    fn();
    await done();
  });
}

const b = (m: Message): Buffer[] => m.map((f) => Buffer.from(f.buffer, f.byteOffset, f.byteLength));

function decodeAll(chunks: Buffer[], limits = framingLimits()): { msgs: Message[]; errors: Error[] } {
  const msgs: Message[] = [];
  const errors: Error[] = [];
  const d = new FrameDecoder(
    (m) => msgs.push(m),
    (e) => errors.push(e),
    limits,
  );
  for (const c of chunks) d.push(c);
  return { msgs, errors };
}

function header(word: number): Buffer {
  const h = Buffer.alloc(4);
  h.writeUInt32BE(word >>> 0);
  return h;
}

const messageArb = fc.array(fc.uint8Array({ maxLength: 300 }), { minLength: 1, maxLength: 6 });

describe("framing", () => {
  it("the default maximum message size is 64 MiB", () => {
    assert.equal(DEFAULT_MAX_MESSAGE_SIZE, 64 * 1024 * 1024);
    assert.equal(framingLimits().maxMessageSize, DEFAULT_MAX_MESSAGE_SIZE);
  });

  it("wire format: a 4-byte big-endian header per frame, top bit = more frames follow", () => {
    const wire = encodeMessage([Buffer.from("ab"), Buffer.alloc(0), Buffer.from("c")]);
    assert.deepEqual(
      [...wire],
      [0x80, 0, 0, 2, 0x61, 0x62, 0x80, 0, 0, 0, 0, 0, 0, 1, 0x63],
    );
  });

  it("round trip under any chunking (property)", () => {
    fc.assert(
      fc.property(fc.array(messageArb, { minLength: 1, maxLength: 20 }), fc.array(fc.integer({ min: 1, max: 64 }), { minLength: 1 }), (msgs, cuts) => {
        const wire = Buffer.concat(msgs.map(encodeMessage));
        const chunks: Buffer[] = [];
        for (let off = 0, i = 0; off < wire.length; i++) {
          const n = cuts[i % cuts.length]!;
          chunks.push(wire.subarray(off, off + n));
          off += n;
        }
        const { msgs: got, errors } = decodeAll(chunks);
        assert.deepEqual(errors, []);
        assert.deepEqual(got.map(b), msgs.map((m) => b(m)));
      }),
      { numRuns: 300, seed: 7 },
    );
  });

  it("the encoder's batches decode to the messages pushed (property)", () => {
    fc.assert(
      fc.property(
        fc.array(fc.array(fc.oneof(fc.uint8Array({ maxLength: 100 }), fc.integer({ min: 8000, max: 70000 }).map((n) => Buffer.alloc(n, n & 0xff))), { minLength: 1, maxLength: 4 }), {
          minLength: 1,
          maxLength: 40,
        }),
        (msgs) => {
          const enc = new FrameEncoder();
          for (const m of msgs) enc.push(m);
          const chunks = enc.take().map((c) => Buffer.from(c));
          assert.equal(enc.pending, 0);
          const { msgs: got } = decodeAll(chunks);
          assert.deepEqual(got.map(b), msgs.map((m) => b(m)));
        },
      ),
      { numRuns: 100, seed: 11 },
    );
  });

  it("a thousand small messages become one chunk; large frames are referenced, not copied", () => {
    const enc = new FrameEncoder();
    for (let i = 0; i < 1000; i++) enc.push([Buffer.from("0123456789abcdef")]);
    const chunks = enc.take();
    assert.equal(chunks.length, 1);
    assert.equal(chunks[0]!.byteLength, 1000 * 20);
    const big = Buffer.alloc(100_000, 1);
    enc.push([Buffer.from("x"), big]);
    const c2 = enc.take();
    assert.equal(c2.length, 2);
    assert.strictEqual(c2[1], big, "the large frame is the caller's buffer");
    assert.deepEqual(enc.take(), []);
  });

  it("transient chunks (a shared read buffer written over after each push): every message arrives intact, with halts and with frames handed on by bounds (property)", () => {
    fc.assert(
      fc.property(
        fc.array(fc.oneof(messageArb, fc.integer({ min: 8000, max: 140_000 }).map((n) => [Buffer.alloc(n, n & 0xff)])), { minLength: 1, maxLength: 12 }),
        fc.array(fc.integer({ min: 1, max: 70_000 }), { minLength: 1, maxLength: 10 }),
        fc.array(fc.boolean(), { minLength: 1, maxLength: 7 }),
        fc.boolean(),
        (msgs, cuts, halts, byBounds) => {
          const wire = Buffer.concat(msgs.map(encodeMessage));
          const got: Buffer[][] = [];
          let k = 0;
          let d!: FrameDecoder;
          const halt = (): void => {
            if (halts[k++ % halts.length]) d.halt();
          };
          d = new FrameDecoder(
            (m) => {
              got.push(m.map((f) => f as Buffer));
              halt();
            },
            (e) => assert.fail(e),
            framingLimits(),
            byBounds
              ? (chunk, start, end) => {
                  got.push([chunk.subarray(start, end)]);
                  halt();
                }
              : undefined,
          );
          // One buffer for every read, as Node's onread has: what the decoder kept must be its own copy.
          const shared = Buffer.alloc(70_000);
          for (let off = 0, i = 0; off < wire.length; i++) {
            const n = Math.min(cuts[i % cuts.length]!, wire.length - off);
            wire.copy(shared, 0, off, off + n);
            d.push(shared.subarray(0, n), true);
            shared.fill(0xee);
            off += n;
            while (d.halted) d.resume();
          }
          assert.equal(d.midMessage, false);
          assert.deepEqual(got.map(b), msgs.map((m) => b(m)));
        },
      ),
      { numRuns: 150, seed: 23 },
    );
  });

  it("a large frame read transiently is copied once, straight into its own buffer; small frames with it come out of a slab of the decoder's", () => {
    const big = Buffer.alloc(100_000, 7);
    const wire = Buffer.concat([encodeMessage([big]), encodeMessage([Buffer.from("after")])]);
    const got: Message[] = [];
    const d = new FrameDecoder((m) => got.push(m), (e) => assert.fail(e));
    const shared = Buffer.alloc(65_536);
    for (let off = 0; off < wire.length; off += shared.length) {
      const n = Math.min(shared.length, wire.length - off);
      wire.copy(shared, 0, off, off + n);
      d.push(shared.subarray(0, n), true);
      shared.fill(0);
    }
    assert.equal(got.length, 2);
    assert.equal(got[0]![0]!.byteLength, 100_000);
    assert.equal(got[0]![0]!.byteOffset, 0, "the frame is a buffer of its own, not a slice of a copied read");
    assert.equal(got[0]![0]!.buffer.byteLength, 100_000);
    assert.ok(got[0]![0]!.every((x) => x === 7));
    assert.equal(Buffer.from(got[1]![0]!).toString(), "after");
    assert.notEqual(got[1]![0]!.buffer, shared.buffer);
  });

  it("the encoder reuses its slab once told the last batch is written, and only then", () => {
    const enc = new FrameEncoder();
    const frame = (size: number, fill: number): FrameWriter => ({ writeFrame: (dst, at) => void dst.fill(fill, at, at + size) });
    enc.pushFrame(70_000, frame(70_000, 1));
    const [first] = enc.take();
    const kept = Buffer.from(first!);
    enc.pushFrame(70_000, frame(70_000, 2));
    const [second] = enc.take();
    assert.notEqual(second!.buffer, first!.buffer, "not told: a new slab, the first batch untouched");
    assert.deepEqual(Buffer.from(first!), kept);
    enc.written();
    enc.pushFrame(70_000, frame(70_000, 3));
    const [third] = enc.take();
    assert.equal(third!.buffer, second!.buffer, "told: the same memory again");
    assert.equal(third!.byteOffset, second!.byteOffset);
    enc.pushFrame(16, frame(16, 4));
    enc.written(); // a batch not yet taken: nothing is reused under it
    const [fourth] = enc.take();
    assert.equal(fourth!.byteOffset, third!.byteOffset + third!.byteLength, "the pending batch kept its place");
    const { msgs } = decodeAll([Buffer.concat([Buffer.from(third!), Buffer.from(fourth!)])]);
    assert.deepEqual(msgs.map((m) => m[0]!.byteLength), [70_000, 16]);
    assert.ok(msgs[0]![0]!.every((x) => x === 3));
  });

  it("frames inside one chunk are views of it (no copy); split frames are copied once", () => {
    const wire = Buffer.concat([encodeMessage([Buffer.from("hello")]), encodeMessage([Buffer.from("world!")])]);
    const { msgs } = decodeAll([wire]);
    assert.equal(msgs.length, 2);
    assert.ok(msgs[0]![0]!.buffer === wire.buffer, "same memory as the chunk");
    assert.equal(msgs[0]![0]!.byteOffset, wire.byteOffset + 4);
    const split = decodeAll([wire.subarray(0, 6), wire.subarray(6)]).msgs;
    wire.fill(0x3d);
    assert.equal(Buffer.from(msgs[1]![0]!).toString(), "======", "a view sees the chunk change");
    assert.equal(Buffer.from(split[0]![0]!).toString(), "hello", "a split frame is its own copy");
    assert.equal(Buffer.from(split[1]![0]!).toString(), "======", "the next frame, whole in its chunk, is a view");
  });

  it("halt() stops after the current message and keeps the rest; resume() continues in order", () => {
    const wire = Buffer.concat(Array.from({ length: 10 }, (_, i) => encodeMessage([Buffer.from([i])])));
    const seen: number[] = [];
    const d = new FrameDecoder(
      (m) => {
        seen.push(m[0]![0]!);
        if (seen.length === 3 || seen.length === 7) d.halt();
      },
      (e) => assert.fail(e),
    );
    d.push(wire.subarray(0, 25));
    assert.deepEqual(seen, [0, 1, 2]);
    assert.ok(d.holding);
    d.push(wire.subarray(25)); // arrives while halted: kept behind the rest
    assert.deepEqual(seen, [0, 1, 2]);
    d.resume();
    assert.deepEqual(seen, [0, 1, 2, 3, 4, 5, 6]);
    d.resume();
    assert.deepEqual(seen, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    assert.ok(!d.holding && !d.midMessage);
  });

  it("a reserved header bit is ERR_MALFORMED_FRAME, and the decoder stops", () => {
    const { msgs, errors } = decodeAll([Buffer.concat([header(RESERVED_FLAG | 1), Buffer.from("x"), encodeMessage([Buffer.from("y")])])]);
    assert.equal(msgs.length, 0);
    assert.equal(errors.length, 1);
    assert.ok(isTilthError(errors[0], "ERR_MALFORMED_FRAME"));
  });

  it("a header announcing more than the maximum is ERR_MESSAGE_TOO_LARGE before any payload arrives", () => {
    const limits = framingLimits({ maxMessageSize: 1000 });
    const one = decodeAll([header(1001)], limits);
    assert.ok(isTilthError(one.errors[0], "ERR_MESSAGE_TOO_LARGE"));
    // Across frames of one message: 600 + 401 > 1000.
    const multi = decodeAll([header(MORE_FLAG | 600), Buffer.alloc(600), header(401)], limits);
    assert.ok(isTilthError(multi.errors[0], "ERR_MESSAGE_TOO_LARGE"));
    // Exactly the maximum is fine.
    assert.equal(decodeAll([header(1000), Buffer.alloc(1000)], limits).msgs.length, 1);
  });

  it("a header announcing 64 MiB costs nothing until the bytes come: the buffer grows with what is received, at most twice it", () => {
    const len = 64 * 1024 * 1024 - 16;
    const d = new FrameDecoder(() => assert.fail("no message yet"), (e) => assert.fail(e));
    d.push(Buffer.concat([header(len), Buffer.alloc(10, 1)]));
    assert.ok(d.midMessage);
    assert.ok(d.assembling <= 16 * 1024, `holds ${d.assembling} bytes for 10 received`);
    let received = 10;
    for (const n of [100, 20_000, 70_000, 1 << 20]) {
      d.push(Buffer.alloc(n, 2));
      received += n;
      assert.ok(d.assembling >= received && d.assembling <= Math.max(16 * 1024, 2 * received), `holds ${d.assembling} bytes for ${received} received`);
    }
  });

  it("frames that grow across many chunks arrive whole and intact (property)", () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 200_000 }), { minLength: 1, maxLength: 3 }), fc.array(fc.integer({ min: 1, max: 70_000 }), { minLength: 1, maxLength: 40 }), (sizes, cuts) => {
        const msg = sizes.map((n, i) => Buffer.alloc(n, (i * 37 + n) & 0xff));
        const wire = encodeMessage(msg);
        const chunks: Buffer[] = [];
        let at = 0;
        for (let i = 0; at < wire.length; i++) {
          const n = cuts[i % cuts.length]!;
          chunks.push(wire.subarray(at, at + n));
          at += n;
        }
        const { msgs, errors } = decodeAll(chunks);
        assert.deepEqual(errors, []);
        assert.equal(msgs.length, 1);
        assert.deepEqual(b(msgs[0]!), msg);
      }),
      { numRuns: 60 },
    );
  });

  it("an input budget shared by decoders: a message that would pass it ends that decoder with ERR_BUSY; completed and failed messages give their bytes back", () => {
    const budget = new ByteBudget(100_000);
    const limits = framingLimits({ inputBudget: budget });
    const got: Message[] = [];
    const errs: Error[] = [];
    const a = new FrameDecoder((m) => got.push(m), (e) => errs.push(e), limits);
    const c = new FrameDecoder((m) => got.push(m), (e) => errs.push(e), limits);
    a.push(Buffer.concat([header(80_000), Buffer.alloc(30_000)]));
    assert.ok(budget.used >= 30_000 && budget.used <= 80_000, `used ${budget.used}`);
    c.push(Buffer.concat([header(90_000), Buffer.alloc(45_000)]));
    assert.equal(errs.length, 1);
    assert.ok(isTilthError(errs[0], "ERR_BUSY"), String(errs[0]));
    assert.match(errs[0]!.message, /input budget exhausted/);
    assert.ok(c.failed);
    a.push(Buffer.alloc(50_000));
    assert.equal(got.length, 1);
    assert.equal(got[0]![0]!.length, 80_000);
    assert.equal(budget.used, 0, "the delivered message gave its bytes back");
    assert.equal(budget.refused, 1);
    // A decoder that fails or is discarded mid-message gives back too.
    const d = new FrameDecoder(() => {}, () => {}, limits);
    d.push(Buffer.concat([header(50_000), Buffer.alloc(20_000)]));
    assert.ok(budget.used > 0);
    d.discard();
    assert.equal(budget.used, 0);
  });

  it("too many frames in one message is ERR_MESSAGE_TOO_LARGE (empty frames cannot grow memory without bound)", () => {
    const limits = framingLimits({ maxFrames: 16 });
    const wire = Buffer.concat(Array.from({ length: 17 }, () => header(MORE_FLAG)));
    const { errors } = decodeAll([wire], limits);
    assert.ok(isTilthError(errors[0], "ERR_MESSAGE_TOO_LARGE"));
  });

  it("checkMessage: no frames, a non-byte frame, too large", () => {
    const limits = framingLimits({ maxMessageSize: 10, maxFrames: 3 });
    assert.throws(() => checkMessage([], limits), (e) => isTilthError(e, "ERR_INVALID_MESSAGE"));
    assert.throws(() => checkMessage(["x" as unknown as Uint8Array], limits), (e) => isTilthError(e, "ERR_INVALID_MESSAGE"));
    assert.throws(() => checkMessage([Buffer.alloc(11)], limits), (e) => isTilthError(e, "ERR_MESSAGE_TOO_LARGE"));
    assert.throws(() => checkMessage([Buffer.alloc(0), Buffer.alloc(0), Buffer.alloc(0), Buffer.alloc(0)], limits), (e) => isTilthError(e, "ERR_MESSAGE_TOO_LARGE"));
    assert.equal(checkMessage([Buffer.alloc(4), new Uint8Array(6)], limits), 10);
  });
});
