/** Shared pieces of the RPC tests: transports to run over, a test API. */
import { readFileSync } from "node:fs";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { Loop } from "../../core/Loop.js";
import { ZmqSocket } from "../../adapters/zeromq.js";
import { CancelledError } from "../../core/errors.js";
import { Event } from "../../core/Event.js";
import { sleep } from "../../core/time.js";
import { contextual, doc, RpcError, type CallContext } from "../../rpc/index.js";

const tlsDir = fileURLToPath(new URL("../../../test/fixtures/tls/", import.meta.url));
export const tlsCert = readFileSync(join(tlsDir, "cert.pem"));
export const tlsKey = readFileSync(join(tlsDir, "key.pem"));

export interface Place {
  name: string;
  /** An RPC URL to listen on (port 0 where it applies). */
  url(): string;
  server: Record<string, unknown>;
  client: Record<string, unknown>;
  cleanup(): void;
}

/** The transports every RPC test runs over. */
export function places(): Place[] {
  let dir: string | undefined;
  let n = 0;
  return [
    { name: "tcp", url: () => "drpc+tcp://127.0.0.1:0", server: {}, client: {}, cleanup() {} },
    {
      name: "ipc",
      url: () => {
        dir ??= mkdtempSync(join(tmpdir(), "tilth-rpc-"));
        return `drpc+ipc://${join(dir, `s${n++}.sock`)}`;
      },
      server: {},
      client: {},
      cleanup() {
        if (dir) rmSync(dir, { recursive: true, force: true });
        dir = undefined;
      },
    },
    { name: "tls", url: () => "drpc+tls://127.0.0.1:0", server: { key: tlsKey, cert: tlsCert }, client: { ca: tlsCert }, cleanup() {} },
    { name: "inproc", url: () => `drpc+inproc://rpc-${n++}`, server: {}, client: {}, cleanup() {} },
    { name: "local", url: () => `drpc+local://rpc-${n++}`, server: {}, client: {}, cleanup() {} },
  ];
}

export interface Counters {
  finallyRan: number;
  produced: number;
  /** Handlers of `wait`/`hold` that have started. */
  entered: number;
  cancelReasons: unknown[];
  /** `hold()` calls wait for this. */
  gate: Event;
}

/** The API the tests serve. */
export function testApi(loop: Loop, counters: Counters) {
  class Base {
    inherited(): string {
      return "from the base class";
    }
  }
  class TestAPI extends Base {
    field = 1;
    ping = doc("Answers pong.", async () => "pong");
    add(a: number, b: number): number {
      return a + b;
    }
    async greet(name: string, greeting = "hello"): Promise<string> {
      return `${greeting}, ${name}`;
    }
    echo(x: unknown): unknown {
      return x;
    }
    async *count(n: number): AsyncGenerator<number> {
      try {
        for (let i = 0; i < n; i++) {
          counters.produced++;
          yield i;
        }
      } finally {
        counters.finallyRan++;
      }
    }
    fail(): never {
      throw new RpcError("ERR_OUT_OF_STOCK", "no more widgets", { data: { left: 0 }, retryable: true });
    }
    failPlain(): never {
      throw new TypeError("plain failure");
    }
    throwString(): never {
      throw "just a string";
    }
    wait = contextual(async (ctx: CallContext, ms: number) => {
      counters.entered++;
      try {
        await sleep(loop, ms, { signal: ctx.signal });
        return "waited";
      } catch (e) {
        counters.cancelReasons.push(e);
        throw e;
      }
    });
    hold = contextual(async (ctx: CallContext) => {
      counters.entered++;
      try {
        await counters.gate.wait({ signal: ctx.signal });
        return "released";
      } catch (e) {
        counters.cancelReasons.push(e);
        throw e;
      }
    });
    never(): Promise<never> {
      return new Promise(() => {});
    }
    deadlineOf = contextual((ctx: CallContext) => (ctx.deadline === undefined ? null : ctx.deadline - loop.now()));
    _hidden(): string {
      return "secret";
    }
    get accessor(): string {
      return "not a method";
    }
  }
  return new TestAPI();
}

export function newCounters(): Counters {
  return { finallyRan: 0, produced: 0, entered: 0, cancelReasons: [], gate: new Event() };
}

/** Let the loop turn (no timers) until `cond` holds; fails after `max` turns. */
export async function until(loop: Loop, cond: () => boolean, max = 100_000): Promise<void> {
  for (let i = 0; i < max; i++) {
    if (cond()) return;
    await new Promise<void>((r) => loop.post(r));
  }
  throw new Error(`condition not met after ${max} loop turns`);
}

/** Let the loop run `n` turns. */
export async function turns(loop: Loop, n: number): Promise<void> {
  for (let i = 0; i < n; i++) await new Promise<void>((r) => loop.post(r));
}

export { CancelledError };

/** A plain zeromq DEALER connected to `endpoint` (`tcp://…`), as a ZeroRPC peer that is not tilth: sends frames, takes replies in order. */
export function rawDealer(loop: Loop, endpoint: string): { send(frames: Uint8Array[]): void; next(): Promise<Buffer[]>; event(type: string): Promise<void>; close(): Promise<void> } {
  const dealer = ZmqSocket.open(loop, "dealer");
  dealer.connect(endpoint);
  const replies: Buffer[][] = [];
  let wake: (() => void) | undefined;
  dealer.start({
    message(f) {
      replies.push(f);
      wake?.();
    },
  });
  return {
    send: (frames) => void dealer.send(frames),
    async next() {
      while (replies.length === 0) await new Promise<void>((r) => (wake = r));
      return replies.shift()!;
    },
    /** The next monitor event of `type` (`disconnect`, `handshake`, ...). */
    event: (type) =>
      new Promise<void>((resolve) => {
        const off = dealer.monitor([type], () => {
          off();
          resolve();
        });
      }),
    close: () => dealer.close(),
  };
}
