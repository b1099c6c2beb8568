// Sub-IDs in the portal: a partner whose link was clicked with `?sub1=` (and sub2, sub3) sees
// those clicks, leads and sales by sub-ID under its stats ("By sub-ID"), the untagged rest in
// its own row, and how to tag a link; a partner without tagged clicks sees only the hint.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import { apiOk, assertText, env, launch, newContext, shot, tag, UA, unlabelledControls, until } from "./helpers.mjs";

const T = tag();
let browser, ctx, program;

before(async () => {
  browser = await launch();
  ctx = await newContext(browser);
  program = await apiOk("POST", "/api/v1/programs", {
    name: `Sub-IDs ${T}`,
    domains: [`go.s${T}.test`],
    allowed_hosts: [`s${T}.test`],
    payout_currency: "usd",
    rewards: { lead: { type: "flat", amount: 500 } },
  });
});
after(async () => browser?.close());

let visitors = 0;
/** A new visitor's click on `link` with `query`: answers the redirect's Location. */
function click(link, query) {
  visitors += 1;
  const ip = `198.19.${(visitors >> 8) & 255}.${visitors & 255}`;
  return new Promise((resolve, reject) => {
    const headers = { host: link.domain, "user-agent": UA, "cf-connecting-ip": ip };
    const req = http.request({ host: "127.0.0.1", port: env.port, path: `/${link.key}${query}`, headers }, (res) => {
      res.resume();
      if (res.statusCode === 302) resolve(res.headers.location);
      else reject(new Error(`click on ${link.short_url}: ${res.statusCode}`));
    });
    req.on("error", reject);
    req.end();
  });
}

async function stored(link, n) {
  await until(async () => (await apiOk("GET", `/api/v1/clicks?link_id=${link.id}&limit=100`)).data.length === n, `${n} clicks stored`, 20_000);
}

test("the portal lists the partner's clicks by sub-ID and says how to tag a link", { timeout: 90_000 }, async () => {
  const tok = await apiOk("POST", "/api/v1/embed-tokens", { program_id: program.id, partner: { email: `tagger-${T}@partners.test`, name: "Tagger" } });
  const link = await apiOk("POST", `/api/v1/partners/${tok.partner_id}/links`, { url: `https://s${T}.test/pricing` });
  const locations = [];
  for (const q of ["?sub1=tiktok&sub2=bio", "?sub1=tiktok&sub2=bio", "?sub1=tiktok&sub2=bio", "?sub1=youtube&sub3=ep%2042", "?utm_source=x", ""]) {
    locations.push(await click(link, q));
  }
  assert.match(locations[0], /\?sub1=tiktok&sub2=bio&refport_id=clk_/);
  assert.match(locations[3], /\?sub1=youtube&sub3=ep%2042&refport_id=clk_/);
  assert.doesNotMatch(locations[4], /utm_source/);
  await stored(link, 6);
  // a lead through a tiktok click
  const cid = /refport_id=(clk_[0-9A-Za-z]+)/.exec(locations[0])[1];
  await apiOk("POST", "/api/v1/track/lead", { click_id: cid, customer_external_id: `c-${T}` });

  const page = await ctx.newPage();
  page.on("pageerror", (e) => assert.fail(`portal: ${e}`));
  await page.goto(`${env.base}/embed/referrals?token=${tok.token}`);
  await page.getByRole("heading", { name: "By sub-ID", level: 3 }).waitFor();
  const box = page.locator("#sub-ids");
  await assertText(box.locator(".hint"), new RegExp(`add \\?sub1= .*${link.short_url.replace(/[.?]/g, "\\$&")}\\?sub1=tiktok&sub2=bio`));
  const rows = await box.locator("tbody tr").evaluateAll((trs) => trs.map((tr) => [...tr.cells].map((td) => td.textContent.trim())));
  assert.deepEqual(rows, [
    ["tiktok", "bio", "—", "3", "1", "0"],
    ["youtube", "—", "ep 42", "1", "0", "0"],
    ["No sub-ID", "2", "0", "0"],
  ]);
  assert.deepEqual(await box.locator("thead th").allTextContents(), ["sub1", "sub2", "sub3", "Clicks", "Leads", "Sales"]);
  assert.deepEqual(await unlabelledControls(page), []);
  await box.scrollIntoViewIfNeeded();
  await shot(page, "40-portal-sub-ids");
  // 90 days: the same clicks (today's), re-rendered
  await page.getByRole("group", { name: "Chart period" }).getByRole("button", { name: "90 days" }).click();
  await assertText(box.locator("table caption"), /^Your clicks by sub-ID, last 90 days$/);
  assert.equal(await box.locator("tbody tr").count(), 3);
  await page.close();
});

test("a partner without tagged clicks sees the hint and an empty table", { timeout: 60_000 }, async () => {
  const tok = await apiOk("POST", "/api/v1/embed-tokens", { program_id: program.id, partner: { email: `plain-${T}@partners.test`, name: "Plain" } });
  const link = await apiOk("POST", `/api/v1/partners/${tok.partner_id}/links`, { url: `https://s${T}.test/` });
  await click(link, "?sub1=");
  await stored(link, 1);
  const page = await ctx.newPage();
  page.on("pageerror", (e) => assert.fail(`portal: ${e}`));
  await page.goto(`${env.base}/embed/referrals?token=${tok.token}`);
  const box = page.locator("#sub-ids");
  await box.getByText("No clicks with a sub-ID in the last 30 days.").waitFor();
  assert.equal(await box.locator("table").count(), 0);
  await assertText(box.locator(".hint"), /\?sub1=tiktok&sub2=bio/);
  await shot(page, "41-portal-sub-ids-empty");
  await page.close();
});
