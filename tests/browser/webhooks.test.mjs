// Outgoing webhooks as a merchant manages them on the Integrations page: add an endpoint (its
// URL, the events to send) and copy its signing secret, shown once; a lead is tracked while the
// merchant's server answers 500, the endpoint's deliveries show it pending with the answer; the
// server is fixed and "Resend" delivers it (same event, signed with the secret); the endpoint is
// deleted. Then the portal framed by the merchant's local app on http://localhost.
import { after, before } from "node:test";
import assert from "node:assert/strict";
import crypto from "node:crypto";
import http from "node:http";
import { apiOk, assertText, clickId, env, escapeHtml, launch, newContext, shot, steps, tag, unlabelledControls, until, assertAccessible } from "./helpers.mjs";

const T = tag();
const S = { received: [], answer: 500 }; // state shared by the steps, in order
let browser, dash, receiver, localApp;

const step = steps(() => [["webhooks", dash]]);

/** The merchant's webhook receiver on 127.0.0.1: records every POST, answers `S.answer`. */
async function startReceiver() {
  const server = http.createServer((req, res) => {
    let body = "";
    req.on("data", (c) => (body += c));
    req.on("end", () => {
      S.received.push({ headers: req.headers, body, answered: S.answer });
      res.writeHead(S.answer, { "content-type": "text/plain" });
      res.end(S.answer === 200 ? "ok" : "down");
    });
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  return { url: `http://127.0.0.1:${server.address().port}/refport-hooks-${T}`, close: () => new Promise((r) => server.close(r)) };
}

/** A page server on `localhost:<port>` (3000 when free): the merchant's app in development. */
async function startLocalApp(page) {
  const server = http.createServer(async (req, res) => {
    res.writeHead(200, { "content-type": "text/html; charset=utf-8", "cache-control": "no-store" });
    res.end(await page(req));
  });
  const listen = (port) => new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, "127.0.0.1", () => resolve(server.address().port));
  });
  const port = await listen(3000).catch(() => listen(0));
  return { port, url: `http://localhost:${port}/`, close: () => new Promise((r) => server.close(r)) };
}

function verify(secret, d) {
  const m = /^t=(\d+),v1=([0-9a-f]{64})$/.exec(d.headers["refport-signature"] ?? "");
  if (!m) return false;
  const mac = crypto.createHmac("sha256", secret).update(`${m[1]}.${d.body}`).digest("hex");
  return mac === m[2];
}

before(async () => {
  browser = await launch();
  const ctx = await newContext(browser);
  await ctx.grantPermissions(["clipboard-read", "clipboard-write"]);
  dash = await ctx.newPage();
  S.consoleErrors = [];
  dash.on("console", (m) => m.type() === "error" && S.consoleErrors.push(`${m.text()} ${m.location().url}`));
  dash.on("pageerror", (e) => S.consoleErrors.push(String(e)));
  receiver = await startReceiver();
  S.program = await apiOk("POST", "/api/v1/programs", {
    name: `Hooks ${T}`, domains: [`go.hooks${T}.test`], allowed_hosts: [`hooks${T}.test`, "localhost"], payout_currency: "usd",
    rewards: { lead: { type: "flat", amount: 500 } },
  });
  S.partner = await apiOk("POST", `/api/v1/programs/${S.program.id}/partners`, { email: `ann-${T}@partners.test`, name: "Ann" });
  S.link = await apiOk("POST", `/api/v1/partners/${S.partner.id}/links`, { url: `https://hooks${T}.test/` });
});
after(async () => {
  if (S.endpoint && !S.deleted) await fetch(`${env.base}/api/v1/webhooks/${S.endpoint}`, { method: "DELETE", headers: { authorization: `Bearer ${env.adminKey}` } });
  await receiver?.close();
  await localApp?.close();
  await browser?.close();
});

