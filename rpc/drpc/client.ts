/**
 * drpc for a client only (the browser's): opens client sessions, serves
 * nothing, so the server's call engine stays out of a browser bundle.
 * @module
 */
import { TilthError } from "../../core/errors.js";
import type { RpcProtocol } from "../protocol.js";
import { ClientSession } from "./ClientSession.js";

export const drpcClient: RpcProtocol = {
  name: "drpc",
  accept: () => {
    throw new TilthError("ERR_INVALID_STATE", "this drpc (tilth/browser's) is a client only: serve from Node with tilth/rpc");
  },
  open: (loop, conn, options) => new ClientSession(loop, conn, options),
};
