/**
 * The systems of the peers benchmark (`bench/peers.ts`): for each, a server
 * with two methods and a client of it, written the way a user of that system
 * would write them.
 *
 * - `echo(x)` returns its argument (bytes for binary protocols, a string for
 *   JSON ones: each system gets its natural argument type);
 * - `count(n)` streams the integers 0..n-1 (systems without streams: none).
 *
 * Peer libraries load from `bench/peers/node_modules` (npm `zerorpc` from
 * `test/interop/node_modules`), never from tilth's own dependencies, except
 * zeromq.js, which tilth itself uses and the raw zeromq baseline shares.
 * Every server binds 127.0.0.1 only.
 */
import { createRequire } from "node:module";
import net from "node:net";
import { dirname, join } from "node:path";
import { Readable } from "node:stream";
import { fileURLToPath } from "node:url";

/** The repository root (this file runs from dist/bench/). */
export const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const peerRequire = createRequire(join(ROOT, "bench", "peers", "package.json"));
const interopRequire = createRequire(join(ROOT, "test", "interop", "package.json"));
const rootRequire = createRequire(join(ROOT, "package.json"));

export type Payload = Buffer | string;
export type Callback = (err: Error | null, reply?: unknown) => void;

/** One client connection of a system. */
export interface EchoClient {
  echo(x: Payload, cb: Callback): void;
  /** `burn(us)`: the server spends `us` µs of CPU and answers `us` (the fleet scenario). */
  burn?(us: number, cb: Callback): void;
  /** Stream `count(n)`: `onItem` per item, `onEnd` once; returns a cancel function. */
  stream?(n: number, onItem: (x: unknown) => void, onEnd: (err?: Error | null) => void): () => void;
  close(): Promise<void> | void;
}

export interface System {
  /** What `echo` takes. */
  payload: "bytes" | "string";
  /** Server and client share one process (inproc, moleculer local calls). */
  inProcess?: boolean;
  /** Has `count(n)` streams. */
  streams: boolean;
  /** Has `burn(us)` and runs as several instances behind one URL (the fleet scenario). */
  fleet?: boolean;
  /** Start the server; resolves to the URL clients connect to. */
  serve(): Promise<string>;
  connect(url: string): Promise<EchoClient>;
}

const err = (e: unknown): Error => (e instanceof Error ? e : new Error(String(e)));

/**
 * Spend `us` µs of this process's CPU time (the handler of the fleet
 * scenario): CPU time rather than the clock, so that a process the system
 * has descheduled does not count its wait as work.
 */
function burnFor(us: number): number {
  const cpu = (): number => {
    const u = process.cpuUsage();
    return u.user + u.system;
  };
  const end = cpu() + us;
  while (cpu() < end);
  return us;
}

/**
 * The nats-server of the NATS systems (`host:port`) and the service name the
 * instances of one run share: set by the suite, which starts the server.
 */
function natsServer(): string {
  const at = process.env.TILTH_BENCH_NATS;
  if (!at) throw new Error("TILTH_BENCH_NATS is not set: the peers suite starts a nats-server for the NATS systems");
  return at;
}
const benchService = (): string => process.env.TILTH_BENCH_SERVICE ?? "bench";

// ------------------------------------------------------------ raw node:net

/** 8-byte request "STRM" + uint32 n: stream n 4-byte frames (uint32 0..n-1). Echo frames are never 8 bytes. */
const STREAM_MAGIC = 0x5354524d;

function frameReader(onMessage: (m: Buffer) => void): (chunk: Buffer) => void {
  let buf: Buffer = Buffer.alloc(0);
  return (chunk) => {
    buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
    while (buf.length >= 4) {
      const n = buf.readUInt32BE(0);
      if (buf.length < 4 + n) break;
      onMessage(buf.subarray(4, 4 + n));
      buf = buf.subarray(4 + n);
    }
  };
}

function frame(m: Buffer): Buffer {
  const out = Buffer.allocUnsafe(4 + m.length);
  out.writeUInt32BE(m.length, 0);
  m.copy(out, 4);
  return out;
}

/** Batch this turn's writes: cork now, uncork on the next tick. */
function corker(sock: net.Socket): () => void {
  let corked = false;
  const uncork = (): void => {
    corked = false;
    sock.uncork();
  };
  return () => {
    if (corked) return;
    corked = true;
    sock.cork();
    process.nextTick(uncork);
  };
}

