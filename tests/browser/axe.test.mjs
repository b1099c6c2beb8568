// axe-core (the npm package, WCAG 2.1 A/AA and best-practice rules) on every page of the
// dashboard, the embedded portal and the invitation page, each with data on it: 0 serious or
// critical violations (issue 17). A new page joins PAGES. AXE_REPORT=1 lists every page's
// violations instead of stopping at the first page that has some (to fix them in one pass).
import { after, before } from "node:test";
import assert from "node:assert/strict";
import { apiOk, axeViolations, clickId, env, launch, newContext, shot, steps, tag, until } from "./helpers.mjs";

const T = tag();
const S = {};
let browser, page;
const step = steps(() => [["axe", page]]);

before(async () => {
  browser = await launch();
  page = await (await newContext(browser)).newPage();
});
after(async () => browser?.close());

async function check(name, ready) {
  await ready();
  await until(async () => (await page.locator("main").getAttribute("aria-busy")) !== "true", `${name} loaded`);
  const v = await axeViolations(page);
  if (v.length) await shot(page, `axe-${name}`);
  if (process.env.AXE_REPORT) return void console.log(`AXE ${name}: ${JSON.stringify(v)}`);
  assert.deepEqual(v, [], `${name}: serious or critical accessibility violations`);
}

step("seed: a program with a partner, a link, a click, a sale, a group and a coupon", async () => {
  S.program = await apiOk("POST", "/api/v1/programs", {
    name: `Axe ${T}`,
    domains: [`go.x${T}.test`],
    allowed_hosts: [`x${T}.test`],
    payout_currency: "usd",
    rewards: { sale: { type: "percentage", amount: 2000 } },
  });
  const pid = S.program.id;
  S.partner = await apiOk("POST", `/api/v1/programs/${pid}/partners`, { email: `ada-${T}@partners.test`, name: "Ada Axe" });
  const link = await apiOk("POST", `/api/v1/partners/${S.partner.id}/links`, { url: `https://x${T}.test/` });
  const id = await clickId(link);
  await apiOk("POST", "/api/v1/track/lead", { click_id: id, customer_external_id: `c-${T}`, event_name: "Sign up", program_id: pid });
  await apiOk("POST", "/api/v1/track/sale", { customer_external_id: `c-${T}`, amount: 4200, currency: "usd", invoice_id: `in_${T}`, program_id: pid });
  await apiOk("POST", `/api/v1/programs/${pid}/groups`, { name: "Gold" });
  await apiOk("POST", `/api/v1/partners/${S.partner.id}/coupons`, { code: `ADA${T}` });
  S.token = (await apiOk("POST", "/api/v1/embed-tokens", { program_id: pid, partner_id: S.partner.id })).token;
});

step("the sign-in page", async () => {
  await check("signin", async () => {
    await page.goto(`${env.base}/dashboard/`);
    await page.getByLabel("API key").waitFor();
  });
  await page.getByLabel("API key").fill(env.adminKey);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("heading", { name: "Programs", level: 1 }).waitFor();
});

const PAGES = [
  ["programs", "#/programs", "Programs"],
  ["new-program", "#/programs/new", "New program"],
  ["overview", () => `#/programs/${S.program.id}`, "Performance"],
  ["partners", () => `#/programs/${S.program.id}/partners`, "Ada Axe"],
  ["partner", () => `#/programs/${S.program.id}/partners/${S.partner.id}`, "Performance of Ada Axe"],
  ["groups-tab", () => `#/programs/${S.program.id}/groups`, "Gold"],
  ["commissions", () => `#/programs/${S.program.id}/commissions`, "Commissions"],
  ["review", () => `#/programs/${S.program.id}/review`, "Needs review"],
  ["payouts", () => `#/programs/${S.program.id}/payouts`, "Payouts"],
  ["settings", () => `#/programs/${S.program.id}/settings`, "Settings"],
  ["groups", () => `#/groups?program=${S.program.id}`, "Gold"],
  ["integrations", "#/integrations", "Integrations"],
];

for (const [name, hash, text] of PAGES) {
  step(`dashboard: ${name}`, async () => {
    await check(name, async () => {
      await page.goto(`${env.base}/dashboard/${typeof hash === "function" ? hash() : hash}`);
      await page.getByText(text).first().waitFor();
      // Charts and tables that load after the page's heading.
      await until(async () => (await page.locator("[aria-busy=true]").count()) === 0, `${name} settled`);
    });
  });
}

step("the partner portal", async () => {
  await page.goto(`${env.base}/embed/referrals?token=${S.token}`);
  await page.getByText("Ada Axe").first().waitFor();
  await until(async () => (await page.locator("[aria-busy=true]").count()) === 0, "portal settled");
  const v = await axeViolations(page);
  if (v.length) await shot(page, "axe-portal");
  if (process.env.AXE_REPORT) return void console.log(`AXE portal: ${JSON.stringify(v)}`);
  assert.deepEqual(v, [], "portal: serious or critical accessibility violations");
});

step("the invitation page", async () => {
  await page.goto(`${env.base}/invite?token=not-a-real-invitation`);
  await page.locator("h1").first().waitFor();
  const v = await axeViolations(page);
  if (v.length) await shot(page, "axe-invite");
  if (process.env.AXE_REPORT) return void console.log(`AXE invite: ${JSON.stringify(v)}`);
  assert.deepEqual(v, [], "invite: serious or critical accessibility violations");
});
