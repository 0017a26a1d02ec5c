import { BusyError } from "../../core/errors.js";

/** Fibonacci hashing: the top bits of id × 2^32/φ; `shift` is 32 minus the table's bits. */
const home = (id: number, shift: number): number => Math.imul(id, 0x9e3779b1) >>> shift;

/** The home slot of `id` in a table of 2^bits slots (exported for tests). */
export const idSlot = (id: number, bits: number): number => home(id, 32 - bits);

/**
 * Calls in flight by their integer id: an open-addressing hash table with
 * linear probing, and a set/delete pair allocates nothing (a `Map` whose keys
 * keep changing rehashes and shrinks its backing store over and over).
 *
 * Ids come in sequence, so the slot is a Fibonacci hash of the id, not
 * `id & mask`: consecutive ids then land apart, and probe runs stay short.
 * With `id & mask`, a hundred calls in flight fill a hundred consecutive
 * slots, and every delete's backward shift scans the whole run.
 */
export class IdTable<V> {
  #keys!: Int32Array;
  #vals!: (V | undefined)[];
  #mask = 0;
  #shift = 0;
  #size = 0;

  constructor(capacity = 16) {
    let cap = 16;
    while (cap < capacity) cap <<= 1;
    this.#alloc(cap);
  }

  /** Empty storage of `cap` slots (a power of two). */
  #alloc(cap: number): void {
    this.#keys = new Int32Array(cap);
    this.#vals = new Array<V | undefined>(cap).fill(undefined);
    this.#mask = cap - 1;
    this.#shift = Math.clz32(cap) + 1; // 32 - log2(cap)
  }

  get size(): number {
    return this.#size;
  }

  /** The value of `id` (a positive 31-bit integer), or undefined. */
  get(id: number): V | undefined {
    const keys = this.#keys;
    const mask = this.#mask;
    for (let i = home(id, this.#shift); ; i = (i + 1) & mask) {
      const k = keys[i]!;
      if (k === id) return this.#vals[i];
      if (k === 0) return undefined;
    }
  }

  has(id: number): boolean {
    return this.get(id) !== undefined;
  }

  /** Add `id` (absent: the caller checked). */
  set(id: number, v: V): void {
    if ((this.#size + 1) * 2 > this.#keys.length) this.#grow();
    this.#put(id, v);
    this.#size++;
  }

  #put(id: number, v: V): void {
    const keys = this.#keys;
    const mask = this.#mask;
    let i = home(id, this.#shift);
    while (keys[i] !== 0) i = (i + 1) & mask;
    keys[i] = id;
    this.#vals[i] = v;
  }

  /** Remove `id`; whether it was there. */
  delete(id: number): boolean {
    const keys = this.#keys;
    const vals = this.#vals;
    const mask = this.#mask;
    const shift = this.#shift;
    let i = home(id, shift);
    for (;;) {
      const k = keys[i]!;
      if (k === 0) return false;
      if (k === id) break;
      i = (i + 1) & mask;
    }
    // Backward-shift deletion: move later entries of the probe run into the hole.
    let hole = i;
    for (let j = (i + 1) & mask; keys[j] !== 0; j = (j + 1) & mask) {
      const h = home(keys[j]!, shift);
      // Entry j may move to the hole if its home is not in (hole, j] cyclically.
      const fits = hole <= j ? h <= hole || h > j : h <= hole && h > j;
      if (fits) {
        keys[hole] = keys[j]!;
        vals[hole] = vals[j];
        hole = j;
      }
    }
    keys[hole] = 0;
    vals[hole] = undefined;
    this.#size--;
    return true;
  }

  /** The values, in no particular order (a copy: safe to change the table meanwhile). */
  values(): V[] {
    const out: V[] = [];
    const keys = this.#keys;
    for (let i = 0; i < keys.length; i++) if (keys[i] !== 0) out.push(this.#vals[i] as V);
    return out;
  }

  clear(): void {
    this.#keys.fill(0);
    this.#vals.fill(undefined);
    this.#size = 0;
  }

  #grow(): void {
    const keys = this.#keys;
    const vals = this.#vals;
    this.#alloc(keys.length * 2);
    for (let i = 0; i < keys.length; i++) if (keys[i] !== 0) this.#put(keys[i]!, vals[i] as V);
  }
}

/**
 * Ids 1..max in sequence, wrapping back to 1, never one that a table still
 * holds: after a wrap, a call or stream that stayed open (a subscription
 * left running for hours on a busy connection) keeps its id to itself.
 */
export class IdCounter {
  #next: number;
  readonly #max: number;

  /** `max`: the largest id (at most 2^31 - 1); `first`: the first id handed out. */
  constructor(max = 0x7fffffff, first = 1) {
    if (!(max >= 1 && max <= 0x7fffffff) || !(first >= 1 && first <= max)) throw new RangeError(`bad id range: first ${first}, max ${max}`);
    this.#max = max;
    this.#next = first;
  }

  /** The next id not held by `inUse`. Throws ERR_BUSY when every id is held. */
  next(inUse: IdTable<unknown>): number {
    if (inUse.size >= this.#max) throw new BusyError(`all ${this.#max} ids are in use`);
    for (;;) {
      const id = this.skip();
      if (inUse.get(id) === undefined) return id;
    }
  }

  /** The next id in sequence, in use or not (message ids that name no table entry). */
  skip(): number {
    const id = this.#next;
    this.#next = id >= this.#max ? 1 : id + 1;
    return id;
  }
}