function listenLocal(srv: net.Server): Promise<number> {
  return new Promise((resolve, reject) => {
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => resolve((srv.address() as net.AddressInfo).port));
  });
}

function hostPort(url: string): { host: string; port: number } {
  const u = new URL(url);
  return { host: u.hostname, port: Number(u.port) };
}

function netSystem(cork: boolean): System {
  return {
    payload: "bytes",
    streams: true,
    async serve() {
      const srv = net.createServer((sock) => {
        sock.setNoDelay(true);
        const batch = corker(sock);
        const streamItems = (n: number): void => {
          let i = 0;
          const item = Buffer.allocUnsafe(8);
          item.writeUInt32BE(4, 0);
          const more = (): void => {
            // One turn writes at most 1024 items, then lets I/O run.
            const end = Math.min(n, i + 1024);
            if (cork) sock.cork();
            let ok = true;
            for (; i < end; i++) {
              item.writeUInt32BE(i >>> 0, 4);
              ok = sock.write(Buffer.from(item));
            }
            if (cork) sock.uncork();
            if (i >= n || sock.destroyed) return;
            if (ok) setImmediate(more);
            else sock.once("drain", more);
          };
          more();
        };
        sock.on(
          "data",
          frameReader((m) => {
            if (m.length === 8 && m.readUInt32BE(0) === STREAM_MAGIC) return streamItems(m.readUInt32BE(4));
            if (cork) batch();
            sock.write(frame(m));
          }),
        );
        sock.on("error", () => {});
      });
      return `tcp://127.0.0.1:${await listenLocal(srv)}`;
    },
    async connect(url) {
      const { host, port } = hostPort(url);
      const sock = net.connect(port, host);
      sock.setNoDelay(true);
      await new Promise<void>((resolve, reject) => {
        sock.once("connect", resolve);
        sock.once("error", reject);
      });
      // Replies come back in order: a FIFO of callbacks (head index, no shift).
      let fifo: Callback[] = [];
      let head = 0;
      let onStream: ((m: Buffer) => void) | undefined;
      sock.on(
        "data",
        frameReader((m) => {
          if (onStream) return onStream(m);
          const cb = fifo[head++]!;
          if (head === fifo.length) {
            fifo = [];
            head = 0;
          } else if (head > 4096) {
            fifo = fifo.slice(head);
            head = 0;
          }
          cb(null, m);
        }),
      );
      const failAll = (e: Error): void => {
        const pending = fifo.slice(head);
        fifo = [];
        head = 0;
        for (const cb of pending) cb(e);
      };
      sock.on("error", (e) => failAll(e));
      sock.on("close", () => failAll(new Error("connection closed")));
      const batch = corker(sock);
      return {
        echo(x, cb) {
          fifo.push(cb);
          if (cork) batch();
          sock.write(frame(x as Buffer));
        },
        stream(n, onItem, onEnd) {
          let got = 0;
          onStream = (m) => {
            onItem(m.readUInt32BE(0));
            if (++got === n) {
              onStream = undefined;
              onEnd();
            }
          };
          const req = Buffer.allocUnsafe(8);
          req.writeUInt32BE(STREAM_MAGIC, 0);
          req.writeUInt32BE(n, 4);
          sock.write(frame(req));
          return () => sock.destroy();
        },
        close() {
          sock.destroy();
        },
      };
    },
  };
}

// ------------------------------------------------------------ raw zeromq.js

/** zeromq.js takes one send at a time per socket: a queue drained by one async loop. */
function sendQueue(sock: { send(m: unknown): Promise<void> }, onError: (e: Error) => void): (m: unknown) => void {
  let q: unknown[] = [];
  let head = 0;
  let running = false;
  const drain = async (): Promise<void> => {
    running = true;
    try {
      while (head < q.length) {
        const m = q[head]!;
        q[head++] = undefined;
        await sock.send(m);
        if (head === q.length) {
          q = [];
          head = 0;
        }
      }
    } catch (e) {
      onError(err(e));
    } finally {
      running = false;
    }
  };
  return (m) => {
    q.push(m);
    if (!running) void drain();
  };
}

