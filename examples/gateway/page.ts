/** The gateway's page: lists topics, subscribes (a server stream), shows messages live, calls a method. */
export function page(rpcPath: string): string {
  return `<!doctype html>
<html><head><meta charset="utf-8"><title>tilth gateway</title>
<style>
body { font: 14px system-ui, sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.3em; } #status { font-weight: bold; }
ul#messages { font-family: monospace; max-height: 18em; overflow: auto; border: 1px solid #ccc; padding: .5em 1.5em; }
button { margin-right: .5em; }
</style></head>
<body>
<h1>tilth gateway: ZeroMQ and ZeroRPC events to the browser</h1>
<p>Status: <span id="status">connecting</span></p>
<p>Topics: <span id="topics">-</span> <button id="refresh">Refresh topics</button></p>
<p><input id="prefix" value="" placeholder="topic prefix"> <button id="subscribe">Subscribe</button><button id="unsubscribe">Unsubscribe</button> <span id="subscribed">not subscribed</span></p>
<p><button id="call">Call time()</button> <span id="result">-</span></p>
<ul id="messages"></ul>
<script type="module">
import { connect } from "/tilth-browser.js";
const $ = (id) => document.getElementById(id);
const url = "drpc+ws://" + location.host + ${JSON.stringify(rpcPath)};
let api, stream, wanted = false;
window.gateway = { received: 0 };
async function start() {
  api = await connect(url, { timeout: 5000, waitForReady: true, heartbeatMs: 1000 });
  $("status").textContent = "connected";
}
async function refresh() { $("topics").textContent = (await api.topics()).join(", ") || "-"; }
async function subscribe() {
  wanted = true;
  while (wanted) {
    stream = api.subscribe($("prefix").value);
    $("subscribed").textContent = "subscribed";
    try {
      for await (const m of stream) {
        const li = document.createElement("li");
        li.textContent = m.topic + ": " + m.text + (m.dropped ? " (" + m.dropped + " dropped before)" : "");
        $("messages").prepend(li);
        window.gateway.received++;
        window.gateway.lastText = m.text;
        window.gateway.lastAt = Date.now();
      }
    } catch (e) {
      if (!wanted) break;
      $("status").textContent = "reconnecting (" + (e.code || e.message) + ")";
      await new Promise((r) => setTimeout(r, 200));
      continue;
    }
  }
  $("subscribed").textContent = "not subscribed";
}
$("subscribe").onclick = () => void subscribe();
$("unsubscribe").onclick = () => { wanted = false; stream?.cancel(); };
$("refresh").onclick = () => void refresh();
$("call").onclick = async () => {
  try { $("result").textContent = "time() = " + new Date(await api.time()).toISOString(); $("status").textContent = "connected"; }
  catch (e) { $("result").textContent = "error: " + (e.code || e.message); }
};
start().catch((e) => ($("status").textContent = "failed: " + e.message));
</script>
</body></html>`;
}
