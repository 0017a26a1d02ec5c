import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { Ring } from "../../core/Ring.js";
import { TimerHeap, type HeapEntry } from "../../core/internal/TimerHeap.js";

test("property: the timer heap pops in (deadline, seq) order under pushes and removals", () => {
  fc.assert(
    fc.property(
      fc.array(fc.record({ deadline: fc.integer({ min: 0, max: 20 }), remove: fc.boolean() }), { maxLength: 300 }),
      (ops) => {
        const heap = new TimerHeap<HeapEntry>();
        const entries = ops.map((o, seq) => ({ deadline: o.deadline, seq, index: -1 }));
        for (const e of entries) heap.push(e);
        const kept = entries.filter((e, i) => {
          if (ops[i]!.remove) {
            assert.equal(heap.remove(e), true);
            assert.equal(heap.remove(e), false);
            return false;
          }
          return true;
        });
        const out: HeapEntry[] = [];
        for (let e = heap.pop(); e; e = heap.pop()) out.push(e);
        const expected = [...kept].sort((a, b) => a.deadline - b.deadline || a.seq - b.seq);
        assert.deepEqual(out, expected);
      },
    ),
  );
});

test("property: the ring buffer behaves as a FIFO queue", () => {
  fc.assert(
    fc.property(fc.array(fc.oneof(fc.integer(), fc.constant(null)), { maxLength: 500 }), (ops) => {
      const ring = new Ring<number>(2);
      const model: number[] = [];
      for (const op of ops) {
        if (op === null) assert.equal(ring.shift(), model.shift());
        else {
          ring.push(op);
          model.push(op);
        }
        assert.equal(ring.length, model.length);
        assert.equal(ring.peek(), model[0]);
      }
    }),
  );
});

test("property: Ring.retain keeps the items that pass, in order, and the ring stays a FIFO", () => {
  fc.assert(
    fc.property(fc.array(fc.integer({ min: 0, max: 99 }), { maxLength: 200 }), fc.integer({ min: 0, max: 50 }), (items, shifts) => {
      const ring = new Ring<number>(2);
      for (const x of items) ring.push(x);
      const model = [...items];
      for (let i = 0; i < shifts; i++) assert.equal(ring.shift(), model.shift());
      ring.retain((x) => x % 3 !== 0);
      const kept = model.filter((x) => x % 3 !== 0);
      ring.push(1000);
      kept.push(1000);
      assert.equal(ring.length, kept.length);
      assert.deepEqual(ring.drain(), kept);
    }),
  );
});
