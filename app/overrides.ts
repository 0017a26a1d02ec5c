/**
 * Command-line overrides of app options: `tilth run svc --set svc.tick.interval=5000`
 * (or the shorthand `--svc.tick.interval=5000`) sets
 * `apps.svc.options.tick.interval` to 5000 before the settings are
 * validated. The path after the app name is a path inside the app's
 * `options`, case-sensitive; the value is parsed as JSON when it is JSON
 * (`5000`, `true`, `"text"`, `[1,2]`), else taken as a string.
 *
 * Precedence: settings file < environment (`TILTH__…`) < command line.
 * @module
 */
import { SettingsError } from "./Settings.js";

/** One `--set APP.PATH=VALUE`. */
export interface OptionOverride {
  app: string;
  /** Keys inside the app's `options`. */
  path: string[];
  value: unknown;
  /** As written, for messages. */
  text: string;
}

const SPEC = /^([A-Za-z_][\w-]*)\.([^=]+)=([\s\S]*)$/;

/** Whether `spec` has the shape `APP.PATH=VALUE`. */
export function isOverride(spec: string): boolean {
  return SPEC.test(spec);
}

/** Parse `APP.PATH=VALUE`; throws a RangeError for any other shape. */
export function parseOverride(spec: string): OptionOverride {
  const m = SPEC.exec(spec);
  if (m === null) throw new RangeError(`expected APP.OPTION=VALUE (e.g. svc.tick.interval=5000), got "${spec}"`);
  const path = m[2]!.split(".");
  if (path.some((k) => k === "")) throw new RangeError(`empty key in "${spec}"`);
  if (path.some((k) => k === "__proto__" || k === "constructor" || k === "prototype")) throw new RangeError(`forbidden key in "${spec}"`);
  let value: unknown;
  try {
    value = JSON.parse(m[3]!);
  } catch {
    value = m[3]!;
  }
  return { app: m[1]!, path, value, text: spec };
}

/**
 * Apply overrides to settings data (a copy; the input is not changed). An
 * override that names an unknown app, or goes through a value that is not an
 * object, is a SettingsError naming it.
 */
export function applyOverrides(data: unknown, overrides: readonly OptionOverride[], file: string): unknown {
  if (overrides.length === 0 || typeof data !== "object" || data === null) return data;
  const root = { ...(data as Record<string, unknown>) };
  const apps = typeof root.apps === "object" && root.apps !== null ? { ...(root.apps as Record<string, unknown>) } : {};
  root.apps = apps;
  const problems: ConstructorParameters<typeof SettingsError>[0] = [];
  for (const o of overrides) {
    const app = apps[o.app];
    if (typeof app !== "object" || app === null) {
      problems.push({ file, key: `--set ${o.text}`, message: `no app named "${o.app}" (apps: ${Object.keys(apps).join(", ") || "none"})` });
      continue;
    }
    const a = { ...(app as Record<string, unknown>) };
    apps[o.app] = a;
    const options = typeof a.options === "object" && a.options !== null ? { ...(a.options as Record<string, unknown>) } : {};
    a.options = options;
    let at: Record<string, unknown> = options;
    let ok = true;
    for (let i = 0; i < o.path.length - 1; i++) {
      const k = o.path[i]!;
      const next = at[k];
      if (next === undefined) at = at[k] = {};
      else if (typeof next === "object" && next !== null && !Array.isArray(next)) at = at[k] = { ...(next as Record<string, unknown>) };
      else {
        problems.push({ file, app: o.app, key: `options.${o.path.slice(0, i + 1).join(".")}`, message: `--set ${o.text}: this option is ${JSON.stringify(next)}, not an object` });
        ok = false;
        break;
      }
    }
    if (ok) at[o.path[o.path.length - 1]!] = o.value;
  }
  if (problems.length) throw new SettingsError(problems);
  return root;
}
