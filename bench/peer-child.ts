/**
 * One side of a peers-benchmark run (`bench/peers.ts`), as its own process.
 *
 *   node peer-child.js server SYSTEM
 *       starts SYSTEM's server (127.0.0.1 only) and prints its URL on one
 *       line; then reads commands on stdin: `start` opens a window of
 *       event-loop measures, `stop` closes it and prints one JSON line
 *       {lagP50Ms, lagP99Ms, lagMaxMs, elu}. Exits at the end of stdin or on
 *       SIGTERM.
 *   node peer-child.js client SYSTEM URL SCENARIO_JSON
 *       runs the load, prints `measuring` when the measured window opens and
 *       one JSON line when it closes: {calls, ms, p50, p99, p999} (latency in
 *       µs, sequential runs only), `loop` (the same event-loop measures, for
 *       in-process systems whose server shares this process) and, for
 *       streams, `complete` (false when the time cap cut the stream short).
 *
 * Every reply is checked (an echo must equal what was sent, a stream's items
 * must be 0, 1, 2, …): a wrong one fails the run with exit code 3. Every load
 * loop is bounded in time and the process exits by itself.
 */
import { createInterface } from "node:readline";
import { monitorEventLoopDelay, performance, type EventLoopUtilization, type IntervalHistogram } from "node:perf_hooks";
import { type EchoClient, type Payload, type System, SYSTEMS } from "./peer-systems.js";

export interface Scenario {
  /** echo: `echo(x)` calls; stream: one `count(n)`; burn: `burn(size)` calls (CPU time in the server, the fleet scenario). */
  mode: "echo" | "stream" | "burn";
  /** Argument size, bytes (or characters for string systems); for burn, the µs of CPU each call takes in the server. */
  size: number;
  /** Calls in flight per connection. */
  inflight: number;
  /** Client connections. */
  conns: number;
  warmupMs: number;
  runMs: number;
  /** Stream length and the time cap of the measured stream. */
  items: number;
  capMs: number;
}

export interface LoopMeasure {
  lagP50Ms: number;
  lagP99Ms: number;
  lagMaxMs: number;
  /** Event-loop utilization over the window, 0..1. */
  elu: number;
}

export interface ChildResult {
  calls: number;
  ms: number;
  p50: number;
  p99: number;
  p999: number;
  complete?: boolean;
  loop?: LoopMeasure;
}

