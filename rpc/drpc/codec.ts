/**
 * drpc wire messages: one msgpack array per transport message (one frame).
 * The layout is written down in docs/drpc.md; keep the two in step.
 * @internal
 */
import { Packr } from "msgpackr";
import { ProtocolError, type RemoteErrorInfo } from "../errors.js";

export const PROTOCOL = "drpc";
/** The wire format's version. A peer with another major version is refused at HELLO. */
export const VERSION = 1;

export const enum T {
  HELLO = 0,
  CALL = 1,
  RESULT = 2,
  ERROR = 3,
  CANCEL = 4,
  ITEM = 5,
  END = 6,
  CREDIT = 7,
  PING = 8,
  GOAWAY = 9,
}

export interface HelloInfo {
  /** Heartbeat interval the sender uses, ms (0: none). */
  heartbeatMs: number;
  /** Largest message the sender accepts, bytes. */
  maxMessageSize: number;
  /** Free-form name for logs. */
  name?: string;
}


export type Msg =
  | [T.HELLO, string, number, HelloInfo]
  /** [CALL, id, method, args, kwargs, deadline ms left or nil, initial stream credit] */
  | [T.CALL, number, string, unknown[], Record<string, unknown> | null, number | null, number]
  | [T.RESULT, number, unknown]
  | [T.ERROR, number, RemoteErrorInfo]
  | [T.CANCEL, number, string]
  | [T.ITEM, number, unknown]
  | [T.END, number]
  | [T.CREDIT, number, number]
  | [T.PING]
  | [T.GOAWAY, string];

const packr = new Packr({ useRecords: false, mapsAsObjects: true, int64AsType: "bigint" } as ConstructorParameters<typeof Packr>[0]);

export function encode(m: Msg): Uint8Array {
  return packr.pack(m);
}

const isId = (x: unknown): x is number => typeof x === "number" && Number.isInteger(x) && x > 0;
const isObj = (x: unknown): x is Record<string, unknown> => typeof x === "object" && x !== null && !Array.isArray(x);

/** Decode and check the shape of one message; throws ProtocolError on anything else. */
export function decode(frame: Uint8Array): Msg {
  let m: unknown;
  try {
    m = packr.unpack(frame);
  } catch (e) {
    throw new ProtocolError(`undecodable message: ${(e as Error).message}`, { cause: e });
  }
  if (!Array.isArray(m) || m.length === 0) throw new ProtocolError("message is not a non-empty array");
  switch (m[0]) {
    case T.CALL:
      if (
        m.length === 7 &&
        isId(m[1]) &&
        typeof m[2] === "string" &&
        Array.isArray(m[3]) &&
        (m[4] === null || isObj(m[4])) &&
        (m[5] === null || (typeof m[5] === "number" && m[5] >= 0)) &&
        Number.isInteger(m[6]) &&
        (m[6] as number) >= 0
      )
        return m as Msg;
      break;
    case T.RESULT:
    case T.ITEM:
      if (m.length === 3 && isId(m[1])) return m as Msg;
      break;
    case T.ERROR:
      if (m.length === 3 && typeof m[1] === "number" && isObj(m[2]) && typeof m[2].message === "string" && typeof m[2].code === "string")
        return m as Msg;
      break;
    case T.CANCEL:
      if (m.length === 3 && isId(m[1]) && typeof m[2] === "string") return m as Msg;
      break;
    case T.END:
      if (m.length === 2 && isId(m[1])) return m as Msg;
      break;
    case T.CREDIT:
      if (m.length === 3 && isId(m[1]) && Number.isInteger(m[2]) && (m[2] as number) > 0) return m as Msg;
      break;
    case T.PING:
      if (m.length === 1) return m as Msg;
      break;
    case T.GOAWAY:
      if (m.length === 2 && typeof m[1] === "string") return m as Msg;
      break;
    case T.HELLO:
      if (m.length === 4 && typeof m[1] === "string" && typeof m[2] === "number" && isObj(m[3])) return m as Msg;
      break;
    default:
      throw new ProtocolError(`unknown message type ${JSON.stringify(m[0])}`);
  }
  throw new ProtocolError(`malformed message of type ${m[0]}`);
}
