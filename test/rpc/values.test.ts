/**
 * The value model on the wire (docs/drpc.md and docs/zerorpc.md, "Values"):
 * what is outside it is refused with a coded error and a short message, in
 * both directions, for that call only; the connection and everyone else go on.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { Packr } from "msgpackr";
import { NodeLoop } from "../../adapters/node.js";
import type { Connection, Message } from "../../core/Transport.js";
import { isTilthError } from "../../core/errors.js";
import { registerTransports } from "../../transports/index.js";
import { RemoteError, close, connect, serve } from "../../rpc/index.js";
import { T, decode, encode } from "../../rpc/drpc/codec.js";
import { leakCheck } from "../helpers/leaks.js";
import { rawDealer } from "./fixtures.js";

/** msgpackr as a peer that uses its extensions would write. */
const extended = new Packr({ useRecords: false, mapsAsObjects: true, moreTypes: true } as ConstructorParameters<typeof Packr>[0]);
const withRecords = new Packr({ useRecords: true } as ConstructorParameters<typeof Packr>[0]);
const withCycles = new Packr({ useRecords: false, structuredClone: true } as ConstructorParameters<typeof Packr>[0]);
const plain = new Packr({ useRecords: false, mapsAsObjects: true, int64AsType: "auto" } as unknown as ConstructorParameters<typeof Packr>[0]);

/** The one argument `arg` of a call, as the msgpack bytes of `[arg]`. */
const argsOf = (packr: Packr, arg: unknown): Buffer => packr.pack([arg]) as Buffer;

/** `depth` arrays one in the other around nil, as bytes. */
function nested(depth: number): Buffer {
  return Buffer.concat([Buffer.alloc(depth, 0x91), Buffer.from([0xc0])]);
}

/** A BigInt of `bytes` bytes in msgpackr's BigInt extension (type 0x42), as bytes. */
function bigExt(bytes: number): Buffer {
  const head = Buffer.from([0xc9, 0, 0, 0, 0, 0x42]);
  head.writeUInt32BE(bytes, 1);
  return Buffer.concat([head, Buffer.alloc(bytes, 0x5a)]);
}

/** Arguments that a tilth server must refuse, with the code it refuses them with. */
const refusedArgs: { name: string; args: Buffer; code: string }[] = [
  { name: "a RegExp (msgpackr extension 0x78)", args: argsOf(extended, /a+b/g), code: "ERR_BAD_VALUE" },
  { name: "an Error (msgpackr extension 0x65)", args: argsOf(extended, new Error("boom")), code: "ERR_BAD_VALUE" },
  { name: "a Set (msgpackr extension 0x73)", args: argsOf(extended, new Set([1, 2])), code: "ERR_BAD_VALUE" },
  { name: "a Float32Array (msgpackr extension 0x74)", args: argsOf(extended, new Float32Array([1.5])), code: "ERR_BAD_VALUE" },
  { name: "a record (msgpackr extension 0x72)", args: withRecords.pack([{ a: 1, b: 2 }]) as Buffer, code: "ERR_BAD_VALUE" },
  {
    name: "a cyclic structured clone (msgpackr extensions 0x69, 0x70)",
    args: (() => {
      const o: Record<string, unknown> = { a: 1 };
      o.self = o;
      return argsOf(withCycles, o);
    })(),
    code: "ERR_BAD_VALUE",
  },
  { name: "a BigInt of 1 MiB (msgpackr extension 0x42)", args: Buffer.concat([Buffer.from([0x91]), bigExt(1 << 20)]), code: "ERR_VALUE_LIMIT" },
  { name: "arrays nested 5000 deep", args: Buffer.concat([Buffer.from([0x91]), nested(5000)]), code: "ERR_VALUE_LIMIT" },
  { name: "an unknown extension type", args: Buffer.from([0x91, 0xd4, 0x33, 0x00]), code: "ERR_BAD_VALUE" },
  { name: "the map key __proto__", args: Buffer.concat([Buffer.from([0x91, 0x81, 0xa9]), Buffer.from("__proto__"), Buffer.from([0x80])]), code: "ERR_BAD_VALUE" },
];

/** A drpc CALL of `method` whose args are the msgpack bytes `args`. */
function rawCall(id: number, method: string, args: Buffer): Buffer {
  const fixed = Buffer.from(plain.pack([T.CALL, id, method, null, null, 64]));
  fixed[0] = 0x97; // seven items: the args follow
  return Buffer.concat([fixed, args]);
}

