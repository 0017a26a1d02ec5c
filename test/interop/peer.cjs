// The npm zerorpc 0.9.8 peer for tilth's interop tests and bench, in its own
// process and folder (installed by scripts/setup-interop.mjs).
//
//   node peer.cjs server ENDPOINT HEARTBEAT_MS      prints "ready" once bound, serves until killed
//   node peer.cjs client ENDPOINT HEARTBEAT_MS      calls a tilth zrpc server, prints one JSON line, exits
//   node peer.cjs bench-server ENDPOINT             an echo server for the bench
//   node peer.cjs bench-client ENDPOINT SIZE INFLIGHT WARMUP_MS RUN_MS
"use strict";
const zerorpc = require("zerorpc");
const [role, endpoint, arg3, ...rest] = process.argv.slice(2);

// The header keys of an event beyond ZeroRPC's own (call metadata), bytes as "bytes:HEX".
function extraKeys(header) {
  const out = {};
  for (const k of Object.keys(header || {})) {
    if (k === "message_id" || k === "v" || k === "response_to") continue;
    const v = header[k];
    out[k] = Buffer.isBuffer(v) ? "bytes:" + v.toString("hex") : v;
  }
  return out;
}

let lastHeader = {};

function serve(api, hb) {
  const server = new zerorpc.Server(api, hb);
  // Ahead of the server's own listener: the header of the request about to be served.
  server._socket.prependListener("multiplexing-socket/receive", (event) => { lastHeader = event.header; });
  server.on("error", (e) => process.stderr.write(`peer server error: ${e && e.message}\n`));
  server.bind(endpoint);
  process.stdout.write("ready\n");
}

if (role === "server") {
  serve(
    {
      // zerorpc-node reads parameter names from `function (...)` source: no arrow functions.
      hello: function (name, reply) { reply(null, "Hello, " + name); },
      add: function (a, b, reply) { reply(null, a + b); },
      echo: function (x, reply) { reply(null, x); },
      count: function (n, reply) {
        for (let i = 0; i < n; i++) reply(null, i, true);
        reply();
      },
      empty: function (reply) { reply(); },
      fail: function (msg, reply) {
        const e = new Error(msg);
        e.name = "ValueError";
        reply(e);
      },
      slow: function (ms, reply) { setTimeout(() => reply(null, ms), ms); },
      // The extra header keys of this very request, as this peer received them.
      headers: function (reply) { reply(null, extraKeys(lastHeader)); },
    },
    Number(arg3),
  );
} else if (role === "bench-server") {
  serve({ echo: function (x, reply) { reply(null, x); } }, 5000);
} else if (role === "client") {
  const client = new zerorpc.Client({ heartbeatInterval: Number(arg3), timeout: 10 });
  client.on("error", (e) => process.stderr.write(`peer client error: ${e && e.message}\n`));
  client.connect(endpoint);
  // Extra header keys this client adds to its next request (ZeroRPC allows them): call metadata for a tilth server.
  let extraHeader;
  const send = client._socket.send;
  client._socket.send = function (event) {
    if (extraHeader !== undefined && !event.header.response_to) {
      Object.assign(event.header, extraHeader);
      extraHeader = undefined;
    }
    return send.call(this, event);
  };
  const call = (method, ...args) =>
    new Promise((resolve) => {
      const items = [];
      client.invoke(method, ...args, (err, res, more) => {
        if (err) return resolve({ error: { name: err.name, message: err.message, traceback: err.traceback || err.stack || null } });
        if (more) items.push(res);
        else if (items.length > 0 || res === undefined) {
          if (res !== undefined) items.push(res);
          resolve({ stream: items });
        } else resolve({ ok: res });
      });
    });
  (async () => {
    const out = {};
    out.hello = await call("hello", "Wire");
    out.count = await call("count", 5);
    out.countEmpty = await call("count", 0);
    out.fail = await call("fail", "bad");
    out.unknown = await call("no_such_method");
    out.inspect = await call("_zerorpc_inspect");
    out.ping = await call("_zerorpc_ping");
    out.echo = await call("echo", { a: [1, 2.5, "x", null, true] });
    out.big = await call("echo", 2 ** 40);
    extraHeader = { tenant: "acme", blob: Buffer.from([0, 1, 255]) };
    out.meta = await call("seen");
    out.metaNone = await call("seen");
    out.coded = await call("coded");
    const t0 = Date.now();
    out.slow = await call("slow", Number(rest[0] || 1000));
    out.slowMs = Date.now() - t0;
    process.stdout.write(JSON.stringify(out) + "\n");
    client.close();
    process.exit(0);
  })();
} else if (role === "bench-client") {
  const [size, inflight, warmupMs, runMs] = [arg3, ...rest].map(Number);
  const client = new zerorpc.Client({ timeout: 30 });
  client.connect(endpoint);
  const payload = Buffer.alloc(size, 7);
  let measuring = false;
  let running = true;
  let calls = 0;
  const lat = [];
  let t0 = 0n;
  const worker = (w) => {
    let i = 0;
    const one = () => {
      if (!running) return;
      const p = Buffer.from(payload);
      p.writeUInt32BE((w * 1000003 + i) >>> 0, 0);
      const expect = (w * 1000003 + i) >>> 0;
      i++;
      const t = process.hrtime.bigint();
      client.invoke("echo", p, (err, r) => {
        if (err) throw err;
        const b = Buffer.from(r);
        if (b.length !== size || b.readUInt32BE(0) !== expect) throw new Error("wrong echo");
        if (measuring) {
          calls++;
          if (inflight === 1) lat.push(Number(process.hrtime.bigint() - t) / 1e3);
        }
        one();
      });
    };
    one();
  };
  for (let w = 0; w < inflight; w++) worker(w);
  setTimeout(() => {
    measuring = true;
    t0 = process.hrtime.bigint();
    setTimeout(() => {
      measuring = false;
      running = false;
      const ms = Number(process.hrtime.bigint() - t0) / 1e6;
      lat.sort((a, b) => a - b);
      const pct = (p) => (lat.length ? lat[Math.min(lat.length - 1, Math.max(0, Math.ceil((p / 100) * lat.length) - 1))] : null);
      process.stdout.write(JSON.stringify({ calls, ms, p50: pct(50), p99: pct(99), p999: pct(99.9) }) + "\n");
      process.exit(0);
    }, runMs);
  }, warmupMs);
} else {
  process.stderr.write("usage: peer.cjs server|client|bench-server|bench-client ENDPOINT ...\n");
  process.exit(2);
}
