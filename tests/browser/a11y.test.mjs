// Keyboard use and contrast: the dashboard works without a mouse, dialogs behave, and a pale
// brand colour still gives readable text in the portal.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { apiOk, env, launch, newContext, shot, tag, unlabelledControls } from "./helpers.mjs";

let browser, ctx;
const T = tag();

before(async () => {
  browser = await launch();
  ctx = await newContext(browser);
});
after(async () => browser?.close());

const contrastFn = `(() => {
  const parse = (c) => { const m = c.match(/\\d+(\\.\\d+)?/g).map(Number); return m.slice(0, 3); };
  const lum = (c) => { const [r, g, b] = parse(c).map((v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; }); return 0.2126 * r + 0.7152 * g + 0.0722 * b; };
  return (fg, bg) => { const [a, b] = [lum(fg), lum(bg)].sort((x, y) => y - x); return (a + 0.05) / (b + 0.05); };
})()`;

async function contrastOf(frame, selector, bgSelector = selector) {
  return frame.evaluate(
    ([sel, bgSel, fn]) => {
      const ratio = eval(fn);
      const fg = getComputedStyle(document.querySelector(sel)).color;
      let el = document.querySelector(bgSel);
      let bg = "rgba(0, 0, 0, 0)";
      while (el && (bg = getComputedStyle(el).backgroundColor) === "rgba(0, 0, 0, 0)") el = el.parentElement;
      return ratio(fg, bg === "rgba(0, 0, 0, 0)" ? "rgb(255, 255, 255)" : bg);
    },
    [selector, bgSelector, contrastFn],
  );
}

test("dashboard: sign in, open a program and invite a partner with the keyboard only", { timeout: 60_000 }, async () => {
  const program = await apiOk("POST", "/api/v1/programs", { name: `Keyboard ${T}`, domains: [`go.k${T}.test`], allowed_hosts: [`k${T}.test`], payout_currency: "usd" });
  const page = await ctx.newPage();
  await page.goto(`${env.base}/dashboard/`);
  await page.locator("#f-api_key").waitFor();
  assert.equal(await page.evaluate(() => document.activeElement.id), "f-api_key", "the sign-in page starts in the key field");
  const firstTabbable = await page.evaluate(() => document.querySelector("a[href], button:not([hidden]), input, select, textarea")?.textContent);
  assert.equal(firstTabbable, "Skip to content", "the first Tab stop skips the header");
  await page.keyboard.type(env.adminKey);
  await page.keyboard.press("Enter");
  await page.getByRole("heading", { name: "Programs", level: 1 }).waitFor();
  await page.goto(`${env.base}/dashboard/#/programs/${program.id}/partners`);
  await page.getByRole("heading", { name: "Invite a partner" }).waitFor();
  assert.deepEqual(await unlabelledControls(page), []);
  await page.getByLabel("Name").focus();
  await page.keyboard.type("Kim Key");
  await page.keyboard.press("Tab");
  assert.equal(await page.evaluate(() => document.activeElement.id), "f-email");
  await page.keyboard.type(`kim-${T}@partners.test`);
  await page.keyboard.press("Tab");
  assert.equal(await page.evaluate(() => document.activeElement.textContent), "Send invitation");
  await page.keyboard.press("Enter");
  await page.locator("#invite-result", { hasText: `kim-${T}@partners.test` }).waitFor();
  // Ban dialog: Escape cancels and gives focus back to the button that opened it.
  const ban = page.getByRole("button", { name: "Ban Kim Key" });
  await ban.focus();
  await page.keyboard.press("Enter");
  await page.getByRole("dialog").waitFor();
  assert.equal(await page.evaluate(() => document.activeElement.textContent), "Ban partner", "focus moves into the dialog");
  await page.keyboard.press("Escape");
  await page.getByRole("dialog").waitFor({ state: "detached" });
  assert.equal(await page.evaluate(() => document.activeElement.getAttribute("aria-label")), "Ban Kim Key");
  assert.equal(await page.locator(`tr[data-email="kim-${T}@partners.test"]`).getAttribute("data-status"), "invited", "nothing changed");
  // Dashboard text contrast.
  assert.ok((await contrastOf(page, ".tabs a[aria-current=page]")) >= 4.5);
  assert.ok((await contrastOf(page, "th")) >= 4.5);
  assert.ok((await contrastOf(page, ".badge.invited")) >= 4.5);
  await page.close();
});

test("portal: a pale brand colour still gives readable buttons and accents (contrast >= 4.5)", { timeout: 60_000 }, async () => {
  const program = await apiOk("POST", "/api/v1/programs", {
    name: `Sunny ${T}`,
    description: "A yellow brand.",
    brand_color: "#fde047",
    domains: [`go.s${T}.test`],
    allowed_hosts: [`s${T}.test`],
    payout_currency: "jpy",
    min_payout: 1000,
    rewards: { lead: { type: "flat", amount: 300 } },
  });
  const tok = await apiOk("POST", "/api/v1/embed-tokens", { program_id: program.id, partner: { email: `s-${T}@partners.test`, name: "Sunny Partner" } });
  const page = await ctx.newPage();
  await page.goto(`${env.base}/embed/referrals?token=${tok.token}`);
  await page.getByRole("heading", { name: `Sunny ${T}`, level: 1 }).waitFor();
  assert.equal(await page.locator(".brand-bar").evaluate((el) => getComputedStyle(el).backgroundColor), "rgb(253, 224, 71)");
  const btn = await contrastOf(page, "#connect-payouts");
  assert.ok(btn >= 4.5, `button contrast ${btn}`);
  const pressed = await contrastOf(page, ".seg[aria-pressed=true]");
  assert.ok(pressed >= 4.5, `toggle contrast ${pressed}`);
  const link = await contrastOf(page, "details summary", "main");
  assert.ok(link >= 4.5, `accent text contrast ${link}`);
  // JPY has no minor unit: 1000 is ¥1,000.
  await page.locator(".min-payout", { hasText: "¥1,000" }).waitFor();
  assert.deepEqual(await unlabelledControls(page), []);
  // The chart's controls are real buttons reachable with Tab, and Enter switches the metric.
  await page.getByRole("button", { name: "Leads" }).focus();
  await page.keyboard.press("Enter");
  assert.equal(await page.getByRole("button", { name: "Leads" }).getAttribute("aria-pressed"), "true");
  await shot(page, "22-portal-pale-brand-jpy");
  await page.close();
});
