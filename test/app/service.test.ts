/**
 * Service lifecycle in virtual time: start in order, stop in reverse order,
 * stop deadlines, start failures and timeouts, failure policies, options
 * from the settings, DI into tasks.
 */
import "reflect-metadata";
import assert from "node:assert/strict";
import { getEventListeners } from "node:events";
import { test } from "node:test";
import { inject, injectable } from "tsyringe";
import { VirtualLoop } from "../../adapters/virtual.js";
import { AppContext, LOOP } from "../../app/App.js";
import { Metrics } from "../../app/Metrics.js";
import { Service, Task, TaskFailedError, defaultTaskName, type TaskOptions } from "../../app/Service.js";
import { Settings } from "../../app/Settings.js";
import { startApp } from "../../app/runtime.js";
import { isTilthError } from "../../core/errors.js";
import type { Loop } from "../../core/Loop.js";
import { sleep } from "../../core/time.js";
import { capture, startService } from "./svc-helpers.js";

/** Events of every Step task, with loop times. */
type Journal = string[];

interface StepOptions extends TaskOptions {
  journal: Journal;
  startMs?: number;
  stopMs?: number;
  /** stop() ignores its cancel signal (never resolves). */
  stuck?: boolean;
  /** stop() honours its cancel signal only. */
  slowStop?: boolean;
  failStart?: boolean;
  /** run() throws this many ms after it started (once). */
  failAfter?: number;
}

class Step extends Task {
  readonly o: StepOptions;
  constructor(ctx: AppContext, o: StepOptions) {
    super(ctx, o);
    this.o = o;
  }
  #say(what: string): void {
    this.o.journal.push(`${this.loop.now()} ${what} ${this.name}`);
  }
  override async start(signal: AbortSignal): Promise<void> {
    this.#say("start");
    if (this.o.startMs) await sleep(this.loop, this.o.startMs, { signal });
    if (this.o.failStart) throw new Error(`${this.name} cannot start`);
  }
  override async run(signal: AbortSignal): Promise<void> {
    if (this.o.failAfter !== undefined) {
      const ms = this.o.failAfter;
      this.o.failAfter = undefined;
      await sleep(this.loop, ms, { signal });
      throw new Error(`${this.name} broke`);
    }
    await new Promise<void>((resolve) => signal.addEventListener("abort", () => resolve(), { once: true }));
  }
  override async stop(cancel: AbortSignal): Promise<void> {
    this.#say("stop");
    if (this.o.stuck) return new Promise<void>(() => {});
    if (this.o.slowStop) await new Promise<void>((resolve) => cancel.addEventListener("abort", () => resolve(), { once: true }));
    if (this.o.stopMs) await sleep(this.loop, this.o.stopMs, { signal: cancel });
  }
}

/** A service of Step tasks built from `specs`. */
function stepService(journal: Journal, specs: Omit<StepOptions, "journal">[], policy: "restart" | "continue" = "restart"): new (ctx: AppContext) => Service {
  return class Steps extends Service {
    static override failurePolicy = policy;
    protected override createTasks(): Task[] {
      return specs.map((s) => new Step(this.ctx, { ...s, journal }));
    }
  };
}

test("tasks start in order and stop in reverse order; stop leaves no timer", async () => {
  const loop = new VirtualLoop();
  const journal: Journal = [];
  const cls = stepService(journal, [{ name: "a", startMs: 10 }, { name: "b", startMs: 20, stopMs: 5 }, { name: "c", stopMs: 7 }]);
  await loop.run(async () => {
    const { handle, svc, out } = await startService(loop, cls);
    assert.equal(loop.now(), 30, "startApp resolves once every task has started");
    assert.deepEqual(svc.health(), { status: "ok", service: "svc", tasks: { a: "running", b: "running", c: "running" } });
    await sleep(loop, 100);
    await handle.stop();
    assert.deepEqual(journal, ["0 start a", "10 start b", "30 start c", "130 stop c", "137 stop b", "142 stop a"]);
    assert.deepEqual(Object.values(svc.health().tasks), ["stopped", "stopped", "stopped"]);
    assert.equal(svc.health().status, "unavailable");
    assert.ok(out.grep(/INFO tilth\.service: started 3 tasks: a, b, c/).length === 1, out.lines.join("\n"));
  });
  assert.equal(loop.pendingTimers, 0);
});