const zmqSystem: System = {
  payload: "bytes",
  streams: true,
  async serve() {
    const zmq = rootRequire("zeromq");
    // Mandatory routing: a send to a peer at its high-water mark waits instead of dropping.
    const router = new zmq.Router({ mandatory: true });
    await router.bind("tcp://127.0.0.1:*");
    void (async () => {
      for await (const [id, msg] of router as AsyncIterable<Buffer[]>) {
        if (msg!.length === 8 && msg!.readUInt32BE(0) === STREAM_MAGIC) {
          const n = msg!.readUInt32BE(4);
          for (let i = 0; i < n; i++) {
            const item = Buffer.allocUnsafe(4);
            item.writeUInt32BE(i >>> 0, 0);
            await router.send([id, item]);
          }
        } else await router.send([id, msg]);
      }
    })().catch(() => {});
    return router.lastEndpoint as string;
  },
  async connect(url) {
    const zmq = rootRequire("zeromq");
    const dealer = new zmq.Dealer({ linger: 0 });
    dealer.connect(url);
    let fifo: Callback[] = [];
    let head = 0;
    let onStream: ((m: Buffer) => void) | undefined;
    const failAll = (e: Error): void => {
      const pending = fifo.slice(head);
      fifo = [];
      head = 0;
      for (const cb of pending) cb(e);
    };
    const send = sendQueue(dealer, failAll);
    void (async () => {
      for await (const [m] of dealer as AsyncIterable<Buffer[]>) {
        if (onStream) {
          onStream(m!);
          continue;
        }
        const cb = fifo[head++]!;
        if (head === fifo.length) {
          fifo = [];
          head = 0;
        }
        cb(null, m);
      }
    })().catch((e: unknown) => failAll(err(e)));
    return {
      echo(x, cb) {
        fifo.push(cb);
        send(x);
      },
      stream(n, onItem, onEnd) {
        let got = 0;
        onStream = (m) => {
          onItem(m.readUInt32BE(0));
          if (++got === n) {
            onStream = undefined;
            onEnd();
          }
        };
        const req = Buffer.allocUnsafe(8);
        req.writeUInt32BE(STREAM_MAGIC, 0);
        req.writeUInt32BE(n, 4);
        send(req);
        return () => dealer.close();
      },
      close() {
        if (!dealer.closed) dealer.close();
      },
    };
  },
};

// ------------------------------------------------------------ @grpc/grpc-js

/** Protobuf by hand: `message Blob { bytes data = 1; }` and `message Num { uint32 n = 1; }`. */
function varint(n: number): number[] {
  const out: number[] = [];
  while (n > 0x7f) {
    out.push((n & 0x7f) | 0x80);
    n >>>= 7;
  }
  out.push(n);
  return out;
}

function readVarint(b: Buffer, at: number): [number, number] {
  let n = 0;
  let shift = 0;
  for (;;) {
    const c = b[at++]!;
    n += (c & 0x7f) * 2 ** shift;
    if (c < 0x80) return [n, at];
    shift += 7;
  }
}

const blob = {
  encode(data: Buffer): Buffer {
    return Buffer.concat([Buffer.from([0x0a, ...varint(data.length)]), data]);
  },
  decode(b: Buffer): Buffer {
    if (b.length === 0) return Buffer.alloc(0);
    if (b[0] !== 0x0a) throw new Error("bad Blob");
    const [n, at] = readVarint(b, 1);
    return b.subarray(at, at + n);
  },
};
const num = {
  encode(n: number): Buffer {
    return n === 0 ? Buffer.alloc(0) : Buffer.from([0x08, ...varint(n)]);
  },
  decode(b: Buffer): number {
    if (b.length === 0) return 0;
    if (b[0] !== 0x08) throw new Error("bad Num");
    return readVarint(b, 1)[0];
  },
};

const grpcService = {
  echo: {
    path: "/tilth.bench.Echo/Echo",
    requestStream: false,
    responseStream: false,
    requestSerialize: blob.encode,
    requestDeserialize: blob.decode,
    responseSerialize: blob.encode,
    responseDeserialize: blob.decode,
  },
  count: {
    path: "/tilth.bench.Echo/Count",
    requestStream: false,
    responseStream: true,
    requestSerialize: num.encode,
    requestDeserialize: num.decode,
    responseSerialize: num.encode,
    responseDeserialize: num.decode,
  },
};

