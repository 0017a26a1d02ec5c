/**
 * A drpc client pointed at something that is not a drpc server names what
 * it found (an HTTP or TLS server, a ZeroMQ peer, an SSH server) instead of
 * a framing detail ("reserved header bit set (header 0x48545450)").
 */
import assert from "node:assert/strict";
import http from "node:http";
import net from "node:net";
import { test } from "node:test";
import { NodeLoop } from "../../adapters/node.js";
import { isTilthError } from "../../core/errors.js";
import { registerTransports } from "../../transports/index.js";
import { RpcClient } from "../../rpc/index.js";
import { recognizePeer } from "../../rpc/drpc/sniff.js";
import { leakCheck } from "../helpers/leaks.js";

/** What connecting a drpc client to `port` fails with. */
async function failure(port: number): Promise<Error> {
  const loop = registerTransports(new NodeLoop());
  const url = `drpc+tcp://127.0.0.1:${port}`;
  const client = new RpcClient(url, { loop, timeout: 5000 });
  try {
    await client.call("ping", []);
  } catch (e) {
    return e as Error;
  } finally {
    await client.close();
  }
  assert.fail("the call succeeded");
}

async function listening(server: net.Server): Promise<number> {
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return (server.address() as net.AddressInfo).port;
}
const closed = (server: net.Server): Promise<void> => new Promise((r) => server.close(() => r()));

/** The error of a drpc client connecting to a raw server that does `onConnection` with each socket. */
async function failureAgainst(onConnection: (s: net.Socket) => void): Promise<{ e: Error }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    sockets.add(s);
    s.on("error", () => {});
    onConnection(s);
  });
  const port = await listening(server);
  try {
    return { e: await failure(port) };
  } finally {
    for (const s of sockets) s.destroy();
    await closed(server);
  }
}

test("an HTTP server: the error says the peer is not a drpc server and looks like HTTP", { timeout: 30_000 }, async () => {
  const done = leakCheck();
  const server = http.createServer((_req, res) => res.end("hello"));
  const port = await listening(server);
  try {
    const e = await failure(port);
    assert.ok(isTilthError(e, "ERR_INCOMPATIBLE_PEER"), String(e));
    assert.equal(e.message, `drpc+tcp://127.0.0.1:${port} is not a drpc server: it looks like an HTTP server (its first bytes: "HTTP")`);
  } finally {
    server.closeAllConnections();
    await closed(server);
  }
  await done();
});

test("a TLS server that answers with an alert (as nginx or Go do): named, with the drpc+tls hint", { timeout: 30_000 }, async () => {
  // Node's own TLS server closes without a word on bytes that are not TLS; servers that answer send a
  // TLS alert record (here: protocol_version).
  const { e } = await failureAgainst((s) => s.once("data", () => s.end(Buffer.from([0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x46]))));
  assert.ok(isTilthError(e, "ERR_INCOMPATIBLE_PEER"), String(e));
  assert.match(e.message, /is not a drpc server: it looks like a TLS server \(for drpc over TLS, use drpc\+tls:\/\/\) \(its first bytes: 0x15030300\)/);
});

test("a ZeroMQ peer: its greeting is recognized", { timeout: 30_000 }, async () => {
  // What libzmq sends first on a tcp connection (ZMTP 3 greeting: signature, then version); a real peer may
  // reset the connection on our bytes before they are read, so the test's peer waits.
  const { e } = await failureAgainst((s) => s.write(Buffer.from([0xff, 0, 0, 0, 0, 0, 0, 0, 0x01, 0x7f, 3, 1])));
  assert.ok(isTilthError(e, "ERR_INCOMPATIBLE_PEER"), String(e));
  assert.match(e.message, /it looks like a ZeroMQ peer \(a ZMTP greeting; for ZeroRPC use zrpc\+tcp:\/\/\) \(its first bytes: 0xff000000\)/);
});

test("a server that sends something unknown: 'not a drpc server', with its bytes", { timeout: 30_000 }, async () => {
  const { e } = await failureAgainst((s) => s.end(Buffer.from([0x7f, 0x01, 0x02, 0x03, 0x04])));
  assert.ok(isTilthError(e, "ERR_INCOMPATIBLE_PEER"), String(e));
  assert.match(e.message, /is not a drpc server: it does not speak drpc \(its first bytes: 0x7f010203\)/);
});

test("recognizePeer reads first bytes", () => {
  const b = (s: string): Uint8Array => Buffer.from(s, "latin1");
  assert.equal(recognizePeer(b("SSH-2.0")), "an SSH server");
  assert.equal(recognizePeer(b("HTTP/1.1")), "an HTTP server");
  assert.match(recognizePeer(Uint8Array.of(0x16, 0x03, 0x01, 0x02))!, /TLS/);
  assert.match(recognizePeer(b("+OK ready"))!, /text/);
  assert.equal(recognizePeer(Uint8Array.of(0, 0, 0, 5)), undefined);
});
