/**
 * Recorded traffic: real tilth clients run scripted sessions (calls of every
 * kind, streams with credit, cancellations, deadlines, errors, heartbeats)
 * against the fuzz API, and a recording transport keeps every message each
 * client sent, one list per connection. The recording runs in virtual time on
 * a loop of its own, so it is the same on every run (zrpc's random message
 * ids are replaced by fixed ones of the same length): a seed replays.
 */
import { VirtualLoop } from "../../adapters/virtual.js";
import type { Loop } from "../../core/Loop.js";
import type { Connection, ConnectOptions, Listener, ListenOptions, Message, Transport } from "../../core/Transport.js";
import { sleep } from "../../core/time.js";
import { registerTransports } from "../../transports/index.js";
import { close, connect, serve, withOptions, type Remote } from "../../rpc/index.js";
import { fuzzApi, type FuzzApi } from "./api.js";

/** Sessions as their clients sent them: for each connection, its messages in order. */
export interface Corpus {
  drpc: Message[][];
  zrpc: Message[][];
}

/** `rec+<scheme>://…`: connects through `<scheme>://…` and keeps a copy of every message sent. */
class RecordingTransport implements Transport {
  readonly schemes = ["rec+inproc"] as const;
  readonly sessions: Message[][] = [];

  async connect(loop: Loop, url: URL, options: ConnectOptions): Promise<Connection> {
    const inner = await loop.connect(url.href.slice("rec+".length), options);
    const sent: Message[] = [];
    this.sessions.push(sent);
    const send = (msg: Message, owned?: boolean): boolean => {
      sent.push(msg.map((f) => Uint8Array.prototype.slice.call(f)));
      return inner.send(msg, owned);
    };
    return new Proxy(inner, {
      get(target, prop) {
        if (prop === "send") return send;
        const v: unknown = Reflect.get(target, prop, target);
        return typeof v === "function" ? (v as (...a: unknown[]) => unknown).bind(target) : v;
      },
    });
  }

  listen(_loop: Loop, url: URL, _options: ListenOptions): Promise<Listener> {
    return Promise.reject(new Error(`the recording transport only connects (${url.href})`));
  }
}

type Script = (api: Remote<FuzzApi>, loop: Loop) => Promise<void>;

const settle = (p: Promise<unknown>): Promise<unknown> => p.catch((e: unknown) => e);

/** Calls every session makes, in drpc and zrpc alike. */
const common: Script[] = [
  async (api) => {
    await api.ping();
    await api.add(2, 3);
    await api.echo("hello");
    await api.echo({ a: [1, 2, { b: "x" }], n: null, t: true, f: -3.25 });
    await api.echo(Buffer.alloc(2000, 7));
    await api.echo(2n ** 60n);
    await api.echo([1, "two", null, false, 1.5]);
    await api.greet("fuzz");
  },
  async (api) => {
    for await (const _ of api.count(5));
    let n = 0;
    for await (const _ of api.count(200)) n++;
    for await (const _ of api.count(100)) if (++n > 203) break;
  },
  async (api, loop) => {
    await settle(withOptions(api, { timeout: 10 }).wait(1000));
    const ac = new AbortController();
    const p = settle(withOptions(api, { signal: ac.signal }).wait(500));
    await sleep(loop, 5);
    ac.abort("changed my mind");
    await p;
    await settle(api.fail());
    await settle((api as unknown as Remote<{ nope(): void }>).nope());
  },
  async (api) => {
    await Promise.all(Array.from({ length: 20 }, (_, i) => api.echo(i)));
    await api.blob(100);
    await api.add(1.5, -2);
  },
  async (api, loop) => {
    const long = api.wait(12_000);
    await sleep(loop, 1000);
    await api.ping();
    await long;
  },
];

/** Replace each distinct zrpc message id (a str of 24 lowercase hex digits) by a fixed one, in order of first sight. */
function fixIds(sessions: Message[][]): void {
  const ids = new Map<string, Buffer>();
  const isHex = (c: number): boolean => (c >= 0x30 && c <= 0x39) || (c >= 0x61 && c <= 0x66);
  for (const s of sessions) {
    for (const m of s) {
      for (const f of m) {
        for (let p = 0; p + 25 <= f.length; p++) {
          if (f[p] !== 0xb8) continue;
          let ok = true;
          for (let i = 1; i <= 24 && ok; i++) ok = isHex(f[p + i]!);
          if (!ok) continue;
          const key = Buffer.from(f.subarray(p + 1, p + 25)).toString("latin1");
          let id = ids.get(key);
          if (id === undefined) {
            id = Buffer.from(`${(ids.size + 1).toString(16).padStart(8, "0")}${"0123456789abcdef"}`, "latin1");
            ids.set(key, id);
          }
          f.set(id, p + 1);
          p += 24;
        }
      }
    }
  }
}

/** Record the corpus: each script over drpc and over zrpc, one connection each. */
export async function recordCorpus(): Promise<Corpus> {
  const loop = registerTransports(new VirtualLoop({ stallWarningMs: 0 }));
  const rec = new RecordingTransport();
  loop.transports.register(rec);
  return await loop.run(async () => {
    const server = await serve(fuzzApi(loop), ["drpc+inproc://record", "zrpc+inproc://record-z"], { loop });
    const corpus: Corpus = { drpc: [], zrpc: [] };
    for (const protocol of ["drpc", "zrpc"] as const) {
      for (const script of common) {
        const first = rec.sessions.length;
        const api = await connect<FuzzApi>(`${protocol}+rec+inproc://record${protocol === "zrpc" ? "-z" : ""}`, { loop });
        await script(api, loop);
        await close(api);
        corpus[protocol].push(...rec.sessions.slice(first));
      }
    }
    await server.close({ graceMs: 0 });
    fixIds(corpus.zrpc);
    return corpus;
  });
}