test("a task that does not stop within its deadline is cancelled, logged, and the next one stops on time", async () => {
  const loop = new VirtualLoop();
  const journal: Journal = [];
  const cls = stepService(journal, [{ name: "a" }, { name: "slow", slowStop: true, stopTimeout: 2000 }]);
  await loop.run(async () => {
    const { handle, svc, out } = await startService(loop, cls);
    await sleep(loop, 1000);
    await handle.stop();
    assert.deepEqual(journal, ["0 start a", "0 start slow", "1000 stop slow", "3000 stop a"]);
    assert.equal(out.grep(/WARN slow: did not stop within 2000 ms: cancelled/).length, 1, out.lines.join("\n"));
    assert.equal(svc.metrics.value("tilth_task_cancelled_total", { task: "slow" }), 1);
  });
  assert.equal(loop.pendingTimers, 0);
});

test("a task that ignores its cancellation too is abandoned after cancelGraceMs, with an error logged", async () => {
  const loop = new VirtualLoop();
  const journal: Journal = [];
  const cls = stepService(journal, [{ name: "a" }, { name: "stuck", stuck: true, stopTimeout: 500, cancelGraceMs: 250 }]);
  await loop.run(async () => {
    const { handle, out } = await startService(loop, cls);
    await handle.stop();
    assert.deepEqual(journal, ["0 start a", "0 start stuck", "0 stop stuck", "750 stop a"]);
    assert.equal(out.grep(/ERROR stuck: ignored its cancellation for 250 ms more: abandoned/).length, 1, out.lines.join("\n"));
  });
  assert.equal(loop.pendingTimers, 0);
});

test("a task that cannot start: the started ones stop in reverse order, later ones never start, startApp rejects", async () => {
  const loop = new VirtualLoop();
  const journal: Journal = [];
  const cls = stepService(journal, [{ name: "a" }, { name: "b" }, { name: "bad", failStart: true }, { name: "never" }]);
  const out = capture();
  await loop.run(async () => {
    await assert.rejects(startService(loop, cls, {}, out), (e) => {
      assert.ok(isTilthError(e, "ERR_APP_START"), String(e));
      assert.match((e as Error).message, /task bad cannot start: Error: bad cannot start/);
      return true;
    });
  });
  assert.deepEqual(journal, ["0 start a", "0 start b", "0 start bad", "0 stop bad", "0 stop b", "0 stop a"]);
  assert.equal(loop.pendingTimers, 0);
});

test("a start that hangs fails at its startTimeout", async () => {
  const loop = new VirtualLoop();
  const journal: Journal = [];
  const cls = stepService(journal, [{ name: "a" }, { name: "hang", startMs: 60_000, startTimeout: 3000 }]);
  await loop.run(async () => {
    await assert.rejects(startService(loop, cls), (e) => isTilthError(e, "ERR_APP_START") && /start of task hang timed out after 3000 ms/.test((e as Error).message));
    assert.equal(loop.now(), 3000);
  });
  assert.deepEqual(journal, ["0 start a", "0 start hang", "3000 stop hang", "3000 stop a"]);
  assert.equal(loop.pendingTimers, 0);
});

test("failurePolicy restart: a failing task stops every task and the service restarts after the runloop's backoff", async () => {
  const loop = new VirtualLoop();
  const journal: Journal = [];
  const cls = stepService(journal, [{ name: "a" }, { name: "flaky", failAfter: 500 }, { name: "c" }]);
  await loop.run(async () => {
    const { handle, svc, out } = await startService(loop, cls, {}, capture(), { runloop: { backoffMs: 1000 } });
    await sleep(loop, 2000);
    assert.deepEqual(journal, ["0 start a", "0 start flaky", "0 start c", "500 stop c", "500 stop flaky", "500 stop a", "1500 start a", "1500 start flaky", "1500 start c"]);
    assert.equal(svc.health().status, "ok");
    assert.equal(svc.metrics.value("tilth_task_failures_total", { task: "flaky" }), 1);
    assert.equal(out.grep(/ERROR tilth\.service: task flaky failed: Error: flaky broke; stopping every task, the service restarts/).length, 1, out.lines.join("\n"));
    assert.equal(out.grep(/ERROR tilth\.app: serve\(\) crashed after 500 ms: TaskFailedError \[ERR_TASK_FAILED\]: task flaky failed/).length, 1, out.lines.join("\n"));
    await handle.stop();
  });
  assert.equal(loop.pendingTimers, 0);
});

