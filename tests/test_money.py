"""Money that survives real Stripe (issue 12): one end-to-end test per failure the issue lists,
each against the documented behaviour the Stripe fake models (tests/stripe_fake/README.md).

1. starvation behind balances below the minimum      6. separate platform and Connect endpoints
2. a refund racing the payout claim                    7. a full transfer reversal
3. a payout-currency change relabelling what is owed   8. webhook endpoints scoped to a key's program
4. paying twice after Stripe forgets a key / saved 500 9. onboarding under the right service agreement
5. account-wide errors failing partners
"""

import concurrent.futures
import json
import time

import pytest
import requests
from apihelpers import uid
from test_payouts import (  # noqa: F401  (`stripe` is a fixture)
    LEAD, REFUND, SALE, attributed_customer, commissions_of, ctl, deliver, enable_payouts, fake_requests,
    fake_state, fault, last_account_event, ok, paid_partner_setup, payouts_of, program, reconcile_cron, sale,
    set_balance, stripe, transfers_for_payout, transfers_to,
)

CONNECT_WEBHOOK = "/api/v1/webhooks/stripe/connect"


def cron(worker):
    r = worker.scheduled()
    assert r.status_code == 200, (r.status_code, r.text)


def deliver_connect(worker, stripe, event, secret=None):
    signed = ctl(stripe, "POST", "sign", {"payload": json.dumps(event, indent=2),
                                           "secret": secret or worker.secrets["STRIPE_CONNECT_WEBHOOK_SECRET"]})
    return requests.post(worker.base + CONNECT_WEBHOOK, data=signed["payload"].encode(),
                         headers={"Content-Type": "application/json", "Stripe-Signature": signed["header"]}, timeout=30)


def transfers_of_partner(stripe, account):
    return transfers_to(stripe, account)


def paused_until_clear(worker, timeout=5.0):
    """Account-wide refusals pause payouts (tests cap pauses at PAYOUT_PAUSE_MAX_SECONDS=1)."""
    deadline = time.time() + timeout
    while time.time() < deadline and worker.count("SELECT COUNT(*) FROM payout_pause WHERE until_ms > ?",
                                                  int(time.time() * 1000)):
        time.sleep(0.2)


# ----------------------------------------------------------------------------------------------
# 1. Starvation: balances below the minimum never block a partner who is due
# ----------------------------------------------------------------------------------------------

def test_fifty_balances_below_minimum_do_not_starve_a_due_partner(worker, stripe):
    blocking = program(worker, min_payout=10**9)  # nobody here ever reaches the minimum
    for _ in range(55):
        pn = worker.partner(blocking)
        attributed_customer(worker, worker.link(pn, blocking))  # a 500 lead commission
        enable_payouts(worker, stripe, pn)
    s = paid_partner_setup(worker, stripe, sale_amount=10000, min_payout=1000)  # created after them
    cron(worker)  # approves (hold 0) and pays what is due
    cron(worker)
    paid = [p for p in payouts_of(worker, s["partner"]) if p["status"] == "paid"]
    assert len(paid) == 1 and paid[0]["amount"] == s["expected"], payouts_of(worker, s["partner"])
    assert worker.count("SELECT COUNT(*) FROM payouts WHERE program_id=?", blocking["id"]) == 0


# ----------------------------------------------------------------------------------------------
# 2. A refund never changes a commission a payout has claimed: it becomes a clawback
# ----------------------------------------------------------------------------------------------

