// Programs, partners, links, clicks, commissions, payouts, embed tokens, API keys, webhook endpoints.
import { test } from "node:test";
import assert from "node:assert/strict";
import { ConflictError, NotFoundError, ValidationError } from "../dist/index.js";
import { BASE_URL, attributedCustomer, client, newProgram, recordedClick, setup, uid } from "./helpers.mjs";

const rp = client();

test("programs: create, get, update, list and listAll across pages", async () => {
  const p = await newProgram(rp, { brand_color: "#4f46e5" });
  assert.match(p.id, /^prog_/);
  assert.equal(p.payout_currency, "usd");
  assert.deepEqual(await rp.programs.get(p.id), p);
  const u = await rp.programs.update(p.id, { name: "Renamed", attribution_window_days: 30 });
  assert.equal(u.name, "Renamed");
  assert.equal(u.attribution_window_days, 30);
  assert.equal((await rp.programs.get(p.id)).name, "Renamed");

  const more = [await newProgram(rp), await newProgram(rp)];
  const page = await rp.programs.list({ limit: 1 });
  assert.equal(page.data.length, 1);
  assert.ok(page.next_cursor);
  const seen = [];
  for await (const x of rp.programs.listAll({ limit: 2 })) seen.push(x.id);
  assert.equal(new Set(seen).size, seen.length, "no program twice across pages");
  for (const id of [p.id, ...more.map((m) => m.id)]) assert.ok(seen.includes(id), id);
});

test("partners: create, get, update, list, stats, ban", async () => {
  const program = await newProgram(rp);
  const email = `${uid("pn")}@partners.test`;
  const pn = await rp.partners.create(program.id, { email, name: "Jane" });
  assert.equal(pn.status, "active");
  assert.equal(pn.program_id, program.id);
  assert.equal((await rp.partners.get(pn.id)).email, email);
  assert.equal((await rp.partners.update(pn.id, { name: "Jane D." })).name, "Jane D.");
  const other = await rp.partners.create(program.id, { email: `${uid("pn")}@partners.test`, name: "Joe" });
  const ids = [];
  for await (const x of rp.partners.listAll(program.id, { limit: 1 })) ids.push(x.id);
  assert.deepEqual(ids.sort(), [pn.id, other.id].sort());
  const stats = await rp.partners.stats(pn.id);
  assert.equal(stats.partner_id, pn.id);
  assert.equal(stats.clicks, 0);
  assert.equal((await rp.partners.ban(pn.id)).status, "banned");
  await assert.rejects(rp.partners.create(program.id, { email, name: "Dup" }), (e) => e instanceof ConflictError);
});

test("links: create (generated and chosen key), get, update, list, delete", async () => {
  const { program, partner, link } = await setup(rp);
  assert.equal(link.domain, program.domains[0]);
  assert.equal(link.short_url, `https://${link.domain}/${link.key}`);
  const key = uid("k").replace("-", "");
  const chosen = await rp.links.create(partner.id, { url: `https://${program.allowed_hosts[0]}/a`, key });
  assert.equal(chosen.key, key);
  await assert.rejects(
    rp.links.create(partner.id, { url: `https://${program.allowed_hosts[0]}/b`, key }),
    (e) => e instanceof ConflictError && e.code === "key_taken",
  );
  await assert.rejects(
    rp.links.create(partner.id, { url: "https://evil.example/phish" }),
    (e) => e instanceof ValidationError && typeof e.field === "string",
  );
  const upd = await rp.links.update(chosen.id, { url: `https://${program.allowed_hosts[0]}/c` });
  assert.equal(upd.url, `https://${program.allowed_hosts[0]}/c`);
  assert.deepEqual((await rp.links.get(chosen.id)).url, upd.url);
  const listed = await rp.links.list(partner.id);
  assert.deepEqual(listed.data.map((l) => l.id).sort(), [link.id, chosen.id].sort());
  assert.deepEqual(await rp.links.delete(chosen.id), { id: chosen.id, deleted: true });
  await assert.rejects(rp.links.get(chosen.id), (e) => e instanceof NotFoundError && e.code === "not_found");
});

