// The redirect's side of the request and of its answer, one call across the wasm boundary each
// (src/redirect.rs). Reading a header from Rust is a call into JavaScript and a string copied
// and decoded each way; the redirect needs seven values and sets four headers, and those calls
// were most of its time outside the wasm (`make bench`, BENCH_PROFILE=1). Only reads and
// construction live here: every decision stays in Rust.
//
// Values travel as one string, a value per line. No value can hold a line break: the Fetch
// standard refuses header values with CR or LF, a serialized URL has none (the URL parser drops
// them), and `cf` fields are checked here. A missing value is an empty line; the redirect gives
// an empty header the meaning of a missing one.
//
// The user-agent half of the bot filter (core/src/click.rs `classify`) is the npm `isbot`
// package: a maintained list of crawler, preview-fetcher and HTTP-library patterns that leaves
// in-app browsers alone. worker-build's bundler inlines it from node_modules (the version is
// pinned in package.json); V8 runs its regular expression, so the filter adds nothing to the wasm.
import { isbot } from "isbot";

// isbot's verdict per user agent, kept by the isolate: a user agent is a pure function of its
// text to a verdict, and traffic repeats a few thousand browser strings, so a repeat visit skips
// the regular expression (~4% of a redirect's samples under `make bench`). Bounded: past
// VERDICTS_MAX entries the oldest goes (a Map iterates in insertion order).
const VERDICTS_MAX = 2000;
const verdicts = new Map();

function onBotList(ua) {
  let bot = verdicts.get(ua);
  if (bot === undefined) {
    bot = isbot(ua);
    if (verdicts.size >= VERDICTS_MAX) verdicts.delete(verdicts.keys().next().value);
    verdicts.set(ua, bot);
  }
  return bot;
}

// For tests: how many verdicts the isolate holds, and its bound.
export const verdictCache = () => [verdicts.size, VERDICTS_MAX];

const line = (v) => (typeof v === "string" && !v.includes("\n") && !v.includes("\r") ? v : "");

// "method\nurl\nhost": what decides whether this is a redirect and of which link.
export function requestTarget(request) {
  return `${request.method}\n${request.url}\n${line(request.headers.get("host"))}`;
}

// "user-agent\nclient-ip\nreferer\ncountry\nverified-bot\non-bot-list": the visit, read once
// the link is known. verified-bot is Cloudflare's verdict (`cf.botManagement.verifiedBot`,
// only on plans with Bot Management): "1", "0" or empty when there is none. on-bot-list is
// isbot's answer for the trimmed user agent: "1" or "0".
export function requestVisit(request) {
  const h = request.headers;
  const ua = line(h.get("user-agent"));
  const cf = request.cf;
  const verified = cf?.botManagement?.verifiedBot;
  const country = line(cf?.country) || line(h.get("cf-ipcountry"));
  const agent = ua.trim();
  const bot = agent !== "" && onBotList(agent);
  return `${ua}\n${line(h.get("cf-connecting-ip"))}\n${line(h.get("referer"))}\n${country}\n${
    verified === true ? "1" : verified === false ? "0" : ""
  }\n${bot ? "1" : "0"}`;
}

// The redirect's 302. `cookie` is the attribution cookie, or empty for a visit that is not a
// click. Never stored by a cache: each visit gets its own click id.
export function redirectResponse(location, cookie) {
  const headers = {
    location,
    "cache-control": "private, no-store",
    "referrer-policy": "no-referrer-when-downgrade",
  };
  if (cookie) headers["set-cookie"] = cookie;
  return new Response(null, { status: 302, headers });
}