const grpcSystem: System = {
  payload: "bytes",
  streams: true,
  async serve() {
    const grpc = peerRequire("@grpc/grpc-js");
    const server = new grpc.Server();
    server.addService(grpcService, {
      echo(call: { request: Buffer }, cb: (e: null, r: Buffer) => void) {
        cb(null, call.request);
      },
      count(call: { request: number; write(n: number): boolean; end(): void; once(ev: string, f: () => void): void; cancelled: boolean }) {
        const n = call.request;
        let i = 0;
        const more = (): void => {
          let ok = true;
          const end = Math.min(n, i + 1024);
          while (i < end && ok) ok = call.write(i++);
          if (call.cancelled) return;
          if (i >= n) call.end();
          else if (ok) setImmediate(more);
          else call.once("drain", more);
        };
        more();
      },
    });
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (e: Error | null, p: number) => (e ? reject(e) : resolve(p))),
    );
    return `grpc://127.0.0.1:${port}`;
  },
  async connect(url) {
    const grpc = peerRequire("@grpc/grpc-js");
    const Client = grpc.makeGenericClientConstructor(grpcService, "Echo");
    // A subchannel pool of its own: each client is its own HTTP/2 connection.
    const client = new Client(url.replace("grpc://", ""), grpc.credentials.createInsecure(), { "grpc.use_local_subchannel_pool": 1 });
    await new Promise<void>((resolve, reject) => client.waitForReady(Date.now() + 10_000, (e: Error | null) => (e ? reject(e) : resolve())));
    return {
      echo(x, cb) {
        client.echo(x, cb);
      },
      stream(n, onItem, onEnd) {
        const call = client.count(n);
        let done = false;
        call.on("data", onItem);
        call.on("end", () => {
          if (!done) onEnd();
          done = true;
        });
        call.on("error", (e: Error & { code?: number }) => {
          if (!done) onEnd(e.code === grpc.status.CANCELLED ? null : e);
          done = true;
        });
        return () => call.cancel();
      },
      close() {
        client.close();
      },
    };
  },
};

// ------------------------------------------------------------ jayson

const jaysonSystem: System = {
  payload: "string",
  streams: false,
  async serve() {
    const jayson = peerRequire("jayson");
    const server = new jayson.Server({
      echo(args: unknown[], cb: (e: null, r: unknown) => void) {
        cb(null, args[0]);
      },
    });
    const srv = server.tcp() as net.Server;
    return `tcp://127.0.0.1:${await listenLocal(srv)}`;
  },
  async connect(url) {
    // jayson's own TCP client opens a socket per request; this keeps one
    // socket and reuses jayson's request builder and stream parser.
    const jayson = peerRequire("jayson");
    const { host, port } = hostPort(url);
    const sock = net.connect(port, host);
    sock.setNoDelay(true);
    await new Promise<void>((resolve, reject) => {
      sock.once("connect", resolve);
      sock.once("error", reject);
    });
    const pending = new Map<number, Callback>();
    let id = 0;
    jayson.utils.parseStream(sock, { delimiter: "\n" }, (e: Error | null, res: { id: number; result?: unknown; error?: { message: string } }) => {
      if (e) {
        for (const cb of pending.values()) cb(e);
        pending.clear();
        return;
      }
      const cb = pending.get(res.id);
      pending.delete(res.id);
      if (!cb) return;
      if (res.error) cb(new Error(res.error.message));
      else cb(null, res.result);
    });
    sock.on("error", () => {});
    return {
      echo(x, cb) {
        const req = jayson.utils.request("echo", [x], ++id, { version: 2 });
        pending.set(req.id, cb);
        sock.write(JSON.stringify(req) + "\n");
      },
      close() {
        sock.destroy();
      },
    };
  },
};

// ------------------------------------------------------------ moleculer

/**
 * moleculer's TCP transporter, kept on loopback: its TCP server listens on
 * every interface and it dials nodes by hostname or interface address, so
 * listens without a host are given 127.0.0.1 (in this bench process only) and
 * every node is dialled at 127.0.0.1. UDP discovery is off; the client names
 * the server's address (a static node).
 */
