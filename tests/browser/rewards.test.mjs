// Reward rules as the merchant edits them (issue 16): a partner group with a country modifier
// made in the Groups tab (a refused modifier shows the API's message at its input), a partner
// moved into it with its own minimum payout on the partner's page, a bonus added there (a double
// click creates one), the bonus in the commissions lists, a group in use that cannot be deleted,
// and a per-customer cap in the program's settings.
import { after, before } from "node:test";
import assert from "node:assert/strict";
import { apiOk, assertText, env, launch, newContext, shot, steps, tag, unlabelledControls, until } from "./helpers.mjs";

const T = tag();
const S = {}; // state shared by the steps, in order
let browser, dash;

const step = steps(() => [["rewards", dash]]);

before(async () => {
  browser = await launch();
  const ctx = await newContext(browser);
  dash = await ctx.newPage();
  S.pageErrors = [];
  dash.on("pageerror", (e) => S.pageErrors.push(String(e)));
});
after(async () => browser?.close());

step("seed: a program and two partners through the API", async () => {
  S.program = await apiOk("POST", "/api/v1/programs", {
    name: `Rewards ${T}`,
    domains: [`go.w${T}.test`],
    allowed_hosts: [`w${T}.test`],
    payout_currency: "usd",
    min_payout: 5000,
    hold_days: 30,
    rewards: { lead: { type: "flat", amount: 500 }, sale: { type: "percentage", amount: 2000 } },
  });
  S.pat = await apiOk("POST", `/api/v1/programs/${S.program.id}/partners`, { email: `pat-${T}@example.com`, name: "Pat Partner" });
  S.quinn = await apiOk("POST", `/api/v1/programs/${S.program.id}/partners`, { email: `quinn-${T}@example.com`, name: "Quinn Other" });
});

