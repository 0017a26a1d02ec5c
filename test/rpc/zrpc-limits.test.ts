/**
 * zrpc and the message size, on real ZeroMQ sockets: libzmq itself refuses a
 * frame above a socket's maxMessageSize (ZMQ_MAXMSGSIZE) and disconnects its
 * sender, so nothing oversized is buffered; a tilth client so disconnected
 * fails that call with a coded error and recovers for the next.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { Packr } from "msgpackr";
import { NodeLoop } from "../../adapters/node.js";
import { openZmqSockets } from "../../adapters/zeromq.js";
import { isTilthError } from "../../core/errors.js";
import { registerTransports } from "../../transports/index.js";
import { close, connect, serve } from "../../rpc/index.js";
import { leakCheck } from "../helpers/leaks.js";
import { rawDealer } from "./fixtures.js";

const MiB = 1 << 20;
const packr = new Packr({ useRecords: false } as ConstructorParameters<typeof Packr>[0]);

interface Api {
  size(b: Uint8Array): Promise<number>;
  make(n: number): Promise<Uint8Array>;
  ping(): Promise<string>;
}

test("zrpc: a call above the server's maxMessageSize is refused by libzmq; the caller fails with ERR_CONNECTION_LOST and its client recovers; a call above the caller's own limit fails before sending; a reply above it disconnects and recovers too", { timeout: 60_000 }, async () => {
  const done = leakCheck();
  const loop = registerTransports(new NodeLoop());
  const sizes: number[] = [];
  const server = await serve(
    { size: (b: Uint8Array) => (sizes.push(b.length), b.length), make: (n: number) => Buffer.alloc(n, 1), ping: () => "pong" },
    "zrpc+tcp://127.0.0.1:0",
    { loop, maxMessageSize: 4 * MiB },
  );
  const url = server.urls[0]!;
  const control = await connect<Api>(url, { loop });
  const big = await connect<Api>(url, { loop, maxMessageSize: 16 * MiB });
  const small = await connect<Api>(url, { loop, maxMessageSize: MiB });
  try {
    // Above the server's limit: libzmq drops the sender's connection at the frame's header.
    await assert.rejects(big.size(Buffer.alloc(8 * MiB)), (e) => isTilthError(e, "ERR_CONNECTION_LOST") && /maxMessageSize/.test((e as Error).message));
    assert.equal(await control.ping(), "pong", "everyone else is served");
    assert.equal(await big.size(Buffer.alloc(1000)), 1000, "the client connects again for its next call");
    assert.deepEqual(sizes, [1000], "the oversized call never reached the server's handler");

    // Above the caller's own limit: refused before anything is sent; the connection goes on.
    await assert.rejects(small.size(Buffer.alloc(2 * MiB)), (e) => isTilthError(e, "ERR_MESSAGE_TOO_LARGE"));
    assert.equal(await small.size(Buffer.alloc(10)), 10);

    // A reply above the caller's limit: its libzmq drops the connection; the call fails coded, the next one works.
    await assert.rejects(small.make(2 * MiB), (e) => isTilthError(e, "ERR_CONNECTION_LOST"));
    assert.equal(await small.size(Buffer.alloc(10)), 10);
    assert.equal(await control.ping(), "pong");
  } finally {
    await close(small);
    await close(big);
    await close(control);
    await server.close();
  }
  assert.equal(openZmqSockets(), 0);
  await done();
});

test("zrpc: a raw ZeroMQ peer that sends a frame above the server's maxMessageSize is disconnected, reconnects by itself and is served", { timeout: 60_000 }, async () => {
  const done = leakCheck();
  const loop = registerTransports(new NodeLoop());
  const server = await serve({ ping: () => "pong" }, "zrpc+tcp://127.0.0.1:0", { loop, maxMessageSize: MiB });
  const dealer = rawDealer(loop, server.urls[0]!.replace(/^zrpc\+/, ""));
  const request = (id: string): Uint8Array[] => [Buffer.alloc(0), packr.pack([{ message_id: id, v: 3 }, "ping", []]) as Buffer];
  try {
    dealer.send(request("before"));
    assert.equal((packr.unpack((await dealer.next()).at(-1)!) as unknown[])[1], "OK");
    const dropped = dealer.event("disconnect");
    dealer.send([Buffer.alloc(0), Buffer.alloc(2 * MiB)]);
    await dropped;
    // libzmq reconnects a raw DEALER by itself; its requests are answered again (before: ignored for ever).
    await dealer.event("handshake");
    dealer.send(request("after"));
    const [h, name] = packr.unpack((await dealer.next()).at(-1)!) as [{ response_to: string }, string];
    assert.deepEqual([h.response_to, name], ["after", "OK"]);
  } finally {
    await dealer.close();
    await server.close();
  }
  await done();
});
