// The portal's payout box around the partner's country and Stripe's verdicts: a country the
// merchant already set is shown and not asked (onboarding sends none, Stripe gets it anyway); a
// browser language without a region preselects nothing; why payouts are disabled reads in words
// (Stripe's own refusal codes as they are). The main journey (asking, sending, cross-border
// account) is in portal-flow.test.mjs.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { apiOk, env, launch, newContext, shot, stripeControl, tag, unlabelledControls } from "./helpers.mjs";

const T = tag();
let browser, ctx, program;

before(async () => {
  browser = await launch();
  // A bare language (no region): nothing to preselect the country from.
  ctx = await newContext(browser, { locale: "de" });
  program = await apiOk("POST", "/api/v1/programs", {
    name: `Country ${T}`,
    domains: [`go.c${T}.test`],
    allowed_hosts: [`c${T}.test`],
    payout_currency: "usd",
  });
});
after(async () => browser?.close());

async function portal(name, country) {
  const tok = await apiOk("POST", "/api/v1/embed-tokens", { program_id: program.id, partner: { email: `${name.toLowerCase()}-${T}@partners.test`, name } });
  if (country) await apiOk("PATCH", `/api/v1/partners/${tok.partner_id}`, { country });
  const page = await ctx.newPage();
  page.on("pageerror", (e) => assert.fail(`portal: ${e}`));
  await page.goto(`${env.base}/embed/referrals?token=${tok.token}`);
  await page.getByRole("heading", { name: `Country ${T}`, level: 1 }).waitFor();
  return { page, token: tok.token, partnerId: tok.partner_id };
}

test("a known country is shown, not asked; the onboarding sends none and Stripe gets the partner's", { timeout: 60_000 }, async () => {
  const { page, token, partnerId } = await portal("Francine", "FR");
  assert.equal((await apiOk("GET", "/api/v1/portal/me", undefined, token)).partner.country, "FR");
  const box = page.locator("#payout-status");
  assert.equal((await page.locator("#partner-country").textContent()).trim(), "Country: France");
  assert.equal(await box.locator("select").count(), 0);
  assert.deepEqual(await unlabelledControls(page), []);
  await shot(page, "30-portal-country-known");
  const bodies = [];
  page.on("request", (r) => r.url().endsWith("/api/v1/portal/onboard") && bodies.push(r.postDataJSON()));
  const popupP = ctx.waitForEvent("page");
  await page.getByRole("button", { name: "Connect payouts" }).click();
  const popup = await popupP;
  await popup.waitForURL(/\/connect\/onboarding\//);
  await popup.close();
  assert.equal(bodies.length, 1);
  assert.equal("country" in bodies[0], false, "a partner with a country is not asked again");
  const acct = (await apiOk("GET", `/api/v1/partners/${partnerId}`)).stripe_account_id;
  const account = (await stripeControl("GET", "state")).accounts[acct];
  assert.equal(account.country, "FR");
  assert.equal(account.tos_acceptance.service_agreement, "recipient");
  await page.close();
});

test("without a region in the browser's language the country select starts empty (and required)", async () => {
  const { page } = await portal("Dieter");
  assert.equal(await page.evaluate(() => navigator.language), "de");
  const select = page.getByLabel("Your country");
  assert.equal(await select.inputValue(), "");
  assert.equal(await select.evaluate((el) => el.required), true);
  assert.equal((await select.locator("option").first().textContent()).trim(), "Choose your country");
  assert.deepEqual(await unlabelledControls(page), []);
  await page.close();
});

test("why payouts are disabled reads in words; an unknown code is shown as it is", async () => {
  const { page } = await portal("Rita", "GB");
  let reason = "deauthorized";
  await page.route("**/api/v1/portal/me", async (route) => {
    const res = await route.fetch();
    const me = await res.json();
    Object.assign(me.partner, { stripe_connected: true, payouts_enabled: false, payouts_disabled_reason: reason });
    await route.fulfill({ response: res, json: me });
  });
  const text = async () => (await page.locator("#payouts-disabled-reason").textContent()).trim();
  await page.reload();
  await page.locator("#payouts-disabled-reason").waitFor();
  assert.equal(await text(), "Payouts are paused: Your Stripe account was disconnected.");
  reason = "account_invalid";
  await page.reload();
  await page.locator("#payouts-disabled-reason code").waitFor();
  assert.equal(await text(), "Payouts are paused: account_invalid");
  await page.getByRole("button", { name: "Continue Stripe onboarding" }).waitFor();
  assert.equal((await page.locator("#partner-country").textContent()).trim(), "Country: United Kingdom");
  await shot(page, "31-portal-payouts-disabled-code");
  await page.close();
});