test("failurePolicy continue (from the settings): only the failed task stops; health says so", async () => {
  const loop = new VirtualLoop();
  const journal: Journal = [];
  const cls = stepService(journal, [{ name: "a" }, { name: "flaky", failAfter: 500 }, { name: "c" }]);
  await loop.run(async () => {
    const { handle, svc, out } = await startService(loop, cls, { failurePolicy: "continue" });
    await sleep(loop, 2000);
    assert.deepEqual(journal, ["0 start a", "0 start flaky", "0 start c", "500 stop flaky"]);
    assert.deepEqual(svc.health(), { status: "unavailable", service: "svc", tasks: { a: "running", flaky: "failed", c: "running" } });
    assert.equal(out.grep(/task flaky failed: Error: flaky broke; stopping it, the others go on/).length, 1);
    await handle.stop();
    assert.deepEqual(journal.slice(4), ["2000 stop c", "2000 stop a"]);
  });
  assert.equal(loop.pendingTimers, 0);
});

test("a run() that returns before the stop is a failure (ERR_TASK_ENDED)", async () => {
  const loop = new VirtualLoop();
  class Quits extends Task {
    override async run(): Promise<void> {
      await sleep(this.loop, 100);
    }
  }
  class Svc extends Service {
    static override tasks = [Quits];
    static override failurePolicy = "continue" as const;
  }
  await loop.run(async () => {
    const { handle, svc, out } = await startService(loop, Svc);
    await sleep(loop, 200);
    assert.equal(svc.task("quits").state, "failed");
    assert.equal(out.grep(/task quits failed: TaskEndedError \[ERR_TASK_ENDED\]/).length, 1, out.lines.join("\n"));
    await handle.stop();
  });
  assert.equal(loop.pendingTimers, 0);
});

test("task options come from the settings under the task's name and are validated", async () => {
  const loop = new VirtualLoop();
  const journal: Journal = [];
  const cls = stepService(journal, [{ name: "a", stopTimeout: 100 }]);
  await loop.run(async () => {
    const { handle, svc } = await startService(loop, cls, { a: { stopTimeout: 1234 } });
    assert.equal(svc.task("a").stopTimeout, 1234, "settings beat code defaults");
    await handle.stop();
  });
  const bad = Settings.from({ apps: { svc: { class: cls, options: { a: { stopTimeout: "soon", stopTimout: 1 } } } } });
  await assert.rejects(startApp("svc", bad, { loop, log: { write: () => {} } }), (e) => {
    assert.ok(isTilthError(e, "ERR_SETTINGS"), String(e));
    const msg = (e as Error).message;
    assert.match(msg, /app "svc": options\.a\.stopTimeout: Invalid input: expected number/);
    assert.match(msg, /app "svc": options\.a: unknown option\(s\) "stopTimout" of task a/);
    return true;
  });
});

test("a bad failurePolicy in the settings is a settings error", async () => {
  const loop = new VirtualLoop();
  const cls = stepService([], [{ name: "a" }]);
  const s = Settings.from({ apps: { svc: { class: cls, options: { failurePolicy: "sometimes" } } } });
  await assert.rejects(startApp("svc", s, { loop, log: { write: () => {} } }), (e) => isTilthError(e, "ERR_SETTINGS") && /options\.failurePolicy: expected "restart" or "continue"/.test((e as Error).message));
});

@injectable()
class Injected extends Task {
  constructor(
    ctx: AppContext,
    @inject(LOOP) readonly injectedLoop: Loop,
    readonly injectedMetrics: Metrics,
  ) {
    super(ctx);
  }
}

class DiService extends Service {
  static override tasks = [Injected];
}

test("task classes are constructed through the app's DI container (loop, metrics, context)", async () => {
  const loop = new VirtualLoop();
  await loop.run(async () => {
    const { handle, svc } = await startService(loop, DiService);
    const t = svc.task(Injected);
    assert.equal(t.name, "injected");
    assert.equal(t.injectedLoop, loop);
    assert.equal(t.injectedMetrics, svc.metrics);
    assert.equal(t.ctx, handle.container.resolve(AppContext));
    assert.equal(handle.container.resolve(Metrics), svc.metrics);
    assert.throws(() => svc.task("nope"), (e) => isTilthError(e, "ERR_NO_TASK") && /tasks: injected/.test((e as Error).message));
    await handle.stop();
  });
});

