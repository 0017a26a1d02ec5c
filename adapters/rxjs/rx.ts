/**
 * rxjs, an optional peer dependency of tilth: loaded when the RxJS adapter is
 * imported, with ERR_MISSING_PACKAGE naming it when it is not installed.
 * Internal module.
 */
import type * as Rx from "rxjs";
import { importPeer } from "../peers.js";

export const rx: typeof Rx = await importPeer<typeof Rx>("rxjs", "tilth/adapters/rxjs (the RxJS adapter)");
