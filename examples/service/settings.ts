/**
 * Settings of the service example. Each task reads its options under its
 * name; the rest (`failureRate`, `seed`) are the service's own. Override any
 * of them without editing this file:
 *
 *     tilth run mailer --settings dist/examples/service/settings.js --set mailer.digest.interval=1000
 *     TILTH__APPS__MAILER__OPTIONS__HTTP__PORT=9200 tilth run mailer --settings dist/examples/service/settings.js
 */
import { MailerService } from "./mailer.js";

export default {
  apps: {
    mailer: {
      class: MailerService,
      options: {
        http: { port: 9100 },
        rpc: { bind: "drpc+tcp://127.0.0.1:9994" },
        outbox: { workers: 2, capacity: 100, retries: 3, backoff: 200 },
        digest: { interval: 5000 },
        failureRate: 0.2,
        seed: 1,
      },
    },
  },
};
