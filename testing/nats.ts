/**
 * Real nats-server processes for tests and benchmarks that use NATS: each on
 * 127.0.0.1 and a random port (the server picks it; it is read from its log),
 * never a shared one; a cluster of three with routes on loopback. Every
 * process started here is stopped by `stop()` (or by `stopAllNats()` in an
 * `after` hook).
 *
 * nats-server is not an npm package: it comes from the system (Debian's
 * `nats-server`; tilth's own scripts/setup-nats.mjs installs it when missing
 * and root). Without it {@link natsSkip} says what to install.
 *
 * @example
 * ```ts
 * const nats = await startNats();
 * const server = await serve(api, `drpc+nats://${nats.hostPort}/pricing`, { loop });
 * // ...
 * await server.close();
 * await nats.stop();
 * ```
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";

/** Why the NATS tests cannot run here, or false. */
export const natsSkip: string | false = (() => {
  const r = spawnSync("nats-server", ["--version"], { encoding: "utf8" });
  if (r.error !== undefined || r.status !== 0) {
    return "nats-server is not installed: run `node scripts/setup-nats.mjs` as root (apt-get install nats-server), or get it from https://github.com/nats-io/nats-server/releases and put it on the PATH";
  }
  return false;
})();

export interface NatsServer {
  /** `127.0.0.1:PORT` of its clients. */
  readonly hostPort: string;
  readonly port: number;
  /** `127.0.0.1:PORT` of its cluster routes (cluster members only). */
  readonly routePort: number | undefined;
  readonly process: ChildProcess;
  /** Stop it (SIGTERM; SIGKILL after 3 s) and wait until it exited. Idempotent. */
  stop(signal?: NodeJS.Signals): Promise<void>;
}

const live = new Set<NatsServer>();

/** Start one nats-server. `routes`: route ports of cluster members to join; `cluster`: listen for routes too. */
export async function startNats(options: { cluster?: boolean; routes?: number[]; maxPayload?: number } = {}): Promise<NatsServer> {
  const args = ["-a", "127.0.0.1", "-p", "-1", "-m", "0"];
  if (options.cluster) {
    args.push("--cluster_name", "tilth-test", "--cluster", "nats://127.0.0.1:-1");
    if (options.routes?.length) args.push("--routes", options.routes.map((p) => `nats://127.0.0.1:${p}`).join(","));
  }
  const p = spawn("nats-server", args, { stdio: ["ignore", "ignore", "pipe"] });
  let log = "";
  const exited = new Promise<void>((resolve) => p.once("exit", () => resolve()));
  const ports = await new Promise<{ port: number; routePort: number | undefined }>((resolve, reject) => {
    const guard = setTimeout(() => {
      p.kill("SIGKILL");
      reject(new Error(`nats-server did not start within 10 s:\n${log}`));
    }, 10_000);
    p.stderr!.setEncoding("utf8");
    p.stderr!.on("data", (d: string) => {
      if (log.length < 100_000) log += d;
      const c = /Listening for client connections on [\d.]+:(\d+)/.exec(log);
      const r = /Listening for route connections on [\d.]+:(\d+)/.exec(log);
      if (c && (!options.cluster || r)) {
        clearTimeout(guard);
        resolve({ port: Number(c[1]), routePort: r ? Number(r[1]) : undefined });
      }
    });
    p.once("exit", (code) => {
      clearTimeout(guard);
      reject(new Error(`nats-server exited (${code}) before it listened:\n${log}`));
    });
  });
  let stopping: Promise<void> | undefined;
  const server: NatsServer = {
    hostPort: `127.0.0.1:${ports.port}`,
    port: ports.port,
    routePort: ports.routePort,
    process: p,
    stop(signal: NodeJS.Signals = "SIGTERM") {
      stopping ??= (async () => {
        if (p.exitCode === null && p.signalCode === null) {
          p.kill(signal);
          const t = setTimeout(() => p.kill("SIGKILL"), 3000);
          await exited;
          clearTimeout(t);
        }
        p.stderr!.destroy();
        live.delete(server);
      })();
      return stopping;
    },
  };
  live.add(server);
  // Route count, for clusters: how many "Route connection created" lines so far.
  (server as { routes?: () => number }).routes = () => (log.match(/Route connection created/g) ?? []).length;
  return server;
}

/** Three nats-servers with routes on loopback, once each sees the other two. */
export async function startNatsCluster(): Promise<NatsServer[]> {
  const a = await startNats({ cluster: true });
  const b = await startNats({ cluster: true, routes: [a.routePort!] });
  const c = await startNats({ cluster: true, routes: [a.routePort!] });
  const all = [a, b, c];
  const t0 = Date.now();
  while (all.some((s) => (s as { routes?: () => number }).routes!() < 2)) {
    if (Date.now() - t0 > 10_000) throw new Error("the NATS cluster did not form within 10 s");
    await new Promise((r) => setTimeout(r, 20));
  }
  return all;
}

/** Stop every nats-server this process started and has not stopped. */
export async function stopAllNats(): Promise<void> {
  await Promise.all([...live].map((s) => s.stop()));
}
