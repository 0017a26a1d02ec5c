/**
 * The drpc protocol object for servers and clients (see docs/drpc.md).
 * @module
 */
import type { RpcProtocol } from "../protocol.js";
import { registerProtocol } from "../protocols.js";
import { ClientSession } from "./ClientSession.js";
import { ServerSession } from "./ServerSession.js";

export const drpc: RpcProtocol = {
  name: "drpc",
  accept: (server, conn, options) => new ServerSession(server, conn, server.loop, options),
  open: (loop, conn, options) => new ClientSession(loop, conn, options),
};

registerProtocol(drpc);