test("clicks and partner stats see a real click", async () => {
  const { partner, link } = await setup(rp);
  const id = await recordedClick(rp, link);
  const page = await rp.clicks.list({ partner_id: partner.id });
  assert.deepEqual(page.data.map((c) => c.id), [id]);
  assert.equal((await rp.partners.stats(partner.id)).clicks, 1);
});

test("commissions: list with filters, approve, reject with reason, illegal transition is a typed 409", async () => {
  const { program, partner, link } = await setup(rp);
  const { customer_external_id, lead } = await attributedCustomer(rp, link);
  const sale = await rp.track.sale({ customer_external_id, amount: 5000, currency: "usd", invoice_id: uid("inv") });
  const pending = await rp.commissions.list({ program_id: program.id, partner_id: partner.id, status: "pending" });
  assert.deepEqual(pending.data.map((c) => c.id).sort(), [lead.commission.id, sale.commission.id].sort());

  const approved = await rp.commissions.approve(lead.commission.id);
  assert.equal(approved.status, "approved");
  assert.ok(approved.approved_at);
  await assert.rejects(rp.commissions.approve(lead.commission.id), (e) => e instanceof ConflictError && e.code === "invalid_transition");
  await assert.rejects(rp.commissions.reject(sale.commission.id, ""), (e) => e instanceof ValidationError && e.field === "reason");
  const rejected = await rp.commissions.reject(sale.commission.id, "fraud");
  assert.equal(rejected.status, "rejected");
  assert.equal(rejected.reason, "fraud");
  const approvedList = await rp.commissions.list({ partner_id: partner.id, status: "approved" });
  assert.deepEqual(approvedList.data.map((c) => c.id), [lead.commission.id]);
});

test("payouts: list filters by partner (none yet)", async () => {
  const { partner } = await setup(rp);
  const page = await rp.payouts.list({ partner_id: partner.id });
  assert.deepEqual(page, { data: [], next_cursor: null });
});

test("embed tokens: for an existing partner and by self-enrolment; the token opens the portal API", async () => {
  const { program, partner } = await setup(rp);
  const t = await rp.embedTokens.create({ program_id: program.id, partner_id: partner.id, ttl_seconds: 600 });
  assert.equal(t.partner_id, partner.id);
  assert.equal(t.program_id, program.id);
  const ttl = Date.parse(t.expires_at) - Date.now();
  assert.ok(ttl > 500_000 && ttl <= 600_000, `expires in ${ttl} ms`);
  const me = await fetch(`${BASE_URL}/api/v1/portal/me`, { headers: { authorization: `Bearer ${t.token}` } });
  assert.equal(me.status, 200);

  const email = `${uid("self")}@partners.test`;
  const a = await rp.embedTokens.create({ program_id: program.id, partner: { email, name: "Self" } });
  const b = await rp.embedTokens.create({ program_id: program.id, partner: { email, name: "Self" } });
  assert.equal(a.partner_id, b.partner_id, "self-enrolment is idempotent by email");
  await assert.rejects(
    rp.embedTokens.create({ program_id: program.id, partner_id: partner.id, ttl_seconds: 7201 }),
    (e) => e instanceof ValidationError,
  );
});

test("webhook endpoints: create (secret once), list, deliveries, delete", async () => {
  const ep = await rp.webhooks.create({ url: "https://hooks.example.test/refport", events: ["commission.created"], description: "sdk" });
  assert.match(ep.secret, /^whsec_/);
  const listed = await rp.webhooks.list({ limit: 100 });
  const mine = listed.data.find((e) => e.id === ep.id);
  assert.ok(mine);
  assert.equal(mine.secret, undefined, "the secret is shown once");
  assert.deepEqual(await rp.webhooks.deliveries(ep.id), { data: [], next_cursor: null });
  assert.deepEqual(await rp.webhooks.delete(ep.id), { id: ep.id, deleted: true });
  await assert.rejects(rp.webhooks.deliveries(ep.id), (e) => e instanceof NotFoundError);
});
