/**
 * drpc over mutual TLS: the call context carries the client's verified
 * certificate, so a middleware or a handler can authorise by it.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { NodeLoop } from "../../adapters/node.js";
import { isTilthError } from "../../core/errors.js";
import { registerTransports } from "../../transports/index.js";
import { RpcError, close, connect, contextual, serve, type CallContext, type Middleware } from "../../rpc/index.js";
import { leakCheck } from "../helpers/leaks.js";
import { tlsCert, tlsKey } from "./fixtures.js";

const fixture = (f: string): Buffer => readFileSync(fileURLToPath(new URL(`../../../test/fixtures/tls/${f}`, import.meta.url)));

interface API {
  whoami(): Promise<{ cn: unknown; sans: readonly string[]; fingerprint: string } | null>;
}

test("drpc over mutual TLS: handlers and middleware see the client's verified identity; a middleware authorises by it", { timeout: 30_000 }, async () => {
  const done = leakCheck();
  const loop = registerTransports(new NodeLoop());
  const allowed = new Set(["spiffe://tilth.test/client-a"]);
  const seen: unknown[] = [];
  // The docs' example: authorise by a URI subject alternative name.
  const authorise: Middleware = {
    before(ctx) {
      seen.push(ctx.peerIdentity?.subject.CN);
      const uri = ctx.peerIdentity?.subjectAltNames.find((n) => n.startsWith("URI:"))?.slice(4);
      if (uri === undefined || !allowed.has(uri)) throw new RpcError("ERR_FORBIDDEN", `${uri ?? "an anonymous client"} may not call ${ctx.method}`);
    },
  };
  const api = {
    whoami: contextual((ctx: CallContext) =>
      ctx.peerIdentity === undefined ? null : { cn: ctx.peerIdentity.subject.CN, sans: ctx.peerIdentity.subjectAltNames, fingerprint: ctx.peerIdentity.fingerprint256 },
    ),
  };
  const server = await serve(api, "drpc+tls://127.0.0.1:0", {
    loop,
    middleware: [authorise],
    transport: { key: tlsKey, cert: tlsCert, ca: fixture("client-ca.pem"), requestCert: true, rejectUnauthorized: false },
  });
  const url = server.urls[0]!;
  const clientA = await connect<API>(url, { loop, transport: { ca: tlsCert, key: fixture("client-key.pem"), cert: fixture("client-cert.pem") } });
  const anonymous = await connect<API>(url, { loop, transport: { ca: tlsCert } });
  try {
    const me = await clientA.whoami();
    assert.deepEqual(me?.cn, "client-a");
    assert.deepEqual(me?.sans, ["DNS:client-a.test", "URI:spiffe://tilth.test/client-a"]);
    assert.match(me!.fingerprint, /^([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
    await assert.rejects(anonymous.whoami(), (e) => isTilthError(e, "ERR_FORBIDDEN") && /an anonymous client may not call whoami/.test((e as Error).message));
    assert.deepEqual(seen, ["client-a", undefined]);
  } finally {
    await close(clientA);
    await close(anonymous);
    await server.close();
  }
  await done();
});
