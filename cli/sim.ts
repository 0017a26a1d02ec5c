/**
 * `tilth sim`: run apps of a settings file in one process, in simulated time,
 * over the simulated network with faults, from a seed.
 *
 *     tilth sim APP... --settings FILE --seed N --duration 1h [--faults PROFILE] [--trace FILE | --replay FILE]
 *
 * Prints a summary and, as its last line, `trace <hex hash>` over every
 * message and timer event: the same seed gives the same hash. Exit 0 when
 * every invariant held (and a replay matched), 1 otherwise.
 * @module
 */
import { randomInt } from "node:crypto";
import { closeSync, openSync, readFileSync, writeSync } from "node:fs";
import { loadSettings } from "../app/Settings.js";
import { FAULT_PROFILES, faultProfile, faultProfileFrom, simulate, type FaultProfile } from "../app/simulation.js";
import { parseOverride } from "../app/overrides.js";
import { EXIT, UsageError, helpText, parseCommand } from "./args.js";
import { SIM } from "./commands.js";
import { findSettings } from "./run.js";

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3600_000, d: 86_400_000 };

/** `1h`, `10m`, `30s`, `500ms`, `1500` (ms): milliseconds; undefined when it is not a duration. */
export function parseDuration(text: string): number | undefined {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$/.exec(text.trim());
  if (m === null) return undefined;
  const ms = Number(m[1]) * UNITS[m[2] ?? "ms"]!;
  return ms > 0 && Number.isFinite(ms) ? ms : undefined;
}

/** The header of a trace file: what the run was, so `--replay` can run it again. */
interface TraceHeader {
  seed?: number;
  duration?: number;
  faults?: string;
  apps?: string[];
}

const HEADER = "# tilth sim trace ";

function readTrace(file: string): { header: TraceHeader; lines: string[] } {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (e) {
    throw new UsageError(`cannot read the trace ${file}: ${(e as Error).message}`, "sim");
  }
  const all = text.split("\n");
  let header: TraceHeader = {};
  if (all[0]?.startsWith(HEADER)) {
    try {
      header = JSON.parse(all[0].slice(HEADER.length)) as TraceHeader;
    } catch {
      throw new UsageError(`${file}: its first line is not a tilth sim trace header`, "sim");
    }
  }
  return { header, lines: all.filter((l) => l !== "" && !l.startsWith("#")) };
}

/** A fault profile from a JSON file (a name that is no built-in profile). */
function profileFile(file: string): FaultProfile {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch {
    return faultProfile(file); // neither a profile nor a file: the error lists the profiles
  }
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (e) {
    throw new UsageError(`${file}: not JSON: ${(e as Error).message}`, "sim");
  }
  return faultProfileFrom(data, file);
}

export async function simCommand(argv: string[]): Promise<number> {
  const p = parseCommand(SIM, argv);
  if (p.help) {
    process.stdout.write(helpText(SIM));
    return EXIT.ok;
  }
  const v = p.values;
  const replay = typeof v.replay === "string" ? readTrace(v.replay) : undefined;
  if (replay && typeof v.trace === "string") throw new UsageError("--trace and --replay do not go together", "sim");
  const h = replay?.header ?? {};

  let seed = h.seed;
  if (typeof v.seed === "string") {
    if (!/^\d+$/.test(v.seed) || Number(v.seed) > 0xffffffff) throw new UsageError(`--seed needs an integer from 0 to ${0xffffffff}, got ${v.seed}`, "sim");
    seed = Number(v.seed);
  }
  // A run without a seed gets one that no loop chose: it is printed, so the run can be replayed.
  seed ??= randomInt(0, 0xffffffff);
  let durationMs = h.duration ?? 3600_000;
  if (typeof v.duration === "string") {
    const d = parseDuration(v.duration);
    if (d === undefined) throw new UsageError(`--duration needs a time such as 30s, 10m or 1h, got ${v.duration}`, "sim");
    durationMs = d;
  }
  const faultsName = typeof v.faults === "string" ? v.faults : (h.faults ?? "mild");
  let faults: FaultProfile;
  try {
    faults = Object.hasOwn(FAULT_PROFILES, faultsName) ? faultProfile(faultsName) : profileFile(faultsName);
  } catch (e) {
    throw new UsageError((e as Error).message, "sim");
  }
  const settings = await loadSettings(findSettings(typeof v.settings === "string" ? v.settings : undefined), process.env, ((v.set as string[] | undefined) ?? []).map(parseOverride));
  const apps = p.positionals.length > 0 ? p.positionals : (h.apps ?? settings.names);
  for (const a of apps) settings.app(a); // an unknown name fails here, with the names it knows

  let fd: number | undefined;
  let buffered: string[] = [];
  const flush = (): void => {
    if (fd !== undefined && buffered.length > 0) writeSync(fd, buffered.join("\n") + "\n");
    buffered = [];
  };
  if (typeof v.trace === "string") {
    fd = openSync(v.trace, "w");
    writeSync(fd, `${HEADER}${JSON.stringify({ seed, duration: durationMs, faults: faultsName, apps })}\n`);
  }
  const level = typeof v.level === "string" ? v.level : undefined;
  try {
    const result = await simulate({
      settings,
      apps,
      seed,
      durationMs,
      faults,
      ...(v.log === true ? { log: (line: string) => process.stdout.write(line.endsWith("\n") ? line : `${line}\n`) } : {}),
      ...(level ? { level: level as "debug" | "info" | "warn" | "error" } : {}),
      ...(fd !== undefined
        ? {
            trace: (line: string) => {
              buffered.push(line);
              if (buffered.length >= 4096) flush();
            },
          }
        : {}),
      ...(replay ? { replay: replay.lines } : {}),
    });
    flush();
    process.stdout.write(result.summary.join("\n") + "\n");
    return result.violations.length === 0 && result.divergence === undefined ? EXIT.ok : EXIT.failed;
  } finally {
    if (fd !== undefined) {
      flush();
      closeSync(fd);
    }
  }
}
