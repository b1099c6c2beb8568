// CSV export and import as the merchant's team uses them (issue 17): the Export CSV buttons
// download the page's rows with its current filters (fetch + Blob: the API key is a header), and
// "Import partners" shows what each row of a file would do before "Confirm import" saves it.
import { after, before } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import { apiOk, assertText, env, launch, newContext, shot, steps, tag, unlabelledControls, until, assertAccessible } from "./helpers.mjs";

const T = tag();
const S = {};
let browser, dash;

const step = steps(() => [["csv", dash]]);

before(async () => {
  browser = await launch();
  dash = await (await newContext(browser, { acceptDownloads: true })).newPage();
  S.errors = [];
  dash.on("pageerror", (e) => S.errors.push(String(e)));
});
after(async () => browser?.close());

/** Clicks the button and answers the downloaded file's name and text. */
async function download(button) {
  const [d] = await Promise.all([dash.waitForEvent("download"), button.click()]);
  return { name: d.suggestedFilename(), text: fs.readFileSync(await d.path(), "utf8") };
}

step("seed: a program, two partners, commissions of two statuses", async () => {
  S.program = await apiOk("POST", "/api/v1/programs", {
    name: `CSV ${T}`,
    domains: [`go.v${T}.test`],
    allowed_hosts: [`v${T}.test`],
    payout_currency: "usd",
    rewards: { sale: { type: "percentage", amount: 2000 } },
  });
  S.jane = await apiOk("POST", `/api/v1/programs/${S.program.id}/partners`, { email: `jane-${T}@partners.test`, name: "Doe, Jane" });
  S.omar = await apiOk("POST", `/api/v1/programs/${S.program.id}/partners`, { email: `omar-${T}@partners.test`, name: "=Omar" });
  S.bonus = await apiOk("POST", "/api/v1/commissions", { partner_id: S.jane.id, amount: 12345, description: "Launch, \"week 1\"" });
  S.approved = await apiOk("POST", "/api/v1/commissions", { partner_id: S.omar.id, amount: 500, description: "+approved", status: "approved" });
});

step("Commissions: Export CSV downloads the rows of the current filter", async () => {
  await dash.goto(`${env.base}/dashboard/`);
  await dash.getByLabel("API key").fill(env.adminKey);
  await dash.getByRole("button", { name: "Sign in" }).click();
  await dash.getByRole("heading", { name: "Programs", level: 1 }).waitFor();
  await dash.goto(`${env.base}/dashboard/#/programs/${S.program.id}`);
  await dash.getByRole("heading", { name: `CSV ${T}`, level: 1 }).waitFor();
  await dash.getByRole("link", { name: "Commissions", exact: true }).click();
  await dash.getByRole("heading", { name: "Commissions", level: 2 }).waitFor();
  const all = await download(dash.getByRole("button", { name: "Export CSV of commissions" }));
  assert.match(all.name, /^commissions-\d{4}-\d{2}-\d{2}\.csv$/);
  const lines = all.text.split("\r\n");
  assert.match(lines[0], /^id,created_at,program_id,partner_id,partner_email,partner_name,kind,status/);
  assert.equal(lines.length, 4, all.text); // header, 2 rows, the final CRLF
  assert.ok(all.text.includes('"Doe, Jane"'), all.text);
  assert.ok(all.text.includes('"Launch, ""week 1"""'), all.text);
  assert.ok(all.text.includes(",'+approved,"), all.text);
  assert.ok(all.text.includes(",12345,123.45,"), all.text);
  await dash.getByLabel("Status").selectOption("approved");
  await until(async () => (await dash.locator("#commissions-list tbody tr").count()) === 1, "the approved filter");
  const approved = await download(dash.getByRole("button", { name: "Export CSV of commissions" }));
  assert.equal(approved.text.split("\r\n").length, 3, approved.text);
  assert.ok(approved.text.includes(S.approved.id) && !approved.text.includes(S.bonus.id));
  await shot(dash, "csv-commissions-export");
});

