// CPU profile of a `wrangler dev` Worker while the benchmark loads it: where its isolate's time
// goes (`BENCH_PROFILE=1 bash bench/run.sh`, during the first timed round of the redirect).
//
//   node bench/profile.mjs <inspector port> <seconds> <out.cpuprofile> [bundle.js]
//   node bench/profile.mjs - 0 <saved.cpuprofile> [bundle.js]     (summarize a saved profile)
//
// Connects to the Worker's DevTools endpoint (wrangler's `--inspector-port`), samples with the V8
// profiler (Profiler.start/stop, 100 us interval), writes the profile (open it in Chrome DevTools)
// and prints one JSON line: the share of samples per category (wasm, the JavaScript glue,
// runtime natives such as `send` or `Response`, idle, garbage collection), and the top wasm and
// JavaScript functions by self time. `bundle.js` (wrangler's bundle of `build/index.js`) names a
// glue function by the first characters of its source line.
import { readFileSync, writeFileSync } from "node:fs";
import WebSocket from "ws";

const [port, seconds, out, bundle] = process.argv.slice(2);
if (!port || !seconds || !out) {
  console.error("usage: node bench/profile.mjs <inspector port> <seconds> <out.cpuprofile> [bundle.js]");
  process.exit(2);
}
let profile;
if (port === "-") {
  profile = JSON.parse(readFileSync(out, "utf8")); // summarize a saved profile again
} else {
  profile = await record();
  writeFileSync(out, JSON.stringify(profile));
}

async function record() {
  const targets = await (await fetch(`http://127.0.0.1:${port}/json`)).json();
  // wrangler's inspector proxy refuses connections from origins it does not know.
  const ws = new WebSocket(targets[0].webSocketDebuggerUrl, { headers: { Origin: "https://devtools.devprod.cloudflare.dev" } });
  let next = 0;
  const waiting = new Map();
  const call = (method, params = {}) =>
    new Promise((resolve, reject) => {
      const id = ++next;
      waiting.set(id, { resolve, reject });
      ws.send(JSON.stringify({ id, method, params }));
    });
  ws.on("message", (data) => {
    const m = JSON.parse(data.toString());
    const w = m.id && waiting.get(m.id);
    if (!w) return;
    waiting.delete(m.id);
    m.error ? w.reject(new Error(`${m.error.message}`)) : w.resolve(m.result);
  });
  await new Promise((resolve, reject) => {
    ws.once("open", resolve);
    ws.once("error", reject);
  });
  await call("Profiler.enable");
  await call("Profiler.setSamplingInterval", { interval: 100 });
  await call("Profiler.start");
  await new Promise((r) => setTimeout(r, Number(seconds) * 1000));
  const { profile } = await call("Profiler.stop");
  ws.close();
  return profile;
}

const lines = bundle ? readFileSync(bundle, "utf8").split("\n") : [];
const byId = new Map(profile.nodes.map((n) => [n.id, n]));
const self = new Map();
for (const id of profile.samples) self.set(id, (self.get(id) || 0) + 1);
const total = profile.samples.length;
const categories = {};
const wasm = {};
const js = {};
const add = (o, k, n) => (o[k] = (o[k] || 0) + n);
for (const [id, n] of self) {
  const f = byId.get(id).callFrame;
  const name = f.functionName;
  if (f.url.startsWith("wasm://") || name.startsWith("wasm-function") || name.startsWith("js-to-wasm") || name === "wasm-to-js") {
    const boundary = name === "wasm-to-js" || name.startsWith("js-to-wasm");
    add(categories, boundary ? "wasm boundary (calls between wasm and JavaScript)" : "wasm", n);
    if (!boundary) add(wasm, name, n);
  } else if (f.url.endsWith("index.js")) {
    add(categories, "JavaScript glue (bundle)", n);
    // wasm-bindgen's imports are named by the key before them (`__wbg_cf_...: function(o) {`);
    // other functions by their own text.
    const line = lines[f.lineNumber] || "";
    const keys = line.slice(0, f.columnNumber).match(/__wb(?:g|indgen)_\w+/g);
    const src = keys ? keys[keys.length - 1] : line.slice(f.columnNumber).trim().slice(0, 90);
    add(js, `${name || "(anonymous)"} @${f.lineNumber + 1}: ${src}`, n);
  } else if (["(idle)", "(program)", "(garbage collector)"].includes(name)) {
    add(categories, name, n);
  } else {
    add(categories, `runtime: ${name || "(anonymous)"}`, n);
  }
}
const top = (o, k) =>
  Object.entries(o)
    .sort((a, b) => b[1] - a[1])
    .slice(0, k)
    .map(([name, n]) => ({ name, share: +(n / total).toFixed(4) }));
console.log(JSON.stringify({ samples: total, seconds: +((profile.endTime - profile.startTime) / 1e6).toFixed(1), categories: top(categories, 14), wasm: top(wasm, 8), js: top(js, 8) }));
