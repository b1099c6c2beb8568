// What must fail, fails visibly: a host outside allowed_hosts cannot frame the portal; a bad or
// used invitation link says so; the portal API refuses secret keys and foreign tokens.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { api, apiOk, env, launch, merchantSite, newContext, shot, tag } from "./helpers.mjs";

let browser, ctx;
const T = tag();

before(async () => {
  browser = await launch();
  ctx = await newContext(browser);
});
after(async () => browser?.close());

let n = 0;
async function programWithPartner(allowedHosts) {
  n += 1;
  const program = await apiOk("POST", "/api/v1/programs", {
    name: `Frame test ${T}`,
    domains: [`go${n}.f${T}.test`],
    allowed_hosts: allowedHosts,
    payout_currency: "eur",
    rewards: { sale: { type: "flat", amount: 1250 } },
  });
  const tok = await apiOk("POST", "/api/v1/embed-tokens", { program_id: program.id, partner: { email: `f-${T}@partners.test`, name: "Frank" } });
  return { program, token: tok.token };
}

test("a site outside the program's allowed hosts cannot frame the portal (CSP frame-ancestors)", { timeout: 60_000 }, async () => {
  const { token } = await programWithPartner([`shop.f${T}.test`]); // 127.0.0.1 is not allowed
  const site = await merchantSite(async () => `<!doctype html><title>Other site</title><h1>Other site</h1><iframe id="portal" src="${env.base}/embed/referrals?token=${token}" style="width:100%;height:600px"></iframe>`);
  try {
    const page = await ctx.newPage();
    const refused = [];
    page.on("console", (m) => /frame-ancestors/.test(m.text()) && refused.push(m.text()));
    await page.goto(site.url);
    const frame = await (await page.waitForSelector("iframe#portal")).contentFrame();
    await frame.waitForLoadState("load").catch(() => {});
    for (let i = 0; i < 50 && !refused.length; i++) await new Promise((r) => setTimeout(r, 100));
    assert.ok(refused.length, "Chromium reports the frame-ancestors refusal");
    assert.match(refused[0], new RegExp(`frame-ancestors 'self' https://shop\\.f${T}\\.test`));
    assert.equal(await frame.locator("#app").count(), 0, "the portal's content is not rendered in the frame");
    await shot(page, "20-frame-ancestors-refused");
    // The same page opened top-level (not framed) works: the token itself is fine.
    const direct = await ctx.newPage();
    await direct.goto(`${env.base}/embed/referrals?token=${token}`);
    await direct.getByRole("heading", { name: `Frame test ${T}`, level: 1 }).waitFor();
    await direct.close();
    await page.close();
  } finally {
    await site.close();
  }
});

test("the portal API takes embed tokens only, never a secret key, and answers for one partner", async () => {
  const { program, token } = await programWithPartner([`shop.f${T}.test`]);
  assert.equal((await api("GET", "/api/v1/portal/me", undefined, env.adminKey)).status, 401, "a secret key is not an embed token");
  assert.equal((await api("GET", "/api/v1/portal/me", undefined, null)).status, 401);
  const me = await apiOk("GET", "/api/v1/portal/me", undefined, token);
  assert.equal(me.program.id, program.id);
  assert.equal(me.partner.email, `f-${T}@partners.test`);
  assert.equal(me.program.payout_currency, "eur");
});

test("an unknown invitation link shows an error, and no partner is enrolled", async () => {
  const page = await ctx.newPage();
  await page.goto(`${env.base}/invite?token=not-a-real-invitation`);
  await page.getByRole("button", { name: "Accept invitation" }).click();
  await page.locator("#status", { hasText: "invalid or has expired" }).waitFor();
  assert.equal(await page.getByRole("button", { name: "Accept invitation" }).count(), 0);
  await shot(page, "21-invite-invalid");
  await page.goto(`${env.base}/invite/`);
  await page.locator("#status", { hasText: "needs the invitation link" }).waitFor();
  await page.close();
});

test("the dashboard refuses to be framed and the static pages carry a CSP", async () => {
  for (const p of ["/dashboard/", "/invite/"]) {
    const res = await fetch(env.base + p);
    assert.equal(res.status, 200);
    assert.match(res.headers.get("content-security-policy") ?? "", /frame-ancestors 'none'/, p);
    assert.equal(res.headers.get("x-frame-options"), "DENY");
  }
  const html = await (await fetch(`${env.base}/dashboard/`)).text();
  const asset = /src="(\/assets\/[^"]+\.js)"/.exec(html)?.[1];
  assert.ok(asset);
  const res = await fetch(env.base + asset);
  assert.match(res.headers.get("cache-control") ?? "", /immutable/);
});
