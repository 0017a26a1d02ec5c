/**
 * The shared engine of every Loop adapter: the post queue with its budget,
 * the timer heap, and the transport registry. An adapter supplies only a clock
 * and two host hooks ("run a turn soon", "wake me at this deadline"), so it
 * stays a page of code, as Trio's guest mode needs only two hooks.
 *
 * @example
 * ```ts
 * class MyLoop extends LoopBase {
 *   now() { return host.clock(); }
 *   protected requestTurn() { host.soon(() => this.runTurn()); }
 *   protected wakeAt(deadline?: number) { host.alarm(deadline, () => this.wake()); }
 * }
 * ```
 * @module
 */
import { DEFAULT_BUDGET, type Loop, type Timer } from "./Loop.js";
import {
  type Connection,
  type ConnectOptions,
  type Listener,
  type ListenOptions,
  TransportRegistry,
  parseUrl,
  schemeOf,
} from "./Transport.js";
import { Ring } from "./Ring.js";
import { TimerHeap, type HeapEntry } from "./internal/TimerHeap.js";
import { RESOLVED } from "./resolved.js";
import { seededRandom } from "./random.js";

/** Options every LoopBase adapter accepts. */
export interface LoopOptions {
  name?: string;
  /** Ready callbacks per turn; see {@link DEFAULT_BUDGET}. */
  budget?: number;
  /** Wall-clock time (epoch ms) at loop time 0, for `wallTime()` where the adapter does not override it. Default 0. */
  wallOrigin?: number;
  /**
   * The loop's random source, numbers in [0, 1). Default: mulberry32 seeded
   * with `seed` (adapters on a real host pass a source of their own).
   */
  random?: () => number;
  /** Seed of the default random source. Default 1. */
  seed?: number;
  /**
   * Called with an error thrown by a posted callback or a timer callback.
   * The remaining callbacks run regardless. Adapters choose the default.
   */
  onError?: (error: unknown) => void;
}

class LoopTimer implements Timer, HeapEntry {
  deadline: number;
  seq: number;
  index = -1;
  refed = true;
  fn: (() => void) | undefined;
  readonly #loop: LoopBase;

  constructor(loop: LoopBase, deadline: number, seq: number, fn: () => void) {
    this.#loop = loop;
    this.deadline = deadline;
    this.seq = seq;
    this.fn = fn;
  }

  get pending(): boolean {
    return this.index >= 0;
  }

  cancel(): void {
    if (this.index >= 0) this.#loop._cancelTimer(this);
  }

  unref(): this {
    if (this.refed) {
      this.refed = false;
      if (this.index >= 0) this.#loop._refChanged(-1);
    }
    return this;
  }

  ref(): this {
    if (!this.refed) {
      this.refed = true;
      if (this.index >= 0) this.#loop._refChanged(1);
    }
    return this;
  }
}


/**
 * The furthest ahead `LoopBase` asks an adapter to wake it: 2^31-1 ms (about
 * 24.8 days), the largest delay of Node's and browsers' `setTimeout` (a longer
 * one fires after 1 ms, with a TimeoutOverflowWarning). A timer due later is
 * reached in hops, so an adapter may hand any requested delay to such a host
 * timer as it is.
 */
export const MAX_HOST_DELAY_MS = 2 ** 31 - 1;

/** What `timer(Infinity)` returns: it never fires. */
export const INERT_TIMER: Timer = Object.freeze({
  deadline: Infinity,
  pending: false,
  cancel() {},
  unref() {
    return this;
  },
  ref() {
    return this;
  },
});

/** Base class of the Loop adapters. */
export abstract class LoopBase implements Loop {
  readonly name: string;
  readonly budget: number;
  readonly transports = new TransportRegistry();

  readonly #posts = new Ring<() => void>(64);
  readonly #heap = new TimerHeap<LoopTimer>();
  #seq = 0;
  #refed = 0;
  #turnRequested = false;
  #inTurn = false;
  #syncQueued = false;
  /** Deadline the host was last asked to wake us at (undefined: none). */
  #armed: number | undefined = undefined;
  #armedRef = false;
  #spent = 0;
  readonly #onError: ((error: unknown) => void) | undefined;
  readonly #wallOrigin: number;
  readonly #random: () => number;

  constructor(options: LoopOptions = {}) {
    this.#wallOrigin = options.wallOrigin ?? 0;
    this.#random = options.random ?? seededRandom(options.seed ?? 1);
    this.name = options.name ?? "loop";
    this.budget = options.budget ?? DEFAULT_BUDGET;
    this.#onError = options.onError;
  }

  abstract now(): number;

  wallTime(): number {
    return this.#wallOrigin + this.now();
  }

  random(): number {
    return this.#random();
  }

  /** Ask the host to call `runTurn()` soon, on a later macrotask. */
  protected abstract requestTurn(): void;

  /**
   * Ask the host to call `wake()` at loop time `deadline` (replacing any
   * earlier request), or to forget the wake-up when `deadline` is undefined.
   * `ref` says whether the wake-up should keep the host process alive. The
   * same deadline again with another `ref` only changes the ref: make that
   * cheap. `deadline` is never more than {@link MAX_HOST_DELAY_MS} ahead of
   * `now()`.
   */
  protected abstract wakeAt(deadline: number | undefined, ref: boolean): void;

