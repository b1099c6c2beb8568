// Zero-code Stripe tracking as the merchant sets it up: the Integrations page shows the two
// webhook URLs to paste into Stripe (copied to the clipboard), whether the Worker has their
// signing secrets, which events to select, and the click script; then real signed Stripe events
// reach the Worker and the page lists them with their outcome in words: a checkout whose
// client_reference_id is not a Refport click is ignored, a referred checkout is credited to the
// partner (linked), a connected account's update is applied.
import { after, before } from "node:test";
import assert from "node:assert/strict";
import { apiOk, assertText, clickId, deliverAccountUpdated, env, launch, newContext, shot, steps, stripeControl, tag, unlabelledControls, until } from "./helpers.mjs";

const T = tag();
const S = {}; // state shared by the steps, in order
let browser, dash;

const step = steps(() => [["integrations", dash]]);


/** Signs a Stripe event with the platform endpoint's secret (the Stripe fake's /_control/sign)
 * and POSTs it to the Worker's webhook, as Stripe would. */
async function deliver(evt) {
  const signed = await stripeControl("POST", "sign", { payload: JSON.stringify(evt), secret: env.webhookSecret });
  const res = await fetch(`${env.base}/api/v1/webhooks/stripe`, { method: "POST", headers: { "content-type": "application/json", "stripe-signature": signed.header }, body: signed.payload });
  return { status: res.status, json: await res.json().catch(() => null) };
}

function checkoutCompleted(id, fields) {
  return {
    id: `evt_${id}`,
    object: "event",
    api_version: "2024-06-20",
    created: Math.floor(Date.now() / 1000),
    livemode: false,
    pending_webhooks: 1,
    request: { id: null, idempotency_key: null },
    type: "checkout.session.completed",
    data: {
      object: {
        id: `cs_test_${id}`,
        object: "checkout.session",
        mode: "payment",
        status: "complete",
        payment_status: "paid",
        amount_subtotal: fields.amount_total,
        currency: "usd",
        customer: `cus_${id}`,
        customer_details: { email: `buyer-${id}@example.com`, name: "Bea Buyer" },
        payment_intent: `pi_${id}`,
        invoice: null,
        subscription: null,
        metadata: {},
        ...fields,
      },
    },
  };
}


const integration = () => apiOk("GET", "/api/v1/integrations/stripe");

before(async () => {
  browser = await launch();
  const ctx = await newContext(browser);
  await ctx.grantPermissions(["clipboard-read", "clipboard-write"]);
  dash = await ctx.newPage();
  S.consoleErrors = [];
  dash.on("console", (m) => m.type() === "error" && S.consoleErrors.push(`${m.text()} ${m.location().url}`));
  dash.on("pageerror", (e) => S.consoleErrors.push(String(e)));
  dash.on("response", (r) => r.status() >= 400 && S.consoleErrors.push(`${r.status()} ${r.url()}`));
});
after(async () => browser?.close());

step("the API: both webhook endpoints on the Worker's origin, and the events received", async () => {
  const r = await integration();
  S.before = r;
  assert.deepEqual(r.webhooks.map((w) => [w.endpoint, w.url]), [
    ["platform", `${env.base}/api/v1/webhooks/stripe`],
    ["connect", `${env.base}/api/v1/webhooks/stripe/connect`],
  ]);
  assert.ok(r.webhooks[0].events.includes("checkout.session.completed"));
  assert.ok(r.webhooks[1].events.includes("account.updated"));
  assert.ok(Array.isArray(r.events));
});

step("Integrations: a main navigation entry; the setup for both endpoints and the script", async () => {
  await dash.goto(`${env.base}/dashboard/`);
  await dash.getByLabel("API key").fill(env.adminKey);
  await dash.getByRole("button", { name: "Sign in" }).click();
  await dash.getByRole("heading", { name: "Programs", level: 1 }).waitFor();
  const nav = dash.getByRole("navigation", { name: "Main" });
  await nav.getByRole("link", { name: "Integrations" }).click();
  await dash.getByRole("heading", { name: "Integrations", level: 1 }).waitFor();
  assert.equal(await dash.title(), "Integrations — Refport dashboard");
  assert.equal(await nav.getByRole("link", { name: "Integrations" }).getAttribute("aria-current"), "page");
  assert.equal(await nav.getByRole("link", { name: "Programs" }).getAttribute("aria-current"), null);

  assert.equal(await dash.getByLabel("Platform endpoint URL", { exact: true }).inputValue(), `${env.base}/api/v1/webhooks/stripe`);
  assert.equal(await dash.getByLabel("Connect endpoint URL", { exact: true }).inputValue(), `${env.base}/api/v1/webhooks/stripe/connect`);
  assert.equal(await dash.getByLabel("Platform endpoint URL", { exact: true }).getAttribute("readonly"), "");
  const platform = dash.locator("#wh-platform");
  const connect = dash.locator("#wh-connect");
  await assertText(platform, /Listen to\s*Events on your account/i);
  await assertText(connect, /Listen to\s*Events on Connected accounts/i);
  for (const [card, w] of [[platform, S.before.webhooks[0]], [connect, S.before.webhooks[1]]]) {
    assert.deepEqual(await card.locator(".event-types code").allTextContents(), w.events, "every event to select, as code");
    const secret = w.endpoint === "platform" ? "STRIPE_WEBHOOK_SECRET" : "STRIPE_CONNECT_WEBHOOK_SECRET";
    // This session's Worker has both secrets (.dev.vars); a missing one says how to set it.
    await assertText(card, w.secret_configured ? new RegExp(`Configured\\s*${secret} is set on the Worker`) : new RegExp(`Not configured[\\s\\S]*wrangler secret put ${secret}`));
  }
  await assertText(dash.locator(".api-key"), S.before.api_key_configured ? /Configured\s*STRIPE_SECRET_KEY is set/ : /Not configured[\s\S]*wrangler secret put STRIPE_SECRET_KEY/);

  assert.equal(await dash.getByLabel("Script tag", { exact: true }).inputValue(), `<script src="${env.base}/refport.js" async></script>`);
  await assertText(dash.locator("#script-setup"), /Payment Links \(buy\.stripe\.com\), <stripe-pricing-table> and <stripe-buy-button> get the referral automatically[\s\S]*refport_id cookie as client_reference_id/);
  assert.deepEqual(await unlabelledControls(dash), []);
});

