/**
 * One client over many endpoints of one service: the URLs of a list
 * (`connect(["drpc+tcp://127.0.0.1:9990", "drpc+tcp://127.0.0.1:9991"])`) or
 * the instances a transport discovers behind one name
 * (`drpc+nats://127.0.0.1:4222/ping`).
 *
 * Each endpoint has a client of its own (one connection, heartbeats, backoff
 * between attempts). A call goes to the endpoint with the fewest calls in
 * flight among those with an open connection; ties go round robin. So an
 * endpoint that is slow, or dead and not yet detected, stops getting calls
 * as its own pile up.
 *
 * - An endpoint whose connection is lost (a crash) fails the calls in flight
 *   on it (ERR_CONNECTION_LOST); later calls go to the others. A listed URL is
 *   tried again with backoff and takes calls once it answers; a discovered
 *   instance that no longer answers is forgotten.
 * - An endpoint that stops gracefully (GOAWAY, or an instance that announces
 *   it leaves) gets no new calls and finishes those it has. A call it refused
 *   at the door because it was already closing never ran there: it is made
 *   again on another endpoint, so no caller sees that refusal.
 * - No endpoint up: ERR_UNAVAILABLE naming the service, or, with
 *   `waitForReady`, the call waits (within its time limit) for one.
 * @module
 */
import { onAbort } from "../core/abort.js";
import { ClosedError, TimeoutError, abortReason, isTilthError } from "../core/errors.js";
import type { Loop } from "../core/Loop.js";
import type { Scope } from "../core/Scope.js";
import { parseUrl, schemeOf, type Discovery, type Endpoint } from "../core/Transport.js";
import { laterStream, type CallOptions, type CallPromise } from "./PendingCall.js";
import { UnavailableError } from "./ServerCalls.js";
import { formatRpcUrl, parseRpcUrl } from "./url.js";
import { clientSlots } from "./internal/clientSlots.js";

/** What the balancer needs of the client of one endpoint (an RpcClient). */
export interface MemberClient {
  readonly ready: boolean;
  readonly inFlight: number;
  call<R>(method: string, args: readonly unknown[], options?: CallOptions): CallPromise<R>;
  connect(): Promise<void>;
  close(options?: { graceMs?: number }): Promise<void>;
}

/** One endpoint as `endpoints()` reports it. */
export interface EndpointStatus {
  id: string;
  url: string;
  /** A connection is open and takes calls. */
  ready: boolean;
  /** It announced that it leaves, or said GOAWAY: it finishes its calls and gets no new ones. */
  leaving: boolean;
  inFlight: number;
  /** What a discovered instance says of itself (host, pid, startedAt...). */
  info: Readonly<Record<string, unknown>>;
}

interface Member {
  readonly id: string;
  readonly url: string;
  readonly client: MemberClient;
  info: Readonly<Record<string, unknown>>;
  leaving: boolean;
  removed: boolean;
  /** A first connection attempt has ended (either way). */
  tried: boolean;
  /** Resolves when its connection goes down (or it is removed). */
  down: (() => void) | undefined;
}

export interface BalancerParams {
  loop: Loop;
  scope: Scope;
  /** The URL the user gave (for errors): a list, or a group URL. */
  name: string;
  /** Default time limit of a call, ms. */
  timeout: number;
  waitForReady: boolean;
  /** The owner's stop signal. */
  signal: AbortSignal | undefined;
  /** Make the client of one endpoint; `changed` is called when its connection opens or goes down. */
  makeClient(url: string, changed: () => void): MemberClient;
}

const noop = (): void => {};

/** Least time between two attempts to start watching a group, after one failed, ms. */
const RESTART_MS = 1000;

/** Whether `e` is a refusal of a call that never ran (a server already closing): safe to make again elsewhere. */
function refusedAtTheDoor(e: unknown): boolean {
  return isTilthError(e, "ERR_UNAVAILABLE") && (e as { data?: { started?: unknown } }).data?.started === false;
}

/**
 * Whether `e` is a lost connection whose transport knows that nothing sent
 * after some loop time reached the other end (nats: "no responders";
 * `undeliveredAfter` in the cause's context), and the call was sent after
 * that time: it never ran, and may be made elsewhere.
 */
function neverDelivered(e: unknown, sentAt: number): boolean {
  if (!isTilthError(e, "ERR_CONNECTION_LOST")) return false;
  const since = (e.cause as { context?: { undeliveredAfter?: unknown } } | undefined)?.context?.undeliveredAfter;
  return typeof since === "number" && sentAt > since;
}

export class Balancer {
  readonly #p: BalancerParams;
  readonly #members = new Map<string, Member>();
  #list: Member[] = [];
  #rr = 0;
  readonly #waiters = new Set<() => void>();
  #started: Promise<void> | undefined;
  /** Whether watching has begun: true, or the error that stopped it (no NATS server...). */
  #startOutcome: true | Error | undefined;
  #startFailedAt = 0;
  #discovery: Discovery | undefined;
  /** Group: the first look-up is over. List: always (each URL's first attempt counts). */
  #settled = false;
  readonly #urls: readonly string[] | undefined;
  readonly #group: string | undefined;
  #closed = false;

