/**
 * tls:// beyond the conformance suite: the listener's handshake deadline
 * (a connection that never starts or never finishes the handshake is
 * destroyed, counted from the accept) and the verified peer identity that
 * mutual TLS gives a connection.
 */
import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";
import net from "node:net";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { test } from "node:test";
import tls from "node:tls";
import { NodeLoop } from "../../adapters/node.js";
import type { Loop } from "../../core/Loop.js";
import type { Connection, Listener } from "../../core/Transport.js";
import { DEFAULT_HANDSHAKE_TIMEOUT_MS, parseAltNames } from "../../transports/tls.js";
import { registerTransports } from "../../transports/index.js";
import { leakCheck } from "../helpers/leaks.js";
import { defer, repoRoot, tlsCert, tlsKey } from "./util.js";

const fixture = (f: string): Buffer => readFileSync(join(repoRoot, "test", "fixtures", "tls", f));
const clientCa = fixture("client-ca.pem");
const clientCert = fixture("client-cert.pem");
const clientKey = fixture("client-key.pem");

/** A test with a fresh Node loop, a leak check and a pending-timer check. */
function it(title: string, fn: (loop: Loop) => Promise<void>): void {
  test(title, { timeout: 30_000 }, async () => {
    const done = leakCheck();
    const loop = registerTransports(new NodeLoop());
    await fn(loop);
    assert.equal(loop.pendingTimers, 0, "a timer was left pending");
    await done();
  });
}

const portOf = (l: Listener): number => Number(new URL(l.url).port);

/** A raw TCP client of `port`; `closed` resolves with the ms from connect to close. */
async function rawClient(port: number): Promise<{ socket: net.Socket; closed: Promise<number> }> {
  const socket = net.connect({ port, host: "127.0.0.1" });
  socket.on("error", () => {});
  await new Promise<void>((r) => socket.once("connect", r));
  const t0 = performance.now();
  const closed = new Promise<number>((r) => socket.once("close", () => r(performance.now() - t0)));
  return { socket, closed };
}

/** The first bytes a TLS client sends (its ClientHello), captured from a plain TCP server. */
async function clientHello(): Promise<Buffer> {
  const got = defer<Buffer>();
  const server = net.createServer((s) => s.once("data", (d) => (got.resolve(d), s.destroy())));
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const c = tls.connect({ port: (server.address() as net.AddressInfo).port, host: "127.0.0.1", rejectUnauthorized: false });
  c.on("error", () => {});
  const hello = await got.promise;
  c.destroy();
  await new Promise<void>((r) => server.close(() => r()));
  return hello;
}

/** Accept connections of `listener`; `next()` gives the next one. */
function accepted(listener: Listener): () => Promise<Connection> {
  const ready: Connection[] = [];
  const waiting: ((c: Connection) => void)[] = [];
  listener.start((c) => {
    const w = waiting.shift();
    if (w) w(c);
    else ready.push(c);
  });
  return () => {
    const c = ready.shift();
    return c ? Promise.resolve(c) : new Promise((r) => waiting.push(r));
  };
}

it("a TCP connection that never starts the handshake is destroyed at handshakeTimeoutMs; the listener goes on", async (loop) => {
  assert.equal(DEFAULT_HANDSHAKE_TIMEOUT_MS, 10_000);
  const listener = await loop.listen("tls://127.0.0.1:0", { key: tlsKey, cert: tlsCert, handshakeTimeoutMs: 300 });
  const next = accepted(listener);
  const silent = await rawClient(portOf(listener));
  const ms = await silent.closed;
  assert.ok(ms >= 250 && ms < 5000, `closed after ${ms} ms`);
  const conn = await loop.connect(listener.url, { ca: tlsCert });
  const server = await next();
  await conn.close();
  await server.close();
  await listener.close();
});

it("a client that trickles its handshake a byte at a time is destroyed at the deadline counted from the accept", async (loop) => {
  const hello = await clientHello();
  const listener = await loop.listen("tls://127.0.0.1:0", { key: tlsKey, cert: tlsCert, handshakeTimeoutMs: 400 });
  const slow = await rawClient(portOf(listener));
  let sent = 0;
  const drip = setInterval(() => {
    if (sent < hello.length - 1 && !slow.socket.destroyed) slow.socket.write(hello.subarray(sent, ++sent));
  }, 40);
  try {
    const ms = await slow.closed;
    assert.ok(ms >= 350 && ms < 5000, `closed after ${ms} ms`);
    assert.ok(sent > 3, "bytes kept coming in");
  } finally {
    clearInterval(drip);
  }
  await listener.close();
});