def test_refunds_racing_the_claim_never_change_a_claimed_commission(worker, stripe):
    setups = []
    for _ in range(12):
        s = paid_partner_setup(worker, stripe, sale_amount=10000, min_payout=100)
        setups.append(s)
    # Approve through the API so that the first cron run claims while the refunds are in flight.
    for s in setups:
        for c in commissions_of(worker, s["partner"]):
            if c["status"] == "pending":
                ok(worker.post(f"/api/v1/commissions/{c['id']}/approve"))
    with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
        futures = [pool.submit(worker.scheduled)]
        for s in setups:
            futures.append(pool.submit(worker.post, REFUND, {"invoice_id": s["invoice"], "amount": 2500}))
        futures.append(pool.submit(worker.scheduled))
        for f in futures:
            f.result()
    cron(worker)
    for s in setups:
        for po in payouts_of(worker, s["partner"]):
            rows = [c for c in commissions_of(worker, s["partner"]) if c["payout_id"] == po["id"]]
            # A payout's amount is fixed when claimed: its commissions must still sum to it.
            assert sum(c["amount"] for c in rows) == po["amount"], (po, rows)
        sale_cm = [c for c in commissions_of(worker, s["partner"]) if c["kind"] == "sale"][0]
        clawbacks = [c for c in commissions_of(worker, s["partner"]) if c["kind"] == "clawback"]
        if sale_cm["payout_id"] is not None and sale_cm["amount"] == sale_cm["original_amount"]:
            # Claimed before the refund landed: the refund became a clawback of 25 % of 2000.
            assert [c["amount"] for c in clawbacks] == [-500], (sale_cm, clawbacks)
        else:
            assert sale_cm["amount"] == 1500 and clawbacks == [], (sale_cm, clawbacks)


# ----------------------------------------------------------------------------------------------
# 3. Currency is fixed on the commission: a payout-currency change never relabels what is owed
# ----------------------------------------------------------------------------------------------

def test_payout_currency_change_pays_what_is_owed_in_its_own_currency(worker, stripe):
    s = paid_partner_setup(worker, stripe, sale_amount=27500, min_payout=1000)  # 500 + 5500 = $60.00
    set_balance(stripe, "jpy", 10**9)
    for c in commissions_of(worker, s["partner"]):
        ok(worker.post(f"/api/v1/commissions/{c['id']}/approve"))
    ok(worker.patch(f"/api/v1/programs/{s['program']['id']}", {"payout_currency": "jpy", "min_payout": 1000}))
    cron(worker)
    pos = payouts_of(worker, s["partner"])
    assert [(p["status"], p["amount"], p["currency"]) for p in pos] == [("paid", 6000, "usd")], pos
    ts = transfers_of_partner(stripe, s["account"])
    assert [(t["amount"], t["currency"]) for t in ts] == [(6000, "usd")], ts
    # A retry of the usd sale still answers what was stored (found by the soak: it was refused
    # as a currency mismatch once the program paid in jpy).
    again = worker.post(SALE, {"customer_external_id": s["customer"], "amount": 27500, "currency": "usd",
                               "invoice_id": s["invoice"]})
    assert again.status_code == 200 and again.json()["commission"]["id"] == s["sale_commission"]["id"], again.text


def test_refund_while_claimed_then_payout_failed_counts_each_refund_once(worker, stripe):
    """Found by the soak: a refund while a payout held the commission became a clawback; the
    payout then failed and released the commission; a later refund must not take it back twice."""
    s = paid_partner_setup(worker, stripe, sale_amount=10000)  # sale commission 2000
    fault(stripe, "fail_next", path_prefix="/v1/transfers", method="POST", status=500)
    cron(worker)
    assert payouts_of(worker, s["partner"])[0]["status"] == "processing"
    ok(worker.post(REFUND, {"invoice_id": s["invoice"], "amount": 5000}))
    claws = [c for c in commissions_of(worker, s["partner"]) if c["kind"] == "clawback"]
    assert [c["amount"] for c in claws] == [-1000], claws
    ctl(stripe, "POST", f"accounts/{s['account']}/disable_transfers")
    reconcile_cron(worker)  # nothing in the group, the resend is refused: failed and released
    assert [p["status"] for p in payouts_of(worker, s["partner"])] == ["failed"]
    ok(worker.post(REFUND, {"invoice_id": s["invoice"], "amount": 2500}))
    rows = [c for c in commissions_of(worker, s["partner"]) if c["invoice_id"] == s["invoice"]]
    net = sum(c["amount"] for c in rows if c["status"] != "rejected")
    assert net == 2000 * 2500 // 10000, rows
    ok(worker.post(REFUND, {"invoice_id": s["invoice"]}))  # the rest: the sale nets nothing
    rows = [c for c in commissions_of(worker, s["partner"]) if c["invoice_id"] == s["invoice"]]
    assert sum(c["amount"] for c in rows if c["status"] != "rejected") == 0, rows