  /** Report an error thrown by a callback. Adapters override for a default. */
  protected reportError(error: unknown): void {
    if (this.#onError) this.#onError(error);
    else
      queueMicrotask(() => {
        throw error;
      });
  }

  post(fn: () => void): void {
    this.#posts.push(fn);
    // Inside a turn, the end-of-turn check requests the next turn if needed.
    if (!this.#turnRequested && !this.#inTurn) {
      this.#turnRequested = true;
      this.requestTurn();
    }
  }

  timer(ms: number, fn: () => void): Timer {
    if (typeof ms !== "number" || ms !== ms) throw new RangeError(`loop.timer: the delay must be a number of ms, got ${String(ms)}`);
    if (ms === Infinity) return INERT_TIMER;
    const delay = ms > 0 ? ms : 0; // negative: on a coming turn
    const t = new LoopTimer(this, this.now() + delay, this.#seq++, fn);
    this.#heap.push(t);
    this.#refed++;
    if (this.#armed === undefined || t.deadline < this.#armed || !this.#armedRef) this.#queueSync();
    return t;
  }

  cooperate(): Promise<void> | undefined {
    if (++this.#spent < this.budget) return undefined;
    this.#spent = 0;
    return new Promise<void>((resolve) => this.post(resolve));
  }

  get pendingTimers(): number {
    return this.#heap.size;
  }

  /** Posted callbacks waiting for a turn. */
  get pendingPosts(): number {
    return this.#posts.length;
  }

  /** The earliest pending timer deadline, if any. */
  protected nextDeadline(): number | undefined {
    return this.#heap.peek()?.deadline;
  }

  /** @internal */
  _cancelTimer(t: LoopTimer): void {
    this.#heap.remove(t);
    t.fn = undefined;
    if (t.refed) this.#refed--;
    // A wake-up for a cancelled timer would keep the process alive (when it was
    // the last ref'd one) or fire for nothing; resync lazily, once per batch.
    if (this.#heap.size === 0 || this.#refed === 0) this.#queueSync();
  }

  /** @internal */
  _refChanged(delta: number): void {
    this.#refed += delta;
    this.#queueSync();
  }

  /**
   * One turn: fire the timers that are due (only those scheduled before the
   * turn began, so a timer that re-arms itself at 0 ms cannot starve the
   * turn), then run posted callbacks up to the budget.
   */
  protected runTurn(): void {
    this.#turnRequested = false;
    this.#spent = 0;
    this.#inTurn = true;
    try {
      this.fireDue(this.now());
      const posts = this.#posts;
      let n = this.budget;
      while (n-- > 0) {
        const fn = posts.shift();
        if (fn === undefined) break;
        try {
          fn();
        } catch (e) {
          this.reportError(e);
        }
      }
    } finally {
      this.#inTurn = false;
    }
    if (this.#posts.length > 0 && !this.#turnRequested) {
      this.#turnRequested = true;
      this.requestTurn();
    }
    this.#sync();
  }

  /** The host's wake-up (asked for by `wakeAt`) has fired: run a turn. */
  protected wake(): void {
    this.#armed = undefined;
    this.runTurn();
  }

  /** Fire timers with deadline <= `now` that existed when the call began. */
  protected fireDue(now: number): number {
    const heap = this.#heap;
    const limit = this.#seq;
    let fired = 0;
    for (;;) {
      const t = heap.peek();
      if (t === undefined || t.deadline > now) break;
      if (t.seq >= limit) {
        // Scheduled during this firing with a due deadline: next turn.
        if (!this.#turnRequested) {
          this.#turnRequested = true;
          this.requestTurn();
        }
        break;
      }
      heap.pop();
      if (t.refed) this.#refed--;
      const fn = t.fn!;
      t.fn = undefined;
      fired++;
      try {
        fn();
      } catch (e) {
        this.reportError(e);
      }
    }
    return fired;
  }

  #queueSync(): void {
    if (this.#syncQueued) return;
    this.#syncQueued = true;
    // One resync per synchronous batch: a million schedule+cancel pairs cost
    // one host call, not a million. (A promise reaction, not queueMicrotask:
    // Node 20 wraps each queueMicrotask callback in an AsyncResource.)
    RESOLVED.then(this.#syncNow);
  }

  readonly #syncNow = (): void => {
    this.#syncQueued = false;
    this.#sync();
  };

  /**
   * Bring the host wake-up in line with the heap. A wake-up that comes no later
   * than the earliest timer is kept (a spurious wake-up is cheaper than a host
   * timer re-armed on every call); when no ref'd timer is left it is only
   * unref'd, so it never holds the process open, and fires once for nothing.
   */
  #sync(): void {
    const next = this.#heap.peek();
    const ref = this.#refed > 0;
    const armed = this.#armed;
    if (next === undefined) {
      if (armed !== undefined && this.#armedRef) {
        this.#armedRef = false;
        this.wakeAt(armed, false);
      }
      return;
    }
    if (armed !== undefined && armed <= next.deadline) {
      if (ref !== this.#armedRef) {
        this.#armedRef = ref;
        this.wakeAt(armed, ref);
      }
      return;
    }
    // A host timer takes at most MAX_HOST_DELAY_MS: a later deadline is
    // reached in hops (each wake-up fires nothing and asks for the next).
    const latest = this.now() + MAX_HOST_DELAY_MS;
    const at = next.deadline > latest ? latest : next.deadline;
    this.#armed = at;
    this.#armedRef = ref;
    this.wakeAt(at, ref);
  }

  async connect(url: string | URL, options: ConnectOptions = {}): Promise<Connection> {
    const u = parseUrl(url);
    return this.transports.get(schemeOf(u)).connect(this, u, options);
  }

  async listen(url: string | URL, options: ListenOptions = {}): Promise<Listener> {
    const u = parseUrl(url);
    return this.transports.get(schemeOf(u)).listen(this, u, options);
  }
}
