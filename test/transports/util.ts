/**
 * The transport cases of tilth's own tests (how to make each transport's
 * loop, URLs and options) and host plumbing: free ports, temp dirs for unix
 * sockets, the TLS fixtures. The helpers shared with the conformance suite
 * live in testing/ (published as `tilth/testing`) and are re-exported here.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { NodeLoop } from "../../adapters/node.js";
import { VirtualLoop } from "../../adapters/virtual.js";
import type { ConnectOptions, ListenOptions } from "../../core/Transport.js";
import { registerTransports } from "../../transports/index.js";
import type { TransportCase } from "../../testing/helpers.js";

export * from "../../testing/helpers.js";

const here = dirname(fileURLToPath(import.meta.url));
/** dist/test/transports -> repo root */
export const repoRoot = join(here, "..", "..", "..");
export const tlsKey = readFileSync(join(repoRoot, "test", "fixtures", "tls", "key.pem"));
export const tlsCert = readFileSync(join(repoRoot, "test", "fixtures", "tls", "cert.pem"));

let seq = 0;
const unique = (): string => `${process.pid}-${++seq}`;

function nodeCase(
  name: string,
  listenUrl: () => string,
  refusedUrl: () => Promise<string>,
  listenOptions: ListenOptions = {},
  connectOptions: ConnectOptions = {},
  cleanup: () => void = () => {},
): TransportCase {
  return {
    name,
    makeLoop: () => registerTransports(new NodeLoop()),
    listenUrl,
    refusedUrl,
    listenOptions,
    connectOptions,
    run: (_loop, body) => body(),
    cleanup,
  };
}

/** A port that was free a moment ago (listen on 0, close). */
export async function freePort(): Promise<number> {
  const net = await import("node:net");
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

let tmp: string | undefined;
/** A temp dir for unix sockets, removed by `cleanupTmp`. */
export function tmpDir(): string {
  tmp ??= mkdtempSync(join(tmpdir(), "tilth-tr-"));
  return tmp;
}
export function cleanupTmp(): void {
  if (tmp !== undefined) rmSync(tmp, { recursive: true, force: true });
  tmp = undefined;
}

export const cases = {
  tcp: (): TransportCase => nodeCase("tcp", () => "tcp://127.0.0.1:0", async () => `tcp://127.0.0.1:${await freePort()}`),
  tcp6: (): TransportCase => nodeCase("tcp6", () => "tcp://[::1]:0", async () => `tcp://127.0.0.1:${await freePort()}`),
  ipc: (): TransportCase =>
    nodeCase(
      "ipc",
      () => `ipc://${join(tmpDir(), `s-${unique()}.sock`)}`,
      async () => `ipc://${join(tmpDir(), `missing-${unique()}.sock`)}`,
      {},
      {},
      cleanupTmp,
    ),
  tls: (): TransportCase =>
    nodeCase("tls", () => "tls://127.0.0.1:0", async () => `tls://127.0.0.1:${await freePort()}`, { key: tlsKey, cert: tlsCert }, { ca: tlsCert }),
  ws: (): TransportCase => nodeCase("ws", () => "ws://127.0.0.1:0/t", async () => `ws://127.0.0.1:${await freePort()}/t`),
  wss: (): TransportCase =>
    nodeCase("wss", () => "wss://127.0.0.1:0/t", async () => `wss://127.0.0.1:${await freePort()}/t`, { key: tlsKey, cert: tlsCert }, { ca: tlsCert }),
  inprocNode: (): TransportCase => nodeCase("inproc (node loop)", () => `inproc://t-${unique()}`, async () => `inproc://nobody-${unique()}`),
  inprocVirtual: (): TransportCase => ({
    name: "inproc (virtual loop)",
    makeLoop: () => registerTransports(new VirtualLoop({ stallWarningMs: 0 })),
    listenUrl: () => `inproc://v-${unique()}`,
    refusedUrl: async () => `inproc://nobody-${unique()}`,
    listenOptions: {},
    connectOptions: {},
    run: (loop, body) => (loop as VirtualLoop).run(body, { deadlockMs: 5000 }),
    cleanup: () => {},
  }),
};
