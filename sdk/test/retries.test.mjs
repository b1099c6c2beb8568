// Retries: network errors, lost answers, timeouts, 429 and 5xx are retried with the same
// Idempotency-Key for calls the API treats idempotently, never for creations it does not dedupe.
// A local proxy in front of the live API injects the faults.
import { test } from "node:test";
import assert from "node:assert/strict";
import { ConflictError, RefportConnectionError, ServerError, ValidationError } from "../dist/index.js";
import { ADMIN_KEY, attributedCustomer, client, forward, localServer, setup, uid } from "./helpers.mjs";

const rp = client();

/** A proxy whose n-th request (1-based) is handled by faults[n-1] (or forwarded). */
async function proxy(faults) {
  return localServer(async (req, body, res, n) => {
    const f = faults[n - 1];
    if (f === "drop") {
      req.socket.destroy(); // connection reset before any answer
    } else if (f === "lost") {
      await forward(req, body, { writeHead() {}, end() {} }); // applied upstream, answer lost
      req.socket.destroy();
    } else if (f === "hang") {
      // never answers
    } else if (typeof f === "number") {
      res.writeHead(f, f === 429 ? { "retry-after": "0" } : { "content-type": "text/plain" });
      res.end(f === 429 ? "slow down" : "upstream failure");
    } else {
      await forward(req, body, res);
    }
  });
}

const keys = (p) => p.requests.map((r) => r.headers["idempotency-key"]);

test("a 503 then success: track.sale is retried with the same Idempotency-Key and lands once", async () => {
  const { partner, link } = await setup(rp);
  const { customer_external_id } = await attributedCustomer(rp, link);
  const p = await proxy([503]);
  try {
    const c = client({ baseUrl: p.url });
    const r = await c.track.sale({ customer_external_id, amount: 10000, currency: "usd", invoice_id: uid("inv") });
    assert.equal(r.commission.amount, 2000);
    assert.equal(p.requests.length, 2);
    assert.ok(keys(p)[0]);
    assert.equal(keys(p)[0], keys(p)[1]);
    assert.equal(p.requests[0].body.toString(), p.requests[1].body.toString());
    const sales = (await rp.commissions.list({ partner_id: partner.id })).data.filter((x) => x.kind === "sale");
    assert.equal(sales.length, 1);
  } finally {
    await p.close();
  }
});

test("a lost answer (applied, connection reset): the retried refund with the same key applies once", async () => {
  const { link } = await setup(rp);
  const { customer_external_id } = await attributedCustomer(rp, link);
  const invoice_id = uid("inv");
  const sale = await rp.track.sale({ customer_external_id, amount: 10000, currency: "usd", invoice_id });
  const p = await proxy(["lost"]);
  try {
    const c = client({ baseUrl: p.url });
    const r = await c.track.refund({ invoice_id, amount: 1000 });
    assert.equal(p.requests.length, 2);
    assert.equal(keys(p)[0], keys(p)[1], "the retry carries the first attempt's key");
    assert.equal(r.refund.amount, 1000);
    assert.equal(r.commission.id, sale.commission.id);
    assert.equal(r.commission.amount, 1800, "refunded once: 20 % of 9000");
  } finally {
    await p.close();
  }
});

test("a lost answer of track.sale and track.lead: the retry answers the first result, one commission", async () => {
  const { partner, link } = await setup(rp);
  const { customer_external_id } = await attributedCustomer(rp, link);
  const p = await proxy(["lost", undefined, "lost"]);
  try {
    const c = client({ baseUrl: p.url });
    const s = await c.track.sale({ customer_external_id, amount: 3000, currency: "usd", invoice_id: uid("inv") });
    assert.equal(s.commission.amount, 600);
    const l = await c.track.lead({ click_id: "clk_unknown", customer_external_id, event_name: "Trial", program_id: s.event.program_id });
    assert.equal(l.event.event_name, "Trial");
    assert.equal(p.requests.length, 4);
    const all = (await rp.commissions.list({ partner_id: partner.id, limit: 100 })).data;
    assert.equal(all.filter((x) => x.kind === "sale").length, 1);
  } finally {
    await p.close();
  }
});

