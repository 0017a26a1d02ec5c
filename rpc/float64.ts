/**
 * `float64(3)`: a number written as msgpack float64 whatever its value. msgpack
 * writers write a whole number as an integer, so a ZeroRPC peer in Python gets
 * `3` for `3.0`; a Float64 is written as float64 by tilth's writer (both
 * protocols), and read back as a plain number. In-process it is an object
 * whose `valueOf()` is the number.
 * @module
 */

/** A number sent as msgpack float64. */
export class Float64 {
  readonly value: number;
  constructor(value: number) {
    this.value = value;
  }
  valueOf(): number {
    return this.value;
  }
  toJSON(): number {
    return this.value;
  }
}

/**
 * Mark `n` to be sent as a float: `client.call("scale", [float64(3)])` gives a
 * Python peer `3.0`.
 */
export function float64(n: number): Float64 {
  return new Float64(n);
}
