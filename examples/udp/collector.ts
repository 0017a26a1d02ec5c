/**
 * A statsd-style collector: takes counters and gauges over udp
 * (`name:value|c`, `name:value|c|@0.1`, `name:value|g`, `name:+3|g`, several
 * lines a datagram) and serves the aggregates over drpc.
 *
 *     tilth run collector --settings dist/examples/udp/settings.js
 *     echo -n "requests:1|c" | nc -u -w1 127.0.0.1 8125
 *     tilth call collector stats --settings dist/examples/udp/settings.js
 *
 * Each sender is a conversation: its own count of datagrams and bad lines,
 * kept in the handler. Bad input is counted, never fatal; the number of
 * metric names is bounded (`maxMetrics`), so is a name's length, so a
 * sender of random names cannot grow memory without limit.
 */
// An app written outside this repository imports these from "tilth/app" and "tilth/transports".
import { App, injectable } from "../../app/index.js";
import type { Listener } from "../../core/Transport.js";
import type { DatagramConversation } from "../../transports/index.js";

/** What the collector serves over drpc. */
export interface CollectorAPI {
  /** The aggregates: counters (summed, sample rates applied), gauges (last value), and the traffic. */
  stats(): Promise<CollectorStats>;
  /** Zero the counters (gauges keep their value); returns what they were. */
  flush(): Promise<Record<string, number>>;
}

export interface CollectorStats {
  counters: Record<string, number>;
  gauges: Record<string, number>;
  /** Datagrams taken. */
  datagrams: number;
  /** Lines that were not a metric (counted, skipped). */
  bad: number;
  /** New metric names refused past `maxMetrics`. */
  refused: number;
  /** Senders with a live conversation, and each one's datagram count. */
  senders: Record<string, number>;
}

const NAME = /^[A-Za-z0-9_.\-]{1,200}$/;

/** The aggregates, apart from the transport so they are testable alone. */
export class Aggregates {
  readonly counters = new Map<string, number>();
  readonly gauges = new Map<string, number>();
  bad = 0;
  refused = 0;
  constructor(readonly maxMetrics = 10_000) {}

  /** Take one datagram's text; returns the number of bad lines in it. */
  take(text: string): number {
    let bad = 0;
    for (const line of text.split("\n")) {
      if (line === "") continue;
      if (!this.#line(line)) bad++;
    }
    this.bad += bad;
    return bad;
  }

  #line(line: string): boolean {
    const colon = line.indexOf(":");
    const parts = line.slice(colon + 1).split("|");
    const name = line.slice(0, colon);
    if (colon <= 0 || !NAME.test(name) || parts.length < 2 || parts.length > 3) return false;
    const [raw, type, rate] = parts as [string, string, string | undefined];
    if (!/^[+-]?\d+(\.\d+)?$/.test(raw)) return false;
    const value = Number(raw);
    if (type === "c") {
      let r = 1;
      if (rate !== undefined) {
        if (!/^@(0?\.\d+|1(\.0+)?)$/.test(rate)) return false;
        r = Number(rate.slice(1));
        if (!(r > 0)) return false;
      }
      if (!this.#room(this.counters, name)) return true;
      this.counters.set(name, (this.counters.get(name) ?? 0) + value / r);
      return true;
    }
    if (type === "g" && rate === undefined) {
      if (!this.#room(this.gauges, name)) return true;
      const relative = raw.startsWith("+") || raw.startsWith("-");
      this.gauges.set(name, relative ? (this.gauges.get(name) ?? 0) + value : value);
      return true;
    }
    return false;
  }

  #room(m: Map<string, number>, name: string): boolean {
    if (m.has(name) || this.counters.size + this.gauges.size < this.maxMetrics) return true;
    this.refused++;
    return false;
  }
}

@injectable()
export class CollectorApp extends App {
  readonly #agg = new Aggregates(Number(this.ctx.options.maxMetrics ?? 10_000));
  readonly #senders = new Map<string, () => number>();
  #datagrams = 0;
  #listener: Listener | undefined;

  override api: CollectorAPI = {
    stats: async () => ({
      counters: Object.fromEntries(this.#agg.counters),
      gauges: Object.fromEntries(this.#agg.gauges),
      datagrams: this.#datagrams,
      bad: this.#agg.bad,
      refused: this.#agg.refused,
      senders: Object.fromEntries([...this.#senders].map(([k, count]) => [k, count()])),
    }),
    flush: async () => {
      const was = Object.fromEntries(this.#agg.counters);
      for (const k of this.#agg.counters.keys()) this.#agg.counters.set(k, 0);
      return was;
    },
  };

  override async start(): Promise<void> {
    const url = String(this.ctx.options.udp ?? "udp://127.0.0.1:8125");
    const listener = await this.loop.listen(url, {
      idleTimeoutMs: Number(this.ctx.options.idleTimeoutMs ?? 60_000),
      maxConversations: Number(this.ctx.options.maxSenders ?? 1024),
    });
    this.#listener = listener;
    listener.start((conn) => {
      const conv = conn as DatagramConversation;
      // This sender's state, in the conversation's scope.
      let datagrams = 0;
      let bad = 0;
      this.#senders.set(conv.remoteUrl, () => datagrams);
      conv.start({
        message: (m) => {
          datagrams++;
          this.#datagrams++;
          bad += this.#agg.take(Buffer.from(m[0]!).toString("utf8"));
        },
        end: (e) => {
          this.#senders.delete(conv.remoteUrl);
          this.log.info(`sender ${conv.remoteUrl}: ${datagrams} datagrams, ${bad} bad lines${e.error ? `, ended: ${e.error.message}` : ""}`);
        },
      });
    });
    this.log.info(`statsd on ${listener.url}`);
  }

  override async stop(): Promise<void> {
    await this.#listener?.close();
  }
}
