/**
 * Instances of the fleet test service (fleet-instance.ts), each its own
 * process: start, watch its log (which calls began there, and when), stop it
 * gracefully or kill it. Shared by the NATS fleet tests and the
 * point-to-point balancing tests.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { fileURLToPath } from "node:url";

const script = fileURLToPath(new URL("./fleet-instance.js", import.meta.url));

export interface Instance {
  readonly child: ChildProcess;
  readonly pid: number;
  /** host-clock ms when it printed `ready`. */
  readyAt: number;
  /** Tags of the calls that began on it, in order, with the host-clock ms they began. */
  readonly started: { tag: string; at: number }[];
  /** The URL it bound (the server's first URL). */
  url: string;
  stoppingAt: number | undefined;
  stoppedAt: number | undefined;
  /** SIGTERM (graceful) and wait for the exit. */
  stop(): Promise<void>;
  /** SIGKILL and wait for the exit. */
  kill(): Promise<void>;
}

const live = new Set<Instance>();

/** Start an instance serving on `url`, once it says `ready`. */
export async function startInstance(url: string, heartbeatMs = 500): Promise<Instance> {
  const child = spawn(process.execPath, [script, url, String(heartbeatMs)], { stdio: ["ignore", "pipe", "inherit"] });
  const exited = once(child, "exit");
  const started: { tag: string; at: number }[] = [];
  let buf = "";
  let ready!: (at: number) => void;
  const readyP = new Promise<number>((r) => (ready = r));
  let bound = "";
  const inst = {
    child,
    pid: child.pid!,
    readyAt: 0,
    url: "",
    started,
    stoppingAt: undefined as number | undefined,
    stoppedAt: undefined as number | undefined,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill("SIGTERM");
        await exited;
      }
      live.delete(inst);
    },
    async kill() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill("SIGKILL");
        await exited;
      }
      live.delete(inst);
    },
  };
  child.stdout!.setEncoding("utf8");
  child.stdout!.on("data", (d: string) => {
    buf += d;
    let i: number;
    while ((i = buf.indexOf("\n")) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      const now = Date.now();
      if (line.startsWith("start ")) started.push({ tag: line.slice(6), at: now });
      else if (line.startsWith("ready")) {
        bound = line.split(" ")[2] ?? "";
        ready(now);
      }
      else if (line === "stopping") inst.stoppingAt = now;
      else if (line === "stopped") inst.stoppedAt = now;
    }
  });
  live.add(inst);
  const guard = setTimeout(() => child.kill("SIGKILL"), 15_000);
  const first = await Promise.race([readyP, exited.then(() => -1)]);
  clearTimeout(guard);
  if (first < 0) throw new Error(`instance on ${url} exited before it was ready`);
  inst.readyAt = first;
  inst.url = bound;
  return inst;
}

/** Kill every instance still running (after a failed test). */
export async function killAllInstances(): Promise<void> {
  await Promise.all([...live].map((i) => i.kill()));
}

/** How many calls each instance took, by pid. */
export function shares(results: number[]): Map<number, number> {
  const m = new Map<number, number>();
  for (const pid of results) m.set(pid, (m.get(pid) ?? 0) + 1);
  return m;
}
