/**
 * RxJS time operators on tilth's virtual loop give the same emissions, at the
 * same virtual times, as on RxJS's own TestScheduler. Each row runs its
 * pipeline twice:
 *  (a) inside `TestScheduler.run`, on a marble `cold` source, checked against
 *      the row's expected marbles and recorded;
 *  (b) on `toRxScheduler(new VirtualLoop())`, on a source that schedules the
 *      same parsed marbles on that scheduler, recorded at `loop.now()`;
 * and the two recordings (values, errors and completion, with their times)
 * must be equal.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  Observable,
  type SchedulerLike,
  auditTime,
  bufferTime,
  debounceTime,
  delay,
  interval,
  retry,
  sampleTime,
  take,
  throttleTime,
  timeout,
  timer,
} from "rxjs";
import { TestScheduler } from "rxjs/testing";
import { toRxScheduler } from "../../adapters/rxjs.js";
import { VirtualLoop } from "../../adapters/virtual.js";

type Event = [time: number, kind: "N", value: unknown] | [time: number, kind: "E", error: unknown] | [time: number, kind: "C"];
type Values = Record<string, unknown>;

interface Row {
  name: string;
  /** Marbles of a cold source (omit for creation operators such as interval). */
  source?: string;
  values?: Values;
  error?: unknown;
  pipeline: (source: Observable<unknown>, scheduler: SchedulerLike) => Observable<unknown>;
  expected: string;
  expectedValues?: Values;
  expectedError?: unknown;
}

const abc = { a: "a", b: "b", c: "c", d: "d" };
const nums = { a: 0, b: 1, c: 2, d: 3 };

const rows: Row[] = [
  {
    name: "delay: values and completion shifted",
    source: "-a-b-c|",
    values: abc,
    pipeline: (src, s) => src.pipe(delay(20, s)),
    expected: "21ms a-b-(c|)",
    expectedValues: abc,
  },
  {
    name: "delay: an error is not delayed and drops pending values",
    source: "-a--#",
    values: abc,
    error: "boom",
    pipeline: (src, s) => src.pipe(delay(20, s)),
    expected: "----#",
    expectedError: "boom",
  },
  {
    name: "interval",
    pipeline: (_, s) => interval(10, s).pipe(take(4)),
    expected: "10ms a 9ms b 9ms c 9ms (d|)",
    expectedValues: nums,
  },
  {
    name: "timer: due time and period",
    pipeline: (_, s) => timer(30, 10, s).pipe(take(3)),
    expected: "30ms a 9ms b 9ms (c|)",
    expectedValues: nums,
  },
  {
    name: "timer: one shot",
    pipeline: (_, s) => timer(25, s),
    expected: "25ms (a|)",
    expectedValues: nums,
  },
  {
    name: "timeout: a gap longer than the limit errors at the limit",
    source: "-a 40ms b|",
    values: abc,
    pipeline: (src, s) => src.pipe(timeout({ each: 30, scheduler: s })),
    expected: "-a 29ms #",
    expectedValues: abc,
    expectedError: "TimeoutError: Timeout has occurred",
  },
  {
    name: "timeout: in time, completes as the source does",
    source: "--a--b--|",
    values: abc,
    pipeline: (src, s) => src.pipe(timeout({ each: 30, scheduler: s })),
    expected: "--a--b--|",
    expectedValues: abc,
  },
  {
    name: "debounceTime: the last of a burst, and the pending value on completion",
    source: "-a-bc 20ms d|",
    values: abc,
    pipeline: (src, s) => src.pipe(debounceTime(10, s)),
    expected: "14ms c 11ms (d|)",
    expectedValues: abc,
  },
  {
    name: "debounceTime: an error drops the pending value",
    source: "-a--#",
    values: abc,
    error: "boom",
    pipeline: (src, s) => src.pipe(debounceTime(10, s)),
    expected: "----#",
    expectedError: "boom",
  },
  {
    name: "throttleTime: leading",
    source: "-a-b-c 10ms d|",
    values: abc,
    pipeline: (src, s) => src.pipe(throttleTime(10, s)),
    expected: "-a 14ms d|",
    expectedValues: abc,
  },
  {
    name: "throttleTime: leading and trailing, completion waits for the trailing value",
    source: "-a-b-c 10ms d|",
    values: abc,
    pipeline: (src, s) => src.pipe(throttleTime(10, s, { leading: true, trailing: true })),
    expected: "-a 9ms c 9ms (d|)",
    expectedValues: abc,
  },
  {
    name: "bufferTime: periodic buffers, the open one emitted on completion",
    source: "-a-b-----c--|",
    values: abc,
    pipeline: (src, s) => src.pipe(bufferTime(10, s)),
    expected: "10ms x-(y|)",
    expectedValues: { x: ["a", "b", "c"], y: [] },
  },
  {
    name: "bufferTime: an error drops the open buffer",
    source: "-a--#",
    values: abc,
    error: "boom",
    pipeline: (src, s) => src.pipe(bufferTime(10, s)),
    expected: "----#",
    expectedError: "boom",
  },
  {
    name: "auditTime: the latest value at the end of each window; completion waits",
    source: "-a-b 10ms c|",
    values: abc,
    pipeline: (src, s) => src.pipe(auditTime(10, s)),
    expected: "11ms b 12ms (c|)",
    expectedValues: abc,
  },
  {
    name: "sampleTime: sampled every period, completion not delayed",
    source: "-a-b 10ms c 10ms |",
    values: abc,
    pipeline: (src, s) => src.pipe(sampleTime(10, s)),
    expected: "10ms b 9ms c 4ms |",
    expectedValues: abc,
  },
  {
    name: "retry with a delay: resubscribes after the delay, then gives up with the last error",
    source: "-a-#",
    values: abc,
    error: "boom",
    pipeline: (src, s) => src.pipe(retry({ count: 2, delay: () => timer(10, s) })),
    expected: "-a 12ms a 12ms a-#",
    expectedValues: abc,
    expectedError: "boom",
  },
  {
    name: "retry with a delay: the resubscribed source completes the pipeline",
    source: "-a-#",
    values: abc,
    error: "boom",
    pipeline: (src, s) => src.pipe(take(2), retry({ count: 1, delay: () => timer(5, s) }), take(2)),
    expected: "-a 7ms (a|)",
    expectedValues: abc,
  },
];

