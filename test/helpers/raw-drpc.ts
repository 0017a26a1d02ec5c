/**
 * A raw drpc connection for tests that play a peer by hand: the decoded
 * messages it receives, one at a time.
 */
import type { Connection } from "../../core/Transport.js";
import { decode } from "../../rpc/drpc/codec.js";

/** Start reading `conn`; the function returned resolves with the next decoded message. */
export function drpcMessages(conn: Connection): () => Promise<unknown> {
  const got: unknown[] = [];
  let wake: (() => void) | undefined;
  conn.start({
    message: (m) => {
      got.push(decode(m[0]!));
      wake?.();
    },
    end() {
      wake?.();
    },
  });
  return async () => {
    while (got.length === 0) await new Promise<void>((r) => (wake = r));
    return got.shift();
  };
}