# ----------------------------------------------------------------------------------------------
# 4. One payout, at most one transfer: after a saved 500 and after Stripe forgets the key
# ----------------------------------------------------------------------------------------------

def test_saved_500_is_reconciled_and_resent_under_a_fresh_key(worker, stripe):
    s = paid_partner_setup(worker, stripe)
    fault(stripe, "fail_next", path_prefix="/v1/transfers", method="POST", status=500, saved=True)
    cron(worker)
    po = payouts_of(worker, s["partner"])[0]
    assert po["status"] == "processing", po
    reconcile_cron(worker)  # looks the transfer up by transfer_group: none, so a fresh key is used
    po = payouts_of(worker, s["partner"])[0]
    assert po["status"] == "paid", po
    assert len(transfers_for_payout(stripe, po["id"])) == 1
    keys = [r["idempotency_key"] for r in fake_requests(stripe)
            if r["path"] == "/v1/transfers" and r["method"] == "POST"
            and ((r.get("params") or {}).get("metadata") or {}).get("payout_id") == po["id"]]
    assert len(set(keys)) == 2, keys


def test_executed_transfer_is_found_after_its_key_expired_never_paid_twice(worker, stripe):
    s = paid_partner_setup(worker, stripe)
    # The transfer is made, but the answer saved under the key is a 500 ...
    fault(stripe, "fail_next", path_prefix="/v1/transfers", method="POST", status=500, saved=True, execute=True)
    cron(worker)
    po = payouts_of(worker, s["partner"])[0]
    assert po["status"] == "processing" and len(transfers_for_payout(stripe, po["id"])) == 1
    # ... and 24 hours later Stripe has forgotten the key.
    ctl(stripe, "POST", "expire_idempotency_keys", {})
    reconcile_cron(worker)
    reconcile_cron(worker)
    po = payouts_of(worker, s["partner"])[0]
    ts = transfers_for_payout(stripe, po["id"])
    assert po["status"] == "paid" and len(ts) == 1 and po["stripe_transfer_id"] == ts[0]["id"], (po, ts)


# ----------------------------------------------------------------------------------------------
# 5. Account-wide errors stop the run and fail nobody
# ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("rule", [
    {"status": 429, "retry_after": 1},
    {"status": 400, "code": "rate_limit", "retry_after": 1},
    {"status": 401, "type": "authentication_error", "retry_after": 1},
], ids=["429", "400-rate_limit", "401"])
def test_account_wide_refusal_fails_nobody_and_pays_later(worker, stripe, rule):
    a = paid_partner_setup(worker, stripe)
    b = paid_partner_setup(worker, stripe)
    fault(stripe, "fail_next", path_prefix="/v1/transfers", method="POST", count=1, **rule)
    cron(worker)
    for s in (a, b):
        assert [p for p in payouts_of(worker, s["partner"]) if p["status"] == "failed"] == []
        assert worker.rows("SELECT payouts_enabled FROM partners WHERE id=?", s["partner"]["id"])[0]["payouts_enabled"] == 1
    assert worker.count("SELECT COUNT(*) FROM webhook_events WHERE type='payout.failed' AND json_extract(payload,'$.partner_id') IN (?,?)",
                        a["partner"]["id"], b["partner"]["id"]) == 0
    paused_until_clear(worker)
    cron(worker)
    for s in (a, b):
        paid = [p for p in payouts_of(worker, s["partner"]) if p["status"] == "paid"]
        assert [p["amount"] for p in paid] == [s["expected"]], payouts_of(worker, s["partner"])


