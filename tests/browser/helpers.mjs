// Shared helpers for the browser tests: environment, Chromium, the JSON API, the email sink,
// a "merchant" host page on another origin, screenshots.
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";
import fs from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { test } from "node:test";

function need(name) {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set (run through tests/test_browser.py)`);
  return v;
}

export const env = {
  base: need("BASE_URL").replace(/\/$/, ""),
  adminKey: need("ADMIN_KEY"),
  stripe: need("STRIPE_BASE").replace(/\/$/, ""),
  webhookSecret: need("WEBHOOK_SECRET"),
  emails: need("EMAILS_URL"),
  artifacts: process.env.ARTIFACTS_DIR || path.resolve(import.meta.dirname, "..", "artifacts", "browser"),
  chromium: process.env.CHROMIUM || "/usr/bin/chromium",
};
env.port = new URL(env.base).port;
fs.mkdirSync(env.artifacts, { recursive: true });

/** A desktop Chrome user agent: HeadlessChrome's own is (rightly) counted as a bot by the redirect. */
export const UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.0.0 Safari/537.36";

export async function launch() {
  // Playwright gives every launch a fresh temporary --user-data-dir.
  return chromium.launch({
    executablePath: env.chromium,
    headless: true,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      // Branded link domains (go.<tag>.test) resolve to the local Worker, like a Custom Domain.
      "--host-resolver-rules=MAP *.test 127.0.0.1",
    ],
  });
}

export async function newContext(browser, opts = {}) {
  const ctx = await browser.newContext({ userAgent: UA, viewport: { width: 1280, height: 900 }, locale: "en-US", timezoneId: "UTC", ...opts });
  ctx.setDefaultTimeout(15_000);
  return ctx;
}

/** Calls the Worker's API; `key` null = no Authorization header. */
export async function api(method, p, body, key = env.adminKey) {
  const headers = { accept: "application/json" };
  if (key) headers.authorization = `Bearer ${key}`;
  if (body !== undefined) headers["content-type"] = "application/json";
  const res = await fetch(env.base + p, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  let json = null;
  try {
    json = JSON.parse(text);
  } catch {
    json = text;
  }
  return { status: res.status, json };
}

export async function apiOk(method, p, body, key) {
  const r = await api(method, p, body, key);
  if (r.status < 200 || r.status > 299) throw new Error(`${method} ${p} -> ${r.status} ${JSON.stringify(r.json)}`);
  return r.json;
}

export async function stripeControl(method, p, body) {
  const res = await fetch(`${env.stripe}/_control/${p}`, { method, headers: { "content-type": "application/json" }, body: body === undefined ? undefined : JSON.stringify(body) });
  if (!res.ok) throw new Error(`stripe control ${p} -> ${res.status} ${await res.text()}`);
  return res.json();
}

/** Signs Stripe's latest account.updated event for `account` and delivers it to the Worker. */
export async function deliverAccountUpdated(account) {
  const state = await stripeControl("GET", "state");
  const evt = state.events.filter((e) => e.type === "account.updated" && e.data.object.id === account).at(-1);
  if (!evt) throw new Error(`no account.updated event for ${account}`);
  const signed = await stripeControl("POST", "sign", { payload: JSON.stringify(evt), secret: env.webhookSecret });
  const res = await fetch(`${env.base}/api/v1/webhooks/stripe`, { method: "POST", headers: { "content-type": "application/json", "stripe-signature": signed.header }, body: signed.payload });
  return { status: res.status, json: await res.json() };
}

/** Polls the email sink until a message to `to` arrives. */
export async function waitForEmail(to, timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const all = await (await fetch(env.emails)).json();
    const mine = all.filter((m) => m.to === to);
    if (mine.length) return mine.at(-1);
    if (Date.now() > deadline) throw new Error(`no email to ${to}; sink has ${all.length} messages`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

export async function until(fn, what, timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** A tiny "merchant" site on 127.0.0.1:<random port>: `page(req)` returns the HTML. */
export async function merchantSite(page) {
  const server = http.createServer(async (req, res) => {
    try {
      const html = await page(req);
      res.writeHead(200, { "content-type": "text/html; charset=utf-8", "cache-control": "no-store" });
      res.end(html);
    } catch (e) {
      res.writeHead(500, { "content-type": "text/plain" });
      res.end(String(e?.stack ?? e));
    }
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  const { port } = server.address();
  return { port, url: `http://127.0.0.1:${port}/`, close: () => new Promise((r) => server.close(r)) };
}

