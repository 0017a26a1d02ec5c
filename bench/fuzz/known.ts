/**
 * Known issues a fuzz target can find (open in the issue tracker when this
 * tool was written). A finding that matches one is labelled with its id; it
 * still fails the run unless `--allow-known` names it (or is given with no
 * list), in which case it is counted and the run goes on.
 */
export const KNOWN: Record<string, string> = {
  "hello-heartbeat": "a HELLO with heartbeatMs 0, not a number or above the server's own turns off the server's idle detection for that connection",
  "ping-before-hello": "a PING is accepted before HELLO (the docs say HELLO comes first)",
  "header-alloc": "the frame decoder allocates the length a header announces before the bytes arrive",
  "huge-bigint": "a huge BigInt decodes, and encoding it back throws a RangeError whose message is the whole number",
  // Also in issue 15 (items 5 and 7), found by the checks of the msgpack target and of the process's warnings:
  "ext-types": "msgpackr's extensions (RegExp, Error, Set, typed arrays, …) decode into values that reach handlers",
  // Found by this tool (issue 15, item 5 asks for it: "error messages never embed a stringified value beyond a short excerpt"):
  "error-echoes-input": "an error message repeats a long piece of the request whole (an unknown method's or argument's name, a value as JSON or as a string)",
  "timer-overflow": "a call's deadline above 2^31-1 ms reaches setTimeout unclamped (TimeoutOverflowWarning; the loop wakes every 1 ms)",
};

/** `--allow-known` as parsed: every known id, or the ones listed. */
export type AllowKnown = "all" | ReadonlySet<string> | undefined;

export function isAllowed(allow: AllowKnown, id: string | undefined): boolean {
  if (id === undefined || allow === undefined) return false;
  return allow === "all" || allow.has(id);
}

/** Parse `--allow-known` [list]: undefined for none, "all" for every id; unknown ids are refused. */
export function parseAllowKnown(list: string | undefined): AllowKnown {
  if (list === undefined || list === "" || list === "all") return "all";
  const ids = list.split(",").map((s) => s.trim()).filter(Boolean);
  for (const id of ids) if (!(id in KNOWN)) throw new Error(`--allow-known: no known issue "${id}" (known: ${Object.keys(KNOWN).join(", ")})`);
  return new Set(ids);
}