/** drpc spoken by hand over `conn`: sends frames, takes decoded messages in order (undefined once it ended). */
function rawPeer(conn: Connection): { send(f: Uint8Array): void; next(): Promise<unknown[] | undefined> } {
  const got: unknown[][] = [];
  let ended = false;
  let wake: (() => void) | undefined;
  conn.start({
    message: (m: Message) => {
      got.push(decode(m[0]!) as unknown[]);
      wake?.();
    },
    end() {
      ended = true;
      wake?.();
    },
  });
  return {
    send: (f) => void conn.send([f]),
    async next() {
      while (got.length === 0 && !ended) await new Promise<void>((r) => (wake = r));
      return got.shift();
    },
  };
}

interface Served {
  loop: NodeLoop;
  url: string;
  /** A tilth client of the server (any method). */
  c: Record<string, (...args: any[]) => Promise<any>>;
  /** Another client, which must be served throughout. */
  control: { ping(): Promise<string> };
  /** Calls that reached `echo`. */
  entered(): number;
  /** The server's log lines. */
  lines: string[];
}

/**
 * Serve `api` (plus `echo`, which counts its calls, and `ping`) on `proto`,
 * with a control client that must be served after `fn` too; everything is
 * closed after, and nothing may be left behind.
 */
async function withServer(proto: "drpc" | "zrpc", api: object, fn: (s: Served) => Promise<void>): Promise<void> {
  const done = leakCheck();
  const loop = registerTransports(new NodeLoop());
  let entered = 0;
  const lines: string[] = [];
  const server = await serve({ ...api, echo: (x: unknown) => (entered++, x), ping: () => "pong" }, `${proto}+tcp://127.0.0.1:0`, {
    loop,
    log: (line: string) => lines.push(line),
  } as Parameters<typeof serve>[2]);
  const url = server.urls[0]!;
  const control = await connect<{ ping(): Promise<string> }>(url, { loop });
  const c = await connect<Served["c"]>(url, { loop });
  try {
    await fn({ loop, url, c, control, entered: () => entered, lines });
    assert.equal(await control.ping(), "pong", "the control client is served");
  } finally {
    await close(c);
    await close(control);
    await server.close();
  }
  await done();
}

