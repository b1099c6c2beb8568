// track.lead / track.sale / track.refund against the live API.
import { test } from "node:test";
import assert from "node:assert/strict";
import { ConflictError, PermissionDeniedError, ValidationError, Refport } from "../dist/index.js";
import { BASE_URL, attributedCustomer, client, recordedClick, setup, uid } from "./helpers.mjs";

const rp = client();

test("track.lead attributes a real click, creates the lead commission, and a retry answers the same", async () => {
  const { program, partner, link } = await setup(rp);
  const click_id = await recordedClick(rp, link);
  const input = { click_id, customer_external_id: uid("cust"), customer_email: "ann@customers.test", customer_name: "Ann" };
  const first = await rp.track.lead(input);
  assert.equal(first.attributed, true);
  assert.equal(first.reason, null);
  assert.equal(first.event.program_id, program.id);
  assert.equal(first.event.partner_id, partner.id);
  assert.equal(first.event.click_id, click_id);
  assert.equal(first.event.customer_external_id, input.customer_external_id);
  assert.ok(first.commission);
  assert.equal(first.commission.kind, "lead");
  assert.equal(first.commission.amount, 500);
  assert.equal(first.commission.status, "pending");
  const again = await rp.track.lead(input);
  assert.deepEqual(again, first);
});

test("track.lead with an unknown click records the lead unattributed, never an error", async () => {
  const { program } = await setup(rp);
  const r = await rp.track.lead({ click_id: "clk_doesnotexist000", customer_external_id: uid("cust"), program_id: program.id });
  assert.equal(r.attributed, false);
  assert.equal(typeof r.reason, "string");
  assert.equal(r.commission, null);
});

test("track.sale earns the percentage once per invoice; a conflicting replay is a typed 409", async () => {
  const { link } = await setup(rp);
  const { customer_external_id } = await attributedCustomer(rp, link);
  const invoice_id = uid("inv");
  const sale = { customer_external_id, amount: 12345, currency: "usd", invoice_id, metadata: { plan: "pro" } };
  const first = await rp.track.sale(sale);
  assert.equal(first.attributed, true);
  assert.equal(first.commission.kind, "sale");
  assert.equal(first.commission.amount, 2469); // 20 % of 12345 = 2469 (half to even)
  assert.equal(first.event.invoice_id, invoice_id);
  assert.deepEqual(first.event.metadata, { plan: "pro" });
  assert.deepEqual(await rp.track.sale(sale), first);

  await assert.rejects(rp.track.sale({ ...sale, amount: 99 }), (e) => {
    assert.ok(e instanceof ConflictError);
    assert.equal(e.status, 409);
    assert.equal(e.code, "invoice_conflict");
    assert.equal(e.attempts, 1, "4xx answers are never retried");
    return true;
  });
  const list = await rp.commissions.list({ partner_id: first.commission.partner_id, limit: 100 });
  assert.equal(list.data.filter((c) => c.kind === "sale").length, 1);
});

test("track.sale in another currency without payout_amount is refused with code currency_mismatch", async () => {
  const { link } = await setup(rp);
  const { customer_external_id } = await attributedCustomer(rp, link);
  await assert.rejects(
    rp.track.sale({ customer_external_id, amount: 1000, currency: "eur", invoice_id: uid("inv") }),
    (e) => e instanceof ValidationError && e.status === 422 && e.code === "currency_mismatch",
  );
  const ok = await rp.track.sale({ customer_external_id, amount: 1000, currency: "eur", payout_amount: 1100, invoice_id: uid("inv") });
  assert.equal(ok.commission.amount, 220);
});

test("track.refund: partial lowers the commission, the same idempotency key lands once, full rejects it", async () => {
  const { link } = await setup(rp);
  const { customer_external_id } = await attributedCustomer(rp, link);
  const invoice_id = uid("inv");
  const sale = await rp.track.sale({ customer_external_id, amount: 10000, currency: "usd", invoice_id });
  assert.equal(sale.commission.amount, 2000);

  const key = uid("refund");
  const partial = await rp.track.refund({ invoice_id, amount: 2500 }, { idempotencyKey: key });
  assert.equal(partial.refund.amount, 2500);
  assert.equal(partial.commission.id, sale.commission.id);
  assert.equal(partial.commission.amount, 1500);
  const replay = await rp.track.refund({ invoice_id, amount: 2500 }, { idempotencyKey: key });
  assert.equal(replay.refund.id, partial.refund.id);
  assert.equal(replay.commission.amount, 1500, "the same key never refunds twice");

  const full = await rp.track.refund({ invoice_id });
  assert.equal(full.refund.amount, 7500);
  assert.equal(full.commission.status, "rejected");
  assert.equal(full.commission.reason, "refund");
  await assert.rejects(rp.track.refund({ invoice_id }), (e) => e instanceof ConflictError && e.code === "nothing_to_refund");
});

test("a track-only key (what a merchant backend holds) can track and nothing else", async () => {
  const { program, link } = await setup(rp);
  const created = await rp.apiKeys.create({ name: "backend", program_id: program.id, permissions: ["track"] });
  assert.match(created.key, /^rp_live_/);
  const backend = new Refport({ apiKey: created.key, baseUrl: BASE_URL });
  const click_id = await recordedClick(rp, link);
  const r = await backend.track.lead({ click_id, customer_external_id: uid("cust") });
  assert.equal(r.attributed, true);
  await assert.rejects(backend.programs.list(), (e) => e instanceof PermissionDeniedError && e.status === 403 && e.code === "forbidden");
  await rp.apiKeys.revoke(created.id);
});
