// Fraud holds as the merchant meets them: commissions held by fraud rules (a customer on the
// partner's email domain, a disposable address) wait under Needs review with their reasons; the
// merchant approves one and rejects one with a reason, finds the rest with the Held filter, then
// changes the fraud rules in the program's settings (a refused value shows at its field).
import { after, before } from "node:test";
import assert from "node:assert/strict";
import { api, apiOk, assertText, clickId, deliverAccountUpdated, env, launch, newContext, shot, steps, stripeControl, tag, unlabelledControls, until } from "./helpers.mjs";

const T = tag();
const S = {}; // state shared by the steps, in order
let browser, dash;

const step = steps(() => [["review", dash]]);



async function lead(email, ext) {
  const r = await api("POST", "/api/v1/track/lead", { click_id: await clickId(S.link), customer_external_id: ext, customer_email: email });
  assert.ok([200, 201].includes(r.status), JSON.stringify(r.json));
  return r.json;
}

const commissions = async (q = "") => (await apiOk("GET", `/api/v1/commissions?program_id=${S.program.id}&limit=100${q}`)).data;
const commission = async (id) => (await commissions()).find((c) => c.id === id); // no GET by id

before(async () => {
  browser = await launch();
  const ctx = await newContext(browser);
  dash = await ctx.newPage();
  S.consoleErrors = [];
  dash.on("pageerror", (e) => S.consoleErrors.push(String(e)));
});
after(async () => browser?.close());

step("seed: a partner's leads held by fraud rules through the real API", async () => {
  S.program = await apiOk("POST", "/api/v1/programs", {
    name: `Review ${T}`,
    domains: [`go.r${T}.test`],
    allowed_hosts: [`r${T}.test`],
    payout_currency: "usd",
    hold_days: 0,
    rewards: { lead: { type: "flat", amount: 500 }, sale: { type: "percentage", amount: 2000 } },
  });
  assert.equal(S.program.fraud_rules.email_domain_match, "hold");
  S.partner = await apiOk("POST", `/api/v1/programs/${S.program.id}/partners`, { email: "ann@acme-partner.test", name: "Ann Archer" });
  S.link = await apiOk("POST", `/api/v1/partners/${S.partner.id}/links`, { url: `https://r${T}.test/`, key: `ann${T}` });
  // Same email domain as the partner: held; its sale is held too.
  await lead("bob@acme-partner.test", `bob-${T}`);
  const sale = await api("POST", "/api/v1/track/sale", { customer_external_id: `bob-${T}`, amount: 12000, currency: "usd", invoice_id: `in_${T}` });
  assert.ok([200, 201].includes(sale.status), JSON.stringify(sale.json));
  // A disposable address: held. An ordinary customer: pending, not held.
  await lead(`x${T}@mailinator.com`, `x-${T}`);
  await lead(`carol-${T}@example.com`, `carol-${T}`);
  const held = await commissions("&held=true");
  assert.equal(held.length, 3, JSON.stringify(held));
  assert.ok(held.every((c) => c.held && c.status === "pending"));
  assert.deepEqual(held.map((c) => c.hold_reasons.join()).sort(), ["disposable_email", "email_domain_match", "email_domain_match"]);
  assert.equal((await commissions("&held=false")).length, 1);
});

