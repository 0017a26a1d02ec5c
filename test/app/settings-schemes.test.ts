/**
 * URL schemes are checked against the known protocols and transports when
 * the settings load: `drpc+tpc://` fails there, naming the transports and
 * suggesting the near one, instead of when the app binds.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { Settings, SettingsError } from "../../app/Settings.js";
import { PingApp } from "../fixtures/apps/apps.js";

function problems(apps: Record<string, unknown>, extra: Record<string, unknown> = {}): string[] {
  try {
    Settings.from({ apps, ...extra });
    return [];
  } catch (e) {
    assert.ok(e instanceof SettingsError, String(e));
    return e.problems.map((p) => `${p.app ?? ""} ${p.key}: ${p.message}`);
  }
}

test("an unknown transport in a bind or remote URL is a settings problem, with a suggestion", () => {
  const got = problems({
    a: { class: PingApp, bind: "drpc+tpc://127.0.0.1:9990" },
    b: { class: PingApp, remote: "zrpc+icp:///tmp/b.sock" },
    c: { class: PingApp, bind: ["drpc+tcp://127.0.0.1:9991", "drpc+carrier-pigeon://x"] },
  });
  assert.equal(got.length, 3, got.join("\n"));
  assert.match(got[0]!, /^a bind: unknown transport "tpc" in drpc\+tpc:\/\/127\.0\.0\.1:9990 \(did you mean drpc\+tcp:\/\/\?\): the transports are tcp, ipc, tls, inproc, zmq\+tcp, zmq\+ipc/);
  assert.match(got[1]!, /^b remote: unknown transport "icp" .*\(did you mean zrpc\+ipc:\/\/\?\)/);
  assert.match(got[2]!, /^c bind: unknown transport "carrier-pigeon" in drpc\+carrier-pigeon:\/\/x: the transports are/);
  assert.doesNotMatch(got[2]!, /did you mean/);
});

test("known schemes pass; a transport the program registers itself is listed in the settings' transports", () => {
  assert.deepEqual(
    problems({
      a: { class: PingApp, bind: ["drpc+tcp://127.0.0.1:9990", "drpc+ipc:///tmp/a.sock", "drpc+inproc://a", "drpc+tls://127.0.0.1:9992"] },
      z: { class: PingApp, bind: ["zrpc+tcp://127.0.0.1:4242", "zrpc+ipc:///tmp/z.sock"] },
    }),
    [],
  );
  assert.equal(problems({ a: { class: PingApp, bind: "drpc+mem://a" } }).length, 1);
  assert.deepEqual(problems({ a: { class: PingApp, bind: "drpc+mem://a" } }, { transports: ["mem"] }), []);
});

test("an unknown protocol gets a suggestion too", () => {
  const [p] = problems({ a: { class: PingApp, bind: "dprc+tcp://127.0.0.1:9990" } });
  assert.match(p!, /unknown protocol in "dprc\+tcp:\/\/127\.0\.0\.1:9990" \(did you mean drpc\?\)/);
});
