/**
 * Arguments (and results) checked against zod schemas before a handler runs.
 *
 * A method declares its parameters as a list of schemas, one per position,
 * and optionally its result. The server checks the arguments after binding
 * them (named ones too) and before the middleware and the handler: a call
 * whose arguments do not fit is answered `ERR_BAD_ARGUMENTS`, its message
 * giving the path and message of each problem (`data.issues` lists them). The
 * handler gets the parsed values (zod's defaults and transforms applied). A
 * result that does not fit its schema is answered `ERR_BAD_RESULT` (the
 * handler's bug, logged by nobody: the caller sees it). Introspection reports
 * the JSON Schema of each parameter and of the result, and a typed client
 * infers its argument and result types from the schemas.
 *
 * @example
 * ```ts
 * import { z } from "zod";
 * import { validated } from "tilth/rpc";
 * const api = {
 *   add: validated({ params: [z.number(), z.number()], result: z.number() }, (a, b) => a + b),
 * };
 * ```
 * @module
 */
// Types only: tilth does not load zod. The schemas a user passes carry their
// own parse and toJSONSchema methods, and loading zod in every process that
// uses tilth/rpc cost more than its startup: its heap made V8 run a full
// collection every few dozen ms under large messages (64 KiB echoes fell to a
// third).
import type { z } from "zod";
import { TilthError } from "../core/errors.js";

const VALIDATED = Symbol.for("tilth.rpc.validated");

/** What `validated` declares. */
export interface Schemas<P extends readonly z.ZodType[] = readonly z.ZodType[], R extends z.ZodType = z.ZodType> {
  /** One schema per parameter, in order. An optional parameter: `.optional()` (or `.default(...)`). */
  params: P;
  /** The result's schema (for a stream: each item's). */
  result?: R;
}

type AllInputs<P extends readonly z.ZodType[]> = { -readonly [K in keyof P]: z.input<P[K]> };
/** The argument lists a caller may pass: every parameter, or fewer where the trailing ones accept undefined (optional, with a default). */
type Inputs<P extends readonly z.ZodType[]> = P extends readonly [...infer H extends readonly z.ZodType[], infer L extends z.ZodType]
  ? undefined extends z.input<L>
    ? AllInputs<P> | Inputs<H>
    : AllInputs<P>
  : AllInputs<P>;
type Outputs<P extends readonly z.ZodType[]> = { [K in keyof P]: z.output<P[K]> };

/** The JSON Schemas a validated method reports in introspection (`MethodInfo.schema`). */
export interface MethodSchema {
  params: unknown[];
  result?: unknown;
}

/** What the server keeps of a validated method (not for handlers). */
export interface Validation {
  /** The parsed arguments, or what is wrong with them. */
  args(args: readonly unknown[]): unknown[] | BadArgumentsIssues;
  /** The parsed result; throws ERR_BAD_RESULT. */
  result?: (v: unknown) => unknown;
  schema: MethodSchema;
  /** Positions the caller may leave out (from the end). */
  required: number;
}

/** A failed argument check (the server turns it into ERR_BAD_ARGUMENTS). */
export class BadArgumentsIssues {
  constructor(readonly message: string, readonly issues: { path: (string | number)[]; message: string }[]) {}
}

/** A handler's result did not fit its declared schema: `data.issues` says where. */
export class BadResultError extends TilthError {
  readonly data: unknown;
  constructor(message: string, issues: { path: (string | number)[]; message: string }[]) {
    super("ERR_BAD_RESULT", message);
    this.data = { issues };
  }
}

type Issue = { readonly path: readonly PropertyKey[]; readonly message: string };

function describeIssues(what: string, all: readonly Issue[], names: readonly string[] | undefined): { message: string; issues: { path: (string | number)[]; message: string }[] } {
  const issues = all.slice(0, 20).map((i) => ({ path: i.path.map((p) => (typeof p === "symbol" ? String(p) : p)), message: i.message }));
  const text = issues
    .map((i) => {
      const [first, ...rest] = i.path;
      const head = typeof first === "number" && names?.[first] !== undefined ? names[first] : first === undefined ? "" : String(first);
      const path = [head, ...rest.map((p) => (typeof p === "number" ? `[${p}]` : `.${p}`))].join("");
      // A path may hold a key the caller sent (a record's): cut short.
      return `${path === "" ? what : `${what} ${path.length > 80 ? `${path.slice(0, 80)}…` : path}`}: ${i.message.length > 200 ? `${i.message.slice(0, 200)}…` : i.message}`;
    })
    .join("; ");
  return { message: text + (all.length > 20 ? `; and ${all.length - 20} more` : ""), issues };
}

function jsonSchema(s: z.ZodType): unknown {
  try {
    const { $schema: _s, ...rest } = s.toJSONSchema({ unrepresentable: "any", io: "input" }) as Record<string, unknown>;
    return rest;
  } catch {
    return {};
  }
}

/**
 * Declare a method's parameters (and result) with zod schemas: the server
 * checks them (see the module's doc). Returns `fn`, typed from the schemas:
 * callers pass the schemas' input types, the handler gets their outputs.
 */
export function validated<const P extends readonly z.ZodType[], R extends z.ZodType = z.ZodUnknown>(
  schemas: Schemas<P, R>,
  fn: (...args: Outputs<P>) => z.input<R> | Promise<z.input<R>>,
): (...args: Inputs<P>) => Promise<z.output<R>> {
  const params = schemas.params;
  let required = schemas.params.length;
  while (required > 0 && schemas.params[required - 1]!.safeParse(undefined).success) required--;
  const result = schemas.result;
  const v: Validation = {
    args(args) {
      if (args.length > schemas.params.length) return new BadArgumentsIssues(`takes at most ${schemas.params.length} argument(s), got ${args.length}`, []);
      // Left-out optional parameters are checked as undefined.
      const full = args.length === schemas.params.length ? args : [...args, ...Array<undefined>(schemas.params.length - args.length).fill(undefined)];
      // Each parameter by its own schema, as a tuple of them would: an issue's path starts with the position.
      const out = new Array<unknown>(full.length);
      let issues: Issue[] | undefined;
      for (let i = 0; i < full.length; i++) {
        const r = params[i]!.safeParse(full[i]);
        if (r.success) out[i] = r.data;
        else for (const issue of r.error.issues) (issues ??= []).push({ path: [i, ...issue.path], message: issue.message });
      }
      if (issues === undefined) return out;
      const d = describeIssues("argument", issues, undefined);
      return new BadArgumentsIssues(d.message, d.issues);
    },
    schema: { params: schemas.params.map(jsonSchema), ...(result === undefined ? {} : { result: jsonSchema(result) }) },
    required,
  };
  if (result !== undefined) {
    v.result = (value) => {
      const r = result.safeParse(value);
      if (r.success) return r.data;
      const d = describeIssues("result", r.error.issues, undefined);
      throw new BadResultError(d.message, d.issues);
    };
  }
  (fn as unknown as Record<symbol, unknown>)[VALIDATED] = v;
  return fn as unknown as (...args: Inputs<P>) => Promise<z.output<R>>;
}

/** The validation `validated` attached to `fn`, if any (for the server). */
export function validationOf(fn: Function): Validation | undefined {
  return (fn as unknown as Record<symbol, Validation | undefined>)[VALIDATED];
}
