// Coupon codes as the merchant's team manages them: on the Partners tab a partner's Coupons
// open their codes; the team adds one (a taken or malformed code shows at its field), a sale
// tracked with it (in another case) earns the partner a commission, and deleting the code stops
// it attributing.
import { after, before } from "node:test";
import assert from "node:assert/strict";
import { api, apiOk, assertText, env, launch, newContext, shot, steps, tag, unlabelledControls, until } from "./helpers.mjs";

const T = tag();
const S = {};
let browser, dash;

const step = steps(() => [["coupons", dash]]);

before(async () => {
  browser = await launch();
  dash = await (await newContext(browser)).newPage();
  S.errors = [];
  dash.on("pageerror", (e) => S.errors.push(String(e)));
});
after(async () => browser?.close());

const sale = (code, ext = `buyer-${T}-${Math.random().toString(36).slice(2, 8)}`) =>
  api("POST", "/api/v1/track/sale", { customer_external_id: ext, amount: 10000, currency: "usd", invoice_id: `in_${ext}`, coupon_code: code, program_id: S.program.id });

step("seed: a program with two partners", async () => {
  S.program = await apiOk("POST", "/api/v1/programs", {
    name: `Coupons ${T}`,
    domains: [`go.c${T}.test`],
    allowed_hosts: [`c${T}.test`],
    payout_currency: "usd",
    rewards: { sale: { type: "percentage", amount: 2000 } },
  });
  S.jane = await apiOk("POST", `/api/v1/programs/${S.program.id}/partners`, { email: `jane-${T}@partners.test`, name: "Jane Video" });
  S.other = await apiOk("POST", `/api/v1/programs/${S.program.id}/partners`, { email: `omar-${T}@partners.test`, name: "Omar Other" });
  await apiOk("POST", `/api/v1/partners/${S.other.id}/coupons`, { code: `OMAR${T}` });
});

step("Partners: a partner's Coupons open their codes", async () => {
  await dash.goto(`${env.base}/dashboard/`);
  await dash.getByLabel("API key").fill(env.adminKey);
  await dash.getByRole("button", { name: "Sign in" }).click();
  await dash.getByRole("heading", { name: "Programs", level: 1 }).waitFor();
  await dash.goto(`${env.base}/dashboard/#/programs/${S.program.id}`);
  await dash.getByRole("heading", { name: `Coupons ${T}`, level: 1 }).waitFor();
  await dash.getByRole("link", { name: "Partners" }).click();
  await dash.getByRole("button", { name: "Coupon codes of Jane Video" }).click();
  const heading = dash.getByRole("heading", { name: "Coupon codes of Jane Video", level: 2 });
  await heading.waitFor();
  await until(async () => (await dash.evaluate(() => document.activeElement?.id)) === "coupons-title", "focus on the coupons heading");
  await assertText(dash.locator("#coupons-list"), /No coupon codes yet/);
  assert.deepEqual(await unlabelledControls(dash), []);
});

step("add: a code; a malformed or taken one is refused at its field", async () => {
  const code = dash.getByLabel("New code");
  await code.fill("no");
  await dash.getByRole("button", { name: "Add code" }).click();
  await assertText(dash.locator("#coupon-form [data-field=code] .err"), /3 to 40 letters/);
  assert.equal(await code.getAttribute("aria-invalid"), "true");
  await code.fill(`omar${T}`); // Omar's code, in another case: taken in the program
  await dash.getByRole("button", { name: "Add code" }).click();
  await assertText(dash.locator("#coupon-form .alert"), /already has the coupon code/);
  assert.equal((await apiOk("GET", `/api/v1/partners/${S.jane.id}/coupons`)).data.length, 0);
  await code.fill(`Jane${T}`);
  await dash.getByRole("button", { name: "Add code" }).click();
  const row = dash.locator(`#coupons-list tr[data-code="Jane${T}"]`);
  await assertText(row, new RegExp(`Jane${T}[\\s\\S]*20\\d\\d[\\s\\S]*Delete`));
  const listed = (await apiOk("GET", `/api/v1/partners/${S.jane.id}/coupons`)).data;
  assert.deepEqual(listed.map((c) => c.code), [`Jane${T}`]);
  S.coupon = listed[0];
  await shot(dash, "60-coupons-partner");
});

step("a sale with the code (any case) is the partner's", async () => {
  const r = await sale(`JANE${T}`.toUpperCase());
  assert.equal(r.status, 200, JSON.stringify(r.json));
  assert.equal(r.json.event.partner_id, S.jane.id);
  assert.equal(r.json.event.coupon_id, S.coupon.id);
  assert.equal(r.json.commission.amount, 2000);
});

step("delete: the code stops attributing", async () => {
  await dash.getByRole("button", { name: `Delete code Jane${T}` }).click();
  const dialog = dash.getByRole("dialog", { name: `Delete the code Jane${T}?` });
  await dialog.waitFor();
  await shot(dash, "61-coupons-delete-dialog");
  await dialog.getByRole("button", { name: "Delete code" }).click();
  await assertText(dash.locator("#coupons-list"), /No coupon codes yet/);
  await assertText(dash.locator("#live"), new RegExp(`Code Jane${T} deleted`));
  assert.equal((await apiOk("GET", `/api/v1/partners/${S.jane.id}/coupons`)).data.length, 0);
  const r = await sale(`jane${T}`);
  assert.equal(r.status, 200, JSON.stringify(r.json));
  assert.equal(r.json.attributed, false);
  assert.equal(r.json.reason, "coupon_not_found");
  assert.deepEqual(S.errors, []);
});