step("Integrations: add an endpoint with its events; the signing secret is shown once", async () => {
  await dash.goto(`${env.base}/dashboard/#/integrations`);
  await dash.getByLabel("API key").fill(env.adminKey);
  await dash.getByRole("button", { name: "Sign in" }).click();
  await dash.getByRole("heading", { name: "Integrations", level: 1 }).waitFor();
  const card = dash.locator("#webhooks-card");
  await card.getByRole("heading", { name: "Webhooks", level: 2 }).waitFor();

  // nothing filled in: both problems said next to their fields
  await card.getByRole("button", { name: "Add endpoint" }).click();
  await assertText(card.locator("#webhook-form .alert.error"), /Enter the URL of your endpoint\.[\s\S]*Choose at least one event\./);
  // a plain-http public URL: the server's 422 shows at the URL field
  await dash.getByLabel("Endpoint URL", { exact: true }).fill("http://hooks.example.com/x");
  await dash.getByRole("checkbox", { name: /lead\.created/ }).check();
  await card.getByRole("button", { name: "Add endpoint" }).click();
  await assertText(card.locator('[data-field="url"] .err'), /https/);
  assert.equal(await dash.getByLabel("Endpoint URL", { exact: true }).getAttribute("aria-invalid"), "true");

  await dash.getByLabel("Endpoint URL", { exact: true }).fill(receiver.url);
  await dash.getByLabel("Description (optional)", { exact: true }).fill(`Ledger ${T}`);
  await dash.getByRole("checkbox", { name: /sale\.created/ }).check();
  assert.equal(await dash.getByRole("checkbox").count(), 12, "every event can be chosen");
  assert.deepEqual(await unlabelledControls(dash), []);
  await shot(dash, "webhooks-01-add-endpoint");
  await card.getByRole("button", { name: "Add endpoint" }).click();

  const secret = dash.getByLabel("Signing secret", { exact: true });
  await secret.waitFor();
  S.secret = await secret.inputValue();
  assert.match(S.secret, /^whsec_[A-Za-z0-9_-]+$/);
  await assertText(card.locator("#webhook-secret"), /shown only once/);
  await dash.getByRole("button", { name: "Copy signing secret" }).click();
  assert.equal(await dash.evaluate(() => navigator.clipboard.readText()), S.secret);

  const endpoints = (await apiOk("GET", "/api/v1/webhooks?limit=100")).data.filter((e) => e.url === receiver.url);
  assert.equal(endpoints.length, 1);
  S.endpoint = endpoints[0].id;
  assert.deepEqual(endpoints[0].events, ["lead.created", "sale.created"]);
  assert.equal(endpoints[0].description, `Ledger ${T}`);
  const row = card.locator(`tr[data-id="${S.endpoint}"]`);
  await assertText(row, new RegExp(`${receiver.url.replace(/[.?]/g, "\\$&")}[\\s\\S]*Ledger ${T}[\\s\\S]*lead\\.created[\\s\\S]*sale\\.created`));
  assert.equal(await dash.getByLabel("Endpoint URL", { exact: true }).inputValue(), "", "the form is reset");
  await shot(dash, "webhooks-02-secret-once");

  // reloaded, the secret is gone for good (never stored, never listed)
  await dash.reload();
  await card.locator(`tr[data-id="${S.endpoint}"]`).waitFor();
  assert.equal(await dash.getByLabel("Signing secret", { exact: true }).count(), 0);
  assert.ok(!(await card.textContent()).includes(S.secret));
});

step("a lead while the merchant's server answers 500: the delivery is pending with the answer", async () => {
  const click = await clickId(S.link);
  await until(async () => (await apiOk("GET", `/api/v1/clicks?link_id=${S.link.id}`)).data.length === 1, "the click recorded");
  const lead = await apiOk("POST", "/api/v1/track/lead", { click_id: click, customer_external_id: `cust-${T}` });
  S.eventId = null;
  await until(() => S.received.length >= 1, "the first attempt");
  const first = JSON.parse(S.received[0].body);
  assert.equal(first.type, "lead.created");
  assert.equal(first.data.id, lead.event.id);
  assert.ok(verify(S.secret, S.received[0]), "signed with the secret shown once");
  S.eventId = first.id;
  const deliveries = await until(async () => {
    const d = (await apiOk("GET", `/api/v1/webhooks/${S.endpoint}/deliveries`)).data;
    return d.length && d[0].attempts === 1 ? d : null;
  }, "attempt 1 recorded");
  S.delivery = deliveries[0].id;

  const card = dash.locator("#webhooks-card");
  await card.getByRole("button", { name: `Deliveries of ${receiver.url}` }).click();
  const row = card.locator(`#webhook-deliveries tr[data-id="${S.delivery}"]`);
  await row.waitFor();
  await assertText(card.locator("#webhook-deliveries h3"), new RegExp(`Recent deliveries to ${receiver.url.replace(/[.?]/g, "\\$&")}`));
  assert.equal(await row.getAttribute("data-status"), "pending");
  await assertText(row, new RegExp(`lead\\.created[\\s\\S]*${S.eventId}[\\s\\S]*Pending[\\s\\S]*1[\\s\\S]*HTTP 500[\\s\\S]*Next`));
  await shot(dash, "webhooks-03-delivery-pending-500");
  await assertAccessible(dash, "webhooks-deliveries");
});

