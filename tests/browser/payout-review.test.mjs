// Payout review as the merchant meets it: a program in review mode, three partners owed money in
// two currencies, one of them with fraud holds. The cron prepares the run; the Payouts tab shows
// it as one batch (partners, amounts, currency totals, fraud holds). The merchant cancels one
// payout, then approves the rest with "Approve all": each is sent once through Stripe.
import { after, before } from "node:test";
import assert from "node:assert/strict";
import { api, apiOk, assertText, clickId, deliverAccountUpdated, env, launch, newContext, shot, steps, stripeControl, tag, unlabelledControls, until, assertAccessible } from "./helpers.mjs";

const T = tag();
const S = {}; // state shared by the steps, in order
let browser, dash;

const step = steps(() => [["payout-review", dash]]);

before(async () => {
  browser = await launch();
  const ctx = await newContext(browser);
  dash = await ctx.newPage();
  S.pageErrors = [];
  dash.on("pageerror", (e) => S.pageErrors.push(String(e)));
});
after(async () => browser?.close());

const payouts = async (q = "") => (await apiOk("GET", `/api/v1/payouts?program_id=${S.program.id}&limit=100${q}`)).data;
const cron = async () => {
  const r = await fetch(`${env.base}/cdn-cgi/handler/scheduled?cron=${encodeURIComponent("*/15 * * * *")}`);
  assert.equal(r.status, 200);
};

async function enable(partner, n) {
  const { account_id } = await apiOk("POST", `/api/v1/partners/${partner.id}/stripe/onboard`, {});
  await stripeControl("POST", `accounts/${account_id}/complete_onboarding`, { account_number: `${Date.now() % 1e8}${n}` });
  const r = await deliverAccountUpdated(account_id);
  assert.equal(r.status, 200, JSON.stringify(r.json));
  return account_id;
}

const bonus = (partner, amount, description, currency) =>
  apiOk("POST", "/api/v1/commissions", { partner_id: partner.id, amount, description, status: "approved", ...(currency ? { currency } : {}) });

step("seed: a review-mode program, three partners owed in USD and EUR, fraud holds on one", async () => {
  S.program = await apiOk("POST", "/api/v1/programs", {
    name: `Review run ${T}`,
    domains: [`go.pr${T}.test`],
    allowed_hosts: [`pr${T}.test`],
    payout_currency: "usd",
    min_payout: 1000,
    hold_days: 0,
    payout_schedule: { every: "day" },
    payout_mode: "review",
    rewards: { lead: { type: "flat", amount: 500 } },
  });
  assert.equal(S.program.payout_mode, "review");
  const partner = (email, name) => apiOk("POST", `/api/v1/programs/${S.program.id}/partners`, { email, name });
  S.ann = await partner(`ann-${T}@ann.test`, "Ann Archer");
  S.ben = await partner(`ben-${T}@ben.test`, "Ben Baker");
  S.cat = await partner(`cat-${T}@cat.test`, "Cat Cole");
  S.accounts = [await enable(S.ann, 1), await enable(S.ben, 2), await enable(S.cat, 3)];
  await bonus(S.ann, 12500, "Spring campaign");
  await bonus(S.ben, 4000, "Launch bonus");
  // Ben's leads from disposable addresses: held by the fraud rule; one is approved by the merchant
  // (it keeps its hold reason and joins his payout), the other stays held.
  S.link = await apiOk("POST", `/api/v1/partners/${S.ben.id}/links`, { url: `https://pr${T}.test/`, key: `ben${T}` });
  for (const who of ["x", "y"]) {
    const r = await api("POST", "/api/v1/track/lead", { click_id: await clickId(S.link), customer_external_id: `${who}-${T}`, customer_email: `${who}${T}@mailinator.com` });
    assert.equal(r.status, 200, JSON.stringify(r.json));
  }
  const held = (await apiOk("GET", `/api/v1/commissions?program_id=${S.program.id}&held=true`)).data;
  assert.equal(held.length, 2);
  await apiOk("POST", `/api/v1/commissions/${held[0].id}/approve`);
  // Cat's balance is in EUR: the program's payout currency moved to EUR afterwards.
  await apiOk("PATCH", `/api/v1/programs/${S.program.id}`, { payout_currency: "eur" });
  await bonus(S.cat, 3000, "Referral contest");
  await stripeControl("POST", "balance", { currency: "usd", amount: 1_000_000_000 });
  await stripeControl("POST", "balance", { currency: "eur", amount: 1_000_000_000 });

  await cron();
  const run = await until(async () => {
    const p = await payouts("&status=awaiting_approval");
    return p.length === 3 && p;
  }, "three payouts awaiting approval");
  S.run = Object.fromEntries(run.map((p) => [p.partner_id, p]));
  assert.equal(S.run[S.ann.id].amount, 12500);
  assert.equal(S.run[S.ben.id].amount, 4500);
  assert.equal(S.run[S.cat.id].currency, "eur");
  const state = await stripeControl("GET", "state");
  assert.equal(Object.values(state.transfers).filter((t) => S.accounts.includes(t.destination)).length, 0, "nothing sent yet");
});