step("Payouts: Export CSV answers the header when there are none", async () => {
  await dash.getByRole("link", { name: "Payouts", exact: true }).click();
  await dash.getByRole("heading", { name: "Payouts", level: 2 }).waitFor();
  const p = await download(dash.getByRole("button", { name: "Export CSV of payouts" }));
  assert.match(p.name, /^payouts-.*\.csv$/);
  assert.match(p.text, /^id,created_at,program_id,partner_id,partner_email,partner_name,status,currency,amount/);
});

step("Partners: Export CSV guards a formula-like name", async () => {
  await dash.getByRole("link", { name: "Partners", exact: true }).click();
  await dash.getByRole("heading", { name: "Partners", level: 2 }).waitFor();
  const p = await download(dash.getByRole("button", { name: "Export CSV of partners" }));
  assert.ok(p.text.includes(",'=Omar,"), p.text);
  assert.ok(p.text.includes(`jane-${T}@partners.test,"Doe, Jane"`), p.text);
  assert.deepEqual(await unlabelledControls(dash), []);
});

step("Import partners: the dry-run report, then Confirm import", async () => {
  const file =
    "email,name,link_key,country\r\n" +
    `ann-${T}@partners.test,"Ann, Imported",ann${T},de\r\n` +
    `bob-${T}@partners.test,Bob Imported,,\r\n` +
    `jane-${T}@partners.test,"Doe, Jane",,FR\r\n` +
    `not-an-email,Broken Row,,\r\n` +
    `cy-${T}@partners.test,Cy,,Narnia\r\n`;
  await dash.getByLabel("CSV file", { exact: true }).setInputFiles({ name: "partners.csv", mimeType: "text/csv", buffer: Buffer.from(file) });
  await dash.getByRole("button", { name: "Check file" }).click();
  const report = dash.locator("#import-report");
  await report.waitFor();
  await assertText(report.locator(".import-summary"), /2 partners would be created, 1 would be updated, 2 rows have errors/);
  assert.equal(await report.locator("tbody tr").count(), 5);
  await assertText(report.locator('tr[data-row="5"]'), /email: .*not a valid email/);
  await assertText(report.locator('tr[data-row="6"]'), /country: .*Narnia/);
  await assertText(report.locator('tr[data-row="4"]'), /Changes: country/);
  await until(async () => (await dash.evaluate(() => document.activeElement?.id)) === "import-preview", "focus on the preview");
  await shot(dash, "csv-import-dry-run");
  await assertAccessible(dash, "csv-import-dry-run");
  // Nothing was written by the check.
  const before = await apiOk("GET", `/api/v1/programs/${S.program.id}/partners?limit=100`);
  assert.equal(before.data.length, 2);
  assert.equal(await dash.locator('#partners-list tr[data-email]').count(), 2);

  await dash.getByRole("button", { name: "Confirm import" }).click();
  await dash.getByRole("heading", { name: "Import finished" }).waitFor();
  await assertText(report, /2 partners created, 1 updated, 2 rows had errors/);
  await until(async () => (await dash.locator('#partners-list tr[data-email]').count()) === 4, "the list shows the imported partners");
  await shot(dash, "csv-import-done");
  const after = await apiOk("GET", `/api/v1/programs/${S.program.id}/partners?limit=100`);
  const ann = after.data.find((p) => p.email === `ann-${T}@partners.test`);
  assert.equal(ann.name, "Ann, Imported");
  assert.equal(ann.country, "DE");
  assert.equal(after.data.find((p) => p.id === S.jane.id).country, "FR");
  const links = await apiOk("GET", `/api/v1/partners/${ann.id}/links`);
  assert.deepEqual(links.data.map((l) => l.key), [`ann${T}`]);
  assert.deepEqual(S.errors, []);
});