  /** `urls`: a list of endpoint URLs, or one group URL (a `drpc+nats://…/SERVICE`). */
  constructor(urls: readonly string[], group: boolean, params: BalancerParams) {
    this.#p = params;
    if (group) this.#group = urls[0]!;
    else this.#urls = urls;
    params.scope.closing.addEventListener("abort", () => this.#close(), { once: true });
  }

  /** Start watching (on first use; again, at most once a second, after it failed: the NATS server may be back). */
  #start(): Promise<void> {
    if (this.#startOutcome instanceof Error && this.#p.loop.now() - this.#startFailedAt >= RESTART_MS) {
      this.#started = undefined;
      this.#startOutcome = undefined;
    }
    return (this.#started ??= this.#begin().then(
      () => void (this.#startOutcome = true),
      (e: unknown) => {
        this.#startOutcome = e instanceof Error ? e : new Error(String(e));
        this.#startFailedAt = this.#p.loop.now();
        this.#notify();
      },
    ));
  }

  async #begin(): Promise<void> {
    {
      if (this.#urls !== undefined) {
        this.#settled = true;
        for (const url of this.#urls) this.#add({ id: url, url, info: {} }, url);
        return;
      }
      const u = parseRpcUrl(this.#group!);
      const transportUrl = parseUrl(u.transport);
      const transport = this.#p.loop.transports.get(schemeOf(transportUrl));
      const d = await transport.discover!(this.#p.loop, transportUrl, {
        up: (e) => this.#add(e, formatRpcUrl(u.protocol, e.url)),
        leaving: (id) => this.#leaving(id),
        settled: () => {
          this.#settled = true;
          this.#notify();
        },
      }, {});
      if (this.#closed) void d.close();
      else this.#discovery = d;
    }
  }

  #add(e: Endpoint, url: string): void {
    if (this.#closed || this.#members.has(e.id)) return;
    const m: Member = { id: e.id, url, info: e.info, leaving: false, removed: false, tried: false, down: undefined, client: undefined! };
    (m as { client: MemberClient }).client = this.#p.makeClient(url, () => {
      if (!m.client.ready && m.down !== undefined) {
        const d = m.down;
        m.down = undefined;
        d();
      }
      this.#notify();
    });
    this.#members.set(e.id, m);
    this.#list = [...this.#members.values()];
    this.#p.scope.spawn(() => this.#keep(m), { name: `endpoint ${url}` });
  }

  /** Keep a connection to `m` open while it is a member: open it, wait for it to go down, open it again. Never throws. */
  async #keep(m: Member): Promise<void> {
    while (!m.removed && !this.#closed) {
      try {
        await m.client.connect();
      } catch (e) {
        m.tried = true;
        // A discovered instance that refuses (nobody subscribed any more: it is gone) is forgotten.
        if (this.#group !== undefined && (isTilthError(e, "ERR_CONNECTION_REFUSED") || m.leaving)) this.#remove(m);
        else if (isTilthError(e, "ERR_CLOSED")) this.#remove(m);
        this.#notify();
        continue; // the member's client waits out its backoff before the next attempt
      }
      m.tried = true;
      this.#notify();
      if (m.client.ready) await new Promise<void>((resolve) => (m.down = resolve));
    }
  }

  #leaving(id: string): void {
    const m = this.#members.get(id);
    if (m === undefined || m.leaving) return;
    m.leaving = true;
    this.#notify();
    // Its calls in flight finish (the instance lets them); then the connection closes.
    void m.client.close({ graceMs: this.#p.timeout }).then(() => this.#remove(m), noop);
  }

  #remove(m: Member): void {
    if (m.removed) return;
    m.removed = true;
    if (this.#members.get(m.id) === m) this.#members.delete(m.id);
    this.#list = [...this.#members.values()];
    m.down?.();
    m.down = undefined;
    if (!m.leaving) void m.client.close({ graceMs: 0 }).catch(noop);
    this.#notify();
  }

  #close(): void {
    this.#closed = true;
    void this.#discovery?.close();
    for (const m of this.#list) {
      m.down?.();
      m.down = undefined;
    }
    this.#notify();
  }

  #notify(): void {
    for (const w of [...this.#waiters]) w();
  }

  /** Fewest calls in flight among the endpoints that take calls; ties round robin. */
  #pick(exclude: ReadonlySet<Member> | undefined): Member | undefined {
    const list = this.#list;
    const n = list.length;
    let best = -1;
    let bestLoad = Infinity;
    for (let k = 0; k < n; k++) {
      const i = (this.#rr + k) % n;
      const m = list[i]!;
      if (m.leaving || !m.client.ready || (exclude !== undefined && exclude.has(m))) continue;
      const load = m.client.inFlight;
      if (load < bestLoad) {
        best = i;
        bestLoad = load;
      }
    }
    if (best < 0) return undefined;
    this.#rr = (best + 1) % n;
    return list[best];
  }

  /** A member to call, waiting for one within the deadline; ERR_UNAVAILABLE when none is up and none is coming. */
  async #member(
    deadline: number | undefined,
    limitMs: number | undefined,
    signal: AbortSignal | undefined,
    exclude: ReadonlySet<Member> | undefined,
    gaveUp?: () => Error | undefined,
  ): Promise<Member> {
    void this.#start();
    const loop = this.#p.loop;
    const stop = this.#p.signal;
    for (;;) {
      const m = this.#pick(exclude);
      if (m !== undefined) return m;
      if (this.#closed) throw new ClosedError(`client of ${this.#p.name} is closed`);
      for (const s of [signal, stop]) if (s?.aborted) throw abortReason(s);
      const given = gaveUp?.();
      if (given !== undefined) throw given;
      void this.#start();
      const started = this.#startOutcome;
      // Discovery itself failed (no NATS server, say): the call fails, or waits for a later look.
      if (started instanceof Error && !this.#p.waitForReady) throw started;
      const coming = this.#list.some((x) => !x.tried && !x.leaving);
      if (!this.#p.waitForReady && started === true && this.#settled && !coming) throw this.unavailable();
      if (deadline !== undefined && loop.now() >= deadline) throw new TimeoutError(limitMs ?? 0, `waiting for an endpoint of ${this.#p.name}`);
      await this.#changed(started instanceof Error ? Math.min(deadline ?? Infinity, loop.now() + RESTART_MS) : deadline, signal);
    }
  }

  /** The error of a call that finds no endpoint. */
  unavailable(): UnavailableError {
    const what = this.#group !== undefined ? `no instance of ${this.#p.name} is up` : `none of ${this.#p.name} answers`;
    return new UnavailableError(`${what} (connect with waitForReady to wait for one)`);
  }

  /** Resolves at the next change of the members, at the deadline, or when a signal aborts. */
  #changed(deadline: number | undefined, signal: AbortSignal | undefined): Promise<void> {
    return new Promise<void>((resolve) => {
      const loop = this.#p.loop;
      const t = deadline === undefined ? undefined : loop.timer(Math.max(0, deadline - loop.now()), () => done());
      const off1 = onAbort(signal, () => done());
      const off2 = onAbort(this.#p.signal, () => done());
      const done = (): void => {
        this.#waiters.delete(done);
        t?.cancel();
        off1();
        off2();
        resolve();
      };
      this.#waiters.add(done);
    });
  }

  /** Wait until an endpoint takes calls (or fail as a call would). */
  async connect(): Promise<void> {
    const deadline = this.#p.timeout === Infinity ? undefined : this.#p.loop.now() + this.#p.timeout;
    if (this.#p.waitForReady) {
      await this.#start();
      return;
    }
    await this.#member(deadline, this.#p.timeout, undefined, undefined);
  }

  /** The endpoints known now. */
  endpoints(): EndpointStatus[] {
    return this.#list.map((m) => ({ id: m.id, url: m.url, ready: m.client.ready && !m.leaving, leaving: m.leaving, inFlight: m.client.inFlight, info: m.info }));
  }

  /** Make a call on the least busy endpoint (see the module documentation). */
  call<R>(method: string, args: readonly unknown[], options: CallOptions | undefined): CallPromise<R> {
    const timeout = options?.timeout ?? this.#p.timeout;
    const loop = this.#p.loop;
    const deadline = timeout === Infinity || timeout === undefined ? undefined : loop.now() + timeout;
    const signal = options?.signal;
    let current: CallPromise<unknown> | undefined;
    let cancelled: Error | undefined;
    const gaveUp = (): Error | undefined => cancelled;
    const attempt = async (): Promise<{ call: CallPromise<unknown> }> => {
      let tried: Set<Member> | undefined;
      for (;;) {
        const m = this.#pick(tried) ?? (await this.#member(deadline, timeout, signal, tried, gaveUp));
        if (cancelled !== undefined) throw cancelled;
        const sentAt = loop.now();
        // Whole ms (the wire carries an integer; and a call in the same ms as its start keeps its options as they are).
        const left = deadline === undefined ? timeout : Math.max(0, Math.ceil(deadline - sentAt));
        const call = (current = m.client.call<unknown>(method, args, left === timeout ? options : { ...options, timeout: left, limitMs: timeout }));
        try {
          await call;
          return { call };
        } catch (e) {
          if (cancelled !== undefined || !(refusedAtTheDoor(e) || neverDelivered(e, sentAt))) return { call };
          (tried ??= new Set()).add(m);
        }
      }
    };
    const box = attempt();
    const value = box.then((b) => b.call) as unknown as CallPromise<R>;
    value.catch(noop);
    value.cancel = (reason: unknown = "cancelled") => {
      cancelled ??= reason instanceof Error ? reason : abortReason(AbortSignal.abort(reason));
      current?.cancel(reason);
      this.#notify();
    };
    value[Symbol.asyncIterator] = laterStream(box, value.cancel);
    return value;
  }
}

// The client balances with this when it is loaded (tilth/rpc loads it).
clientSlots.Balancer = Balancer;
