/**
 * An API that exposes an RxJS pipeline over RPC, and an app that consumes it
 * as an Observable. The pipeline runs on the app's own loop through
 * `toRxScheduler`, so it runs in virtual time in tests unchanged.
 *
 *     node dist/cli/main.js run ticker watcher --settings dist/examples/rx/settings.js
 */
import { bufferCount, interval, map, scan, take } from "rxjs";
import { toObservable, toRxScheduler } from "../../adapters/rxjs.js";
import { App, AppContext, client, inject, injectable, type Remote } from "../../app/index.js";

export interface TickerAPI {
  /** `n` prices of `symbol`, one every `everyMs`: a deterministic random walk. */
  prices(symbol: string, n: number, everyMs?: number): AsyncIterable<{ symbol: string; price: number; at: number }>;
}

@injectable()
export class TickerApp extends App {
  override api = {
    prices: (symbol: string, n: number, everyMs = 250) =>
      interval(everyMs, toRxScheduler(this.loop)).pipe(
        scan((price, i) => Math.round((price + Math.sin(i * 1.7 + symbol.length) * 2) * 100) / 100, 100),
        map((price) => ({ symbol, price, at: Math.round(this.loop.now()) })),
        take(n),
      ),
  };
}

@injectable()
export class WatcherApp extends App {
  constructor(
    ctx: AppContext,
    @inject(client("ticker")) private readonly ticker: Remote<TickerAPI>,
  ) {
    super(ctx);
  }

  override async serve(signal: AbortSignal): Promise<void> {
    const n = Number(this.ctx.options.count ?? 12);
    await new Promise<void>((resolve, reject) => {
      const sub = toObservable(this.ticker.prices("ACME", n))
        .pipe(
          bufferCount(3),
          map((xs) => xs.reduce((a, x) => a + x.price, 0) / xs.length),
        )
        .subscribe({
          next: (avg) => this.log.info(`ACME average of 3: ${avg.toFixed(2)}`),
          error: reject,
          complete: resolve,
        });
      signal.addEventListener("abort", () => (sub.unsubscribe(), resolve()), { once: true });
    });
    this.log.info("stream complete");
  }
}