/** Event-loop lag (monitorEventLoopDelay sampling every 1 ms: how late each sample fires) and utilization over a window. */
class LoopMonitor {
  readonly #h: IntervalHistogram = monitorEventLoopDelay({ resolution: 1 });
  #elu: EventLoopUtilization | undefined;
  constructor() {
    this.#h.enable();
  }
  start(): void {
    this.#h.reset();
    this.#elu = performance.eventLoopUtilization();
  }
  stop(): LoopMeasure {
    const h = this.#h;
    // The histogram holds the intervals between 1 ms samples: lag is what exceeds 1 ms.
    const ms = (ns: number): number => Math.max(0, Math.round((ns - 1e6) / 1e3) / 1e3);
    return {
      lagP50Ms: ms(h.percentile(50)),
      lagP99Ms: ms(h.percentile(99)),
      lagMaxMs: ms(h.max),
      elu: Math.round(performance.eventLoopUtilization(this.#elu).utilization * 1000) / 1000,
    };
  }
}

/** A reply or item that failed its check: the process exits with code 3 (the suite never retries those). */
class CheckError extends Error {}

function die(msg: string, code = 1): never {
  process.stderr.write(`peer-child: ${msg}\n`);
  process.exit(code);
}

function system(name: string | undefined): System {
  const s = name === undefined ? undefined : SYSTEMS[name];
  if (!s) die(`unknown system ${name}`);
  return s;
}

// ------------------------------------------------------------ server

async function server(name: string): Promise<void> {
  const sys = system(name);
  const monitor = new LoopMonitor();
  const url = await sys.serve();
  process.stdout.write(`${url}\n`);
  const rl = createInterface({ input: process.stdin });
  rl.on("line", (line) => {
    if (line === "start") monitor.start();
    else if (line === "stop") process.stdout.write(`${JSON.stringify(monitor.stop())}\n`);
  });
  rl.on("close", () => process.exit(0));
}

// ------------------------------------------------------------ client

/** Per-slot arguments: a sequence number and slot id up front, so each echo is distinct. */
function payloads(kind: "bytes" | "string", size: number, slot: number): (seq: number) => Payload {
  if (kind === "string") {
    const pad = "x".repeat(size);
    return (seq) => {
      const head = `${slot.toString(36)}.${seq.toString(36)}.`;
      return head + pad.slice(head.length);
    };
  }
  const buf = Buffer.alloc(size, 0x5a);
  return (seq) => {
    buf.writeUInt32BE(seq >>> 0, 0);
    if (size >= 8) buf.writeUInt32BE(slot >>> 0, 4);
    return buf;
  };
}

function same(reply: unknown, sent: Payload): boolean {
  if (typeof sent === "string") return reply === sent;
  return reply instanceof Uint8Array && reply.length === sent.length && Buffer.compare(reply, sent) === 0;
}

function pct(xs: Float64Array, p: number): number {
  if (xs.length === 0) return NaN;
  const s = Float64Array.from(xs).sort();
  return Math.round(s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]! * 1e3) / 1e3;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function withTimeout<T>(p: Promise<T> | T, ms: number): Promise<T | undefined> {
  let t: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([Promise.resolve(p), new Promise<undefined>((r) => (t = setTimeout(() => r(undefined), ms)))]);
  } finally {
    clearTimeout(t);
  }
}

async function echoLoad(sys: System, clients: EchoClient[], sc: Scenario, monitor: LoopMonitor | undefined): Promise<ChildResult> {
  const timing = clients.length === 1 && sc.inflight === 1;
  const burn = sc.mode === "burn";
  if (burn && !sys.fleet) die("this system has no burn(us)");
  let lat = new Float64Array(timing ? 1 << 16 : 0);
  let nlat = 0;
  let phase = 0; // 0 warm-up, 1 measured, 2 stopping
  let calls = 0;
  let live = 0;
  let failure: Error | undefined;
  let settled: () => void = () => {};
  const allStopped = new Promise<void>((r) => (settled = r));
  // A budget per turn (habit 5): in-process systems can answer within
  // microtasks, and an endless microtask chain would starve the timers that
  // end the run. Past the budget a slot waits for the next turn.
  let budget = 0;
  let parked: (() => void)[] = [];
  let resetPending = false;
  const newTurn = (): void => {
    resetPending = false;
    budget = 0;
    const p = parked;
    parked = [];
    for (const f of p) f();
  };
  const slot = (c: EchoClient, id: number): void => {
    const make = payloads(sys.payload, sc.size, id);
    let seq = 0;
    let sent: Payload;
    let t = 0;
    const next = (): void => {
      if (phase === 2 || failure) {
        if (--live === 0) settled();
        return;
      }
      sent = make(seq++);
      if (timing) t = performance.now();
      if (burn) c.burn!(sc.size, onReply);
      else c.echo(sent, onReply);
    };
    const onReply = (e: Error | null, r?: unknown): void => {
      if (e) failure ??= e;
      else if (burn ? r !== sc.size : !same(r, sent)) failure ??= new CheckError(`wrong echo (slot ${id}, call ${seq - 1})`);
      else if (phase === 1) {
        calls++;
        if (timing) {
          if (nlat === lat.length) {
            const bigger = new Float64Array(lat.length * 2);
            bigger.set(lat);
            lat = bigger;
          }
          lat[nlat++] = (performance.now() - t) * 1e3;
        }
      }
      if (!resetPending) {
        resetPending = true;
        setImmediate(newTurn);
      }
      if (++budget > 2048) parked.push(next);
      else next();
    };
    live++;
    next();
  };
  clients.forEach((c, i) => {
    for (let k = 0; k < sc.inflight; k++) slot(c, i * sc.inflight + k);
  });
  await sleep(sc.warmupMs);
  if (failure) throw failure;
  process.stdout.write("measuring\n");
  monitor?.start();
  phase = 1;
  const t0 = performance.now();
  await sleep(sc.runMs);
  // A system too slow to finish one call in the window gets up to 5 s more (quick runs of slow peers).
  for (let extra = 0; calls === 0 && extra < 5_000 && !failure; extra += 50) await sleep(50);
  const ms = performance.now() - t0;
  const n = calls;
  phase = 2;
  const loop = monitor?.stop();
  if (failure) throw failure;
  await withTimeout(allStopped, 5_000);
  if (failure) throw failure;
  const l = lat.subarray(0, nlat);
  return { calls: n, ms, p50: pct(l, 50), p99: pct(l, 99), p999: pct(l, 99.9), ...(loop ? { loop } : {}) };
}

/** Consume `count(n)` and check every item; stops at `capMs`. */
function consume(c: EchoClient, n: number, capMs: number): Promise<{ count: number; complete: boolean }> {
  return new Promise((resolve, reject) => {
    let expect = 0;
    let done = false;
    const finish = (e: Error | null | undefined, complete: boolean): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      if (e) reject(e);
      else if (complete && expect !== n) reject(new CheckError(`stream ended after ${expect} of ${n} items`));
      else resolve({ count: expect, complete });
    };
    const cancel = c.stream!(
      n,
      (x) => {
        if (done) return;
        if (x !== expect) return finish(new CheckError(`wrong stream item ${String(x)}, expected ${expect}`), false);
        expect++;
      },
      (e) => finish(e, true),
    );
    const timer = setTimeout(() => {
      finish(null, false);
      cancel();
    }, capMs);
  });
}

