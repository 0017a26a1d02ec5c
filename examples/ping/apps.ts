/**
 * The ping pair: PingApp answers `ping()` with "pong"; LongRunningApp calls
 * it every second and logs the answer. Run both from one terminal:
 *
 *     tilth run ping long_running --settings dist/examples/ping/settings.js
 */
import { inspect } from "node:util";
// An app written outside this repository imports these from "tilth/app".
import { App, AppContext, client, inject, injectable, type Remote } from "../../app/index.js";

/** What PingApp serves. */
export interface PingAPI {
  ping(): Promise<string>;
}

@injectable()
export class PingApp extends App {
  override api: PingAPI = {
    ping: async () => "pong",
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
    while (!signal.aborted) {
      try {
        this.log.info(`ping: ${inspect(await this.pingApp.ping())}`);
      } catch (e) {
        this.log.warn(`ping failed: ${(e as Error).message}`);
      }
      await this.sleep(every).catch(() => undefined);
    }
  }
}
