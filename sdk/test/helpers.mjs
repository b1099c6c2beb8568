// Shared helpers of the SDK tests: they run against a live Refport (`wrangler dev`) whose URL and
// admin key come from REFPORT_BASE_URL and REFPORT_ADMIN_KEY. Every test builds its own program.
import http from "node:http";
import { randomBytes } from "node:crypto";
import { Refport } from "../dist/index.js";

export const BASE_URL = process.env.REFPORT_BASE_URL;
export const ADMIN_KEY = process.env.REFPORT_ADMIN_KEY;
if (!BASE_URL || !ADMIN_KEY) {
  throw new Error("set REFPORT_BASE_URL and REFPORT_ADMIN_KEY (tests/test_sdk.py does) to run the SDK tests");
}

export const BROWSER_UA =
  "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0 Safari/537.36";

export function uid(prefix = "t") {
  return `${prefix}-${randomBytes(6).toString("hex")}`;
}

/** A client with the admin key; fast backoff so retry tests stay quick. */
export function client(overrides = {}) {
  return new Refport({
    apiKey: ADMIN_KEY,
    baseUrl: BASE_URL,
    timeoutMs: 15_000,
    retry: { maxRetries: 2, baseDelayMs: 20, maxDelayMs: 100 },
    ...overrides,
  });
}

export async function newProgram(rp, overrides = {}) {
  const tag = randomBytes(5).toString("hex");
  return rp.programs.create({
    name: `SDK ${tag}`,
    domains: [`go.${tag}.test`],
    allowed_hosts: [`${tag}.test`],
    cookie_domain: `${tag}.test`,
    payout_currency: "usd",
    min_payout: 1000,
    payout_schedule: { every: "day" },
    hold_days: 0,
    rewards: {
      lead: { type: "flat", amount: 500 },
      sale: { type: "percentage", amount: 2000, duration_months: 12 },
    },
    ...overrides,
  });
}

/** A program, an active partner and a link. */
export async function setup(rp, overrides = {}) {
  const program = await newProgram(rp, overrides);
  const partner = await rp.partners.create(program.id, { email: `${uid("pn")}@partners.test`, name: "Jane Partner" });
  const link = await rp.links.create(partner.id, { url: `https://${program.allowed_hosts[0]}/pricing` });
  return { program, partner, link };
}

/** Clicks a link like a browser (Host = the branded domain): answers the click id. */
export function clickLink(link) {
  const u = new URL(BASE_URL);
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: u.hostname, port: u.port, path: `/${link.key}`, method: "GET", headers: { Host: link.domain, "User-Agent": BROWSER_UA } },
      (res) => {
        res.resume();
        const loc = res.headers.location ?? "";
        const m = /refport_id=(clk_[0-9A-Za-z]+)/.exec(loc);
        if (res.statusCode !== 302 || !m) reject(new Error(`click answered ${res.statusCode} ${loc}`));
        else resolve(m[1]);
      },
    );
    req.on("error", reject);
    req.end();
  });
}

/** Clicks and waits until the click is recorded (it is written after the redirect). */
export async function recordedClick(rp, link) {
  const id = await clickLink(link);
  for (let i = 0; i < 100; i++) {
    const page = await rp.clicks.list({ link_id: link.id, limit: 100 });
    if (page.data.some((c) => c.id === id)) return id;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`click ${id} was not recorded`);
}

/** An attributed customer (lead through a real click). */
export async function attributedCustomer(rp, link) {
  const click_id = await recordedClick(rp, link);
  const customer_external_id = uid("cust");
  const lead = await rp.track.lead({ click_id, customer_external_id, customer_email: `${customer_external_id}@customers.test` });
  return { click_id, customer_external_id, lead };
}

/**
 * A local HTTP server for a test: `handler(req, body, res)`; answers `{url, close, requests}`.
 */
export async function localServer(handler) {
  const requests = [];
  const sockets = new Set();
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
      const body = Buffer.concat(chunks);
      requests.push({ method: req.method, url: req.url, headers: req.headers, body });
      Promise.resolve(handler(req, body, res, requests.length)).catch((e) => {
        res.statusCode = 500;
        res.end(String(e));
      });
    });
  });
  server.on("connection", (s) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  const { port } = server.address();
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    close: () =>
      new Promise((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

/** Forwards a request received by a local server to the real API; answers the upstream body. */
export async function forward(req, body, res) {
  const headers = { ...req.headers };
  delete headers.host;
  delete headers["content-length"];
  const up = await fetch(BASE_URL + req.url, {
    method: req.method,
    headers,
    body: req.method === "GET" || req.method === "HEAD" ? undefined : body,
  });
  const text = await up.text();
  res.writeHead(up.status, { "content-type": up.headers.get("content-type") ?? "application/json" });
  res.end(text);
  return { status: up.status, text };
}

export async function waitFor(fn, { timeoutMs = 10_000, intervalMs = 100 } = {}) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error("waitFor: timed out");
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
