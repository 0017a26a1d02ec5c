/**
 * What every fuzz case runs against: a live server (the fuzz API on drpc
 * and, when asked, zrpc), a control client on its own connection, traps for
 * uncaught exceptions, unhandled rejections and errors thrown by loop
 * callbacks, and memory readings.
 *
 * Two modes. `inproc`: server, control client and the fuzzer's raw
 * connections share one VirtualLoop over inproc://, so liveness rules are
 * checked in virtual time (a case may leave its connection silent for 25
 * virtual seconds and the server must have closed it). `tcp`: a NodeLoop,
 * drpc over tcp://127.0.0.1 and zrpc over zmq+tcp://127.0.0.1, in real time
 * (where a blocked loop shows in the control client's latency).
 */
import { runInNewContext } from "node:vm";
import { getHeapStatistics, setFlagsFromString } from "node:v8";
import { NodeLoop } from "../../adapters/node.js";
import { VirtualLoop } from "../../adapters/virtual.js";
import type { Loop } from "../../core/Loop.js";
import { describe as describeError } from "../../core/errors.js";
import { registerTransports } from "../../transports/index.js";
import { close as closeProxy, connect, serve, withOptions, type Remote, type RpcServer } from "../../rpc/index.js";
import { fuzzApi, type FuzzApi } from "./api.js";

export type Mode = "inproc" | "tcp";
export type Protocol = "drpc" | "zrpc";

/** What went wrong in one case (or a run). `known` names a known issue it matches. */
export interface Problem {
  kind: "crash" | "uncaught" | "unhandled" | "loop-error" | "warning" | "control" | "memory" | "protocol" | "liveness" | "reply";
  message: string;
  known?: string;
}

// ---- process-level traps ----

/**
 * Collects uncaught exceptions and unhandled rejections while installed (so
 * the process survives them and the case that caused them is named).
 */
