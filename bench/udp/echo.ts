/**
 * One side of the udp echo benchmark, run as its own process.
 *
 *   node echo.js server KIND URL
 *       binds, prints the bound URL on one line, echoes every datagram until killed
 *   node echo.js client KIND URL SIZE INFLIGHT WARMUP_MS RUN_MS [PEERS]
 *       PEERS conversations (default 1), each keeping INFLIGHT datagrams of
 *       SIZE bytes in flight; measures for RUN_MS after WARMUP_MS, prints one
 *       JSON line {calls, ms, p50, p99, lost} (µs)
 *
 * KIND `raw` is the baseline: plain node:dgram, one `send` per datagram
 * (connected sockets on the client, `send(msg, port, address)` on the
 * server), written as plainly as possible. KIND `tilth` is udp:// through a
 * NodeLoop: `loop.connect` conversations on the client, a listener with a
 * conversation per peer on the server. Both clients run the same loop: a
 * datagram unanswered for 1 s counts as lost and is replaced, so a loss
 * does not shrink the window. Every echo is checked (length and sequence).
 */
import dgram from "node:dgram";
import { NodeLoop } from "../../adapters/node.js";
import type { Connection } from "../../core/Transport.js";
import { registerTransports } from "../../transports/index.js";

const [role, kind, url, ...rest] = process.argv.slice(2);
const [size, inflight, warmupMs, runMs, peersArg] = rest.map(Number) as [number, number, number, number, number | undefined];
const peers = peersArg ?? 1;

function address(u: string): { host: string; port: number; type: "udp4" | "udp6" } {
  const p = new URL(u);
  const host = p.hostname.replace(/^\[|\]$/g, "");
  return { host, port: Number(p.port), type: host.includes(":") ? "udp6" : "udp4" };
}

/** A bound URL as the transport formats it. */
function formatUrl(host: string, port: number): string {
  return `udp://${host.includes(":") ? `[${host}]` : host}:${port}`;
}

const BIG_BUFFERS = { recvBufferSize: 4 * 1024 * 1024, sendBufferSize: 4 * 1024 * 1024 };

// ------------------------------------------------------------ servers

function rawServer(): void {
  const a = address(url!);
  const s = dgram.createSocket({ type: a.type, ...BIG_BUFFERS });
  s.on("message", (m, r) => s.send(m, r.port, r.address));
  s.on("error", () => {});
  s.bind(a.port, a.host, () => {
    const b = s.address();
    process.stdout.write(`${formatUrl(b.address, b.port)}\n`);
  });
}

async function tilthServer(): Promise<void> {
  const loop = registerTransports(new NodeLoop());
  const listener = await loop.listen(url!, { ...BIG_BUFFERS, maxConversations: 10_000 });
  listener.start((c) =>
    c.start({
      message: (m) => {
        if (!c.ended) c.send(m, true);
      },
      end() {},
    }),
  );
  process.stdout.write(`${listener.url}\n`);
}

// ------------------------------------------------------------ clients

interface Peer {
  send(b: Buffer): void;
}

/** The measuring loop shared by both kinds: `open(onReply)` gives a peer whose replies call onReply. */
async function measure(open: (onReply: (peer: number, b: Uint8Array) => void, index: number) => Promise<Peer>, close: () => Promise<void>): Promise<void> {
  const now = (): number => performance.now();
  const payload = (seq: number): Buffer => {
    const b = Buffer.alloc(Math.max(8, size), 0x5a);
    b.writeUInt32BE(seq, 0);
    return b;
  };
  const sentAt: Map<number, number>[] = [];
  const list: Peer[] = [];
  let seq = 0;
  let measuring = false;
  let calls = 0;
  let lost = 0;
  const lat: number[] = [];
  const onReply = (i: number, b: Uint8Array): void => {
    const s = Buffer.from(b.buffer, b.byteOffset, b.byteLength).readUInt32BE(0);
    const t0 = sentAt[i]!.get(s);
    if (t0 === undefined) return; // a late echo of one counted lost
    if (b.byteLength !== Math.max(8, size)) throw new Error(`bad echo length ${b.byteLength}`);
    sentAt[i]!.delete(s);
    if (measuring) {
      calls++;
      if (lat.length < 200_000) lat.push((now() - t0) * 1000);
    }
    fire(i);
  };
  const fire = (i: number): void => {
    const s = seq++;
    sentAt[i]!.set(s, now());
    list[i]!.send(payload(s));
  };
  for (let i = 0; i < peers; i++) {
    sentAt.push(new Map());
    list.push(await open(onReply, i));
  }
  // Replace datagrams unanswered for 1 s (a busy machine delays some by a few hundred ms).
  const sweep = setInterval(() => {
    const limit = now() - 1000;
    for (let i = 0; i < peers; i++) {
      for (const [s, t] of sentAt[i]!) {
        if (t < limit) {
          sentAt[i]!.delete(s);
          if (measuring) lost++;
          fire(i);
        }
      }
    }
  }, 50);
  for (let i = 0; i < peers; i++) for (let k = 0; k < inflight; k++) fire(i);
  await new Promise((r) => setTimeout(r, warmupMs));
  measuring = true;
  const t0 = now();
  await new Promise((r) => setTimeout(r, runMs));
  measuring = false;
  const ms = now() - t0;
  clearInterval(sweep);
  lat.sort((a, b) => a - b);
  const pct = (p: number): number => lat[Math.min(lat.length - 1, Math.floor((lat.length * p) / 100))] ?? 0;
  process.stdout.write(`${JSON.stringify({ calls, ms, p50: pct(50), p99: pct(99), lost })}\n`);
  await close();
  process.exit(0);
}

async function rawClient(): Promise<void> {
  const a = address(url!);
  const sockets: dgram.Socket[] = [];
  await measure(
    async (onReply, i) => {
      const s = dgram.createSocket({ type: a.type, ...BIG_BUFFERS });
      sockets.push(s);
      s.on("message", (m) => onReply(i, m));
      s.on("error", () => {});
      await new Promise<void>((r) => s.connect(a.port, a.host, r));
      return { send: (b) => s.send(b) };
    },
    async () => {
      for (const s of sockets) s.close();
    },
  );
}

async function tilthClient(): Promise<void> {
  const loop = registerTransports(new NodeLoop());
  const convs: Connection[] = [];
  await measure(
    async (onReply, i) => {
      const c = await loop.connect(url!, { ...BIG_BUFFERS, idleTimeoutMs: 600_000 });
      convs.push(c);
      c.start({ message: (m) => onReply(i, m[0]!), end() {} });
      return { send: (b) => c.send([b], true) };
    },
    async () => {
      await Promise.all(convs.map((c) => c.close()));
    },
  );
}

if (role === "server") {
  if (kind === "raw") rawServer();
  else await tilthServer();
} else if (kind === "raw") await rawClient();
else await tilthClient();
