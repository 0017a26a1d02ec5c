/**
 * Settings of the fleet example: ping runs as 3 instances on NATS (one
 * service name, `ping`), long_running calls it. NATS_URL overrides the
 * nats-server (default 127.0.0.1:4222).
 */
import { LongRunningApp, PingApp } from "./apps.js";

const nats = process.env.NATS_URL ?? "127.0.0.1:4222";

export default {
  apps: {
    ping: {
      class: PingApp,
      bind: `drpc+nats://${nats}/ping`,
      instances: 3,
    },
    long_running: {
      class: LongRunningApp,
      uses: ["ping"],
      options: { interval: 1000, burst: 6 },
    },
  },
};