test("connection reset and 429 are retried; GETs too", async () => {
  const { program } = await setup(rp);
  const p = await proxy(["drop", 429]);
  try {
    const c = client({ baseUrl: p.url });
    assert.equal((await c.programs.get(program.id)).id, program.id);
    assert.equal(p.requests.length, 3);
  } finally {
    await p.close();
  }
});

test("persistent 5xx: a ServerError after maxRetries + 1 attempts", async () => {
  const p = await proxy([502, 502, 502, 502]);
  try {
    const c = client({ baseUrl: p.url });
    await assert.rejects(c.programs.list(), (e) => {
      assert.ok(e instanceof ServerError);
      assert.equal(e.status, 502);
      assert.equal(e.code, "http_502");
      assert.equal(e.attempts, 3);
      return true;
    });
    assert.equal(p.requests.length, 3);
    await assert.rejects(c.programs.list({}, { maxRetries: 0 }), (e) => e instanceof ServerError && e.attempts === 1);
  } finally {
    await p.close();
  }
});

test("creations the API does not deduplicate are sent once: no twin program after a 500", async () => {
  const p = await proxy(["lost"]);
  try {
    const c = client({ baseUrl: p.url });
    const name = uid("once");
    await assert.rejects(
      c.programs.create({ name, domains: [`go.${name}.test`], allowed_hosts: [`${name}.test`], payout_currency: "usd" }),
      (e) => e instanceof RefportConnectionError && e.attempts === 1,
    );
    assert.equal(p.requests.length, 1);
    const names = [];
    for await (const x of rp.programs.listAll({ limit: 100 })) if (x.name === name) names.push(x.id);
    assert.equal(names.length, 1, "applied once upstream, never retried");
  } finally {
    await p.close();
  }
});

test("4xx answers are not retried", async () => {
  const p = await proxy([]);
  try {
    const c = client({ baseUrl: p.url });
    await assert.rejects(c.track.refund({ invoice_id: uid("nope") }), (e) => (e instanceof ValidationError || e instanceof ConflictError) && e.attempts === 1);
    assert.equal(p.requests.length, 1);
  } finally {
    await p.close();
  }
});

test("timeouts are retried, then a RefportConnectionError with timedOut", async () => {
  const p = await proxy(["hang", "hang", "hang"]);
  try {
    const c = client({ baseUrl: p.url, timeoutMs: 200, retry: { maxRetries: 1, baseDelayMs: 10, maxDelayMs: 20 } });
    const t0 = Date.now();
    await assert.rejects(c.programs.list(), (e) => e instanceof RefportConnectionError && e.timedOut === true && e.attempts === 2);
    assert.equal(p.requests.length, 2);
    assert.ok(Date.now() - t0 < 5000);
  } finally {
    await p.close();
  }
});

test("connection refused: RefportConnectionError after the retries", async () => {
  const p = await proxy([]);
  const url = p.url;
  await p.close();
  const c = client({ baseUrl: url });
  await assert.rejects(c.programs.list(), (e) => e instanceof RefportConnectionError && e.attempts === 3 && e.timedOut === false);
});

test("a DELETE whose answer was lost: the retry meets 404 and the SDK answers success", async () => {
  const { program, partner } = await setup(rp);
  const l = await rp.links.create(partner.id, { url: `https://${program.allowed_hosts[0]}/x` });
  const p = await proxy(["lost"]);
  try {
    const c = client({ baseUrl: p.url });
    assert.deepEqual(await c.links.delete(l.id), { id: l.id, deleted: true });
    assert.equal(p.requests.length, 2);
  } finally {
    await p.close();
  }
});

test("an AbortSignal cancels the call without retrying", async () => {
  const p = await proxy(["hang", "hang"]);
  try {
    const c = client({ baseUrl: p.url, apiKey: ADMIN_KEY });
    const ac = new AbortController();
    setTimeout(() => ac.abort(new Error("user cancelled")), 100);
    await assert.rejects(c.programs.list({}, { signal: ac.signal }), /user cancelled/);
    assert.equal(p.requests.length, 1);
  } finally {
    await p.close();
  }
});
