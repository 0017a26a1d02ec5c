/**
 * The load engine of `tilth bench`, on any Loop (the Node loop from the
 * command line, virtual time in tests).
 *
 * Closed loop (`rate` undefined): every connection keeps `inFlight` calls in
 * flight; a call starts when the one before it on its slot ends. Open loop
 * (`rate` R): call i is due at `start + i / R`, whatever the answers do;
 * `connections × inFlight` bounds the calls in flight, and a due call waits
 * for a free slot. Latency is measured from each call's intended start (its
 * due time), so a server stall counts for every call it delayed, including
 * the calls it kept the client from sending (coordinated omission corrected,
 * as wrk2 does). The latency from the actual send is kept beside it
 * (`uncorrected`), for comparison.
 *
 * Bounded: by `durationMs` and `maxCalls` (whichever comes first), by the
 * slots in flight, and by a drain limit for the calls still in flight at the
 * end (cancelled after it). An aborted `signal` ends the run at once with the
 * figures so far.
 * @module
 */
import type { Loop, Timer } from "../../core/Loop.js";
import { Latency } from "./histogram.js";

/** A call in flight, as the engine sees it: a promise that can be cancelled. */
export type CallHandle = Promise<unknown> & { cancel?(reason?: unknown): void };

/** What the engine calls. */
export interface BenchTarget {
  /** Start one call of the method on connection `conn` (0-based). */
  call(conn: number, args: readonly unknown[]): CallHandle;
  /** Bytes written and read on every connection so far. */
  bytes(): { sent: number; received: number };
}

export interface LoadPlan {
  /** Connections to spread the calls over. */
  connections: number;
  /** Calls in flight per connection (open loop: at most). */
  inFlight: number;
  /** Calls per second for an open loop; undefined for a closed loop. */
  rate?: number | undefined;
  /** Measured time, ms (after the warm-up). */
  durationMs: number;
  /** Measured calls at most. */
  maxCalls: number;
  /** Calls made before measuring, ms. */
  warmupMs: number;
  /** Argument lists, cycled. */
  argLists: readonly (readonly unknown[])[];
  /** Where in `argLists` to begin (workers begin apart). */
  argOffset?: number;
  /** How long calls still in flight at the end may take before they are cancelled, ms. */
  drainMs: number;
  /** Length of a timeline interval, ms. Default 1000. */
  intervalMs?: number;
  /** Aborting ends the run at once (in-flight calls cancelled) with the figures so far. */
  signal?: AbortSignal | undefined;
  /** Told when measuring begins (after the warm-up). */
  onMeasure?: () => void;
  /** Told at the end of each interval, with the run so far. */
  onInterval?: (interval: Interval, run: LoadProgress) => void;
}

/** One interval of the timeline. */
export interface Interval {
  /** End of the interval, ms since measuring began. */
  t: number;
  /** Its length, ms. */
  ms: number;
  calls: number;
  errors: number;
  items: number;
  /** Latency of the calls that ended in it, µs: p50, p99, max, and the whole histogram, compressed base64 (a run of a day keeps 86 400 of these: no live histogram each). */
  p50: number;
  p99: number;
  max: number;
  histogram: string;
}

/** The figures so far, for a live line. */
export interface LoadProgress {
  elapsedMs: number;
  calls: number;
  errors: number;
  items: number;
  latency: Latency;
}

/** How long before a call is due the open loop's pacer stops sleeping on a timer and waits turn by turn, ms. */
export const SPIN_MS = 1.5;

/** Errors kept by code at most; more codes count under ERR_OTHER. */
export const MAX_ERROR_CODES = 64;

export interface LoadResult {
  mode: "closed" | "open";
  rate: number | undefined;
  connections: number;
  inFlight: number;
  /** Measured time: from the start of measuring to the end of the last measured call (or the stop). */
  windowMs: number;
  /** Measured calls that ended (with a result or an error). */
  calls: number;
  /** Of which failed. */
  failed: number;
  errors: Record<string, number>;
  /** One message per error code, the first seen. */
  errorSamples: Record<string, string>;
  /** Streamed results: calls that answered with a stream, and their items. */
  streams: number;
  items: number;
  /** Latency from the intended start (closed loop: from the send) to the answer (a stream's first item). */
  latency: Latency;
  /** Latency from the actual send. */
  uncorrected: Latency;
  /** Open loop: how late calls were sent against their due time (a busy client, a full set of slots, timer lateness). */
  sendLag: Latency;
  /** Open loop: the send lag of calls that had a free slot when due: the client's own lateness. */
  clientLag: Latency;
  /** Whole streams, from the intended start to their end. */
  streamTime: Latency;
  bytesSent: number;
  bytesReceived: number;
  /** Open loop: measured calls that were due but never sent (the client had no free slot before the end). */
  behind: number;
  /** Calls still in flight after the drain limit (or at an interrupt): cancelled, not counted. */
  unfinished: number;
  interrupted: boolean;
  intervals: Interval[];
}

