/**
 * A binary min-heap of timers ordered by (deadline, seq): equal deadlines fire
 * in the order they were scheduled (FIFO), as in libuv's timer heap. Each entry
 * knows its index, so cancel is O(log n) and the heap never holds dead entries:
 * a million pending timers cost a million slots, no more.
 * Internal module: not part of the public API.
 */
export interface HeapEntry {
  deadline: number;
  seq: number;
  /** Position in the heap, -1 when not in it. */
  index: number;
}

export class TimerHeap<E extends HeapEntry> {
  readonly #a: E[] = [];

  get size(): number {
    return this.#a.length;
  }

  peek(): E | undefined {
    return this.#a[0];
  }

  push(e: E): void {
    const a = this.#a;
    e.index = a.length;
    a.push(e);
    this.#up(e.index);
  }

  pop(): E | undefined {
    const a = this.#a;
    if (a.length === 0) return undefined;
    const top = a[0]!;
    this.#removeAt(0);
    return top;
  }

  remove(e: E): boolean {
    if (e.index < 0 || this.#a[e.index] !== e) return false;
    this.#removeAt(e.index);
    return true;
  }

  /** Every entry, in no particular order (for inspection and teardown). */
  entries(): readonly E[] {
    return this.#a;
  }

  #removeAt(i: number): void {
    const a = this.#a;
    const e = a[i]!;
    const last = a.pop()!;
    e.index = -1;
    if (i < a.length) {
      a[i] = last;
      last.index = i;
      if (i > 0 && less(last, a[(i - 1) >> 1]!)) this.#up(i);
      else this.#down(i);
    }
  }

  #up(i: number): void {
    const a = this.#a;
    const e = a[i]!;
    while (i > 0) {
      const p = (i - 1) >> 1;
      const pe = a[p]!;
      if (!less(e, pe)) break;
      a[i] = pe;
      pe.index = i;
      i = p;
    }
    a[i] = e;
    e.index = i;
  }

  #down(i: number): void {
    const a = this.#a;
    const n = a.length;
    const e = a[i]!;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) break;
      const r = l + 1;
      const c = r < n && less(a[r]!, a[l]!) ? r : l;
      const ce = a[c]!;
      if (!less(ce, e)) break;
      a[i] = ce;
      ce.index = i;
      i = c;
    }
    a[i] = e;
    e.index = i;
  }
}

function less(x: HeapEntry, y: HeapEntry): boolean {
  return x.deadline < y.deadline || (x.deadline === y.deadline && x.seq < y.seq);
}