async function streamLoad(sys: System, url: string, sc: Scenario, monitor: LoopMonitor | undefined): Promise<ChildResult> {
  let c = await sys.connect(url);
  const warm = await consume(c, Math.min(sc.items, 10_000), Math.max(sc.warmupMs, 2_000));
  if (!warm.complete) {
    // A stream cut short may leave its connection unusable: measure on a new one.
    await withTimeout(c.close(), 2_000);
    c = await sys.connect(url);
  }
  process.stdout.write("measuring\n");
  monitor?.start();
  const t0 = performance.now();
  const r = await consume(c, sc.items, sc.capMs);
  const ms = performance.now() - t0;
  const loop = monitor?.stop();
  void withTimeout(c.close(), 2_000);
  return { calls: r.count, ms, p50: NaN, p99: NaN, p999: NaN, complete: r.complete, ...(loop ? { loop } : {}) };
}

async function client(name: string, url: string, scenarioJson: string): Promise<void> {
  const sys = system(name);
  const sc = JSON.parse(scenarioJson) as Scenario;
  // A hard limit on the whole process, whatever a system does.
  setTimeout(() => die(`${name}: no result within the time limit`), sc.warmupMs + Math.max(sc.runMs, sc.capMs) + 60_000);
  const monitor = sys.inProcess ? new LoopMonitor() : undefined;
  let r: ChildResult;
  if (sc.mode === "stream") {
    if (!sys.streams) die(`${name} has no streams`);
    r = await streamLoad(sys, url, sc, monitor);
  } else {
    const clients = await Promise.all(Array.from({ length: sc.conns }, () => sys.connect(url)));
    r = await echoLoad(sys, clients, sc, monitor);
    await withTimeout(Promise.all(clients.map((c) => c.close())), 3_000);
  }
  process.stdout.write(`${JSON.stringify(r)}\n`);
  process.exit(0);
}

const [role, name, url, scenario] = process.argv.slice(2);
process.on("SIGTERM", () => process.exit(0)); // a clean exit: lets --cpu-prof write its profile
try {
  if (role === "server") await server(name!);
  else if (role === "client") await client(name!, url!, scenario!);
  else die("usage: peer-child.js server SYSTEM | client SYSTEM URL SCENARIO_JSON");
} catch (e) {
  die(`${name}: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`, e instanceof CheckError ? 3 : 1);
}