/** The code remote errors get when the server gave none (a plain Error, a ZeroRPC error): its name then tells them apart. */
const GENERIC_REMOTE = "ERR_REMOTE";

/**
 * The code an error counts under: its `code` when it has a string one, else
 * its name. A remote error without a code of its own counts as
 * `ERR_REMOTE/NAME` (`ERR_REMOTE/ValueError` from a Python ZeroRPC server).
 */
export function errorCode(e: unknown): string {
  if (e !== null && typeof e === "object") {
    const code = (e as { code?: unknown }).code;
    const remoteName = (e as { remoteName?: unknown }).remoteName;
    if (code === GENERIC_REMOTE && typeof remoteName === "string" && remoteName !== "" && remoteName !== "Error") return `${GENERIC_REMOTE}/${remoteName.slice(0, 64)}`;
    if (typeof code === "string" && code !== "") return code;
    const name = (e as { name?: unknown }).name;
    if (typeof name === "string" && name !== "") return name;
  }
  return "Error";
}

function isStream(v: unknown): v is AsyncIterable<unknown> {
  return v !== null && typeof v === "object" && Symbol.asyncIterator in v && !Array.isArray(v) && !ArrayBuffer.isView(v);
}

const enum Phase {
  Warmup,
  Measure,
  Stopping,
  Done,
}

/** A place for one call in flight, reused call after call. */
interface Slot {
  readonly index: number;
  readonly conn: number;
  call: CallHandle | undefined;
  intended: number;
  sent: number;
  measured: boolean;
  /** Sent by the pacer when due (a slot was free), not when a slot came free. */
  paced: boolean;
  ok: (v: unknown) => void;
  failed: (e: unknown) => void;
}

/** Run one load against `target` on `loop`. */
export function runLoad(loop: Loop, target: BenchTarget, plan: LoadPlan): Promise<LoadResult> {
  return new Run(loop, target, plan).start();
}

class Run {
  readonly #loop: Loop;
  readonly #target: BenchTarget;
  readonly #plan: LoadPlan;
  readonly #slots: number;
  /** Each slot, with the call in flight on it (to cancel at the end). */
  readonly #slotList: Slot[];
  readonly #free: number[] = [];
  #phase = Phase.Warmup;
  #start = 0;
  #t0 = 0;
  #stoppedAt = 0;
  #lastEnd = 0;
  #seq: number;
  #measuredIssued = 0;
  #inflight = 0;
  #interrupted = false;
  #measuring = false;
  #timers: Timer[] = [];
  #pacer: Timer | undefined;
  /** The timer that ends the current interval. */
  #tick: Timer | undefined;
  #waitingForSlot = false;
  #spunAt = -1;
  #slotLimited = false;
  #nextIndex = 0;
  #lastIndex = Infinity;
  #period = 0;
  #bytes0 = { sent: 0, received: 0 };
  #resolve!: (r: LoadResult) => void;
  #offAbort: (() => void) | undefined;
  // figures
  #calls_ = 0;
  #failed = 0;
  #items = 0;
  #streams = 0;
  #behind = 0;
  #unfinished = 0;
  readonly #errors = new Map<string, number>();
  readonly #errorSamples = new Map<string, string>();
  readonly #latency = new Latency();
  readonly #uncorrected = new Latency();
  readonly #streamTime = new Latency();
  readonly #sendLag = new Latency();
  readonly #clientLag = new Latency();
  readonly #intervals: Interval[] = [];
  #iv = { start: 0, calls: 0, errors: 0, items: 0 };
  /** The current interval's latency, reused interval after interval. */
  readonly #ivLatency = new Latency();

