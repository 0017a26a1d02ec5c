/**
 * Whole systems in simulated time: the apps of a settings file, each on a
 * simulated host of one {@link SimLoop}, talking over the {@link SimNetwork}
 * with the faults of a profile (latency, bandwidth, connection resets,
 * partitions, crashes and restarts, wall-clock skew), checked against
 * invariants, and reduced to a trace hash. The same seed gives the same run.
 * This is what `tilth sim` runs; docs/simulation.md shows how to use it in a
 * test of your own.
 *
 * @example
 * ```ts
 * const result = await simulate({ settings, apps: ["ping", "long_running"], seed: 7, durationMs: 3600_000, faults: "mild" });
 * console.log(result.summary.join("\n"));
 * if (result.violations.length) throw new Error(result.violations[0]);
 * ```
 * @module
 */
import { z } from "zod";
import { HostLoop, SimLoop } from "../adapters/sim.js";
import { describe, formatMs, isTilthError, TilthError } from "../core/errors.js";
import { sleep } from "../core/time.js";
import type { CallContext, Middleware } from "../rpc/context.js";
import { SimNetwork, type LinkPolicy } from "../transports/sim.js";
import type { Level } from "./Logger.js";
import { startApp, type AppHandle } from "./runtime.js";
import type { Settings } from "./Settings.js";

/** What a fault profile injects. Rates are mean intervals of a Poisson process; 0 turns a fault off. */
export interface FaultProfile {
  readonly name: string;
  /** One-way latency of a packet, ms: drawn between these with a long tail toward the larger. */
  readonly latencyMs: readonly [number, number];
  /** Bytes per ms a link carries (its serialization delay); 0: no limit. */
  readonly bytesPerMs: number;
  /** Mean ms between resets of a random open connection. */
  readonly resetEveryMs: number;
  /** Mean ms between partitions (hosts split in two sets), and how long one lasts, ms. */
  readonly partitionEveryMs: number;
  readonly partitionMs: readonly [number, number];
  /** Mean ms between crashes of a random running app (restarted by its restart policy, as the runner does). */
  readonly crashEveryMs: number;
  /** Largest skew of a host's wall clock, ms (either way). */
  readonly skewMs: number;
  /** Share of datagrams lost, 0 to 1 (datagram schemes; none is served yet). */
  readonly loss: number;
}

/** The built-in fault profiles: `none`, `mild` (the default), `chaos`. */
export const FAULT_PROFILES: Readonly<Record<string, FaultProfile>> = {
  none: { name: "none", latencyMs: [0.05, 0.5], bytesPerMs: 0, resetEveryMs: 0, partitionEveryMs: 0, partitionMs: [0, 0], crashEveryMs: 0, skewMs: 0, loss: 0 },
  mild: {
    name: "mild",
    latencyMs: [0.2, 20],
    bytesPerMs: 100_000,
    resetEveryMs: 120_000,
    partitionEveryMs: 300_000,
    partitionMs: [1000, 30_000],
    crashEveryMs: 600_000,
    skewMs: 2000,
    loss: 0.01,
  },
  chaos: {
    name: "chaos",
    latencyMs: [0.5, 200],
    bytesPerMs: 10_000,
    resetEveryMs: 10_000,
    partitionEveryMs: 30_000,
    partitionMs: [500, 40_000],
    crashEveryMs: 45_000,
    skewMs: 60_000,
    loss: 0.1,
  },
};

/** An invariant of the whole system, checked every second and at the end: returns its violations (none: holds). */
export type Invariant = (sim: SimulationView) => readonly string[] | void;

/** What an invariant sees. */
export interface SimulationView {
  readonly world: SimLoop;
  readonly network: SimNetwork;
  /** Running apps by name (an app between a crash and its restart is absent). */
  readonly apps: ReadonlyMap<string, AppHandle>;
}

