/**
 * Where the Node build of the RPC client gets the parts a browser has no use
 * for: the Balancer (several URLs, a service's instances) and in-process
 * calls (`drpc+local://`), and the guess at what a peer that is not a drpc
 * server is (over tcp it may be anything; a browser reaches only WebSocket
 * servers). `rpc/Balancer.ts`, `rpc/local.ts` and `rpc/drpc/sniff.ts` fill
 * their slot when loaded (`tilth/rpc` loads them), so the browser entry,
 * which imports none, stays without them and their weight: a browser client
 * given several URLs fails with ERR_NO_BALANCER.
 * Internal module: not part of the public API.
 */
import type { Balancer } from "../Balancer.js";
import type { checkLocalProtocol, connectLocal } from "../local.js";
import type { notDrpcError } from "../drpc/sniff.js";

export const clientSlots: {
  Balancer?: typeof Balancer;
  local?: { scheme: string; check: typeof checkLocalProtocol; connect: typeof connectLocal };
  notDrpc?: typeof notDrpcError;
} = {};