  constructor(loop: Loop, target: BenchTarget, plan: LoadPlan) {
    this.#loop = loop;
    this.#target = target;
    this.#plan = plan;
    this.#slots = plan.connections * plan.inFlight;
    this.#slotList = Array.from({ length: this.#slots }, (_, i) => {
      const slot: Slot = { index: i, conn: Math.floor(i / plan.inFlight), call: undefined, intended: 0, sent: 0, measured: false, paced: false, ok: () => {}, failed: () => {} };
      slot.ok = (v: unknown) => this.#onResult(slot, slot.call!, v);
      slot.failed = (e: unknown) => this.#end(slot, slot.call!, e, true);
      return slot;
    });
    this.#seq = plan.argOffset ?? 0;
  }

  start(): Promise<LoadResult> {
    const done = new Promise<LoadResult>((resolve) => (this.#resolve = resolve));
    const { signal } = this.#plan;
    if (signal !== undefined) {
      const onAbort = (): void => this.#stop(true);
      if (signal.aborted) {
        this.#loop.post(onAbort);
      } else {
        signal.addEventListener("abort", onAbort, { once: true });
        this.#offAbort = () => signal.removeEventListener("abort", onAbort);
      }
    }
    this.#start = this.#loop.now();
    const p = this.#plan;
    if (p.rate !== undefined) {
      this.#period = 1000 / p.rate;
      const firstMeasured = Math.ceil(p.warmupMs / this.#period);
      const lastByTime = Math.ceil((p.warmupMs + p.durationMs) / this.#period) - 1;
      this.#lastIndex = Math.min(lastByTime, firstMeasured + p.maxCalls - 1);
      for (let s = this.#slots - 1; s >= 0; s--) this.#free.push(s);
    }
    if (p.warmupMs > 0) this.#timers.push(this.#loop.timer(p.warmupMs, () => this.#measure()));
    else this.#measure();
    if (p.rate !== undefined) this.#pace();
    else for (const slot of this.#slotList) if (this.#phase < Phase.Stopping) this.#issue(slot, this.#loop.now());
    return done;
  }

  #measure(): void {
    if (this.#phase !== Phase.Warmup) return;
    const p = this.#plan;
    // Open loop: measuring begins at the due time of the schedule, not when this timer happened to fire.
    this.#t0 = p.rate !== undefined ? this.#start + p.warmupMs : this.#loop.now();
    this.#phase = Phase.Measure;
    this.#measuring = true;
    this.#bytes0 = this.#target.bytes();
    this.#iv.start = this.#t0;
    p.onMeasure?.();
    const iv = p.intervalMs ?? 1000;
    const tick = (): void => {
      this.#closeInterval();
      if (this.#phase === Phase.Measure) this.#tick = this.#loop.timer(this.#t0 + (this.#intervals.length + 1) * iv - this.#loop.now(), tick);
    };
    this.#tick = this.#loop.timer(this.#t0 + iv - this.#loop.now(), tick);
    this.#timers.push(this.#loop.timer(this.#t0 + p.durationMs - this.#loop.now(), () => this.#stop(false)));
  }

  /** The current interval as it ends at `end`; its latency is added to the run's and the histogram emptied for the next. */
  #takeInterval(end: number): Interval {
    const iv = this.#iv;
    const l = this.#ivLatency;
    const st = l.stats();
    const interval: Interval = { t: end - this.#t0, ms: end - iv.start, calls: iv.calls, errors: iv.errors, items: iv.items, p50: st.p50, p99: st.p99, max: st.max, histogram: l.encode() };
    this.#latency.add(l);
    l.reset();
    return interval;
  }

  #closeInterval(): void {
    const now = this.#loop.now();
    const iv = this.#iv;
    if (now <= iv.start) return;
    const interval = this.#takeInterval(now);
    this.#intervals.push(interval);
    this.#iv = { start: now, calls: 0, errors: 0, items: 0 };
    this.#plan.onInterval?.(interval, { elapsedMs: now - this.#t0, calls: this.#calls_, errors: this.#failed, items: this.#items, latency: this.#latency });
  }

  /** Open loop: send every call that is due, while slots are free. */
  readonly #pace = (): void => {
    this.#pacer = undefined;
    this.#waitingForSlot = false;
    if (this.#phase >= Phase.Stopping) return;
    const now = this.#loop.now();
    let n = 0;
    while (this.#nextIndex <= this.#lastIndex) {
      const due = this.#start + this.#nextIndex * this.#period;
      if (due > now) {
        this.#wait(due, now);
        return;
      }
      const slot = this.#free.pop();
      if (slot === undefined) {
        this.#waitingForSlot = true; // a call that ends sends the next
        return;
      }
      this.#nextIndex++;
      this.#issue(this.#slotList[slot]!, due);
      if (this.#phase >= Phase.Stopping) return;
      if (++n >= this.#loop.budget) {
        this.#loop.post(this.#pace); // a turn for I/O between batches
        return;
      }
    }
    // Every call of the schedule is out: the run ends with them.
    this.#stop(false);
  };

  /**
   * Until the next call is due. A host's timers fire a millisecond or more
   * late (Node's have 1 ms resolution), which would make the client send
   * late and count its own lateness as latency: the timer wakes the pacer
   * SPIN_MS early, and the rest is waited out turn by turn. On a loop whose
   * clock does not move between turns (virtual time), the timer alone.
   */
  #wait(due: number, now: number): void {
    const left = due - now;
    if (left > SPIN_MS) this.#pacer = this.#loop.timer(left - SPIN_MS, this.#pace);
    else if (this.#spunAt === now) this.#pacer = this.#loop.timer(left, this.#pace);
    else {
      this.#spunAt = now;
      this.#loop.post(this.#pace);
    }
  }

  #issue(slot: Slot, intended: number): void {
    const p = this.#plan;
    const open = p.rate !== undefined;
    let measured: boolean;
    if (open) {
      // Open loop: a call is measured by its due time (the warm-up timer may fire late).
      measured = intended >= this.#start + p.warmupMs;
      if (measured && this.#phase === Phase.Warmup) this.#measure();
    } else measured = this.#phase === Phase.Measure;
    if (measured) this.#measuredIssued++;
    const args = p.argLists[this.#seq++ % p.argLists.length]!;
    slot.intended = intended;
    // Closed loop: a call is sent when it is due (the end of the call before it); open loop: maybe later.
    slot.sent = open ? this.#loop.now() : intended;
    slot.measured = measured;
    slot.paced = open && !this.#slotLimited;
    let call: CallHandle;
    try {
      call = this.#target.call(slot.conn, args);
    } catch (e) {
      call = Promise.reject(e) as CallHandle;
    }
    slot.call = call;
    this.#inflight++;
    // Per-slot handlers, made once: no closure per call.
    call.then(slot.ok, slot.failed);
    if (measured && this.#measuredIssued >= p.maxCalls) this.#stop(false);
  }

  #onResult(slot: Slot, call: CallHandle, v: unknown): void {
    if (isStream(v)) this.#stream(slot, call, v);
    else this.#end(slot, call, undefined, false);
  }

  #stream(slot: Slot, call: CallHandle, s: AsyncIterable<unknown>): void {
    const first = this.#loop.now();
    const it = s[Symbol.asyncIterator]();
    const measured = slot.measured;
    const step = (): void => {
      it.next().then(
        (r) => {
          if (r.done) return this.#endStream(slot, call, first, undefined);
          if (measured && this.#phase !== Phase.Done) {
            this.#items++;
            this.#iv.items++;
          }
          if (slot.call !== call) return; // cancelled at the end
          step();
        },
        (e: unknown) => this.#endStream(slot, call, first, e),
      );
    };
    step();
  }

  #endStream(slot: Slot, call: CallHandle, first: number, error: unknown): void {
    if (slot.measured && this.#phase !== Phase.Done && slot.call === call) {
      this.#streams++;
      this.#streamTime.recordMs(this.#loop.now() - slot.intended);
    }
    // The first item is the stream's answer: its latency is the time to the first item.
    this.#end(slot, call, error, error !== undefined, first);
  }

  #end(slot: Slot, call: CallHandle, error: unknown, failed: boolean, answeredAt?: number): void {
    if (call === undefined || slot.call !== call) return; // cancelled and counted as unfinished
    slot.call = undefined;
    this.#inflight--;
    const now = this.#loop.now();
    if (slot.measured && this.#phase !== Phase.Done) {
      this.#lastEnd = now;
      this.#calls_++;
      const iv = this.#iv;
      iv.calls++;
      if (failed) {
        this.#failed++;
        iv.errors++;
        let code = errorCode(error);
        if (!this.#errors.has(code) && this.#errors.size >= MAX_ERROR_CODES) code = "ERR_OTHER";
        this.#errors.set(code, (this.#errors.get(code) ?? 0) + 1);
        if (!this.#errorSamples.has(code)) this.#errorSamples.set(code, error instanceof Error ? error.message : String(error));
      } else {
        const at = answeredAt ?? now;
        // Into the interval's histogram only: it is added to the run's when the interval closes.
        this.#ivLatency.recordMs(at - slot.intended);
        if (this.#plan.rate !== undefined) {
          this.#uncorrected.recordMs(at - slot.sent);
          this.#sendLag.recordMs(slot.sent - slot.intended);
          if (slot.paced) this.#clientLag.recordMs(slot.sent - slot.intended);
        }
      }
    }
    if (this.#phase >= Phase.Stopping) {
      if (this.#inflight === 0) this.#finish();
      return;
    }
    if (this.#plan.rate !== undefined) {
      this.#free.push(slot.index);
      if (this.#waitingForSlot) {
        // The calls sent now waited for a slot: their lateness is the server's, not the client's.
        this.#slotLimited = true;
        this.#pace();
        this.#slotLimited = false;
      }
      return;
    }
    const y = this.#loop.cooperate();
    if (y) void y.then(() => this.#next(slot, this.#loop.now()));
    else this.#next(slot, now);
  }

  #next(slot: Slot, now: number): void {
    if (this.#phase < Phase.Stopping) this.#issue(slot, now);
    else if (this.#inflight === 0) this.#finish();
  }

  #stop(interrupted: boolean): void {
    if (this.#phase >= Phase.Stopping) {
      if (interrupted && this.#phase === Phase.Stopping) this.#cancelAll();
      return;
    }
    const p = this.#plan;
    this.#stoppedAt = this.#loop.now();
    if (p.rate !== undefined && this.#phase === Phase.Measure) {
      // Measured calls that were due by now but never got a slot.
      const firstMeasured = Math.ceil(p.warmupMs / this.#period);
      const dueCount = Math.min(this.#lastIndex + 1, Math.floor((this.#stoppedAt - this.#start) / this.#period) + 1);
      this.#behind = Math.max(0, dueCount - Math.max(this.#nextIndex, firstMeasured));
    }
    this.#interrupted = interrupted;
    this.#phase = Phase.Stopping;
    this.#pacer?.cancel();
    if (interrupted) {
      this.#cancelAll();
      return;
    }
    if (this.#inflight === 0) {
      this.#loop.post(() => this.#finish());
      return;
    }
    this.#timers.push(this.#loop.timer(p.drainMs, () => this.#cancelAll()));
  }

  #cancelAll(): void {
    for (const slot of this.#slotList) {
      const c = slot.call;
      if (c === undefined) continue;
      slot.call = undefined;
      this.#inflight--;
      this.#unfinished++;
      c.cancel?.("tilth bench: the run is over");
    }
    this.#finish();
  }

  #finish(): void {
    if (this.#phase === Phase.Done) return;
    this.#phase = Phase.Done;
    for (const t of this.#timers) t.cancel();
    this.#pacer?.cancel();
    this.#tick?.cancel();
    this.#offAbort?.();
    const end = Math.max(this.#stoppedAt, this.#lastEnd);
    if (this.#measuring) this.#closeIntervalAt(end);
    const bytes = this.#target.bytes();
    const p = this.#plan;
    this.#resolve({
      mode: p.rate === undefined ? "closed" : "open",
      rate: p.rate,
      connections: p.connections,
      inFlight: p.inFlight,
      windowMs: this.#measuring ? Math.max(0, end - this.#t0) : 0,
      calls: this.#calls_,
      failed: this.#failed,
      errors: Object.fromEntries(this.#errors),
      errorSamples: Object.fromEntries(this.#errorSamples),
      streams: this.#streams,
      items: this.#items,
      latency: this.#latency,
      // Closed loop: every call is sent when it is due, the two are the same.
      uncorrected: p.rate === undefined ? this.#latency : this.#uncorrected,
      sendLag: this.#sendLag,
      clientLag: this.#clientLag,
      streamTime: this.#streamTime,
      bytesSent: bytes.sent - this.#bytes0.sent,
      bytesReceived: bytes.received - this.#bytes0.received,
      behind: this.#behind,
      unfinished: this.#unfinished,
      interrupted: this.#interrupted,
      intervals: this.#intervals,
    });
  }

  /** The last, partial interval (if anything happened in it). */
  #closeIntervalAt(end: number): void {
    const iv = this.#iv;
    const empty = end <= iv.start || (iv.calls === 0 && iv.items === 0);
    const interval = this.#takeInterval(end);
    if (!empty) this.#intervals.push(interval);
  }
}
