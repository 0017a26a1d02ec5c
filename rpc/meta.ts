/**
 * Call metadata: string keys with string or byte values, sent with a call
 * (drpc: an 8th item of CALL to a server that announced `meta`; zrpc: extra
 * header keys). Handlers read it in `ctx.meta`. See docs/drpc.md.
 * @module
 */
import { TilthError } from "../core/errors.js";

/** Metadata a client sends with its calls: string keys, string or byte values. */
export type Metadata = Record<string, string | Uint8Array>;

/** The most keys one call's metadata may have. */
export const MAX_META_KEYS = 64;
/** The most one call's metadata may take: the lengths of its keys and values together (a string's in characters, bytes' in bytes). */
export const MAX_META_BYTES = 8 * 1024;

/** A call's metadata is malformed or over its limits: the call fails with ERR_BAD_METADATA (the connection goes on). */
export class MetadataError extends TilthError {
  constructor(message: string) {
    super("ERR_BAD_METADATA", message);
  }
}

/**
 * The keys of `meta` that go on the wire (string or byte values; anything
 * else is middleware's own bookkeeping and stays on this side), or
 * undefined when there is none. Throws a MetadataError over the limits.
 */
export function wireMeta(meta: Record<string, unknown> | undefined): Metadata | undefined {
  if (meta === undefined) return undefined;
  let out: Metadata | undefined;
  let n = 0;
  let bytes = 0;
  for (const k in meta) {
    const v = meta[k];
    if (typeof v === "string") bytes += v.length;
    else if (v instanceof Uint8Array) bytes += v.length;
    else continue;
    bytes += k.length;
    if (++n > MAX_META_KEYS) throw new MetadataError(`call metadata has more than ${MAX_META_KEYS} keys`);
    (out ??= {})[k] = v;
  }
  if (bytes > MAX_META_BYTES) throw new MetadataError(`call metadata takes more than ${MAX_META_BYTES} bytes`);
  return out;
}

/** Why metadata from the wire is refused (undefined when it is well-formed and within the limits). */
export function checkMeta(meta: unknown): string | undefined {
  if (typeof meta !== "object" || meta === null || Array.isArray(meta) || meta instanceof Uint8Array) return "call metadata is not a map";
  let n = 0;
  let bytes = 0;
  for (const k in meta) {
    const v = (meta as Record<string, unknown>)[k];
    if (typeof v === "string") bytes += v.length;
    else if (v instanceof Uint8Array) bytes += v.length;
    else return `call metadata key ${JSON.stringify(k.slice(0, 40))} is neither a string nor bytes`;
    bytes += k.length;
    if (++n > MAX_META_KEYS) return `call metadata has more than ${MAX_META_KEYS} keys`;
  }
  if (bytes > MAX_META_BYTES) return `call metadata takes more than ${MAX_META_BYTES} bytes`;
  return undefined;
}