it("closing a tls listener destroys the handshakes in progress and leaves no timer", async (loop) => {
  const listener = await loop.listen("tls://127.0.0.1:0", { key: tlsKey, cert: tlsCert });
  const silent = await rawClient(portOf(listener));
  for (let i = 0; i < 200 && loop.pendingTimers === 0; i++) await new Promise((r) => setTimeout(r, 10)); // accepted by the server
  assert.equal(loop.pendingTimers, 1, "the handshake's deadline");
  await listener.close();
  const ms = await silent.closed;
  assert.ok(ms < 5000, `closed after ${ms} ms`);
});

it("handshakeTimeoutMs must be a number of ms above 0 (Infinity: no limit)", async (loop) => {
  for (const bad of [0, -1, NaN, "10"]) {
    await assert.rejects(loop.listen("tls://127.0.0.1:0", { key: tlsKey, cert: tlsCert, handshakeTimeoutMs: bad as number }), RangeError, String(bad));
  }
  const listener = await loop.listen("tls://127.0.0.1:0", { key: tlsKey, cert: tlsCert, handshakeTimeoutMs: Infinity });
  const silent = await rawClient(portOf(listener));
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(loop.pendingTimers, 0, "no deadline without a limit");
  silent.socket.destroy();
  await silent.closed;
  await listener.close();
});

it("mutual TLS: each end's connection carries the peer's verified certificate as peerIdentity", async (loop) => {
  const listener = await loop.listen("tls://127.0.0.1:0", { key: tlsKey, cert: tlsCert, ca: clientCa, requestCert: true });
  const next = accepted(listener);
  const conn = await loop.connect(listener.url, { ca: tlsCert, key: clientKey, cert: clientCert });
  const server = await next();
  const id = server.peerIdentity;
  assert.ok(id !== undefined, "the server sees the client's identity");
  assert.equal(id.subject.CN, "client-a");
  assert.equal(id.subject.O, "tilth tests");
  assert.equal(id.issuer.CN, "tilth test client CA");
  assert.deepEqual(id.subjectAltNames, ["DNS:client-a.test", "URI:spiffe://tilth.test/client-a"]);
  assert.equal(id.fingerprint256, new X509Certificate(clientCert).fingerprint256);
  assert.ok(Object.isFrozen(id) && Object.isFrozen(id.subject));
  assert.equal(conn.peerIdentity?.subject.CN, "localhost", "the client sees the server's verified identity");
  await conn.close();
  await server.close();
  await listener.close();
});

it("no verified certificate, no peerIdentity: a client without one, or over tcp", async (loop) => {
  const listener = await loop.listen("tls://127.0.0.1:0", { key: tlsKey, cert: tlsCert, ca: clientCa, requestCert: true, rejectUnauthorized: false });
  const next = accepted(listener);
  for (const options of [{ ca: tlsCert }, { ca: tlsCert, key: tlsKey, cert: tlsCert }]) {
    const conn = await loop.connect(listener.url, options);
    const server = await next();
    assert.equal(server.peerIdentity, undefined, options.cert ? "a certificate the listener's CA did not sign" : "no certificate");
    await conn.close();
    await server.close();
  }
  await listener.close();
  const tcp = await loop.listen("tcp://127.0.0.1:0");
  const nextTcp = accepted(tcp);
  const conn = await loop.connect(tcp.url);
  const server = await nextTcp();
  assert.equal(server.peerIdentity, undefined);
  assert.equal(conn.peerIdentity, undefined);
  await conn.close();
  await server.close();
  await tcp.close();
});

test("subject alternative names as node:tls writes them, quoted values included", () => {
  assert.deepEqual(parseAltNames(undefined), []);
  assert.deepEqual(parseAltNames("DNS:a.example, IP Address:127.0.0.1, URI:spiffe://x/y"), ["DNS:a.example", "IP Address:127.0.0.1", "URI:spiffe://x/y"]);
  assert.deepEqual(parseAltNames('DNS:"a, b", email:"q\\"uote", DNS:c'), ["DNS:a, b", 'email:q"uote', "DNS:c"]);
});