let loopbackPatched = false;
function moleculerTcp(): { ServiceBroker: any; Transporter: any } {
  const { ServiceBroker, Transporters } = peerRequire("moleculer");
  if (!loopbackPatched) {
    loopbackPatched = true;
    const listen = net.Server.prototype.listen;
    net.Server.prototype.listen = function (this: net.Server, ...args: unknown[]) {
      const o = args[0];
      if (o && typeof o === "object" && !("host" in o) && !("path" in o)) args[0] = { ...o, host: "127.0.0.1" };
      return (listen as (...a: unknown[]) => net.Server).apply(this, args);
    } as typeof listen;
  }
  class LoopbackTcp extends Transporters.TCP {
    getNodeAddress(): string {
      return "127.0.0.1";
    }
  }
  return { ServiceBroker, Transporter: LoopbackTcp };
}

const echoService = {
  name: "echo",
  actions: {
    echo(ctx: { params: { s: string } }) {
      return ctx.params.s;
    },
    burn(ctx: { params: { us: number } }) {
      return burnFor(ctx.params.us);
    },
    count(ctx: { params: { n: number } }) {
      const n = ctx.params.n;
      return Readable.from(
        (function* () {
          for (let i = 0; i < n; i++) yield i;
        })(),
        { objectMode: true },
      );
    },
  },
};

function moleculerClient(broker: any, close: () => Promise<void>): EchoClient {
  return {
    echo(x, cb) {
      broker.call("echo.echo", { s: x }).then(
        (r: unknown) => cb(null, r),
        (e: unknown) => cb(err(e)),
      );
    },
    burn(us, cb) {
      broker.call("echo.burn", { us }).then(
        (r: unknown) => cb(null, r),
        (e: unknown) => cb(err(e)),
      );
    },
    stream(n, onItem, onEnd) {
      let stream: Readable | undefined;
      let cancelled = false;
      broker.call("echo.count", { n }).then(
        (s: Readable) => {
          stream = s;
          if (cancelled) return s.destroy();
          s.on("data", onItem);
          s.on("end", () => onEnd());
          s.on("error", (e) => onEnd(cancelled ? null : e));
        },
        (e: unknown) => onEnd(err(e)),
      );
      return () => {
        cancelled = true;
        stream?.destroy();
      };
    },
    close,
  };
}

const quietBroker = { logger: false, metrics: false, tracing: false };

const moleculerTcpSystem: System = {
  payload: "string",
  streams: true,
  async serve() {
    const { ServiceBroker, Transporter } = moleculerTcp();
    const transporter = new Transporter({ udpDiscovery: false, port: 0, maxConnections: 1024 });
    const broker = new ServiceBroker({ ...quietBroker, nodeID: "bench-server", transporter });
    broker.createService(echoService);
    await broker.start();
    return `moleculer+tcp://127.0.0.1:${transporter.opts.port}/bench-server`;
  },
  async connect(url) {
    const { ServiceBroker, Transporter } = moleculerTcp();
    const at = url.replace("moleculer+tcp://", "");
    const transporter = new Transporter({ udpDiscovery: false, port: 0, urls: [at], gossipPeriod: 1 });
    const broker = new ServiceBroker({ ...quietBroker, nodeID: `bench-client-${process.pid}-${++clientIds}`, transporter });
    await broker.start();
    await broker.waitForServices(["echo"], 20_000, 50);
    return moleculerClient(broker, () => broker.stop());
  },
};
let clientIds = 0;

/**
 * Moleculer with its NATS transporter, on the suite's nats-server: any number
 * of server processes (nodes) serve `echo`; a client broker balances over them
 * (its default, round robin).
 */
const moleculerNatsSystem: System = {
  payload: "string",
  streams: true,
  fleet: true,
  async serve() {
    const { ServiceBroker } = peerRequire("moleculer");
    const broker = new ServiceBroker({ ...quietBroker, nodeID: `bench-server-${process.pid}`, namespace: benchService(), transporter: `nats://${natsServer()}` });
    broker.createService(echoService);
    await broker.start();
    return `moleculer+nats://${natsServer()}/${benchService()}`;
  },
  async connect() {
    const { ServiceBroker } = peerRequire("moleculer");
    const broker = new ServiceBroker({ ...quietBroker, nodeID: `bench-client-${process.pid}-${++clientIds}`, namespace: benchService(), transporter: `nats://${natsServer()}` });
    await broker.start();
    await broker.waitForServices(["echo"], 20_000, 50);
    return moleculerClient(broker, () => broker.stop());
  },
};