step("the server is fixed: Resend delivers the same event now", async () => {
  S.answer = 200;
  const card = dash.locator("#webhooks-card");
  await card.getByRole("button", { name: `Resend lead.created ${S.eventId}` }).click();
  const row = card.locator(`#webhook-deliveries tr[data-id="${S.delivery}"]`);
  await until(async () => (await row.getAttribute("data-status")) === "delivered", "the row delivered");
  await assertText(row, /Delivered[\s\S]*2[\s\S]*HTTP 200/);
  await assertText(dash.locator("#live"), /Resent: the endpoint answered HTTP 200\./);
  const last = S.received.at(-1);
  assert.equal(last.answered, 200);
  assert.equal(JSON.parse(last.body).id, S.eventId, "the same event id");
  assert.equal(last.body, S.received[0].body, "the same body");
  assert.ok(verify(S.secret, last));
  const d = await apiOk("GET", `/api/v1/webhooks/${S.endpoint}/deliveries`);
  assert.deepEqual(d.data.map((x) => [x.id, x.status, x.attempts, x.last_status]), [[S.delivery, "delivered", 2, 200]]);
  await shot(dash, "webhooks-04-resent-delivered");
  assert.deepEqual(S.consoleErrors.filter((e) => !/status of 422|favicon\.ico/.test(e)), []);
});

step("delete the endpoint (confirmed in a dialog)", async () => {
  const card = dash.locator("#webhooks-card");
  await card.getByRole("button", { name: `Delete ${receiver.url}` }).click();
  const dialog = dash.getByRole("dialog", { name: "Delete this endpoint?" });
  await dialog.waitFor();
  await shot(dash, "webhooks-05-delete-dialog");
  await dialog.getByRole("button", { name: "Delete endpoint" }).click();
  await until(async () => (await card.locator(`tr[data-id="${S.endpoint}"]`).count()) === 0, "the row gone");
  S.deleted = true;
  assert.ok(!(await apiOk("GET", "/api/v1/webhooks?limit=100")).data.some((e) => e.id === S.endpoint));
});

step("the portal is framed by the merchant's local app on http://localhost", async () => {
  localApp = await startLocalApp(async () => {
    const t = await apiOk("POST", "/api/v1/embed-tokens", { program_id: S.program.id, partner_id: S.partner.id });
    return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Local app</title></head>
      <body style="font-family:sans-serif;margin:0"><header style="padding:12px 20px;background:#1e293b;color:#fff">localhost:${localApp?.port ?? ""} · Referrals</header>
      <iframe id="portal" src="${escapeHtml(`${env.base}/embed/referrals?token=${t.token}`)}" title="Referral portal" style="width:100%;height:900px;border:0"></iframe></body></html>`;
  });
  const page = await dash.context().newPage();
  const res = await page.goto(localApp.url);
  assert.equal(res.status(), 200);
  assert.equal(new URL(page.url()).hostname, "localhost");
  const frame = await (await page.waitForSelector("iframe#portal")).contentFrame();
  await frame.waitForLoadState("domcontentloaded");
  assert.equal(new URL(frame.url()).origin, env.base);
  await frame.getByRole("heading", { name: `Hooks ${T}`, level: 1 }).waitFor();
  await assertText(frame.locator(".whoami"), new RegExp(`ann-${T}@partners\\.test`));
  await frame.locator(".link-row").first().waitFor();
  await page.waitForTimeout(300); // let the frame paint before the screenshot
  await shot(page, "webhooks-06-portal-framed-by-localhost");
  // the framed portal itself (a cross-origin frame: screenshotted through its own element)
  await frame.locator("body").screenshot({ path: `${env.artifacts}/webhooks-07-portal-in-localhost-frame.png` });
  await page.close();
});