test("two tasks with one name are refused; default names drop a Task suffix", async () => {
  assert.equal(defaultTaskName("HttpTask"), "http");
  assert.equal(defaultTaskName("DeliverTask"), "deliver");
  assert.equal(defaultTaskName("Tick"), "tick");
  assert.equal(defaultTaskName("Task"), "task");
  const loop = new VirtualLoop();
  const cls = stepService([], [{ name: "x" }, { name: "x" }]);
  await assert.rejects(
    loop.run(() => startService(loop, cls)),
    (e) => /two tasks named "x"/.test((e as Error).message),
  );
});

test("TaskFailedError carries the task and the cause", () => {
  const cause = new Error("x");
  const e = new TaskFailedError("tick", cause);
  assert.equal(e.code, "ERR_TASK_FAILED");
  assert.equal(e.task, "tick");
  assert.equal(e.cause, cause);
  assert.equal(e.retryable, true);
});

test("start/stop cycles leave no abort listener on the signals of a stopped task", async () => {
  const loop = new VirtualLoop();
  const journal: Journal = [];
  // "flaky" fails 500 ms after each start: the service restarts it (and "a") again and again.
  const seen: AbortSignal[] = [];
  class Watched extends Step {
    override async start(signal: AbortSignal): Promise<void> {
      seen.push(this.signal, this.cancelSignal);
      this.o.failAfter ??= this.name === "flaky" ? 500 : undefined;
      await super.start(signal);
    }
  }
  class Svc extends Service {
    protected override createTasks(): Task[] {
      return [new Watched(this.ctx, { name: "a", journal }), new Watched(this.ctx, { name: "flaky", journal, failAfter: 500 })];
    }
  }
  await loop.run(async () => {
    const { handle, svc } = await startService(loop, Svc, {}, capture(), { runloop: { backoffMs: 100, maxBackoffMs: 100 } });
    await sleep(loop, 3000);
    const failures = svc.metrics.value("tilth_task_failures_total", { task: "flaky" }) ?? 0;
    assert.ok(failures >= 4, `${failures} cycles`);
    await handle.stop();
    assert.ok(seen.length >= 16, `${seen.length} signals`);
    const held = seen.map((s) => getEventListeners(s, "abort").length);
    assert.deepEqual(held, seen.map(() => 0), "a stopped task's signals hold no listener");
    assert.equal(getEventListeners(svc.ctx.signal, "abort").length, 0, "the app's signal holds no listener once stopped");
  });
  assert.equal(loop.pendingTimers, 0);
});

test("a run() that ignores its signal is joined on stop, abandoned with a line naming it, and its late end is reported", async () => {
  const loop = new VirtualLoop();
  let ended = -1;
  class Deaf extends Task {
    override async run(): Promise<void> {
      await sleep(this.loop, 10_000); // ignores its signal
      ended = this.loop.now();
      throw new Error("late trouble");
    }
  }
  class Polite extends Task {
    override async run(signal: AbortSignal): Promise<void> {
      await sleep(this.loop, 300).catch(() => undefined); // ignores its signal, but ends within the deadline
      void signal;
    }
  }
  class Svc extends Service {
    protected override createTasks(): Task[] {
      return [new Deaf(this.ctx, { stopTimeout: 500, cancelGraceMs: 250 }), new Polite(this.ctx, { stopTimeout: 500 })];
    }
  }
  await loop.run(async () => {
    const { handle, svc, out } = await startService(loop, Svc);
    await handle.stop();
    assert.equal(loop.now(), 1050, "polite is joined (300 ms), then deaf gets 500 ms to stop and 250 more after its cancellation");
    assert.equal(out.grep(/WARN deaf: did not stop within 500 ms: cancelled/).length, 1, out.lines.join("\n"));
    assert.equal(out.grep(/ERROR deaf: ignored its cancellation for 250 ms more: abandoned \(run\(\) still running; its work may go on\)/).length, 1, out.lines.join("\n"));
    assert.equal(out.grep(/(WARN|ERROR) polite/).length, 0, out.lines.join("\n"));
    assert.deepEqual(svc.health().tasks, { deaf: "stopped", polite: "stopped" });
    await sleep(loop, 10_000);
    assert.equal(ended, 10_000);
    assert.equal(out.grep(/WARN deaf: run\(\) ended 9700 ms after it was asked to stop \(it had been abandoned\): Error: late trouble/).length, 1, out.lines.join("\n"));
  });
  assert.equal(loop.pendingTimers, 0);
});
