/**
 * A small service made of tasks: a mailer.
 *
 * - `http`   (HttpTask): /health and /metrics on 127.0.0.1:9100.
 * - `outbox` (QueueTask): a bounded queue of mails, 2 workers, retries with
 *   backoff when the (simulated) mail server says "try again later".
 * - `digest` (PeriodicTask): every `interval` ms, queues a digest mail for
 *   each subscriber.
 * - `rpc`    (RpcServerTask): `subscribe`, `send` and `stats` over drpc.
 *
 * They start in this order and stop in reverse: the RPC server and the digest
 * stop taking work first, then the outbox drains, and `/health` answers until
 * the end. Run it:
 *
 *     node dist/cli/main.js run mailer --settings dist/examples/service/settings.js
 *     curl http://127.0.0.1:9100/health
 *     tilth call drpc+tcp://127.0.0.1:9994 send '"ops@example.com"' '"hello"'
 *     node dist/cli/main.js run mailer --settings dist/examples/service/settings.js --mailer.digest.interval=1000
 * @module
 */
import { AppContext } from "../../app/App.js";
import { injectable } from "../../app/di.js";
import { Service } from "../../app/Service.js";
import { HttpTask } from "../../app/tasks/HttpTask.js";
import { PeriodicTask } from "../../app/tasks/PeriodicTask.js";
import { QueueTask } from "../../app/tasks/QueueTask.js";
import { RpcServerTask } from "../../app/tasks/RpcServerTask.js";
import { seededRandom, type Random } from "../../app/tasks/random.js";
import { BrokenError } from "../../core/errors.js";
import { sleep } from "../../core/time.js";

export interface Mail {
  id: number;
  to: string;
  subject: string;
}

export interface Stats {
  sent: number;
  failed: number;
  queued: number;
  subscribers: number;
}

/** What the mailer serves over RPC. */
export interface MailerAPI {
  /** Add an address to the digest. */
  subscribe(address: string): number;
  /** Queue a mail; refused with ERR_QUEUE_FULL when the outbox is full. Returns its id. */
  send(to: string, subject: string): number;
  stats(): Stats;
}

/** Delivers mails to a simulated mail server that sometimes says "try again later". */
@injectable()
export class Outbox extends QueueTask<Mail> {
  readonly #random: Random;
  readonly #failureRate: number;

  constructor(ctx: AppContext) {
    super(ctx, { workers: 2, capacity: 100, retries: 3, backoff: 200, stopTimeout: 10_000 });
    this.#failureRate = Number(ctx.options.failureRate ?? 0.2);
    this.#random = seededRandom(Number(ctx.options.seed ?? 1));
  }

  override async handle(mail: Mail, signal: AbortSignal, attempt: number): Promise<void> {
    await sleep(this.loop, 20 + this.#random() * 30, { signal }); // talking to the mail server
    if (this.#random() < this.#failureRate) throw new BrokenError("smtp: 451 try again later");
    this.log.info(`sent #${mail.id} to ${mail.to}: ${mail.subject}${attempt > 1 ? ` (attempt ${attempt})` : ""}`);
  }

  override onFailure(mail: Mail, error: unknown, attempts: number): void {
    this.log.error(`gave up on #${mail.id} to ${mail.to} after ${attempts} attempts: ${(error as Error).message}`);
  }
}

/** Queues a digest for every subscriber, every `interval` ms. */
@injectable()
export class Digest extends PeriodicTask {
  constructor(
    ctx: AppContext,
    private readonly mailer: Service,
  ) {
    super(ctx, { interval: 5000, initialDelay: 1000, jitter: 100, seed: 7 });
  }

  override async execute(signal: AbortSignal): Promise<void> {
    const m = this.mailer as MailerService;
    for (const to of m.subscribers) await m.queue(to, `digest #${this.runs}`, signal);
  }
}

@injectable()
export class MailerService extends Service {
  static override tasks = [HttpTask, Outbox, Digest, RpcServerTask];

  readonly subscribers = new Set<string>(["ops@example.com"]);
  #nextId = 1;

  override api: MailerAPI = {
    subscribe: (address) => {
      this.subscribers.add(address);
      return this.subscribers.size;
    },
    send: (to, subject) => {
      const mail = { id: this.#nextId++, to, subject };
      this.task(Outbox).trySubmit(mail); // never waits: a full outbox refuses (ERR_QUEUE_FULL)
      return mail.id;
    },
    stats: () => {
      const o = this.task(Outbox);
      return { sent: o.done, failed: o.failed, queued: o.depth + o.active, subscribers: this.subscribers.size };
    },
  };

  /** Queue a mail, waiting while the outbox is full. */
  async queue(to: string, subject: string, signal?: AbortSignal): Promise<number> {
    const id = this.#nextId++;
    await this.task(Outbox).submit({ id, to, subject }, { signal });
    return id;
  }
}