export class Trap {
  readonly errors: Problem[] = [];
  readonly #onException = (e: unknown): void => void this.errors.push({ kind: "uncaught", message: `uncaught exception: ${describeError(e)}` });
  readonly #onRejection = (e: unknown): void => void this.errors.push({ kind: "unhandled", message: `unhandled rejection: ${describeError(e)}` });
  /** Warnings input can cause (a timer past Node's range, listeners piling up); not the ones code causes (deprecations, experiments). */
  readonly #onWarning = (w: Error): void => {
    if (w.name === "DeprecationWarning" || w.name === "ExperimentalWarning") return;
    const p: Problem = { kind: "warning", message: `process warning: ${w.name}: ${w.message}` };
    if (w.name === "TimeoutOverflowWarning") p.known = "timer-overflow";
    this.errors.push(p);
  };
  #installed = false;

  install(): this {
    if (!this.#installed) {
      process.on("uncaughtException", this.#onException);
      process.on("unhandledRejection", this.#onRejection);
      process.on("warning", this.#onWarning);
      this.#installed = true;
    }
    return this;
  }

  uninstall(): void {
    if (!this.#installed) return;
    process.off("uncaughtException", this.#onException);
    process.off("unhandledRejection", this.#onRejection);
    process.off("warning", this.#onWarning);
    this.#installed = false;
  }

  /** An error thrown by a loop callback. */
  loopError(e: unknown): void {
    this.errors.push({ kind: "loop-error", message: `a loop callback threw: ${describeError(e)}` });
  }

  /** The first problem collected since the last take, and forget them all. */
  take(): Problem | undefined {
    const p = this.errors[0];
    this.errors.length = 0;
    return p;
  }
}

// ---- memory ----

let gcFn: (() => void) | undefined;

/** Run a full garbage collection (exposing `gc` at run time when node was not started with --expose-gc). */
export function collectGarbage(): void {
  if (gcFn === undefined) {
    const g = (globalThis as { gc?: () => void }).gc;
    if (g) gcFn = g;
    else {
      setFlagsFromString("--expose-gc");
      gcFn = runInNewContext("gc") as () => void;
    }
  }
  // Twice: buffers freed by the first are swept off the thread; the second waits for that sweep.
  gcFn();
  gcFn();
}

/** Bytes the process holds on the JS heap and outside it (buffers). Cheaper than process.memoryUsage(), which reads the RSS too. */
export function heldBytes(): number {
  const h = getHeapStatistics();
  return h.used_heap_size + h.external_memory;
}

export const MiB = 1024 * 1024;

// ---- time ----

/** `p`'s value, or `undefined` when `ms` of loop time pass first (the timer is cancelled either way). */
export function within<T>(loop: Loop, p: Promise<T>, ms: number): Promise<{ value: T } | undefined> {
  return new Promise((resolve, reject) => {
    const t = loop.timer(ms, () => resolve(undefined));
    p.then(
      (value) => {
        t.cancel();
        resolve({ value });
      },
      (e: unknown) => {
        t.cancel();
        reject(e);
      },
    );
  });
}

// ---- the live server ----

export interface FixtureOptions {
  mode: Mode;
  /** Protocols the server listens with (drpc always). */
  zrpc: boolean;
  /** The control client's protocol. */
  control: Protocol;
  /** Bound on one control call, ms (virtual in inproc mode). */
  controlMs: number;
  trap: Trap;
  /** Another API to serve (the tool's own tests plant bugs with it). */
  api?: (loop: Loop) => object;
}

let fixtures = 0;

/** A server, its URLs, and a control client. */
export class Fixture {
  readonly loop: Loop;
  readonly options: FixtureOptions;
  server!: RpcServer;
  /** Transport URLs for the fuzzer's raw connections, by protocol. */
  readonly raw: Partial<Record<Protocol, string>> = {};
  /** RPC URLs, by protocol. */
  readonly urls: Partial<Record<Protocol, string>> = {};
  #control!: Remote<FuzzApi>;
  #n = 0;

  private constructor(loop: Loop, options: FixtureOptions) {
    this.loop = loop;
    this.options = options;
  }

  get virtual(): boolean {
    return this.loop instanceof VirtualLoop;
  }

  /** A loop for `mode`, its callback errors going to the trap. */
  static loopFor(options: FixtureOptions): Loop {
    const onError = (e: unknown): void => options.trap.loopError(e);
    return registerTransports(options.mode === "inproc" ? new VirtualLoop({ onError, stallWarningMs: 0 }) : new NodeLoop({ onError }));
  }

  /** Start a server and its control client on `loop` (in inproc mode, call inside the loop's run()). */
  static async open(loop: Loop, options: FixtureOptions): Promise<Fixture> {
    const fx = new Fixture(loop, options);
    await fx.#start();
    return fx;
  }

  async #start(): Promise<void> {
    const { mode, zrpc } = this.options;
    const n = fixtures++;
    const urls = mode === "inproc" ? [`drpc+inproc://fuzz-${n}`, ...(zrpc ? [`zrpc+inproc://fuzz-z${n}`] : [])] : ["drpc+tcp://127.0.0.1:0", ...(zrpc ? ["zrpc+tcp://127.0.0.1:0"] : [])];
    const api = (this.options.api ?? fuzzApi)(this.loop);
    // A peer may announce no heartbeat longer than the server's own (5 s): a silent one is dropped within 15 s.
    this.server = await serve(api, urls, { loop: this.loop, maxPeerHeartbeatMs: 5000 });
    for (const u of this.server.urls) {
      const p: Protocol = u.startsWith("zrpc+") ? "zrpc" : "drpc";
      this.urls[p] = u;
      const t = u.slice(5);
      this.raw[p] = p === "zrpc" && /^(tcp|ipc):/.test(t) ? `zmq+${t}` : t;
    }
    const proxy = await connect<FuzzApi>(this.urls[this.options.control]!, { loop: this.loop });
    this.#control = withOptions(proxy, { timeout: this.options.controlMs });
  }

  /** One control call: undefined when it answered right within its bound, else what went wrong. */
  async control(): Promise<Problem | undefined> {
    const n = ++this.#n;
    const t0 = this.loop.now();
    try {
      const got = await within(this.loop, this.#control.control(n) as Promise<unknown>, this.options.controlMs + 1000);
      if (got === undefined) return { kind: "control", message: `the control client's call was not answered within ${this.options.controlMs + 1000} ms (not even with its timeout error)` };
      if (got.value !== n) return { kind: "control", message: `the control client's call answered ${JSON.stringify(got.value)} instead of ${n}` };
      return undefined;
    } catch (e) {
      return { kind: "control", message: `the control client's call failed after ${Math.round(this.loop.now() - t0)} ms: ${describeError(e)}` };
    }
  }

  /** Calls in flight on the server, other than built-ins. */
  async activeCalls(): Promise<number> {
    const s = (await this.server.status()) as { activeCalls: unknown[] };
    return s.activeCalls.length;
  }

  /** Stop the control client and the server (bounded: their closes escalate). */
  async close(): Promise<void> {
    await closeProxy(this.#control).catch(() => {});
    await this.server.close({ graceMs: 0 }).catch(() => {});
  }

  /** A fresh server and control client on the same loop (after a finding, so that later cases start clean). */
  async reset(): Promise<void> {
    await this.close();
    for (const k of Object.keys(this.raw) as Protocol[]) delete this.raw[k];
    for (const k of Object.keys(this.urls) as Protocol[]) delete this.urls[k];
    await this.#start();
  }
}

/** Run `body` with the loop's time moving: inside `run()` for a virtual loop, as is for a real one. */
export function driving<T>(loop: Loop, body: () => Promise<T>): Promise<T> {
  if (loop instanceof VirtualLoop) return loop.run(body, { timeLimit: Infinity, deadlockMs: 10_000 });
  return body();
}
