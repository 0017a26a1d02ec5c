/**
 * Settings of the three-app simulation example: a client, a queue service and
 * a store. `tilth sim client queue store --settings dist/examples/sim/settings.js --seed 1 --duration 10m`.
 */
import { ClientApp, QueueService, StoreApp } from "./apps.js";

export default {
  apps: {
    store: { class: StoreApp, bind: "drpc+tcp://127.0.0.1:9901" },
    queue: { class: QueueService, uses: ["store"], options: { rpc: { bind: "zrpc+tcp://127.0.0.1:9902" } } },
    client: { class: ClientApp, uses: ["queue", "store"], options: { interval: 500 } },
  },
};