step("Needs review: the tab counts held commissions and lists them with readable reasons", async () => {
  await dash.goto(`${env.base}/dashboard/`);
  await dash.getByLabel("API key").fill(env.adminKey);
  await dash.getByRole("button", { name: "Sign in" }).click();
  await dash.getByRole("heading", { name: "Programs", level: 1 }).waitFor();
  await dash.goto(`${env.base}/dashboard/#/programs/${S.program.id}`);
  await dash.getByRole("heading", { name: `Review ${T}`, level: 1 }).waitFor();
  const tab = dash.getByRole("link", { name: /^Needs review/ });
  assert.equal(await tab.locator(".count").textContent(), "3");
  assert.equal(await tab.getAttribute("aria-label"), "Needs review 3 (commissions held)");
  await assertText(dash.locator(".review-notice"), /3 commissions are held by a fraud rule/);
  await shot(dash, "40-review-overview-notice");
  await tab.click();
  await dash.getByRole("heading", { name: "Needs review", level: 2 }).waitFor();
  assert.equal(await tab.getAttribute("aria-current"), "page");
  const rows = dash.locator("#review-list tbody tr");
  await until(async () => (await rows.count()) === 3, "three held commissions");
  const disposable = dash.locator('#review-list tr[data-reasons="disposable_email"]');
  await assertText(disposable, /Ann Archer[\s\S]*Lead[\s\S]*\$5\.00[\s\S]*today[\s\S]*Disposable email[\s\S]*disposable email address/);
  const sale = dash.locator('#review-list tr[data-kind="sale"]');
  await assertText(sale, /\$24\.00[\s\S]*on \$120\.00[\s\S]*Same email domain[\s\S]*email domain is the partner's/);
  assert.equal(await dash.locator('#review-list tr[data-reasons="email_domain_match"]').count(), 2);
  assert.deepEqual(await unlabelledControls(dash), []);
  await shot(dash, "41-review-needs-review");
});

step("Needs review: approve one, reject one with a reason; the list and count update in place", async () => {
  const held = await commissions("&held=true");
  S.disposable = held.find((c) => c.hold_reasons.includes("disposable_email"));
  S.bobLead = held.find((c) => c.kind === "lead" && c.hold_reasons.includes("email_domain_match"));
  S.bobSale = held.find((c) => c.kind === "sale");
  const url = dash.url();
  const tab = dash.getByRole("link", { name: /^Needs review/ });

  await dash.locator(`#review-list tr[data-id="${S.bobSale.id}"]`).getByRole("button", { name: "Approve" }).click();
  await dash.locator(`#review-list tr[data-id="${S.bobSale.id}"]`).waitFor({ state: "detached" });
  assert.equal(await tab.locator(".count").textContent(), "2");
  await assertText(dash.locator("#live"), /Commission approved\. 2 left to review\./);
  // Focus moved to the next row's Approve button, not lost to the page.
  assert.match(await dash.evaluate(() => document.activeElement?.getAttribute("aria-label") ?? ""), /^Approve /);

  await dash.locator(`#review-list tr[data-id="${S.bobLead.id}"]`).getByRole("button", { name: "Reject" }).click();
  const dialog = dash.getByRole("dialog");
  await assertText(dialog, /held for: Same email domain/);
  await dialog.getByRole("button", { name: "Reject commission" }).click();
  await assertText(dialog.locator(".err"), /Reason is required/);
  await dialog.getByLabel("Reason").fill("Bob works at the partner's company.");
  await shot(dash, "42-review-reject-dialog");
  await dialog.getByRole("button", { name: "Reject commission" }).click();
  await dialog.waitFor({ state: "detached" });
  await dash.locator(`#review-list tr[data-id="${S.bobLead.id}"]`).waitFor({ state: "detached" });
  assert.equal(await tab.locator(".count").textContent(), "1");
  assert.equal(await dash.locator("#review-list tbody tr").count(), 1);
  assert.equal(dash.url(), url, "no navigation");

  const approved = await commission(S.bobSale.id);
  assert.equal(approved.status, "approved");
  assert.equal(approved.held, false);
  assert.deepEqual(approved.hold_reasons, ["email_domain_match"], "the reasons stay after the decision");
  const rejected = await commission(S.bobLead.id);
  assert.equal(rejected.status, "rejected");
  assert.equal(rejected.reason, "Bob works at the partner's company.");
  assert.equal(rejected.held, false);
  assert.deepEqual((await commissions("&held=true")).map((c) => c.id), [S.disposable.id]);
  await shot(dash, "43-review-after-decisions");
});

step("Commissions: held rows show their reasons; the Held filter lists only them", async () => {
  await dash.getByRole("link", { name: "Commissions", exact: true }).click();
  await dash.getByRole("heading", { name: "Commissions", level: 2 }).waitFor();
  const rows = dash.locator("#commissions-list tbody tr");
  await until(async () => (await rows.count()) === 4, "four commissions");
  const heldRow = dash.locator(`#commissions-list tr[data-id="${S.disposable.id}"]`);
  await assertText(heldRow, /Held[\s\S]*Disposable email/);
  assert.equal(await heldRow.locator(".badge.hold").getAttribute("title"), "The customer used a disposable email address.");
  await assertText(dash.locator(`#commissions-list tr[data-id="${S.bobSale.id}"]`), /Approved[\s\S]*Was held: Same email domain/);
  await shot(dash, "44-commissions-with-held");
  await dash.getByLabel("Status").selectOption("held");
  await until(async () => (await rows.count()) === 1, "one held commission");
  assert.equal(await rows.first().getAttribute("data-id"), S.disposable.id);
  // Approving from here counts down the Needs review tab as well.
  await heldRow.getByRole("button", { name: /Approve/ }).click();
  await until(async () => (await dash.locator(`#commissions-list tr[data-id="${S.disposable.id}"]`).getAttribute("data-status")) === "approved", "approved");
  assert.equal(await dash.locator("#tab-review .count").isHidden(), true);
  assert.equal(await dash.getByRole("link", { name: /^Needs review/ }).getAttribute("aria-label"), "Needs review");
});

/** Stripe onboarding with this bank account number (the fake's fingerprint follows the number). */
async function enableWithBank(partner, accountNumber) {
  const { account_id } = await apiOk("POST", `/api/v1/partners/${partner.id}/stripe/onboard`, {});
  await stripeControl("POST", `accounts/${account_id}/complete_onboarding`, { account_number: accountNumber });
  const r = await deliverAccountUpdated(account_id);
  assert.equal(r.status, 200, JSON.stringify(r.json));
}

step("Needs review: partners paid to the same bank account wait for the payout account's approval", async () => {
  const bank = String(Date.now()).slice(-9);
  S.eve = await apiOk("POST", `/api/v1/programs/${S.program.id}/partners`, { email: `eve-${T}@one.test`, name: "Eve Evans" });
  S.fay = await apiOk("POST", `/api/v1/programs/${S.program.id}/partners`, { email: `fay-${T}@two.test`, name: "Fay Fox" });
  await enableWithBank(S.eve, bank);
  await enableWithBank(S.fay, bank);
  for (const p of [S.eve, S.fay]) assert.deepEqual((await apiOk("GET", `/api/v1/partners/${p.id}`)).payout_hold_reasons, ["duplicate_payout_account"]);
  await dash.goto(`${env.base}/dashboard/#/programs/${S.program.id}/review`);
  await dash.reload();
  await dash.getByRole("heading", { name: "Needs review", level: 2 }).waitFor();
  const tab = dash.getByRole("link", { name: /^Needs review/ });
  assert.equal(await tab.locator(".count").textContent(), "2");
  await dash.getByRole("heading", { name: "Payouts on hold", level: 3 }).waitFor();
  await assertText(dash.locator("#review-list"), /No commissions are held/);
  const eve = dash.locator(`#review-accounts tr[data-id="${S.eve.id}"]`);
  await assertText(eve, /Eve Evans[\s\S]*Shared payout account[\s\S]*same Stripe or bank account/);
  await shot(dash, "45-review-payouts-on-hold");
  await eve.getByRole("button", { name: "Approve account" }).click();
  const dialog = dash.getByRole("dialog");
  await assertText(dialog, /Approve Eve Evans's payout account\?/);
  await dialog.getByRole("button", { name: "Approve account" }).click();
  await dialog.waitFor({ state: "detached" });
  await eve.waitFor({ state: "detached" });
  assert.deepEqual((await apiOk("GET", `/api/v1/partners/${S.eve.id}`)).payout_hold_reasons, []);
  // Whatever the API still holds is what the tab shows and counts.
  const still = [];
  for (const p of [S.fay]) if ((await apiOk("GET", `/api/v1/partners/${p.id}`)).payout_hold_reasons.length) still.push(p);
  assert.equal(await dash.locator("#review-accounts tbody tr").count(), still.length);
  assert.equal((await tab.locator(".count").textContent()) || "", still.length ? String(still.length) : "");
  for (const p of still) {
    await dash.locator(`#review-accounts tr[data-id="${p.id}"]`).getByRole("button", { name: "Approve account" }).click();
    await dash.getByRole("dialog").getByRole("button", { name: "Approve account" }).click();
    await dash.getByRole("dialog").waitFor({ state: "detached" });
  }
  assert.equal(await dash.locator("#review-accounts").isHidden(), true);
});

step("Needs review: the empty state", async () => {
  await dash.getByRole("link", { name: /^Needs review/ }).click();
  await assertText(dash.locator("#review-list"), /Nothing needs review\./);
  await shot(dash, "45b-review-empty");
});

step("Settings: change the fraud rules (PATCH); client and server refusals show at their fields", async () => {
  await dash.getByRole("link", { name: "Settings" }).click();
  await dash.getByRole("heading", { name: "Settings", level: 2 }).waitFor();
  assert.deepEqual(await unlabelledControls(dash), []);
  const disposable = dash.getByLabel("Disposable email");
  assert.equal(await disposable.inputValue(), "hold");
  assert.equal(await dash.getByLabel("Self-referral").inputValue(), "reject");
  assert.equal(await dash.getByLabel("Banned referrer", { exact: true }).inputValue(), "off");
  assert.deepEqual(await dash.getByLabel("Shared payout account").locator("option").evaluateAll((os) => os.map((o) => o.value)), ["hold", "off"]);
  assert.equal(await dash.getByLabel("Click spam threshold").inputValue(), "20");
  assert.match(await disposable.getAttribute("aria-describedby"), /hint/);
  await shot(dash, "46-settings-fraud-rules");

  const patches = [];
  dash.on("request", (r) => r.method() === "PATCH" && patches.push(r));
  // Client side: an out-of-range threshold and a malformed host never reach the server.
  await dash.getByLabel("Click spam threshold").fill("0");
  await dash.getByLabel("Banned referrers").fill("coupons.example.com, not a host");
  await dash.getByRole("button", { name: "Save settings" }).click();
  await assertText(dash.locator("#f-click_spam_threshold-err"), /whole number from 1 to 10000/);
  await assertText(dash.locator("#f-banned_referrers-err"), /“not a host” is not a hostname/);
  assert.equal(patches.length, 0);

  // Server side: an action the rule does not take (as from a stale page) -> 422 at that rule.
  await dash.getByLabel("Click spam threshold").fill("50");
  await dash.getByLabel("Banned referrers").fill("coupons.example.com, Deals.Example.net");
  const shared = dash.getByLabel("Shared payout account");
  await shared.evaluate((el) => el.append(new Option("Reject", "reject")));
  await shared.selectOption("reject");
  await dash.getByRole("button", { name: "Save settings" }).click();
  const err = dash.locator("#f-fraud_rules-duplicate_payout_account-err");
  await assertText(err, /\S/);
  assert.doesNotMatch(await err.textContent(), /duplicate_payout_account/, "the rule by its name, not its code");
  assert.equal(patches.length, 1);
  assert.equal((await patches[0].response()).status(), 422);
  assert.equal(await shared.getAttribute("aria-invalid"), "true");
  assert.equal(await dash.evaluate(() => document.activeElement?.id), "f-fraud_rules-duplicate_payout_account", "focus moves to the refused rule");
  await assertText(dash.locator(".alert.error[role=alert]"), /server refused[\s\S]*Shared payout account/i);
  await shot(dash, "47-settings-fraud-rule-refused");
  assert.equal((await apiOk("GET", `/api/v1/programs/${S.program.id}`)).click_spam_threshold, 20, "nothing was saved");

  await shared.selectOption("off");
  await disposable.selectOption("reject");
  await dash.getByRole("button", { name: "Save settings" }).click();
  await assertText(dash.locator(".flash"), /Settings saved/);
  await assertText(dash.locator(".facts"), /Held for review: Same email domain, Paid ad click, Click spam; rejected: Self-referral, Disposable email/);
  const p = await apiOk("GET", `/api/v1/programs/${S.program.id}`);
  assert.deepEqual(p.fraud_rules, {
    self_referral: "reject",
    email_domain_match: "hold",
    disposable_email: "reject",
    paid_traffic: "hold",
    click_spam: "hold",
    duplicate_payout_account: "off",
    banned_referrer: "off",
  });
  assert.equal(p.click_spam_threshold, 50);
  assert.deepEqual(p.banned_referrers, ["coupons.example.com", "deals.example.net"]);
  // The form shows what was saved.
  await dash.getByRole("link", { name: "Settings" }).click();
  await dash.getByRole("heading", { name: "Settings", level: 2 }).waitFor();
  assert.equal(await dash.getByLabel("Disposable email").inputValue(), "reject");
  assert.equal(await dash.getByLabel("Banned referrers").inputValue(), "coupons.example.com\ndeals.example.net");
});

step("the saved rule applies: a disposable address is now rejected, shown by the rule's name", async () => {
  await lead(`y${T}@mailinator.com`, `y-${T}`);
  const c = (await commissions("&status=rejected")).find((c) => c.reason === "disposable_email");
  assert.ok(c, "rejected by the rule");
  await dash.getByRole("link", { name: "Commissions", exact: true }).click();
  await assertText(dash.locator(`#commissions-list tr[data-id="${c.id}"]`), /Rejected[\s\S]*Fraud rule: Disposable email/);
  assert.equal(await dash.locator("#tab-review .count").isHidden(), true, "a rejected commission is not held");
  await shot(dash, "48-commissions-rejected-by-rule");
  assert.deepEqual(S.consoleErrors, []);
});