const moleculerLocalSystem: System = {
  payload: "string",
  inProcess: true,
  streams: true,
  serve: () => Promise.resolve("moleculer+local://"),
  async connect() {
    const { ServiceBroker } = peerRequire("moleculer");
    const broker = new ServiceBroker({ ...quietBroker, nodeID: "bench-local" });
    broker.createService(echoService);
    await broker.start();
    return moleculerClient(broker, () => broker.stop());
  },
};

// ------------------------------------------------------------ socket.io

/**
 * socket.io with acknowledgements: `emitWithAck("echo", x)` answered by the
 * server's ack callback, over the WebSocket transport only (no HTTP
 * long-polling upgrade), strings as its natural argument; no streams.
 */
const socketioSystem: System = {
  payload: "string",
  streams: false,
  async serve() {
    const http = await import("node:http");
    const { Server } = peerRequire("socket.io");
    const httpServer = http.createServer();
    const io = new Server(httpServer, { serveClient: false, transports: ["websocket"], perMessageDeflate: false, maxHttpBufferSize: 1e8 });
    io.on("connection", (socket: any) => {
      socket.on("echo", (x: unknown, ack: (r: unknown) => void) => ack(x));
    });
    await new Promise<void>((resolve, reject) => {
      httpServer.once("error", reject);
      httpServer.listen(0, "127.0.0.1", () => resolve());
    });
    return `http://127.0.0.1:${(httpServer.address() as net.AddressInfo).port}`;
  },
  async connect(url) {
    const { io } = peerRequire("socket.io-client");
    const socket = io(url, { transports: ["websocket"], forceNew: true, reconnection: false });
    await new Promise<void>((resolve, reject) => {
      socket.once("connect", resolve);
      socket.once("connect_error", reject);
    });
    return {
      echo(x, cb) {
        (socket.emitWithAck("echo", x) as Promise<unknown>).then(
          (r) => cb(null, r),
          (e: unknown) => cb(err(e)),
        );
      },
      close() {
        socket.close();
      },
    };
  },
};

// ------------------------------------------------------------ npm zerorpc

const zerorpcSystem: System = {
  payload: "bytes",
  streams: true,
  async serve() {
    const zerorpc = interopRequire("zerorpc");
    const server = new zerorpc.Server({
      // Function expressions: zerorpc reads parameter names from their source text.
      echo: function (x: Buffer, reply: (e: null, r: Buffer) => void) {
        reply(null, x);
      },
      count: function (n: number, reply: (e?: null, item?: number, more?: boolean) => void) {
        let i = 0;
        const more = (): void => {
          const end = Math.min(n, i + 1024);
          for (; i < end; i++) reply(null, i, true);
          if (i >= n) reply();
          else setImmediate(more);
        };
        more();
      },
    });
    server.on("error", () => {});
    // No send high-water mark: at the default (1000) its ROUTER drops stream items the client has credited.
    server._socket._zmqSocket.setsockopt(23 /* ZMQ_SNDHWM */, 0);
    server.bind("tcp://127.0.0.1:*");
    const endpoint = server._socket._zmqSocket.getsockopt("last_endpoint") as string;
    return String(endpoint).replace(/\0$/, "");
  },
  async connect(url) {
    const zerorpc = interopRequire("zerorpc");
    const client = new zerorpc.Client({ timeout: 60 });
    client.on("error", () => {});
    client.connect(url);
    let closed = false;
    const close = (): void => {
      if (!closed) client.close();
      closed = true;
    };
    return {
      echo(x, cb) {
        client.invoke("echo", x, (e: Error | undefined, r: unknown) => cb(e ?? null, r));
      },
      stream(n, onItem, onEnd) {
        let done = false;
        client.invoke("count", n, (e: Error | undefined, item: unknown, more: boolean) => {
          if (done) return;
          if (e) {
            done = true;
            return onEnd(e);
          }
          if (item !== undefined) onItem(item);
          if (!more) {
            done = true;
            onEnd();
          }
        });
        return () => {
          done = true;
          close();
        };
      },
      close,
    };
  },
};

// ------------------------------------------------------------ tilth

