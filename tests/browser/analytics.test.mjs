// A program's performance as the merchant reads it (issue 17): the Overview tab totals clicks,
// leads, sales, revenue and commissions over 7/30/90 days or a custom range, draws them per day
// (with a table), and ranks the top partners and links; a partner's page shows the same for that
// partner only. The numbers are checked against what the test sent.
import { after, before } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import { apiOk, assertText, env, launch, newContext, shot, steps, tag, UA, unlabelledControls, until } from "./helpers.mjs";

const T = tag();
const S = {};
let browser, dash;
const step = steps(() => [["analytics", dash]]);

before(async () => {
  browser = await launch();
  dash = await (await newContext(browser, { viewport: { width: 1280, height: 1000 } })).newPage();
  S.errors = [];
  dash.on("pageerror", (e) => S.errors.push(String(e)));
});
after(async () => browser?.close());

let visitors = 0;
/** A new visitor's click on `link`: answers the click id. */
function click(link) {
  visitors += 1;
  const ip = `198.18.${(visitors >> 8) & 255}.${visitors & 255}`;
  return new Promise((resolve, reject) => {
    const req = http.request({ host: "127.0.0.1", port: env.port, path: `/${link.key}`, headers: { host: link.domain, "user-agent": UA, "cf-connecting-ip": ip } }, (res) => {
      res.resume();
      const id = /refport_id=(clk_[0-9A-Za-z]+)/.exec(res.headers.location ?? "")?.[1];
      if (res.statusCode === 302 && id) resolve(id);
      else reject(new Error(`click on ${link.short_url}: ${res.statusCode}`));
    });
    req.on("error", reject);
    req.end();
  });
}

const kpi = (id) => dash.locator(`#analytics #kpi-${id} .kpi-value`);

step("seed: two partners, clicks, leads and sales", async () => {
  S.program = await apiOk("POST", "/api/v1/programs", {
    name: `Analytics ${T}`,
    domains: [`go.a${T}.test`],
    allowed_hosts: [`a${T}.test`],
    payout_currency: "usd",
    rewards: { sale: { type: "percentage", amount: 2000 }, lead: { type: "flat", amount: 100 } },
  });
  const pid = S.program.id;
  S.ana = await apiOk("POST", `/api/v1/programs/${pid}/partners`, { email: `ana-${T}@partners.test`, name: "Ana Top" });
  S.bo = await apiOk("POST", `/api/v1/programs/${pid}/partners`, { email: `bo-${T}@partners.test`, name: "Bo Second" });
  S.anaLink = await apiOk("POST", `/api/v1/partners/${S.ana.id}/links`, { url: `https://a${T}.test/pricing` });
  S.boLink = await apiOk("POST", `/api/v1/partners/${S.bo.id}/links`, { url: `https://a${T}.test/` });
  // Ana: 4 clicks, 2 leads, 2 sales of $100 and $50; Bo: 2 clicks, 1 lead, 1 sale of $20.
  const plan = [
    [S.anaLink, [10000, 5000, null, null]],
    [S.boLink, [2000, null]],
  ];
  let n = 0;
  for (const [link, sales] of plan) {
    for (const amount of sales) {
      const id = await click(link);
      if (amount === null) continue;
      const ext = `cust-${T}-${++n}`;
      await apiOk("POST", "/api/v1/track/lead", { click_id: id, customer_external_id: ext, event_name: "Sign up", program_id: pid });
      await apiOk("POST", "/api/v1/track/sale", { customer_external_id: ext, amount, currency: "usd", invoice_id: `in_${ext}`, program_id: pid });
    }
  }
  // Clicks reach the rollups through the queue: wait until the stats API counts all six.
  await until(async () => (await apiOk("GET", `/api/v1/programs/${pid}/stats?group_by=day`)).totals.clicks === 6, "6 clicks in the rollups", 30_000);
});