export interface SimulationOptions {
  settings: Settings;
  /** Apps to run, by name, started in this order. */
  apps: readonly string[];
  seed: number;
  /** Virtual ms to run before the apps are stopped. */
  durationMs: number;
  /** A profile, or the name of a built-in one. Default `mild`. */
  faults?: FaultProfile | string;
  /** Where the apps' log lines go (with virtual timestamps). Default: nowhere. */
  log?: (line: string) => void;
  /** Lowest level logged. Default `info`. */
  level?: Level;
  /** A connection end may hear nothing for this long while open (its heartbeats, or its peer lost). Default 20 000 ms (3 drpc heartbeats of 5 s, a check, slack); 0: not checked. zmq+ connections (ZeroRPC heartbeats only within a call) are not checked. */
  heartbeatBoundMs?: number;
  /** A call must have its outcome within this long past its deadline. Default 1000 ms. */
  callSlackMs?: number;
  /** Invariants of the system, besides the built-in ones and those apps declare (an `invariants()` method on the app). */
  invariants?: readonly Invariant[];
  /** Write each trace event here (a `--trace` file). */
  trace?: (line: string) => void;
  /** Check each event against these lines of an earlier trace (`--replay`). */
  replay?: readonly string[];
  /** How long stopping all apps may take at the end, virtual ms. Default 60 000. */
  stopLimitMs?: number;
}

export interface SimulationResult {
  readonly seed: number;
  readonly faults: string;
  readonly durationMs: number;
  /** Hex SHA-256 of every timer and message event. */
  readonly hash: string;
  readonly events: number;
  readonly calls: { readonly ok: number; readonly failed: number };
  readonly faultsInjected: { readonly crashes: number; readonly restarts: number; readonly resets: number; readonly partitions: number };
  /** Invariant violations, each with its virtual time; empty when every invariant held. */
  readonly violations: readonly string[];
  /** With `replay`: the first event that differed. */
  readonly divergence?: { readonly event: number; readonly expected: string | undefined; readonly actual: string | undefined } | undefined;
  /** Lines for a person; the last is `trace <hash>`. */
  readonly summary: readonly string[];
}

/** A fault profile by name, or a coded error listing the names. */
export function faultProfile(p: FaultProfile | string | undefined): FaultProfile {
  if (p === undefined) return FAULT_PROFILES.mild!;
  if (typeof p !== "string") return p;
  const f = Object.hasOwn(FAULT_PROFILES, p) ? FAULT_PROFILES[p] : undefined;
  if (f === undefined) throw new TilthError("ERR_SIM_FAULTS", `unknown fault profile "${p}" (known: ${Object.keys(FAULT_PROFILES).join(", ")})`, { context: { profile: p } });
  return f;
}

const ms = z.number().finite().nonnegative();
const range = z.tuple([ms, ms]).refine(([lo, hi]) => lo <= hi, "the first number is the smaller");
const profileShape = z
  .object({
    name: z.string().min(1),
    base: z.string().min(1),
    latencyMs: range,
    bytesPerMs: ms,
    resetEveryMs: ms,
    partitionEveryMs: ms,
    partitionMs: range,
    crashEveryMs: ms,
    skewMs: ms,
    loss: z.number().min(0).max(1),
  })
  .partial()
  .strict();

/**
 * A fault profile from data (a JSON file's): the fields given over those of
 * the built-in profile `base` (default `mild`). A wrong field is a coded
 * error naming it.
 */
export function faultProfileFrom(data: unknown, source = "the fault profile"): FaultProfile {
  const r = profileShape.safeParse(data);
  if (!r.success) {
    const why = r.error.issues.map((i) => `${i.path.join(".") || "(top)"}: ${i.message}`).join("; ");
    throw new TilthError("ERR_SIM_FAULTS", `${source} is not a fault profile: ${why}`, { context: { source } });
  }
  const { base, ...fields } = r.data;
  return { ...faultProfile(base ?? "mild"), name: source, ...fields };
}

/** Keep at most this many violations (the first ones tell the story). */
const MAX_VIOLATIONS = 50;

