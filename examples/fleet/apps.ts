/**
 * The ping pair as a fleet: PingApp runs as 3 instances (3 processes) behind
 * one NATS service name; LongRunningApp calls it and logs which instance
 * answered. Needs a nats-server on 127.0.0.1:4222:
 *
 *     nats-server -a 127.0.0.1 -p 4222 &
 *     tilth run ping long_running --settings dist/examples/fleet/settings.js
 */
// An app written outside this repository imports these from "tilth/app".
import { App, AppContext, client, inject, injectable, type Remote } from "../../app/index.js";

/** What PingApp serves. */
export interface PingAPI {
  /** "pong", and the pid of the instance that answered. */
  ping(): Promise<{ pong: string; pid: number }>;
}

@injectable()
export class PingApp extends App {
  override api: PingAPI = {
    ping: async () => ({ pong: "pong", pid: process.pid }),
  };
}

@injectable()
export class LongRunningApp extends App {
  constructor(
    ctx: AppContext,
    @inject(client("ping")) private readonly pingApp: Remote<PingAPI>,
  ) {
    super(ctx);
  }

  override async serve(signal: AbortSignal): Promise<void> {
    const every = Number(this.ctx.options.interval ?? 1000);
    const burst = Number(this.ctx.options.burst ?? 6);
    while (!signal.aborted) {
      try {
        // A burst of calls at once: they spread over the instances (fewest calls in flight first).
        const answers = await Promise.all(Array.from({ length: burst }, () => this.pingApp.ping()));
        const byPid = new Map<number, number>();
        for (const a of answers) byPid.set(a.pid, (byPid.get(a.pid) ?? 0) + 1);
        this.log.info(`${burst} pings answered by ${[...byPid].map(([pid, n]) => `pid ${pid} x${n}`).join(", ")}`);
      } catch (e) {
        this.log.warn(`ping failed: ${(e as Error).message}`);
      }
      await this.sleep(every).catch(() => undefined);
    }
  }
}
