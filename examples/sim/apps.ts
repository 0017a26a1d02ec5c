/**
 * A three-app system for simulation (`tilth sim`): a client, a queue service
 * and a store, with periodic tasks and streams, each declaring invariants the
 * simulator checks every second of simulated time.
 *
 * - `store` (App, drpc over tcp): `put`, `get`, `count`, and `watch`, a stream
 *   of every change after a sequence number.
 * - `queue` (Service, ZeroRPC over zmq+tcp): `enqueue` takes a job into a
 *   bounded QueueTask whose workers write it to the store (retrying with
 *   backoff); a PeriodicTask audits the store's count.
 * - `client` (App): enqueues a job every `interval` ms and follows the
 *   store's `watch` stream, reconnecting when it breaks.
 *
 *     tilth sim client queue store --settings dist/examples/sim/settings.js --seed 7 --duration 1h --faults chaos
 * @module
 */
import { App, AppContext, client, inject, injectable, type Remote } from "../../app/index.js";
import { Service } from "../../app/Service.js";
import { PeriodicTask } from "../../app/tasks/PeriodicTask.js";
import { QueueTask } from "../../app/tasks/QueueTask.js";
import { RpcServerTask } from "../../app/tasks/RpcServerTask.js";

export interface Change {
  seq: number;
  key: string;
  value: number;
}

export interface StoreAPI {
  put(key: string, value: number): number;
  get(key: string): number | null;
  count(): number;
  watch(after: number): AsyncGenerator<Change>;
}

export interface QueueAPI {
  enqueue(key: string, value: number): boolean;
  stats(): { accepted: number; done: number; failed: number };
}

/** Keeps values by key; every change gets the next sequence number and goes to the watchers. */
@injectable()
export class StoreApp extends App {
  readonly #values = new Map<string, number>();
  readonly #log: Change[] = [];
  #seq = 0;
  #wake: (() => void)[] = [];

  override api: StoreAPI = {
    put: (key, value) => {
      this.#values.set(key, value);
      this.#log.push({ seq: ++this.#seq, key, value });
      if (this.#log.length > 1000) this.#log.splice(0, this.#log.length - 1000);
      for (const w of this.#wake.splice(0)) w();
      return this.#seq;
    },
    get: (key) => this.#values.get(key) ?? null,
    count: () => this.#values.size,
    watch: (after) => this.#watch(after),
  };

  async *#watch(after: number): AsyncGenerator<Change> {
    let next = after;
    for (;;) {
      for (const c of this.#log) if (c.seq > next) {
        next = c.seq;
        yield c;
      }
      await new Promise<void>((resolve) => this.#wake.push(resolve));
    }
  }

  /** The change log is in sequence order, without gaps past its start. */
  invariants(): string[] {
    for (let i = 1; i < this.#log.length; i++) {
      if (this.#log[i]!.seq !== this.#log[i - 1]!.seq + 1) return [`change log out of order at ${this.#log[i]!.seq}`];
    }
    return [];
  }
}

interface Job {
  key: string;
  value: number;
}

/** Writes each job to the store, retrying while the store is away. */
@injectable()
export class Writer extends QueueTask<Job> {
  readonly #store: Remote<StoreAPI>;

  constructor(ctx: AppContext) {
    super(ctx, { name: "writer", workers: 2, capacity: 50, retries: 5, backoff: 200 });
    this.#store = ctx.api<StoreAPI>("store");
  }

  override async handle(job: Job): Promise<void> {
    await this.#store.put(job.key, job.value);
  }

  override onFailure(job: Job, error: unknown): void {
    this.log.warn(`gave up on ${job.key}: ${(error as Error).message}`);
  }
}

/** Every few seconds, reads how many keys the store holds. */
@injectable()
export class Audit extends PeriodicTask {
  readonly #store: Remote<StoreAPI>;
  keys = 0;

  constructor(ctx: AppContext) {
    super(ctx, { name: "audit", interval: 5000, jitter: 500 });
    this.#store = ctx.api<StoreAPI>("store");
  }

  override async execute(): Promise<void> {
    this.keys = await this.#store.count();
  }
}

@injectable()
export class QueueService extends Service {
  static override tasks = [Writer, Audit, RpcServerTask];
  accepted = 0;

  override api: QueueAPI = {
    enqueue: (key, value) => {
      this.task(Writer).trySubmit({ key, value });
      this.accepted++;
      return true;
    },
    stats: () => ({ accepted: this.accepted, done: this.task(Writer).done, failed: this.task(Writer).failed }),
  };

  /** No job is counted twice: handled ones never outnumber accepted ones. */
  invariants(): string[] {
    const w = this.task(Writer);
    return w.done + w.failed > this.accepted ? [`${w.done} done + ${w.failed} failed > ${this.accepted} accepted`] : [];
  }
}

/** Enqueues a job every `interval` ms and follows the store's changes. */
@injectable()
export class ClientApp extends App {
  /** Changes seen on the store's streams. */
  seen = 0;
  #outOfOrder: string[] = [];

  constructor(
    ctx: AppContext,
    @inject(client("queue")) private readonly queue: Remote<QueueAPI>,
    @inject(client("store")) private readonly store: Remote<StoreAPI>,
  ) {
    super(ctx);
  }

  override async serve(signal: AbortSignal): Promise<void> {
    const every = Number(this.ctx.options.interval ?? 500);
    const follow = this.#follow(signal);
    for (let n = 0; !signal.aborted; n++) {
      try {
        await this.queue.enqueue(`k${n % 20}`, n);
      } catch (e) {
        this.log.warn(`enqueue failed: ${(e as Error).message}`);
      }
      await this.sleep(every).catch(() => undefined);
    }
    await follow;
  }

  async #follow(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      // Each stream from the start of the store's log: a restarted store numbers its changes afresh.
      let prev = 0;
      try {
        for await (const c of this.store.watch(0)) {
          if (c.seq <= prev) this.#outOfOrder.push(`change ${c.seq} after ${prev} on one stream`);
          prev = c.seq;
          this.seen++;
          if (signal.aborted) break;
        }
      } catch (e) {
        // The stream broke (a reset, a crash of the store): follow again after a while.
        this.log.info(`store changes: ${(e as Error).message}`);
      }
      await this.sleep(1000).catch(() => undefined);
    }
  }

  /** The changes of the store come in order. */
  invariants(): string[] {
    return this.#outOfOrder.splice(0);
  }
}
