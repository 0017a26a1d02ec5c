/**
 * Where the Node build of the RPC client gets the parts a browser has no use
 * for: the Balancer (several URLs, a service's instances) and in-process
 * calls (`drpc+local://`). `rpc/Balancer.ts` and `rpc/local.ts` fill their
 * slot when loaded (`tilth/rpc` loads both), so the browser entry, which
 * imports neither, stays without them and their weight: a browser client
 * given several URLs fails with ERR_NO_BALANCER.
 * Internal module: not part of the public API.
 */
import type { Balancer } from "../Balancer.js";
import type { checkLocalProtocol, connectLocal } from "../local.js";

export const clientSlots: {
  Balancer?: typeof Balancer;
  local?: { scheme: string; check: typeof checkLocalProtocol; connect: typeof connectLocal };
} = {};