export function escapeHtml(s) {
  return String(s).replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]);
}

export async function shot(page, name) {
  const file = path.join(env.artifacts, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  return file;
}

/** Every form control on the page has an accessible label. */
export async function unlabelledControls(frame) {
  return frame.evaluate(() =>
    [...document.querySelectorAll("input:not([type=hidden]), select, textarea, button")]
      .filter((el) => !el.closest("[hidden]"))
      .filter((el) => {
        if (el.getAttribute("aria-label") || el.getAttribute("aria-labelledby")) return false;
        if (el.tagName === "BUTTON") return !el.textContent.trim();
        return !(el.labels && el.labels.length);
      })
      .map((el) => el.outerHTML.slice(0, 120)),
  );
}

const AXE = fs.readFileSync(path.join(path.dirname(fileURLToPath(import.meta.url)), "../../node_modules/axe-core/axe.min.js"), "utf8");

/** axe-core's WCAG 2.x A/AA rules on a page or frame: answers the serious and critical
 * violations, each as "rule-id: help (selectors)" so a failure names what to fix. */
export async function axeViolations(frame) {
  // Evaluated through the DevTools protocol: the pages' CSP (script-src 'self') does not apply.
  if (!(await frame.evaluate(() => typeof window.axe === "object"))) await frame.evaluate(AXE);
  const found = await frame.evaluate(async () => {
    const r = await window.axe.run(document, { runOnly: { type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"] }, resultTypes: ["violations"] });
    return r.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map((n) => n.target.join(" ")).slice(0, 5) }));
  });
  return found.filter((v) => v.impact === "serious" || v.impact === "critical").map((v) => `${v.id} (${v.impact}): ${v.help} — ${v.nodes.join(", ")}`);
}

/** Fails with the page's serious and critical axe-core violations, if any. */
export async function assertAccessible(frame, name) {
  const v = await axeViolations(frame);
  if (v.length && frame.screenshot) await shot(frame, `axe-${name}`);
  if (v.length) throw new Error(`${name}: serious or critical accessibility violations:\n${v.join("\n")}`);
}

export const tag = () => Math.random().toString(36).slice(2, 10);
export const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), "refport-browser-"));

/** The steps of one story, run in order: after a failure the rest are skipped and each page of
 * `pages()` ([who, page] pairs) is screenshotted as FAILED-<who>-<step>. */
export function steps(pages) {
  let failed = false;
  return (name, fn) =>
    test(name, { timeout: 90_000 }, async (t) => {
      if (failed) return t.skip("an earlier step failed");
      try {
        await fn(t);
      } catch (e) {
        failed = true;
        for (const [who, p] of pages()) if (p && !p.isClosed()) await shot(p, `FAILED-${who}-${name.replace(/\W+/g, "-").slice(0, 40)}`).catch(() => {});
        throw e;
      }
    });
}

export async function assertText(locator, re) {
  await until(async () => re.test((await locator.textContent()) ?? ""), `${re} in ${locator}`);
}

/** A visitor's click on the link's branded domain (Host header: node's fetch cannot set it);
 * answers the click id the redirect hands to the merchant's page. */
export function clickId(link) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: "127.0.0.1", port: env.port, path: `/${link.key}`, headers: { host: link.domain, "user-agent": UA } }, (res) => {
      res.resume();
      const id = /refport_id=(clk_[0-9A-Za-z]+)/.exec(res.headers.location ?? "")?.[1];
      if (res.statusCode === 302 && id) resolve(id);
      else reject(new Error(`click on ${link.short_url}: ${res.statusCode} ${res.headers.location}`));
    });
    req.on("error", reject);
    req.end();
  });
}