interface Pending {
  readonly app: string;
  readonly host: HostLoop;
  readonly method: string;
}

/** Run a simulation: see the module's description. */
export async function simulate(options: SimulationOptions): Promise<SimulationResult> {
  const profile = faultProfile(options.faults);
  const world = new SimLoop({ seed: options.seed });
  const net = new SimNetwork(world);
  const random = (): number => world.random();
  if (options.trace) world.trace.writeTo(options.trace);
  if (options.replay) world.trace.replay(options.replay);

  const violations: string[] = [];
  const seen = new Set<string>();
  // Each violation once, at the time it was first seen.
  const violate = (what: string): void => {
    if (seen.has(what) || violations.length >= MAX_VIOLATIONS) return;
    seen.add(what);
    violations.push(`${formatMs(world.now())}: ${what}`);
  };
  const counts = { ok: 0, failed: 0, crashes: 0, restarts: 0, resets: 0, partitions: 0 };

  // The network: latency with a long tail, bandwidth, and at most one partition at a time.
  const [latMin, latMax] = profile.latencyMs;
  let cut: { side: Set<string>; until: number } | undefined;
  // Each link (a pair of hosts) is slower or faster than others: its latency scale, drawn when first used.
  const scales = new Map<string, number>();
  const scaleOf = (from: string, to: string): number => {
    const key = from < to ? `${from} ${to}` : `${to} ${from}`;
    let k = scales.get(key);
    if (k === undefined) scales.set(key, (k = 0.5 + 1.5 * random()));
    return k;
  };
  const policy: LinkPolicy = {
    delay: (from, to, bytes) => {
      const r = random();
      return (latMin + (latMax - latMin) * r * r * r) * scaleOf(from, to) + (profile.bytesPerMs > 0 ? bytes / profile.bytesPerMs : 0);
    },
    cutUntil: (from, to) => {
      if (cut === undefined || world.now() >= cut.until) return undefined;
      return cut.side.has(from) !== cut.side.has(to) ? cut.until : undefined;
    },
  };
  net.policy = policy;

  // Every call the apps make: its outcome must come by its deadline.
  const pending = new Map<CallContext, Pending>();
  const watchCalls = (app: string, host: HostLoop): Middleware => ({
    before: (ctx) => {
      if (ctx.deadline !== undefined) pending.set(ctx, { app, host, method: ctx.method });
    },
    after: (ctx) => {
      pending.delete(ctx);
      counts.ok++;
    },
    error: (ctx) => {
      pending.delete(ctx);
      counts.failed++;
    },
  });

  const running = new Map<string, AppHandle>();
  const hosts = new Map<string, HostLoop>();
  let ending = false;

  const startOn = async (name: string): Promise<void> => {
    const host = net.attach(new HostLoop(world, name, { skewMs: Math.round((random() * 2 - 1) * profile.skewMs) }));
    hosts.set(name, host);
    world.trace.record(`${world.stamp()} ${name} start`);
    const handle = await startApp(name, options.settings, {
      loop: host,
      log: {
        ...(options.level ? { level: options.level } : {}),
        color: false,
        write: (line) => {
          // Work that ignored its cancellation is a task left behind (ERR_ABANDONED's line).
          if (line.includes("was abandoned")) violate(`app ${name}: ${line.slice(line.indexOf(" ", line.indexOf(name)) + 1).trim()}`);
          options.log?.(line);
        },
      },
      client: { middleware: [watchCalls(name, host)] },
    });
    if (!host.alive) return;
    running.set(name, handle);
    startedAt.set(name, world.now());
  };

  /** Restart backoff per app, as the runner keeps it: doubles after a short run, back to 1 s after 30 s up. */
  const backoffs = new Map<string, number>();
  const startedAt = new Map<string, number>();

  /** Crash app `name` and restart it by its policy, with the runner's backoff. */
  const crash = (name: string): void => {
    const host = hosts.get(name);
    if (host === undefined || !running.has(name)) return;
    counts.crashes++;
    const ran = world.now() - (startedAt.get(name) ?? 0);
    let backoff = ran > 30_000 ? 1000 : Math.min(60_000, (backoffs.get(name) ?? 500) * 2);
    world.trace.record(`${world.stamp()} ${name} crash`);
    running.delete(name);
    host.kill();
    net.crash(host);
    for (const [ctx, p] of pending) if (p.host === host) pending.delete(ctx);
    const policy = options.settings.app(name).restart;
    if (policy === "never") return;
    void (async () => {
      for (;;) {
        backoffs.set(name, backoff);
        await sleep(world, backoff);
        if (ending) return;
        try {
          await startOn(name);
          counts.restarts++;
          return;
        } catch (e) {
          world.trace.record(`${world.stamp()} ${name} cannot start`);
          violate(`app ${name} could not restart: ${describe(e)}`);
          backoff = Math.min(60_000, backoff * 2);
        }
      }
    })();
  };

  // Faults: Poisson processes on the world's clock.
  const faultTimers: { cancel(): void }[] = [];
  const every = (meanMs: number, fire: () => void): void => {
    if (!(meanMs > 0)) return;
    const arm = (): void => {
      const t = world.timer(-meanMs * Math.log(1 - random()), () => {
        if (ending) return;
        fire();
        arm();
      });
      faultTimers[slot] = t;
    };
    const slot = faultTimers.length;
    faultTimers.push({ cancel() {} });
    arm();
  };
  const pick = <T>(xs: readonly T[]): T | undefined => (xs.length === 0 ? undefined : xs[Math.floor(random() * xs.length)]);

  // Invariants, every second and at the end.
  const bound = options.heartbeatBoundMs ?? 20_000;
  const slack = options.callSlackMs ?? 1000;
  const reported = new Set<unknown>();
  const view: SimulationView = { world, network: net, apps: running };
  const check = (): void => {
    const now = world.now();
    for (const [ctx, p] of pending) {
      // A stream's limit ends with its first item: its deadline is gone then.
      const deadline = ctx.deadline;
      if (deadline !== undefined && p.host.alive && now > deadline + slack && !reported.has(ctx)) {
        reported.add(ctx);
        violate(`app ${p.app}: call ${p.method}() has no outcome ${formatMs(now - deadline)} past its deadline`);
      }
    }
    if (bound > 0) {
      for (const end of net.openEnds()) {
        // An end still connecting (its handshake's answer held by a partition) is not its owner's yet.
        if (!end.established || end.closing || end.scheme.startsWith("zmq") || !end.host.alive || reported.has(end)) continue;
        if (now - end.lastArrival > bound) {
          reported.add(end);
          violate(`app ${end.host.name}: connection c${end.id} (${end.localUrl} -> ${end.remoteUrl}) heard nothing for ${formatMs(now - end.lastArrival)} and is still open (heartbeat bound ${formatMs(bound)})`);
        }
      }
    }
    for (const [name, h] of running) {
      const own = (h.app as { invariants?: () => readonly string[] | void }).invariants;
      try {
        for (const v of own?.call(h.app) ?? []) violate(`app ${name}: ${v}`);
      } catch (e) {
        violate(`app ${name}: invariants() threw: ${describe(e)}`);
      }
    }
    for (const inv of options.invariants ?? []) {
      try {
        for (const v of inv(view) ?? []) violate(v);
      } catch (e) {
        violate(`an invariant threw: ${describe(e)}`);
      }
    }
  };

  const stopLimit = options.stopLimitMs ?? 60_000;
  await world.run(
    async () => {
      for (const name of options.apps) await startOn(name);
      const checker = (): void => {
        if (ending) return;
        check();
        world.timer(1000, checker);
      };
      world.timer(1000, checker);
      every(profile.resetEveryMs, () => {
        const end = pick(net.openEnds().filter((e) => e.side === ">"));
        if (end === undefined) return;
        counts.resets++;
        net.reset(end);
      });
      every(profile.partitionEveryMs, () => {
        const names = [...hosts.keys()];
        if (names.length < 2 || (cut !== undefined && world.now() < cut.until)) return;
        const side = new Set(names.filter(() => random() < 0.5));
        if (side.size === 0) side.add(pick(names)!);
        if (side.size === names.length) side.delete(pick(names)!);
        const [lo, hi] = profile.partitionMs;
        cut = { side, until: world.now() + Math.round(lo + (hi - lo) * random()) };
        counts.partitions++;
        world.trace.record(`${world.stamp()} partition ${[...side].sort().join(",")} until ${cut.until}`);
      });
      every(profile.crashEveryMs, () => {
        const name = pick([...running.keys()]);
        if (name !== undefined) crash(name);
      });

      await sleep(world, options.durationMs);
      // The end: faults stop, links heal, every app stops gracefully.
      ending = true;
      for (const t of faultTimers) t.cancel();
      cut = undefined;
      check();
      world.trace.record(`${world.stamp()} stop`);
      const stops = [...running].reverse().map(async ([name, h]) => {
        const done = h.stop({ reason: "simulation over" }).then(
          () => true,
          (e: unknown) => {
            if (!isTilthError(e, "ERR_ABANDONED")) violate(`app ${name}: stop() failed: ${describe(e)}`);
            return true;
          },
        );
        const late = sleep(world, stopLimit).then(() => false);
        if (!(await Promise.race([done, late]))) violate(`app ${name}: stop() did not end within ${formatMs(stopLimit)}`);
      });
      await Promise.all(stops);
      running.clear();
      // Let closes finish their round trips, then nothing may be left.
      await sleep(world, 5000);
      for (const [name, host] of hosts) {
        if (host.alive && host.pendingTimers > 0) violate(`app ${name}: ${host.pendingTimers} timer(s) left after it stopped`);
      }
      for (const end of net.openEnds()) if (end.host.alive) violate(`app ${end.host.name}: connection c${end.id} (${end.localUrl} -> ${end.remoteUrl}) left open after it stopped`);
      for (const l of net.listeners()) violate(`app ${l.host}: listener ${l.url} left open after it stopped`);
      for (const [ctx, p] of pending) if (p.host.alive && !reported.has(ctx)) violate(`app ${p.app}: call ${p.method}() left without an outcome`);
    },
    { timeLimit: options.durationMs + stopLimit + 600_000 },
  );
  const realMs = world.realElapsedMs();
  world.trace.finish();
  const hash = world.trace.hex();
  const d = world.trace.divergence;
  const summary = [
    `simulated ${formatMs(options.durationMs)} of ${options.apps.join(", ")} (seed ${options.seed}, faults ${profile.name}) in ${formatMs(realMs)} of real time`,
    `events ${world.trace.events}; calls ${counts.ok} ok, ${counts.failed} failed`,
    `faults: ${counts.crashes} crashes (${counts.restarts} restarts), ${counts.resets} resets, ${counts.partitions} partitions`,
    ...(violations.length === 0 ? ["invariants: all held"] : [`invariants: ${violations.length} violation(s)`, ...violations.map((v) => `  ${v}`)]),
    ...(options.replay ? [d === undefined ? `replay: the same ${world.trace.events} events` : `replay: diverges at event ${d.event}: expected ${d.expected ?? "(end of trace)"}, got ${d.actual ?? "(end of run)"}`] : []),
    `trace ${hash}`,
  ];
  return {
    seed: options.seed,
    faults: profile.name,
    durationMs: options.durationMs,
    hash,
    events: world.trace.events,
    calls: { ok: counts.ok, failed: counts.failed },
    faultsInjected: { crashes: counts.crashes, restarts: counts.restarts, resets: counts.resets, partitions: counts.partitions },
    violations,
    divergence: d,
    summary,
  };
}