step("Copy puts the webhook URL on the clipboard and announces it", async () => {
  await dash.getByRole("button", { name: "Copy connect endpoint URL" }).click();
  assert.equal(await dash.evaluate(() => navigator.clipboard.readText()), `${env.base}/api/v1/webhooks/stripe/connect`);
  await assertText(dash.locator("#live"), /^Connect endpoint URL copied\.$/);
  await dash.getByRole("button", { name: "Copy platform endpoint URL" }).click();
  assert.equal(await dash.evaluate(() => navigator.clipboard.readText()), `${env.base}/api/v1/webhooks/stripe`);
  await assertText(dash.locator("#live"), /^Platform endpoint URL copied\.$/);
  await dash.getByRole("button", { name: "Copy script tag" }).click();
  assert.equal(await dash.evaluate(() => navigator.clipboard.readText()), `<script src="${env.base}/refport.js" async></script>`);
});

step("Recent Stripe events: the empty state", async () => {
  const events = dash.locator("#stripe-events");
  await until(async () => (await dash.getByRole("button", { name: "Copy script tag" }).textContent()) === "Copy", "the Copy buttons back from “Copied”");
  if (S.before.events.length === 0) {
    await assertText(events, /No events yet — send a test event from Stripe\./);
  } else {
    // Other test files shared this Worker first: the empty state from its own answer, emptied.
    await dash.route("**/api/v1/integrations/stripe", async (route) => {
      const res = await route.fetch();
      route.fulfill({ response: res, json: { ...(await res.json()), events: [] } });
    });
    await dash.reload();
    await assertText(events, /No events yet — send a test event from Stripe\./);
    await dash.unroute("**/api/v1/integrations/stripe");
  }
  assert.equal(await events.locator("table").count(), 0);
  await shot(dash, "50-integrations-setup");
});

step("seed: real signed Stripe events reach the Worker", async () => {
  S.program = await apiOk("POST", "/api/v1/programs", {
    name: `Stripe ${T}`,
    domains: [`go.s${T}.test`],
    allowed_hosts: [`s${T}.test`],
    payout_currency: "usd",
    rewards: { lead: { type: "flat", amount: 500 }, sale: { type: "percentage", amount: 2000 } },
  });
  S.partner = await apiOk("POST", `/api/v1/programs/${S.program.id}/partners`, { email: `ada-${T}@partner.test`, name: "Ada Lovelace" });
  S.link = await apiOk("POST", `/api/v1/partners/${S.partner.id}/links`, { url: `https://s${T}.test/`, key: `ada${T}` });

  // A checkout whose client_reference_id is the merchant's own order number: not a Refport click.
  S.foreign = checkoutCompleted(`${T}order`, { client_reference_id: `order-${T}`, amount_total: 4900 });
  let r = await deliver(S.foreign);
  assert.equal(r.status, 200, JSON.stringify(r.json));
  // A checkout by a visitor who came through the partner's link: a lead and a sale for Ada.
  S.referred = checkoutCompleted(`${T}ref`, { client_reference_id: await clickId(S.link), amount_total: 12000 });
  r = await deliver(S.referred);
  assert.equal(r.status, 200, JSON.stringify(r.json));
  // Ada's payout account finishes Stripe onboarding: account.updated.
  const { account_id } = await apiOk("POST", `/api/v1/partners/${S.partner.id}/stripe/onboard`, {});
  await stripeControl("POST", `accounts/${account_id}/complete_onboarding`, {});
  S.account = account_id;
  r = await deliverAccountUpdated(account_id);
  assert.equal(r.status, 200, JSON.stringify(r.json));

  const events = (await integration()).events;
  const ours = (id) => events.find((e) => e.id === id);
  assert.deepEqual([ours(S.foreign.id)?.outcome, ours(S.foreign.id)?.reason], ["ignored", "not_a_refport_click"], JSON.stringify(ours(S.foreign.id)));
  assert.equal(ours(S.referred.id)?.outcome, "attributed", JSON.stringify(ours(S.referred.id)));
  assert.equal(ours(S.referred.id)?.partner_id, S.partner.id);
  assert.ok(events.some((e) => e.type === "account.updated" && e.object_id === account_id), JSON.stringify(events.slice(0, 5)));
});