step("Groups: the tab's empty state, then a group with a country modifier", async () => {
  await dash.goto(`${env.base}/dashboard/`);
  await dash.getByLabel("API key").fill(env.adminKey);
  await dash.getByRole("button", { name: "Sign in" }).click();
  await dash.getByRole("heading", { name: "Programs", level: 1 }).waitFor();
  await dash.goto(`${env.base}/dashboard/#/programs/${S.program.id}`);
  await dash.getByRole("heading", { name: `Rewards ${T}`, level: 1 }).waitFor();
  await dash.getByRole("navigation", { name: "Program sections" }).getByRole("link", { name: "Groups" }).click();
  await dash.getByRole("heading", { name: "Partner groups", level: 2 }).waitFor();
  await assertText(dash.locator("#groups-list"), /No groups yet/);
  assert.equal(await dash.title(), `Groups · Rewards ${T} — Refport dashboard`);

  await dash.getByRole("button", { name: "New group" }).click();
  const form = dash.locator("#group-form");
  await form.getByLabel("Group name").fill("Gold");
  await form.getByLabel("Minimum payout", { exact: true }).fill("10");
  await form.getByLabel("Hold period (days)").fill("0");
  // Each kind starts inherited: only the sale reward gets the group's own terms.
  assert.equal(await form.getByLabel("Lead reward", { exact: true }).inputValue(), "inherit");
  await form.getByLabel("Sale reward", { exact: true }).selectOption("percentage");
  await form.getByLabel("Percentage of the sale (%)").fill("30");
  await form.getByLabel("Recurring").selectOption("forever");
  await form.getByLabel("Max commission per customer").fill("100");
  await form.getByRole("button", { name: "Add modifier for sales" }).click();
  // The new condition's field select has the focus; its ops follow the field.
  assert.equal(await dash.evaluate(() => document.activeElement?.id), "f-sale-m0-c0-field");
  await form.locator("#f-sale-m0-c0-field").selectOption("sale_amount");
  assert.deepEqual(await form.locator("#f-sale-m0-c0-op option").evaluateAll((o) => o.map((x) => x.value)), ["gte", "lte", "eq", "neq", "in", "not_in"]);
  await form.locator("#f-sale-m0-c0-field").selectOption("country");
  assert.deepEqual(await form.locator("#f-sale-m0-c0-op option").evaluateAll((o) => o.map((x) => x.value)), ["eq", "neq", "in", "not_in"]);
  await form.locator("#f-sale-m0-c0-op").selectOption("in");
  await form.locator("#f-sale-m0-c0-value").fill("de, at");
  await form.locator("#f-sale-m0-type").selectOption("percentage");
  await form.locator("#f-sale-m0-amount").fill("40");
  assert.deepEqual(await unlabelledControls(dash), []);
  await shot(dash, "70-rewards-group-form");
  await form.getByRole("button", { name: "Create group" }).click();
  const row = dash.locator('#groups-list tr[data-name="Gold"]');
  await assertText(row, /Gold[\s\S]*0[\s\S]*Sales: 30% of each sale, for the customer's lifetime; 40% when country is one of DE, AT; at most \$100\.00 per customer[\s\S]*\$10\.00[\s\S]*0 days/);
  await assertText(row, /Leads: the program's/);
  const groups = (await apiOk("GET", `/api/v1/programs/${S.program.id}/groups`)).data;
  assert.equal(groups.length, 1);
  S.gold = groups[0];
  assert.deepEqual(S.gold.rewards, {
    sale: {
      type: "percentage",
      amount: 3000,
      max_amount_per_customer: 10000,
      modifiers: [{ conditions: [{ field: "country", op: "in", value: ["DE", "AT"] }], match: "all", type: "percentage", amount: 4000 }],
    },
  });
  assert.equal(S.gold.min_payout, 1000);
  assert.equal(S.gold.hold_days, 0);
  await shot(dash, "71-rewards-groups-list");
});

step("Groups: a modifier the API refuses shows its message at the input, in words", async () => {
  await dash.getByRole("button", { name: "Edit Gold" }).click();
  const form = dash.locator("#group-form");
  assert.equal(await form.locator("#f-sale-m0-c0-value").inputValue(), "DE, AT");
  // A second condition: an unknown country code passes the form's check; the API refuses it.
  await form.getByRole("button", { name: "Add a condition to modifier 1" }).click();
  await form.locator("#f-sale-m0-c1-field").selectOption("country");
  await form.locator("#f-sale-m0-c1-op").selectOption("eq");
  await form.locator("#f-sale-m0-c1-value").fill("XX");
  await form.getByRole("button", { name: "Save group" }).click();
  await assertText(form.locator("#f-sale-m0-c1-value-err"), /`XX` is not an ISO 3166-1 alpha-2 country code/);
  assert.equal(await form.locator("#f-sale-m0-c1-value").getAttribute("aria-invalid"), "true");
  await assertText(form.locator(".alert.error"), /The server refused a value:[\s\S]*Value/);
  await shot(dash, "72-rewards-group-422");
  // Nothing was written.
  assert.deepEqual((await apiOk("GET", `/api/v1/groups/${S.gold.id}`)).rewards, S.gold.rewards);
  // The client's own check: an empty value is named before any request.
  await form.locator("#f-sale-m0-c1-value").fill("");
  await form.getByRole("button", { name: "Save group" }).click();
  await assertText(form.locator("#f-sale-m0-c1-value-err"), /Enter a value\./);
  await form.getByRole("button", { name: "Remove condition 2 of modifier 1" }).click();
  assert.equal(await form.locator("#f-sale-m0-c1-value").count(), 0);
  await form.getByRole("button", { name: "Cancel" }).click();
  assert.equal(await dash.locator("#group-form").count(), 0);
});

step("Partner page: put the partner in the group with its own minimum payout", async () => {
  await dash.getByRole("navigation", { name: "Program sections" }).getByRole("link", { name: "Partners" }).click();
  await dash.getByRole("heading", { name: "Partners", level: 2 }).waitFor();
  await assertText(dash.locator(`#partners-list tr[data-id="${S.pat.id}"]`), /Pat Partner[\s\S]*None/);
  await dash.getByRole("link", { name: "Pat Partner" }).click();
  await dash.getByRole("heading", { name: /^Pat Partner\s*Active$/, level: 2 }).waitFor();
  assert.equal(await dash.title(), `Pat Partner · Rewards ${T} — Refport dashboard`);
  const form = dash.locator("#partner-terms");
  assert.equal(await form.getByLabel("Group", { exact: true }).inputValue(), "");
  await form.getByLabel("Group", { exact: true }).selectOption({ label: "Gold" });
  await assertText(form.locator("#f-min_payout-hint"), /Empty: Gold's \(\$10\.00\)/);
  await assertText(dash.locator("#partner-effective"), /Sales: 30% of each sale, for the customer's lifetime; 40% when country is one of DE, AT; at most \$100\.00 per customer \(Gold's\)[\s\S]*Leads: \$5\.00 per lead \(the program's\)/);
  await form.getByLabel("Own minimum payout").fill("25");
  await form.getByRole("button", { name: "Save terms" }).click();
  await assertText(form.locator(".alert"), /Terms saved\./);
  const p = await apiOk("GET", `/api/v1/partners/${S.pat.id}`);
  assert.equal(p.group_id, S.gold.id);
  assert.equal(p.min_payout, 2500);
  assert.equal(p.rewards, null); // no own rewards: the group's apply
  await assertText(dash.locator("#partner-commissions-list"), /No commissions yet\./);
  await assertText(dash.locator("#partner-coupons"), /Coupon codes/i); // the coupons panel, on the partner's page too
  await shot(dash, "73-rewards-partner-terms");
});

step("Partner page: Add commission (a double click creates one bonus) and the lists show it", async () => {
  await dash.getByRole("button", { name: "Add commission" }).click();
  const dlg = dash.getByRole("dialog", { name: "Add a commission for Pat Partner" });
  await dlg.waitFor();
  // Nothing typed: the form names both fields without a request.
  await dlg.getByRole("button", { name: "Add commission" }).click();
  await assertText(dlg.locator("#f-amount-err"), /Enter an amount above zero/);
  await assertText(dlg.locator("#f-description-err"), /Enter a description/);
  await shot(dash, "74-rewards-add-commission");
  await dlg.getByLabel("Amount", { exact: true }).fill("150");
  await dlg.getByLabel("Description", { exact: true }).fill("Launch bonus");
  await dlg.getByLabel("Status", { exact: true }).selectOption("approved");
  await dlg.getByRole("button", { name: "Add commission" }).dblclick();
  await until(async () => (await dash.locator("dialog").count()) === 0, "the dialog closed");
  const row = dash.locator('#partner-commissions-list tr[data-kind="bonus"]');
  await assertText(row, /Bonus[\s\S]*Launch bonus[\s\S]*\$150\.00[\s\S]*Approved/);
  assert.equal(await dash.locator("#partner-commissions-list tbody tr").count(), 1);
  const list = (await apiOk("GET", `/api/v1/commissions?partner_id=${S.pat.id}`)).data;
  assert.equal(list.length, 1, JSON.stringify(list));
  assert.deepEqual([list[0].kind, list[0].amount, list[0].status, list[0].description], ["bonus", 15000, "approved", "Launch bonus"]);
  await shot(dash, "75-rewards-partner-bonus");

  await dash.getByRole("navigation", { name: "Program sections" }).getByRole("link", { name: "Commissions" }).click();
  const c = dash.locator(`#commissions-list tr[data-id="${list[0].id}"]`);
  await assertText(c, /Pat Partner[\s\S]*Bonus[\s\S]*Launch bonus[\s\S]*—[\s\S]*\$150\.00[\s\S]*Approved/);
  await shot(dash, "76-rewards-commissions-tab");

  await dash.getByRole("navigation", { name: "Program sections" }).getByRole("link", { name: "Partners" }).click();
  await assertText(dash.locator(`#partners-list tr[data-id="${S.pat.id}"]`), /Pat Partner[\s\S]*Gold/);
  await assertText(dash.locator(`#partners-list tr[data-id="${S.quinn.id}"]`), /Quinn Other[\s\S]*None/);
});

step("Partner page: the partner's own lead reward wins over the program's", async () => {
  await dash.getByRole("link", { name: "Pat Partner" }).click();
  const form = dash.locator("#partner-terms");
  await form.getByLabel("Lead reward", { exact: true }).selectOption("flat");
  await form.getByLabel("Amount per lead", { exact: true }).fill("7");
  await form.getByRole("button", { name: "Save terms" }).click();
  await assertText(form.locator(".alert"), /Terms saved\./);
  await assertText(dash.locator("#partner-effective"), /Leads: \$7\.00 per lead \(own\)/);
  const p = await apiOk("GET", `/api/v1/partners/${S.pat.id}`);
  assert.deepEqual(p.rewards, { lead: { type: "flat", amount: 700 } });
  assert.equal(p.group_id, S.gold.id);
  // Reloaded, the page shows what was saved.
  await dash.reload();
  await dash.getByRole("heading", { name: /^Pat Partner\s*Active$/, level: 2 }).waitFor();
  assert.equal(await form.getByLabel("Lead reward", { exact: true }).inputValue(), "flat");
  assert.equal(await form.getByLabel("Amount per lead", { exact: true }).inputValue(), "7.00");
  assert.equal(await form.getByLabel("Own minimum payout").inputValue(), "25.00");
});

step("Groups: rename; a group with partners cannot be deleted, the API's message says why", async () => {
  await dash.getByRole("navigation", { name: "Program sections" }).getByRole("link", { name: "Groups" }).click();
  await dash.getByRole("button", { name: "Edit Gold" }).click();
  await dash.locator("#group-form").getByLabel("Group name").fill("Gold VIP");
  await dash.locator("#group-form").getByRole("button", { name: "Save group" }).click();
  const row = dash.locator('#groups-list tr[data-name="Gold VIP"]');
  await assertText(row, /Gold VIP\s*1/);
  assert.equal((await apiOk("GET", `/api/v1/groups/${S.gold.id}`)).name, "Gold VIP");
  await dash.getByRole("button", { name: "Delete Gold VIP" }).click();
  const dlg = dash.getByRole("dialog", { name: "Delete the group Gold VIP?" });
  await assertText(dlg, /1 partner is in this group/);
  await dlg.getByRole("button", { name: "Delete group" }).click();
  await assertText(dlg.locator(".alert.error"), /partner/i);
  await shot(dash, "77-rewards-group-in-use");
  await dlg.getByRole("button", { name: "Cancel" }).click();
  assert.equal((await apiOk("GET", `/api/v1/programs/${S.program.id}/groups`)).data.length, 1);
});

step("Main navigation: Groups shows a program's groups, picked from a select", async () => {
  const nav = dash.getByRole("navigation", { name: "Main" });
  await nav.getByRole("link", { name: "Groups" }).click();
  await dash.getByRole("heading", { name: "Groups", level: 1 }).waitFor();
  assert.equal(await nav.getByRole("link", { name: "Groups" }).getAttribute("aria-current"), "page");
  // That page done loading (the first program's groups) before the address names another.
  await dash.locator("#groups-list").waitFor();
  await dash.locator('main[aria-busy="false"]').waitFor();
  // Other test files' programs share this Worker: pick this one by the address, then by the select.
  await dash.goto(`${env.base}/dashboard/#/groups?program=${S.program.id}`);
  await until(async () => (await dash.title()) === `Groups · Rewards ${T} — Refport dashboard`, "this program's Groups page");
  await dash.locator('main[aria-busy="false"]').waitFor();
  await assertText(dash.locator('#groups-list tr[data-name="Gold VIP"]'), /Gold VIP\s*1/);
  assert.equal(await dash.getByLabel("Program", { exact: true }).inputValue(), S.program.id);
  assert.equal(await dash.title(), `Groups · Rewards ${T} — Refport dashboard`);
  await shot(dash, "79-rewards-groups-page");
  await dash.goto(`${env.base}/dashboard/#/programs/${S.program.id}`);
  await dash.getByRole("heading", { name: `Rewards ${T}`, level: 1 }).waitFor();
});

step("Settings: the program's sale reward gets a cap and a modifier; the lead reward keeps its amount", async () => {
  await dash.getByRole("navigation", { name: "Program sections" }).getByRole("link", { name: "Settings" }).click();
  const form = dash.locator("form.program-form");
  await form.getByLabel("Max commissioned sales per customer").fill("3");
  await form.getByRole("button", { name: "Add modifier for sales" }).click();
  await form.locator("#f-sale-m0-c0-field").selectOption("metadata");
  await form.locator("#f-sale-m0-c0-key").fill("plan");
  await form.locator("#f-sale-m0-c0-op").selectOption("contains");
  await form.locator("#f-sale-m0-c0-value").fill("annual");
  await form.locator("#f-sale-m0-type").selectOption("flat");
  await form.locator("#f-sale-m0-amount").fill("25");
  await shot(dash, "78-rewards-settings");
  await form.getByRole("button", { name: "Save settings" }).click();
  await dash.locator(".flash").waitFor();
  const p = await apiOk("GET", `/api/v1/programs/${S.program.id}`);
  assert.deepEqual(p.rewards, {
    lead: { type: "flat", amount: 500 },
    sale: {
      type: "percentage",
      amount: 2000,
      max_sales_per_customer: 3,
      modifiers: [{ conditions: [{ field: "metadata.plan", op: "contains", value: "annual" }], match: "all", type: "flat", amount: 2500 }],
    },
  });
  await assertText(dash.locator("main"), /20% of each sale, for the customer's lifetime; \$25\.00 when metadata plan contains annual; at most 3 sales per customer/);
  assert.deepEqual(S.pageErrors, []);
});
