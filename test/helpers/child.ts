/** Watching a child process in a test: its output so far, its exit, and waiting for a line of it. */
import type { ChildProcessWithoutNullStreams, ChildProcessByStdio } from "node:child_process";
import type { Readable } from "node:stream";

type Child = ChildProcessWithoutNullStreams | ChildProcessByStdio<null, Readable, Readable>;

export interface Watched {
  /** Everything it wrote so far, stdout and stderr together. */
  output(): string;
  /** Its exit code. */
  exited: Promise<number | null>;
  /** Wait (up to 30 s) until its output matches `re`. */
  waitFor(re: RegExp): Promise<RegExpExecArray>;
}

export function watch(child: Child): Watched {
  let out = "";
  const waiters: (() => void)[] = [];
  const feed = (c: Buffer): void => {
    out += String(c);
    for (const w of waiters.splice(0)) w();
  };
  child.stdout.on("data", feed);
  child.stderr.on("data", feed);
  const exited = new Promise<number | null>((r) => child.on("exit", (code) => r(code)));
  const waitFor = async (re: RegExp): Promise<RegExpExecArray> => {
    for (let i = 0; i < 300; i++) {
      const m = re.exec(out);
      if (m) return m;
      await new Promise<void>((r) => {
        waiters.push(r);
        setTimeout(r, 100);
      });
    }
    throw new Error(`timed out waiting for ${re} in:\n${out}`);
  };
  return { output: () => out, exited, waitFor };
}