/** Errors compared by class name and message (RxJS error objects carry run-specific details). */
function norm(e: unknown): unknown {
  return e instanceof Error ? `${e.name}: ${e.message}` : e;
}

function normMessages(messages: unknown): unknown {
  return (messages as { frame: number; notification: { kind: string; value?: unknown; error?: unknown } }[]).map((m) => ({
    frame: m.frame,
    notification: { ...m.notification, error: norm(m.notification.error) },
  }));
}

function recorder(now: () => number): { events: Event[]; observer: { next: (v: unknown) => void; error: (e: unknown) => void; complete: () => void } } {
  const events: Event[] = [];
  return {
    events,
    observer: {
      next: (v) => events.push([now(), "N", v]),
      error: (e) => events.push([now(), "E", norm(e)]),
      complete: () => events.push([now(), "C"]),
    },
  };
}

interface Message {
  frame: number;
  notification: { kind: "N" | "E" | "C"; value?: unknown; error?: unknown };
}

/** Parse marbles in run mode (1 frame = 1 ms), as `cold()` inside `run()` does. */
function parse(marbles: string, values?: Values, error?: unknown): Message[] {
  const ts = new TestScheduler(() => {});
  return ts.run(() => TestScheduler.parseMarbles(marbles, values, error, false, true) as Message[]);
}

/** A cold Observable of `messages`, each scheduled at its frame on `scheduler`. */
function coldOn(messages: Message[], scheduler: SchedulerLike): Observable<unknown> {
  return new Observable<unknown>((subscriber) => {
    for (const m of messages) {
      subscriber.add(
        scheduler.schedule(() => {
          const n = m.notification;
          if (n.kind === "N") subscriber.next(n.value);
          else if (n.kind === "E") subscriber.error(n.error);
          else subscriber.complete();
        }, m.frame),
      );
    }
  });
}

function onTestScheduler(row: Row): Event[] {
  const ts = new TestScheduler((actual, expected) => assert.deepEqual(normMessages(actual), normMessages(expected)));
  let events: Event[] = [];
  ts.run(({ cold, expectObservable }) => {
    const src = row.source === undefined ? new Observable<unknown>() : cold(row.source, row.values, row.error);
    const out = row.pipeline(src, ts);
    expectObservable(out).toBe(row.expected, row.expectedValues, row.expectedError);
    const rec = recorder(() => ts.now());
    out.subscribe(rec.observer);
    events = rec.events;
  });
  return events;
}

async function onVirtualLoop(row: Row): Promise<Event[]> {
  const loop = new VirtualLoop();
  const s = toRxScheduler(loop);
  const src = row.source === undefined ? new Observable<unknown>() : coldOn(parse(row.source, row.values, row.error), s);
  const rec = recorder(() => loop.now());
  const sub = row.pipeline(src, s).subscribe(rec.observer);
  await loop.runAll();
  assert.ok(sub.closed, "the pipeline ended");
  assert.equal(loop.pendingTimers, 0, "a timer was left pending");
  assert.equal(loop.pendingPosts, 0, "a post was left queued");
  return rec.events;
}

describe("RxJS time operators: TestScheduler marbles vs toRxScheduler(VirtualLoop)", () => {
  for (const row of rows) {
    test(row.name, async () => {
      const expected = onTestScheduler(row);
      assert.ok(expected.length > 0);
      const last = expected.at(-1)!;
      assert.ok(last[1] === "C" || last[1] === "E", "every row ends (completion or error timing is part of the check)");
      const actual = await onVirtualLoop(row);
      assert.deepEqual(actual, expected);
    });
  }

  test("the table covers every operator of the issue, with error and completion timing", () => {
    const names = rows.map((r) => r.name.split(":")[0]!.split(" ")[0]);
    for (const op of ["delay", "interval", "timer", "timeout", "debounceTime", "throttleTime", "bufferTime", "auditTime", "sampleTime", "retry"]) {
      assert.ok(names.includes(op), `no row for ${op}`);
    }
    assert.ok(rows.filter((r) => r.expectedError !== undefined).length >= 4, "error timing rows");
  });
});