step("Recent Stripe events: Refresh lists them, newest first, with the outcome in words", async () => {
  await dash.getByRole("button", { name: "Refresh" }).click();
  const rows = dash.locator("#stripe-events tbody tr");
  await until(async () => (await rows.count()) >= 3, "three events");
  await assertText(dash.locator("#live"), /^Events refreshed: \d+ events\.$/);
  assert.deepEqual(await dash.locator("#stripe-events thead th").allTextContents(), ["Received", "Event type", "Object", "Amount", "Outcome", "Details"]);
  assert.equal(await rows.first().getAttribute("data-type"), "account.updated", "newest first");

  const foreign = dash.locator(`#stripe-events tr[data-id="${S.foreign.id}"]`);
  await assertText(foreign, /(just now|minutes? ago)[\s\S]*checkout\.session\.completed[\s\S]*cs_test_[\s\S]*\$49\.00[\s\S]*Ignored[\s\S]*client_reference_id is not a Refport click/);
  assert.equal(await foreign.getAttribute("data-outcome"), "ignored");
  assert.match(await foreign.locator("time").getAttribute("datetime"), /^\d{4}-\d\d-\d\dT/);

  const referred = dash.locator(`#stripe-events tr[data-id="${S.referred.id}"]`);
  await assertText(referred, /\$120\.00[\s\S]*Attributed[\s\S]*Ada Lovelace/);
  const account = dash.locator("#stripe-events tbody tr", { hasText: S.account });
  await assertText(account, /account\.updated[\s\S]*Applied/);
  assert.deepEqual(await unlabelledControls(dash), []);
  await shot(dash, "51-integrations-events");

  // The partner's name leads to the program's partners.
  await referred.getByRole("link", { name: "Ada Lovelace" }).click();
  await dash.getByRole("heading", { name: `Stripe ${T}`, level: 1 }).waitFor();
  await dash.locator(`#partners-list tr[data-id="${S.partner.id}"]`).waitFor();
  assert.equal(await dash.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Programs" }).getAttribute("aria-current"), "true");
});

step("Integrations: a missing secret says how to set it; legacy events and unknown reasons", async () => {
  // The Worker's answer with the Connect secret and the API key taken away (as on a Worker
  // where they were never set), plus an event from before outcomes were recorded and a
  // reason this dashboard does not know yet.
  await dash.route("**/api/v1/integrations/stripe", async (route) => {
    const res = await route.fetch();
    const body = await res.json();
    body.webhooks[1].secret_configured = false;
    body.api_key_configured = false;
    const base = { endpoint: "platform", effect: null, program_id: null, partner_id: null, partner_name: null, customer: null, amount: null, currency: null };
    body.events.push(
      { ...base, id: "evt_legacy", type: "invoice.paid", received_at: "2026-01-02T03:04:05Z", outcome: null, reason: null, object_id: "in_legacy" },
      { ...base, id: "evt_unknown", type: "customer.updated", received_at: "2026-01-01T00:00:00Z", outcome: "ignored", reason: "brand_new_reason", object_id: "cus_x", amount: 5000, currency: "jpy" },
    );
    route.fulfill({ response: res, json: body });
  });
  await dash.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Integrations" }).click();
  await dash.getByRole("heading", { name: "Integrations", level: 1 }).waitFor();
  await assertText(dash.locator("#wh-connect"), /Not configured\.[\s\S]*wrangler secret put STRIPE_CONNECT_WEBHOOK_SECRET/);
  await assertText(dash.locator("#wh-platform"), /Configured\s*STRIPE_WEBHOOK_SECRET is set/);
  await assertText(dash.locator(".api-key"), /Not configured\.[\s\S]*refunds of subscriptions[\s\S]*wrangler secret put STRIPE_SECRET_KEY/);
  const legacy = dash.locator('#stripe-events tr[data-id="evt_legacy"]');
  assert.deepEqual((await legacy.locator("td").allTextContents()).slice(3), ["—", "—", "—"]);
  await assertText(dash.locator('#stripe-events tr[data-id="evt_unknown"]'), /¥5,000[\s\S]*Ignored[\s\S]*brand_new_reason/);
  await shot(dash, "52-integrations-not-configured");
  await dash.unroute("**/api/v1/integrations/stripe");
  assert.deepEqual(S.consoleErrors.filter((e) => !e.endsWith("/favicon.ico")), []); // Chromium asks for a favicon: none
});
