/** Settings of the RxJS example: a ticker serving an Observable over RPC, a watcher consuming it. */
import { TickerApp, WatcherApp } from "./apps.js";

export default {
  apps: {
    ticker: { class: TickerApp, bind: "drpc+tcp://127.0.0.1:9991" },
    watcher: { class: WatcherApp, uses: ["ticker"], options: { count: 12 }, restart: "never" as const },
  },
};
