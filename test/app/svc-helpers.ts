/** Helpers for the service and task tests. */
import type { Loop } from "../../core/Loop.js";
import { Settings } from "../../app/Settings.js";
import { startApp, type AppHandle, type StartOptions } from "../../app/runtime.js";
import type { Service } from "../../app/Service.js";

export interface Captured {
  lines: string[];
  write: (line: string) => void;
  /** Lines matching `re`. */
  grep(re: RegExp): string[];
}

export function capture(): Captured {
  const lines: string[] = [];
  return { lines, write: (l) => lines.push(l), grep: (re) => lines.filter((l) => re.test(l)) };
}

/** Start service class `cls` as app "svc" with `options`, logging into `out`. */
export async function startService<S extends Service>(
  loop: Loop,
  cls: new (...a: never[]) => S,
  options: Record<string, unknown> = {},
  out: Captured = capture(),
  extra: Partial<StartOptions> = {},
): Promise<{ handle: AppHandle; svc: S; out: Captured }> {
  const settings = Settings.from({ apps: { svc: { class: cls, options } } });
  const handle = await startApp("svc", settings, { loop, log: { write: out.write, color: false, level: "debug" }, ...extra });
  return { handle, svc: handle.app as S, out };
}