step("settings: the payout mode select shows review", async () => {
  await dash.goto(`${env.base}/dashboard/`);
  await dash.getByLabel("API key").fill(env.adminKey);
  await dash.getByRole("button", { name: "Sign in" }).click();
  await dash.getByRole("heading", { name: "Programs", level: 1 }).waitFor();
  await dash.goto(`${env.base}/dashboard/#/programs/${S.program.id}/settings`);
  await dash.getByRole("heading", { name: "Settings", level: 2 }).waitFor();
  assert.equal(await dash.getByLabel("Payout mode").inputValue(), "review");
});

step("Payouts: the run awaiting approval is one batch with totals per currency and fraud holds", async () => {
  await dash.getByRole("link", { name: "Payouts" }).click();
  const batch = dash.locator("#payout-review");
  await batch.getByRole("heading", { name: "Payout run awaiting approval", level: 2 }).waitFor();
  assert.equal(await batch.locator("tbody tr").count(), 3);
  await assertText(batch.locator(".batch-summary"), /3 payouts · \$170\.00 · €30\.00|3 payouts · €30\.00 · \$170\.00/);
  await assertText(batch.locator(`tr[data-partner="${S.ann.id}"]`), /Ann Archer[\s\S]*\$125\.00[\s\S]*1[\s\S]*None/);
  const ben = batch.locator(`tr[data-partner="${S.ben.id}"]`);
  await assertText(ben, /Ben Baker[\s\S]*\$45\.00[\s\S]*2/);
  await assertText(ben, /1 of its commissions was held, then approved: Disposable email/);
  await assertText(ben, /1 other commission held for review/);
  await assertText(batch.locator(`tr[data-partner="${S.cat.id}"]`), /Cat Cole[\s\S]*€30\.00/);
  await assertText(batch.getByRole("button", { name: /^Approve all/ }), /Approve all \(3\)/);
  await assertText(dash.locator(`#payouts-list tr[data-id="${S.run[S.ann.id].id}"]`), /Awaiting Approval/i);
  assert.deepEqual(await unlabelledControls(dash), []);
  await shot(dash, "60-payout-review-batch");
  await assertAccessible(dash, "payout-review-batch");
});

step("Cancel one: its commissions go back to the balance; the batch updates in place", async () => {
  const cat = dash.locator(`#payout-review tr[data-partner="${S.cat.id}"]`);
  await cat.getByRole("button", { name: "Cancel the payout to Cat Cole" }).click();
  const dialog = dash.getByRole("dialog");
  await assertText(dialog, /Nothing is sent to Cat Cole[\s\S]*go back to the approved balance/);
  await dialog.getByRole("button", { name: "Cancel payout" }).click();
  await dialog.waitFor({ state: "detached" });
  await cat.waitFor({ state: "detached" });
  await assertText(dash.locator("#live"), /Payout to Cat Cole canceled\./);
  assert.equal(await dash.locator("#payout-review tbody tr").count(), 2);
  await assertText(dash.locator("#payout-review .batch-summary"), /2 payouts · \$170\.00/);
  const canceled = (await payouts()).find((p) => p.id === S.run[S.cat.id].id);
  assert.equal(canceled.status, "canceled");
  const cms = (await apiOk("GET", `/api/v1/commissions?partner_id=${S.cat.id}`)).data;
  assert.deepEqual(cms.map((c) => [c.status, c.payout_id]), [["approved", null]]);
});

step("Approve all: each payout is sent once; the batch goes away and the list shows them paid", async () => {
  await dash.getByRole("button", { name: /^Approve all/ }).click();
  const dialog = dash.getByRole("dialog");
  await assertText(dialog, /2 payouts totalling \$170\.00 are sent now/);
  await shot(dash, "61-payout-review-approve-all");
  await dialog.getByRole("button", { name: "Approve all and send" }).click();
  await dialog.waitFor({ state: "detached" });
  await dash.locator("#payout-review").waitFor({ state: "detached" });
  const paid = await until(async () => {
    const p = (await payouts("&status=paid")).filter((x) => x.partner_id !== S.cat.id);
    return p.length === 2 && p;
  }, "both approved payouts paid", 30_000);
  assert.deepEqual(paid.map((p) => p.id).sort(), [S.run[S.ann.id].id, S.run[S.ben.id].id].sort());
  const state = await stripeControl("GET", "state");
  const mine = Object.values(state.transfers).filter((t) => S.accounts.includes(t.destination));
  assert.deepEqual(mine.map((t) => t.amount).sort((a, b) => a - b), [4500, 12500], "one transfer per approved payout");
  await dash.getByLabel("Status").selectOption("paid");
  await until(async () => (await dash.locator("#payouts-list tbody tr").count()) === 2, "two paid rows");
  await dash.getByLabel("Status").selectOption("");
  await assertText(dash.locator(`#payouts-list tr[data-id="${S.run[S.cat.id].id}"]`), /Canceled/);
  await shot(dash, "62-payout-review-after");
  assert.deepEqual(S.pageErrors, []);
  // Nothing more is owed but Cat's released balance: a second approval is refused.
  const again = await api("POST", `/api/v1/payouts/${S.run[S.ann.id].id}/approve`);
  assert.equal(again.status, 409);
  assert.equal(again.json.error.code, "not_awaiting_approval");
});