describe("drpc: values outside the model are refused for that call only", () => {
  test("a CALL whose args are outside the model is answered with a coded error and a short message; the handler never runs; the connection and a control client go on", async () => {
    await withServer("drpc", {}, async ({ loop, url, control, entered }) => {
      const conn = await loop.connect(url.replace("drpc+", ""));
      try {
        const peer = rawPeer(conn);
        peer.send(encode([T.HELLO, "drpc", 1, { heartbeatMs: 0, maxMessageSize: 64 << 20 }]));
        assert.equal((await peer.next())?.[0], T.HELLO);
        let id = 1;
        for (const c of refusedArgs) {
          peer.send(rawCall(id, "echo", c.args));
          const m = (await peer.next())!;
          assert.equal(m[0], T.ERROR, c.name);
          assert.equal(m[1], id, `${c.name}: the error answers that call`);
          const info = m[2] as { code: string; message: string };
          assert.equal(info.code, c.code, `${c.name}: ${info.message}`);
          assert.ok(info.message.length < 300, `${c.name}: a short message (${info.message.length} chars)`);
          assert.equal(await control.ping(), "pong", `${c.name}: the control client is served`);
          id++;
        }
        assert.equal(entered(), 0, "no refused value reached the handler");
        // The same connection still serves a call within the model, nested 100 deep (the limit).
        peer.send(rawCall(id, "echo", Buffer.concat([Buffer.from([0x91]), nested(100)])));
        const ok = (await peer.next())!;
        assert.deepEqual([ok[0], ok[1]], [T.RESULT, id]);
      } finally {
        await conn.close();
      }
    });
  });

  test("a handler's result or stream item outside the model: the caller gets a coded error with a short message, the server logs a line, everyone else goes on", async () => {
    let finallyRan = 0;
    class Widget {
      constructor(readonly n: number) {}
    }
    const cyclic = (): unknown => {
      const o: Record<string, unknown> = {};
      o.self = o;
      return o;
    };
    const api = {
      set: () => new Set([1]),
      regexp: () => /x/,
      error: () => new Error("not a value"),
      floats: () => new Float32Array(4),
      widget: () => new Widget(1),
      fn: () => ({ f: () => 1 }),
      cyclic,
      huge: () => 2n ** 8_000_000n,
      async *items() {
        try {
          yield 1;
          yield new Set([2]);
          yield 3;
        } finally {
          finallyRan++;
        }
      },
    };
    await withServer("drpc", api, async ({ loop, c, control, lines }) => {
      const cases: [string, string][] = [
        ["set", "ERR_BAD_VALUE"],
        ["regexp", "ERR_BAD_VALUE"],
        ["error", "ERR_BAD_VALUE"],
        ["floats", "ERR_BAD_VALUE"],
        ["widget", "ERR_BAD_VALUE"],
        ["fn", "ERR_BAD_VALUE"],
        ["cyclic", "ERR_VALUE_LIMIT"],
        ["huge", "ERR_VALUE_LIMIT"],
      ];
      for (const [m, code] of cases) {
        await assert.rejects(c[m]!(), (e) => {
          assert.ok(e instanceof RemoteError, `${m}: ${String(e)}`);
          assert.equal(e.code, code, `${m}: ${e.message}`);
          assert.ok(e.message.length < 300, `${m}: a short message (${e.message.length} chars)`);
          return true;
        });
        assert.equal(await control.ping(), "pong");
      }
      const got: unknown[] = [];
      await assert.rejects(
        (async () => {
          for await (const x of c.items!() as unknown as AsyncIterable<unknown>) got.push(x);
        })(),
        (e) => isTilthError(e, "ERR_BAD_VALUE"),
      );
      assert.deepEqual(got, [1], "the stream ends at the item that cannot be sent");
      for (let i = 0; i < 100 && finallyRan === 0; i++) await new Promise<void>((r) => loop.post(r));
      assert.equal(finallyRan, 1, "the generator is told (its finally runs)");
      assert.equal(lines.length, cases.length + 1, `one log line per unsendable answer:\n${lines.join("\n")}`);
      assert.ok(lines.every((l) => l.length < 400 && /cannot be sent/.test(l)));
      assert.match(lines.find((l) => l.includes("huge"))!, /ERR_VALUE_LIMIT/);
    });
  });

  test("a caller's arguments outside the model fail the call with a coded error before anything is sent", async () => {
    await withServer("drpc", {}, async ({ c, entered }) => {
      for (const [v, code] of [
        [new Set([1]), "ERR_BAD_VALUE"],
        [new Map<unknown, unknown>([[{}, 1]]), "ERR_BAD_VALUE"],
        [Symbol("s"), "ERR_BAD_VALUE"],
        [new Date(NaN), "ERR_BAD_VALUE"],
        [2n ** 64n, "ERR_VALUE_LIMIT"],
        [JSON.parse('{"__proto__": 1}'), "ERR_BAD_VALUE"],
      ] as const) {
        await assert.rejects(c.echo!(v), (e) => isTilthError(e, code) && !(e instanceof RemoteError) && (e as Error).message.length < 300);
      }
      assert.equal(entered(), 0, "nothing reached the server");
      assert.deepEqual(await c.echo!([1, { a: new Date(0) }]), [1, { a: new Date(0) }], "the connection goes on");
    });
  });

  test("an answer outside the model from a server that is not tilth fails that call with a coded error; the client's other calls go on", async () => {
    const done = leakCheck();
    const loop = registerTransports(new NodeLoop());
    const listener = await loop.listen("tcp://127.0.0.1:0");
    const served = (async () => {
      for await (const conn of listener) {
        const peer = rawPeer(conn);
        for (;;) {
          const m = await peer.next();
          if (m === undefined) break;
          if (m[0] === T.HELLO) peer.send(encode([T.HELLO, "drpc", 1, { heartbeatMs: 0, maxMessageSize: 64 << 20 }]));
          else if (m[0] === T.CALL && m[2] === "bad") peer.send(Buffer.concat([Buffer.from([0x93, T.RESULT, m[1] as number]), argsOf(extended, new Set([1])).subarray(1)]));
          else if (m[0] === T.CALL && m[2] === "deep") peer.send(Buffer.concat([Buffer.from([0x93, T.RESULT, m[1] as number]), nested(5000)]));
          else if (m[0] === T.CALL) peer.send(encode([T.RESULT, m[1] as number, "fine"]));
        }
      }
    })();
    const c = await connect<{ bad(): Promise<unknown>; deep(): Promise<unknown>; good(): Promise<string> }>(`drpc+${listener.url}`, { loop });
    try {
      await assert.rejects(c.bad(), (e) => isTilthError(e, "ERR_BAD_VALUE") && /extension/.test((e as Error).message));
      await assert.rejects(c.deep(), (e) => isTilthError(e, "ERR_VALUE_LIMIT") && (e as Error).message.length < 300);
      assert.equal(await c.good(), "fine");
    } finally {
      await close(c);
      await listener.close();
      await served;
    }
    await done();
  });

  test("maps of more than 65535 keys cross both ways; past MAX_VALUE_ITEMS a coded error, not an uncoded one", async () => {
    const wide = (n: number): Record<string, number> => {
      const o: Record<string, number> = {};
      for (let i = 0; i < n; i++) o[`k${i}`] = i;
      return o;
    };
    await withServer("drpc", { wide, many: (n: number) => new Array<number>(n).fill(0) }, async ({ c }) => {
      const got = (await c.wide!(70_000)) as Record<string, number>;
      assert.equal(Object.keys(got).length, 70_000);
      assert.equal(got.k69999, 69_999);
      assert.equal(Object.keys((await c.echo!(wide(70_000))) as object).length, 70_000, "and from the client");
      await assert.rejects(c.many!((1 << 20) + 1), (e) => isTilthError(e, "ERR_VALUE_LIMIT"));
      assert.equal(((await c.many!(1 << 20)) as number[]).length, 1 << 20, "the limit itself passes");
    });
  });

  test("values within the model cross unchanged: undefined, Dates, 64-bit BigInts, binary, Maps (as objects), objects with toJSON", async () => {
    await withServer("drpc", {}, async ({ c }) => {
      const v = { u: undefined, d: new Date(Date.UTC(1900, 0, 1, 0, 0, 0, 5)), late: new Date(2 ** 40), big: -(2n ** 63n), ubig: 2n ** 64n - 1n, b: Buffer.from([1, 2, 3]), s: "ünïcödé ✓", n: -0.5, nested: [[[]]] };
      assert.deepEqual(await c.echo!(v), v);
      assert.deepEqual(await c.echo!(new Map<unknown, unknown>([["a", 1], [2, "b"]])), { a: 1, "2": "b" });
      class Money {
        constructor(readonly cents: number) {}
        toJSON(): string {
          return `${this.cents / 100} EUR`;
        }
      }
      assert.deepEqual(await c.echo!({ price: new Money(250) }), { price: "2.5 EUR" });
    });
  });

  test("an unknown method with a name of 1 MiB is answered with a short message", async () => {
    await withServer("drpc", {}, async ({ c }) => {
      await assert.rejects(c["x".repeat(1 << 20)]!(), (e) => isTilthError(e, "ERR_UNKNOWN_METHOD") && (e as Error).message.length < 300);
    });
  });
});

