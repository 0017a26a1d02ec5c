/**
 * A budget of bytes shared by many holders: a server's buffered input across
 * all its connections, or the output it holds for slow readers. A holder
 * `take`s bytes before it keeps them and `give`s them back when it lets them
 * go; a `take` past the limit is refused (the holder then stops reading or
 * refuses the work with ERR_BUSY), so the total stays bounded whatever the
 * number of holders.
 *
 * @example
 * ```ts
 * const input = new ByteBudget(256 * 1024 * 1024);
 * if (!input.take(chunk.length)) throw new BusyError("input budget exhausted");
 * // ... later
 * input.give(chunk.length);
 * ```
 * @module
 */

export class ByteBudget {
  /** Most bytes held at once. */
  readonly limit: number;
  #used = 0;
  #refused = 0;

  constructor(limit: number) {
    if (typeof limit !== "number" || !(limit >= 0)) throw new RangeError(`a byte budget must be a non-negative number of bytes, got ${String(limit)}`);
    this.limit = limit;
  }

  /** Bytes held now. */
  get used(): number {
    return this.#used;
  }

  /** Takes refused so far (for metrics). */
  get refused(): number {
    return this.#refused;
  }

  /** Hold `n` more bytes; false (and nothing held) when that would pass the limit. */
  take(n: number): boolean {
    if (this.#used + n > this.limit) {
      this.#refused++;
      return false;
    }
    this.#used += n;
    return true;
  }

  /** Let go of `n` bytes taken earlier. */
  give(n: number): void {
    this.#used = Math.max(0, this.#used - n);
  }
}

/** A budget given as a number of bytes or as a shared ByteBudget; undefined stays undefined. */
export function byteBudget(v: unknown, name: string): ByteBudget | undefined {
  if (v === undefined || v instanceof ByteBudget) return v;
  if (typeof v === "number") return new ByteBudget(v);
  throw new RangeError(`${name} must be a number of bytes or a ByteBudget, got ${String(v)}`);
}