def test_balance_insufficient_pauses_until_balance_available(worker, stripe):
    s = paid_partner_setup(worker, stripe)
    set_balance(stripe, "usd", 0)
    cron(worker)
    assert [p for p in payouts_of(worker, s["partner"]) if p["status"] in ("failed", "paid")] == []
    assert all(c["payout_id"] is None for c in commissions_of(worker, s["partner"]))
    set_balance(stripe, "usd", 10**8)
    ev = ctl(stripe, "POST", "events", {"type": "balance.available", "data_object": {"object": "balance"}})
    assert ok(deliver(worker, stripe, ev))["effect"] == "payouts_resumed"
    cron(worker)
    assert [(p["status"], p["amount"]) for p in payouts_of(worker, s["partner"])] == [("paid", s["expected"])]


def test_partner_refusal_fails_once_and_disables_that_partner(worker, stripe):
    s = paid_partner_setup(worker, stripe)
    ctl(stripe, "POST", f"accounts/{s['account']}/disable_transfers")  # no event delivered to the Worker
    cron(worker)
    cron(worker)
    pos = payouts_of(worker, s["partner"])
    assert [p["status"] for p in pos] == ["failed"], pos
    p = ok(worker.get(f"/api/v1/partners/{s['partner']['id']}"))
    assert p["payouts_enabled"] is False and p["payouts_disabled_reason"] == "insufficient_capabilities_for_transfer", p


# ----------------------------------------------------------------------------------------------
# 6. Platform and Connect endpoints, each with its secrets; state from a fresh account read
# ----------------------------------------------------------------------------------------------

def test_connect_events_verify_with_the_connect_secret_and_stale_ones_change_nothing(worker, stripe):
    p = program(worker)
    pn = worker.partner(p)
    acct = ok(worker.post(f"/api/v1/partners/{pn['id']}/stripe/onboard", {}))["account_id"]
    ctl(stripe, "POST", f"accounts/{acct}/complete_onboarding")
    fresh = last_account_event(stripe, acct)
    # Signed with the platform secret, the Connect endpoint refuses it.
    bad = deliver_connect(worker, stripe, fresh, secret=worker.secrets["STRIPE_WEBHOOK_SECRET"])
    assert bad.status_code == 400, bad.text
    r = deliver_connect(worker, stripe, fresh)
    assert r.status_code == 200, r.text
    assert ok(worker.get(f"/api/v1/partners/{pn['id']}"))["payouts_enabled"] is True
    # An older event delivered late (Stripe does not order events) changes nothing: the Worker
    # reads the account's current state, not the event's snapshot (which says disabled).
    stale = json.loads(json.dumps(fresh))
    stale["id"] = "evt_stale" + uid("x").replace("-", "")
    stale["created"] = fresh["created"] - 60
    stale["data"]["object"]["payouts_enabled"] = False
    stale["data"]["object"]["capabilities"] = {"transfers": "inactive"}
    r = deliver_connect(worker, stripe, stale)
    assert r.status_code == 200 and r.json() == {"received": True, "duplicate": False, "effect": "account_updated"}, r.text
    assert ok(worker.get(f"/api/v1/partners/{pn['id']}"))["payouts_enabled"] is True


# ----------------------------------------------------------------------------------------------
# 7. A full reversal: paid total = transferred net of reversals, and `payout.reversed`
# ----------------------------------------------------------------------------------------------

def test_full_reversal_nets_paid_total_to_zero_and_fires_payout_reversed(worker, stripe):
    s = paid_partner_setup(worker, stripe, sale_amount=30000)
    cron(worker)
    po = payouts_of(worker, s["partner"])[0]
    assert po["status"] == "paid"
    r = requests.post(f"{stripe}/v1/transfers/{po['stripe_transfer_id']}/reversals",
                      headers={"Authorization": f"Bearer {worker.secrets['STRIPE_SECRET_KEY']}"}, timeout=30)
    assert r.status_code == 200, r.text
    ev = [e for e in fake_state(stripe)["events"]
          if e["type"] == "transfer.reversed" and e["data"]["object"]["id"] == po["stripe_transfer_id"]][0]
    assert ok(deliver(worker, stripe, ev))["effect"] == "transfer_reversed"
    assert ok(deliver(worker, stripe, ev))["duplicate"] is True
    after = payouts_of(worker, s["partner"])[0]
    assert after["reversed_amount"] == po["amount"], after
    paid = sum(c["amount"] for c in commissions_of(worker, s["partner"]) if c["status"] == "paid")
    assert paid == 0, commissions_of(worker, s["partner"])
    assert worker.count("SELECT COUNT(*) FROM webhook_events WHERE type='payout.reversed' AND subject_id=?", po["id"]) == 1