describe("zrpc: values outside the model are refused for that call only", () => {
  test("a request whose args are outside the model is answered ERR BadValueError; a handler's result outside it reaches a tilth client as ERR_BAD_VALUE; 70000 keys cross; everyone else goes on", async () => {
    const api = { set: () => new Set([1]), wide: (n: number) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`k${i}`, i])) };
    await withServer("zrpc", api, async ({ loop, url, c, control, entered, lines }) => {
      const dealer = rawDealer(loop, url.replace(/^zrpc\+/, ""));
      try {
        const head = (id: string): Buffer => plain.pack({ message_id: id, v: 3 }) as Buffer;
        for (const [i, r] of refusedArgs.entries()) {
          // [header, "echo", args] with the args' bytes as they are
          dealer.send([Buffer.alloc(0), Buffer.concat([Buffer.from([0x93]), head(`r${i}`), plain.pack("echo") as Buffer, r.args])]);
          const [h, name, args] = plain.unpack((await dealer.next()).at(-1)!) as [{ response_to: string }, string, [string, string]];
          assert.equal(h.response_to, `r${i}`, r.name);
          assert.equal(name, "ERR", r.name);
          const [errName, message] = args;
          assert.equal(errName, r.code === "ERR_BAD_VALUE" ? "BadValueError" : "ValueLimitError", `${r.name}: ${message}`);
          assert.ok(message.length < 300, `${r.name}: a short message`);
          assert.equal(await control.ping(), "pong");
        }
      } finally {
        await dealer.close();
      }
      assert.equal(entered(), 0, "no refused value reached the handler");
      await assert.rejects(c.set!(), (e) => isTilthError(e, "ERR_BAD_VALUE") && (e as Error).message.length < 300);
      await assert.rejects(c.echo!(new Set([1])), (e) => isTilthError(e, "ERR_BAD_VALUE") && !(e instanceof RemoteError));
      assert.equal(Object.keys(await c.wide!(70_000)).length, 70_000);
      assert.equal(lines.length, 1, lines.join("\n"));
    });
  });
});
