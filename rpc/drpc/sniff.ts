/**
 * What a peer that is not a drpc server looks like, from the first bytes it
 * sent: an HTTP or TLS server, a ZeroMQ peer, an SSH server... The client
 * asks when its connection fails before the server's HELLO, so that the
 * error says "not a drpc server" instead of a framing detail.
 * Internal module.
 */
import { IncompatiblePeerError } from "../errors.js";
import { clientSlots } from "../internal/clientSlots.js";

/** A guess at the protocol that `first` (a peer's first bytes) belongs to, with a hint; undefined when nothing matches. */
export function recognizePeer(first: Uint8Array): string | undefined {
  const text = String.fromCharCode(...first.subarray(0, 4));
  const [b0, b1] = [first[0], first[1]];
  if (text === "HTTP" || text.startsWith("<") || text === "GET " || text === "POST") return "an HTTP server";
  if ((b0 === 0x16 || b0 === 0x15) && b1 === 0x03) return "a TLS server (for drpc over TLS, use drpc+tls://)";
  if (b0 === 0xff && first.length >= 4 && first[1] === 0 && first[2] === 0 && first[3] === 0) return "a ZeroMQ peer (a ZMTP greeting; for ZeroRPC use zrpc+tcp://)";
  if (text === "SSH-") return "an SSH server";
  if (/^(220|\+OK|-ERR|\* OK)/.test(text)) return "a mail, FTP or Redis server (it greets in text)";
  return undefined;
}

/** The bytes as a person reads them: quoted text when printable, else hex. */
function shown(first: Uint8Array): string {
  const printable = [...first].every((b) => b >= 0x20 && b < 0x7f);
  return printable ? `"${String.fromCharCode(...first)}"` : `0x${Array.from(first, (b) => b.toString(16).padStart(2, "0")).join("")}`;
}

/** The first header word a framing error carries in its context (the peer's first 4 bytes, before any message), if any. */
function headerOf(error: unknown): Uint8Array | undefined {
  for (let e = error, depth = 0; e instanceof Error && depth < 4; e = e.cause, depth++) {
    const header = (e as { context?: { header?: unknown } }).context?.header;
    if (typeof header === "number") {
      const bytes = new Uint8Array(4);
      new DataView(bytes.buffer).setUint32(0, header >>> 0);
      return bytes;
    }
  }
  return undefined;
}

/**
 * For a connection that failed before the server's HELLO: an
 * IncompatiblePeerError naming what the peer looks like when its first
 * bytes (carried by a framing error) say so; else undefined.
 */
export function notDrpcError(error: unknown, url: string): IncompatiblePeerError | undefined {
  const first = headerOf(error);
  if (first === undefined) return undefined;
  const like = recognizePeer(first);
  const what = like ? `it looks like ${like}` : "it does not speak drpc";
  return new IncompatiblePeerError(`${url} is not a drpc server: ${what} (its first bytes: ${shown(first)})`, { cause: error, context: { url } });
}

clientSlots.notDrpc = notDrpcError;
