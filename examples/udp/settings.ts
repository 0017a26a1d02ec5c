/**
 * Settings of the udp collector: statsd over udp, aggregates over drpc.
 *
 *     tilth run collector --settings dist/examples/udp/settings.js
 *     tilth call collector stats --settings dist/examples/udp/settings.js
 */
import { CollectorApp } from "./collector.js";

export default {
  apps: {
    collector: {
      class: CollectorApp,
      bind: "drpc+tcp://127.0.0.1:9996",
      options: { udp: "udp://127.0.0.1:8125", maxMetrics: 10_000, maxSenders: 1024, idleTimeoutMs: 60_000 },
    },
  },
};