step("Overview: totals, chart and top partners and links over 30 days", async () => {
  await dash.goto(`${env.base}/dashboard/`);
  await dash.getByLabel("API key").fill(env.adminKey);
  await dash.getByRole("button", { name: "Sign in" }).click();
  await dash.getByRole("heading", { name: "Programs", level: 1 }).waitFor();
  await dash.goto(`${env.base}/dashboard/#/programs/${S.program.id}`);
  await dash.getByRole("heading", { name: "Performance", level: 2 }).waitFor();
  await until(async () => (await dash.locator("#analytics").getAttribute("aria-busy")) === "false", "analytics loaded");
  assert.equal(await kpi("clicks").textContent(), "6");
  assert.equal(await kpi("leads").textContent(), "3");
  assert.equal(await kpi("sales").textContent(), "3");
  assert.match(await kpi("revenue").textContent(), /170\.00/);
  // 20 % of $170 plus three $1 leads.
  assert.match(await kpi("commissions").textContent(), /37\.00/);
  assert.equal(await dash.getByRole("link", { name: "30 days" }).getAttribute("aria-current"), "true");
  // The chart: 30 daily bars whose total is the clicks; its table says the same.
  const svg = dash.locator("#analytics-chart svg.chart");
  assert.equal(await svg.getAttribute("data-days"), "30");
  assert.equal(await svg.getAttribute("data-total"), "6");
  assert.match(await svg.getAttribute("aria-label"), /Clicks per day over the last 30 days: 6 in total/);
  await dash.getByRole("button", { name: "Revenue" }).click();
  assert.equal(await dash.getByRole("button", { name: "Revenue" }).getAttribute("aria-pressed"), "true");
  assert.equal(await dash.locator("#analytics-chart svg.chart").getAttribute("data-total"), "17000");
  await dash.locator("#analytics-chart summary").click();
  await assertText(dash.locator("#analytics-chart table"), /\$170\.00/);
  // Top partners: Ana first (more clicks), each linking to the partner's page; top links by key.
  const rows = dash.locator("#top-partners tbody tr");
  assert.equal(await rows.count(), 2);
  await assertText(rows.nth(0), /Ana Top\s*4\s*2\s*\$150\.00\s*\$32\.00/);
  await assertText(rows.nth(1), /Bo Second\s*2\s*1\s*\$20\.00\s*\$5\.00/);
  await assertText(dash.locator("#top-links tbody tr").nth(0), new RegExp(S.anaLink.key));
  assert.deepEqual(await unlabelledControls(dash), []);
  await shot(dash, "analytics-overview");
});

step("ranges: 7 days and a custom range that excludes the activity", async () => {
  await dash.getByRole("link", { name: "7 days" }).click();
  await until(async () => (await dash.locator("#analytics-chart svg.chart").getAttribute("data-days")) === "7", "7 daily bars");
  assert.equal(await kpi("clicks").textContent(), "6");
  assert.match(dash.url(), /\?days=7$/);
  await dash.getByLabel("From (UTC day)").fill("2024-01-01");
  await dash.getByLabel("To (UTC day)").fill("2024-01-31");
  await dash.getByRole("button", { name: "Apply" }).click();
  await until(async () => (await dash.locator("#analytics-chart svg.chart").getAttribute("data-days")) === "31", "31 daily bars");
  assert.equal(await kpi("clicks").textContent(), "0");
  await assertText(dash.locator("#top-partners"), /No activity in this period/);
  assert.match(await dash.locator("#analytics-chart svg.chart").getAttribute("aria-label"), /from Jan 1 to Jan 31: none yet/);
  // A range the API refuses (over a year) is said on the page, which keeps working.
  await dash.getByLabel("From (UTC day)").fill("2022-01-01");
  await dash.getByRole("button", { name: "Apply" }).click();
  await assertText(dash.locator("#analytics .alert.error"), /at most 366 days/);
  await dash.getByRole("link", { name: "30 days" }).click();
  await until(async () => (await kpi("clicks").count()) === 1 && (await kpi("clicks").textContent()) === "6", "back to 30 days");
});

step("a partner's page: the same numbers for that partner only", async () => {
  await dash.locator("#top-partners").getByRole("link", { name: "Bo Second" }).click();
  await dash.getByRole("heading", { name: "Performance of Bo Second", level: 2 }).waitFor();
  await until(async () => (await dash.locator("#analytics").getAttribute("aria-busy")) === "false", "partner analytics loaded");
  assert.equal(await kpi("clicks").textContent(), "2");
  assert.equal(await kpi("sales").textContent(), "1");
  assert.match(await kpi("revenue").textContent(), /20\.00/);
  assert.equal(await dash.locator("#top-partners").count(), 0);
  await assertText(dash.locator("#top-links tbody tr").nth(0), new RegExp(S.boLink.key));
  assert.equal(await dash.locator("#top-links tbody tr").count(), 1);
  await shot(dash, "analytics-partner");
  assert.deepEqual(S.errors, []);
});