/** tilth's ZeroRPC protocol, when the build has it: any export of rpc/ named "zrpc". */
export async function loadZrpc(): Promise<unknown | undefined> {
  for (const path of ["../rpc/zerorpc/index.js", "../rpc/zrpc/index.js", "../rpc/index.js"]) {
    let mod: Record<string, unknown>;
    try {
      mod = (await import(path)) as Record<string, unknown>;
    } catch {
      continue;
    }
    for (const v of Object.values(mod)) {
      if (v && typeof v === "object" && (v as { name?: unknown }).name === "zrpc" && typeof (v as { accept?: unknown }).accept === "function") return v;
    }
  }
  return undefined;
}

function tilthSystem(protocol: "drpc" | "zrpc", transport: "tcp" | "inproc" | "local" | "nats" | "ws"): System {
  const api = {
    echo: (x: Uint8Array) => x,
    burn: burnFor,
    // Items that are ready: a plain generator, as moleculer's count is (tilth streams it without a promise per item).
    *count(n: number) {
      for (let i = 0; i < n; i++) yield i;
    },
  };
  const setup = async (): Promise<{ loop: any; rpc: typeof import("../rpc/index.js"); protocols: unknown[] }> => {
    const { NodeLoop } = await import("../adapters/node.js");
    const { registerTransports } = await import("../transports/index.js");
    const rpc = await import("../rpc/index.js");
    const protocols: unknown[] = [];
    if (protocol === "zrpc") {
      const z = await loadZrpc();
      if (!z) throw new Error("this build has no zrpc protocol");
      protocols.push(z);
    }
    return { loop: registerTransports(new NodeLoop()), rpc, protocols };
  };
  let shared: ReturnType<typeof setup> | undefined;
  const serve = async (): Promise<string> => {
    const { loop, rpc, protocols } = await (shared ??= setup());
    const url =
      transport === "tcp" || transport === "ws" ? `${protocol}+${transport}://127.0.0.1:0${transport === "ws" ? "/bench" : ""}` : transport === "nats" ? `${protocol}+nats://${natsServer()}/${benchService()}` : `${protocol}+${transport}://bench`;
    const server = await rpc.serve(api, url, { loop, ...(protocols.length ? { protocols: protocols as never } : {}) });
    return server.urls[0]!;
  };
  let inprocUrl: Promise<string> | undefined;
  return {
    payload: "bytes",
    inProcess: transport === "inproc" || transport === "local",
    streams: true,
    fleet: transport === "nats",
    serve,
    async connect(url) {
      if (transport === "inproc" || transport === "local") url = await (inprocUrl ??= serve());
      const { loop, rpc, protocols } = await (shared ??= setup());
      const remote = await rpc.connect<typeof api>(url, { loop, ...(protocols.length ? { protocols: protocols as never } : {}) });
      return {
        echo(x, cb) {
          remote.echo(x as Uint8Array).then(
            (r) => cb(null, r),
            (e: unknown) => cb(err(e)),
          );
        },
        burn(us, cb) {
          remote.burn(us).then(
            (r) => cb(null, r),
            (e: unknown) => cb(err(e)),
          );
        },
        stream(n, onItem, onEnd) {
          const s = remote.count(n);
          let cancelled = false;
          void (async () => {
            for await (const x of s) onItem(x);
          })().then(
            () => onEnd(),
            (e: unknown) => onEnd(cancelled ? null : err(e)),
          );
          return () => {
            cancelled = true;
            s.cancel();
          };
        },
        close: () => rpc.close(remote),
      };
    },
  };
}

/** Every system by id, in table order. */
export const SYSTEMS: Record<string, System> = {
  net: netSystem(false),
  "net-cork": netSystem(true),
  zeromq: zmqSystem,
  "grpc-js": grpcSystem,
  jayson: jaysonSystem,
  "moleculer-tcp": moleculerTcpSystem,
  zerorpc: zerorpcSystem,
  "drpc+tcp": tilthSystem("drpc", "tcp"),
  "zrpc+tcp": tilthSystem("zrpc", "tcp"),
  "moleculer-local": moleculerLocalSystem,
  "drpc+inproc": tilthSystem("drpc", "inproc"),
  "drpc+local": tilthSystem("drpc", "local"),
  "drpc+nats": tilthSystem("drpc", "nats"),
  "moleculer-nats": moleculerNatsSystem,
  "drpc+ws": tilthSystem("drpc", "ws"),
  "socket.io": socketioSystem,
};