# ----------------------------------------------------------------------------------------------
# 8. Webhook endpoints carry the program of the key that made them
# ----------------------------------------------------------------------------------------------

def test_program_bound_key_sees_and_receives_only_its_program(worker):
    a, b = worker.program(), worker.program()
    key = ok(worker.post("/api/v1/api-keys", {"name": "a", "program_id": a["id"], "permissions": ["read", "write"]}), 201)
    bound = key["key"]
    admin_ep = ok(worker.post("/api/v1/webhooks", {"url": "http://127.0.0.1:9/admin", "events": ["commission.created"]}), 201)
    ep = ok(worker.post("/api/v1/webhooks", {"url": "http://127.0.0.1:9/a", "events": ["commission.created"]}, key=bound), 201)
    listed = [e["id"] for e in ok(worker.get("/api/v1/webhooks?limit=100", key=bound))["data"]]
    assert ep["id"] in listed and admin_ep["id"] not in listed, listed
    assert worker.delete(f"/api/v1/webhooks/{admin_ep['id']}", key=bound).status_code == 404
    # A commission in program B reaches the admin endpoint, never A's.
    pn = worker.partner(b)
    attributed_customer(worker, worker.link(pn, b))
    rows = worker.rows("SELECT d.endpoint_id FROM webhook_deliveries d JOIN webhook_events ev ON ev.id = d.event_id "
                       "WHERE json_extract(ev.payload,'$.program_id') = ?", b["id"])
    ids = {r["endpoint_id"] for r in rows}
    assert admin_ep["id"] in ids and ep["id"] not in ids, ids
    for e in (ep, admin_ep):
        worker.delete(f"/api/v1/webhooks/{e['id']}")


# ----------------------------------------------------------------------------------------------
# 9. Onboarding: recipient agreement across borders, capabilities at home, a pinned version
# ----------------------------------------------------------------------------------------------

def test_onboarding_uses_the_service_agreement_the_country_needs(worker, stripe):
    p = program(worker)
    abroad = worker.partner(p, country="de")
    home = worker.partner(p, country="US")
    assert abroad["country"] == "DE"
    a1 = ok(worker.post(f"/api/v1/partners/{abroad['id']}/stripe/onboard", {}))["account_id"]
    a2 = ok(worker.post(f"/api/v1/partners/{home['id']}/stripe/onboard", {}))["account_id"]
    accounts = fake_state(stripe)["accounts"]
    assert accounts[a1]["country"] == "DE"
    assert accounts[a1]["tos_acceptance"]["service_agreement"] == "recipient", accounts[a1]
    assert "card_payments" not in accounts[a1]["capabilities"]
    assert accounts[a2]["country"] == "US"
    assert {"card_payments", "transfers"} <= set(accounts[a2]["capabilities"]), accounts[a2]
    # Requests the Worker made (the tests call /v1/transfers/.../reversals themselves).
    versions = {r.get("stripe_version") for r in fake_requests(stripe)
                if r["path"] in ("/v1/account", "/v1/accounts", "/v1/account_links", "/v1/transfers")}
    assert versions and None not in versions and len(versions) == 1, versions
    r = worker.post(f"/api/v1/programs/{p['id']}/partners", {"email": "x@y.test", "name": "X", "country": "Narnia"})
    assert r.status_code == 422 and r.json()["error"]["field"] == "country", r.text
