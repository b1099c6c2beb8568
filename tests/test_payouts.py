"""End-to-end tests of the payout flow (SPEC 1 and 7): the cron approves commissions and pays
partners through Stripe Connect transfers; Stripe's `account.updated` webhook enables payouts;
partners are onboarded through `POST /api/v1/partners/{id}/stripe/onboard`.

The Worker runs under `wrangler dev` (local D1 + KV) with STRIPE_API_BASE pointing at the
Stripe-compatible fake of `tests/stripe_fake`. The fake and the database are shared by the whole
session, so every test builds its own program / partner / Connect account and only ever looks at
*its own* transfers (by destination and `metadata.payout_id`), payouts and commissions. Every cron
run pays every due partner of every program, so each test leaves nothing payable behind, and
fault injections are checked to have hit the intended payout (by idempotency key)."""

import datetime
import json
import random
import threading
import time
import urllib.parse

import pytest
import requests
from apihelpers import assert_error, ok, uid

LEAD, SALE, REFUND = "/api/v1/track/lead", "/api/v1/track/sale", "/api/v1/track/refund"
WEBHOOK = "/api/v1/webhooks/stripe"
BIG = 100_000_000
PAYOUT_FIELDS = {"id", "program_id", "partner_id", "amount", "currency", "status", "stripe_transfer_id",
                 "failure_message", "commission_count", "created_at", "paid_at"}


# ----------------------------------------------------------------------------------------------
# Stripe fake helpers
# ----------------------------------------------------------------------------------------------

def ctl(stripe, method, path, body=None):
    r = requests.request(method, f"{stripe}/_control/{path}",
                         data=json.dumps(body) if body is not None else None,
                         headers={"Content-Type": "application/json"}, timeout=30)
    assert r.status_code == 200, (path, r.status_code, r.text)
    return r.json()


def set_balance(stripe, currency="usd", amount=BIG):
    return ctl(stripe, "POST", "balance", {"currency": currency, "amount": amount})


def fake_state(stripe):
    return ctl(stripe, "GET", "state")


def fake_requests(stripe):
    return ctl(stripe, "GET", "requests")["data"]


def transfers_to(stripe, account):
    """The fake's transfers to one connected account, oldest first."""
    ts = [t for t in fake_state(stripe)["transfers"].values() if t["destination"] == account]
    return sorted(ts, key=lambda t: (t["created"], t["id"]))


def transfers_for_payout(stripe, payout_id):
    return [t for t in fake_state(stripe)["transfers"].values()
            if (t.get("metadata") or {}).get("payout_id") == payout_id]


def transfer_requests(stripe, payout_id):
    """Every POST /v1/transfers the fake received for one payout (by Idempotency-Key or metadata)."""
    return [r for r in fake_requests(stripe)
            if r["method"] == "POST" and r["path"] == "/v1/transfers"
            and (r["idempotency_key"] == payout_id
                 or ((r.get("params") or {}).get("metadata") or {}).get("payout_id") == payout_id)]


def fault(stripe, kind, **rule):
    """Injects a fault on the fake: kind is fail_next, drop_next or delay_next."""
    return ctl(stripe, "POST", kind, rule)


def account_events(stripe, account):
    return [e for e in fake_state(stripe)["events"]
            if e["type"] == "account.updated" and e["data"]["object"]["id"] == account]


def last_account_event(stripe, account):
    evs = account_events(stripe, account)
    assert evs, f"no account.updated event for {account}"
    return evs[-1]


def sign(stripe, payload, secret, timestamp=None):
    body = {"payload": payload, "secret": secret}
    if timestamp is not None:
        body["timestamp"] = timestamp
    return ctl(stripe, "POST", "sign", body)


def post_webhook(worker, payload, header):
    h = {"Content-Type": "application/json"}
    if header is not None:
        h["Stripe-Signature"] = header
    return requests.post(worker.base + WEBHOOK, data=payload.encode(), headers=h, timeout=30)


def deliver(worker, stripe, event, secret=None, timestamp=None):
    """Signs the event like Stripe does and POSTs it to the Worker's Stripe webhook."""
    signed = sign(stripe, json.dumps(event, indent=2), secret or worker.secrets["STRIPE_WEBHOOK_SECRET"], timestamp)
    return post_webhook(worker, signed["payload"], signed["header"])


# ----------------------------------------------------------------------------------------------
# Refport helpers
# ----------------------------------------------------------------------------------------------

def program(worker, min_payout=1000, currency="usd", schedule=None, **kw):
    return worker.program(hold_days=0, payout_schedule=schedule or {"every": "day"}, min_payout=min_payout,
                          payout_currency=currency, **kw)


def attributed_customer(worker, link):
    """A customer attributed to the link's partner through a real click and a lead (500 lead reward)."""
    cid = worker.click_id(link)
    assert worker.wait_count("SELECT COUNT(*) FROM clicks WHERE id=?", cid, expect=1) == 1, cid
    ext = uid("cust")
    body = ok(worker.post(LEAD, {"click_id": cid, "customer_external_id": ext}))
    assert body["attributed"] is True, body
    return ext


def sale(worker, ext, amount, currency="usd"):
    inv = uid("inv")
    body = ok(worker.post(SALE, {"customer_external_id": ext, "amount": amount, "currency": currency, "invoice_id": inv}))
    return inv, body["commission"]


def onboard(worker, partner):
    return ok(worker.post(f"/api/v1/partners/{partner['id']}/stripe/onboard", {}))


def partner_row(worker, partner):
    return worker.rows("SELECT * FROM partners WHERE id=?", partner["id"])[0]


def payouts_enabled(worker, partner):
    return ok(worker.get(f"/api/v1/partners/{partner['id']}"))["payouts_enabled"]


def enable_payouts(worker, stripe, partner, deliver_webhook=True):
    """Onboards the partner (Express account), completes onboarding in the fake and, unless told
    not to, delivers the signed account.updated event. Answers the account id."""
    acct = onboard(worker, partner)["account_id"]
    ctl(stripe, "POST", f"accounts/{acct}/complete_onboarding")
    if deliver_webhook:
        r = deliver(worker, stripe, last_account_event(stripe, acct))
        body = ok(r)
        assert body["duplicate"] is False and body["effect"] == "account_updated", body
        assert payouts_enabled(worker, partner) is True
    return acct


def paid_partner_setup(worker, stripe, sale_amount=10000, min_payout=1000, currency="usd",
                       enable=True, deliver_webhook=True, schedule=None):
    """A program (hold 0, daily schedule unless told), a partner with a lead (500) and one sale
    (20 % commission), onboarded and payouts-enabled unless told otherwise. Answers a dict."""
    p = program(worker, min_payout=min_payout, currency=currency, schedule=schedule)
    pn = worker.partner(p)
    ln = worker.link(pn, p)
    ext = attributed_customer(worker, ln)
    inv, cm = sale(worker, ext, sale_amount, currency)
    assert cm["amount"] == sale_amount * 20 // 100, cm
    acct = enable_payouts(worker, stripe, pn, deliver_webhook) if enable else None
    return {"program": p, "partner": pn, "link": ln, "customer": ext, "invoice": inv, "sale_commission": cm,
            "account": acct, "expected": 500 + cm["amount"]}


def payouts_of(worker, partner):
    """Payouts of one partner through the API, oldest first."""
    body = ok(worker.get(f"/api/v1/payouts?partner_id={partner['id']}"))
    return sorted(body["data"], key=lambda p: p["id"])


def commissions_of(worker, partner):
    return worker.rows("SELECT * FROM commissions WHERE partner_id=? ORDER BY id", partner["id"])


def cron(worker):
    r = worker.scheduled()
    assert r.status_code == 200, (r.status_code, r.text)


# A payout in flight is reconciled once its last attempt is older than the Stripe timeout plus
# 3 s (the harness sets STRIPE_TIMEOUT_SECONDS=2): a request still in flight must not be resent.
RECONCILE_WAIT = 5.5


def reconcile_cron(worker):
    time.sleep(RECONCILE_WAIT)
    cron(worker)


def assert_transfer(t, payout, account, currency="usd"):
    assert t["amount"] == payout["amount"], (t, payout)
    assert t["currency"] == currency
    assert t["destination"] == account
    assert t["transfer_group"] == payout["id"]
    assert t["metadata"]["payout_id"] == payout["id"]
    assert t["metadata"]["partner_id"] == payout["partner_id"]
    assert t["metadata"]["program_id"] == payout["program_id"]


def assert_paid(worker, stripe, s, payout, amount, n_commissions):
    """The payout is paid for `amount` with its one transfer, and exactly its commissions are paid."""
    assert PAYOUT_FIELDS <= set(payout), payout
    assert (payout["status"], payout["amount"], payout["currency"], payout["commission_count"]) == \
        ("paid", amount, s["program"]["payout_currency"], n_commissions), payout
    assert payout["partner_id"] == s["partner"]["id"] and payout["program_id"] == s["program"]["id"]
    assert payout["failure_message"] is None and payout["paid_at"] is not None, payout
    ts = transfers_for_payout(stripe, payout["id"])
    assert len(ts) == 1, ts
    assert payout["stripe_transfer_id"] == ts[0]["id"]
    assert_transfer(ts[0], payout, s["account"], s["program"]["payout_currency"])
    rows = [c for c in commissions_of(worker, s["partner"]) if c["payout_id"] == payout["id"]]
    assert len(rows) == n_commissions, rows
    assert all(c["status"] == "paid" and c["paid_at"] is not None for c in rows), rows
    assert sum(c["amount"] for c in rows) == amount


# ----------------------------------------------------------------------------------------------
# fixtures
# ----------------------------------------------------------------------------------------------

@pytest.fixture
def stripe(worker, stripe_server):
    """The fake's base URL, with a large usd balance, and with no fault left behind by the test
    (an unused fault is drained by sending the fake a harmless matching request itself)."""
    set_balance(stripe_server, "usd", BIG)
    yield stripe_server
    for _ in range(10):
        faults = fake_state(stripe_server)["faults"]
        if not faults:
            break
        f = faults[0]
        requests.request(f.get("method") or "POST", stripe_server + f["path_prefix"],
                         headers={"Authorization": f"Bearer {worker.secrets['STRIPE_SECRET_KEY']}"}, timeout=30)
    set_balance(stripe_server, "usd", BIG)


# ----------------------------------------------------------------------------------------------
# 1-3, 11: who gets paid
# ----------------------------------------------------------------------------------------------

def test_threshold_not_reached_creates_no_payout(worker, stripe):
    s = paid_partner_setup(worker, stripe, sale_amount=10000, min_payout=5000)  # 500 + 2000 < 5000
    assert [c["status"] for c in commissions_of(worker, s["partner"])] == ["pending", "pending"]
    cron(worker)
    rows = commissions_of(worker, s["partner"])
    assert [(c["kind"], c["status"], c["payout_id"]) for c in rows] == [("lead", "approved", None), ("sale", "approved", None)]
    assert all(c["approved_at"] is not None for c in rows)
    assert payouts_of(worker, s["partner"]) == []
    assert worker.count("SELECT COUNT(*) FROM payouts WHERE partner_id=?", s["partner"]["id"]) == 0
    assert transfers_to(stripe, s["account"]) == []


def test_threshold_reached_pays_exact_sum_once(worker, stripe):
    s = paid_partner_setup(worker, stripe, sale_amount=30000, min_payout=5000)  # 500 + 6000
    assert s["expected"] == 6500
    cron(worker)
    pos = payouts_of(worker, s["partner"])
    assert len(pos) == 1, pos
    po = pos[0]
    assert po["id"].startswith("po_")
    assert_paid(worker, stripe, s, po, 6500, 2)
    assert len(transfers_to(stripe, s["account"])) == 1
    reqs = transfer_requests(stripe, po["id"])
    assert len(reqs) == 1 and reqs[0]["idempotency_key"] == po["id"] and reqs[0]["status"] == 200, reqs
    assert reqs[0]["params"]["amount"] == "6500" and reqs[0]["params"]["destination"] == s["account"]
    # the connected account received it
    assert fake_state(stripe)["connected_balances"][s["account"]]["usd"] == 6500

    # another run pays nothing more
    cron(worker)
    assert len(payouts_of(worker, s["partner"])) == 1
    assert len(transfers_to(stripe, s["account"])) == 1


@pytest.mark.parametrize("min_payout,paid", [(6500, True), (6501, False)])
def test_threshold_boundary(worker, stripe, min_payout, paid):
    s = paid_partner_setup(worker, stripe, sale_amount=30000, min_payout=min_payout)  # net 6500
    cron(worker)
    pos = payouts_of(worker, s["partner"])
    if paid:
        assert len(pos) == 1, pos
        assert_paid(worker, stripe, s, pos[0], 6500, 2)
    else:
        assert pos == [] and transfers_to(stripe, s["account"]) == []
        assert [c["status"] for c in commissions_of(worker, s["partner"])] == ["approved", "approved"]


def test_onboarded_but_webhook_not_delivered_is_skipped(worker, stripe):
    s = paid_partner_setup(worker, stripe, sale_amount=30000, min_payout=1000, deliver_webhook=False)
    assert partner_row(worker, s["partner"])["stripe_account_id"] == s["account"]
    assert payouts_enabled(worker, s["partner"]) is False
    cron(worker)
    assert payouts_of(worker, s["partner"]) == []
    assert transfers_to(stripe, s["account"]) == []
    assert [c["status"] for c in commissions_of(worker, s["partner"])] == ["approved", "approved"]


def test_never_onboarded_partner_is_skipped(worker, stripe):
    s = paid_partner_setup(worker, stripe, sale_amount=30000, min_payout=1000, enable=False)
    assert partner_row(worker, s["partner"])["stripe_account_id"] is None
    cron(worker)
    assert payouts_of(worker, s["partner"]) == []
    rows = commissions_of(worker, s["partner"])
    assert [(c["status"], c["payout_id"]) for c in rows] == [("approved", None), ("approved", None)]
    assert not [r for r in fake_requests(stripe) if r["path"] == "/v1/transfers"
                and ((r.get("params") or {}).get("metadata") or {}).get("partner_id") == s["partner"]["id"]]


def _utc_today():
    return datetime.datetime.now(datetime.timezone.utc)


def test_monthly_schedule_not_due_pays_nothing(worker, stripe):
    today = _utc_today()
    not_today = 1 if today.day != 1 else 2
    s = paid_partner_setup(worker, stripe, sale_amount=30000, min_payout=1000,
                           schedule={"every": "month", "day": not_today})
    cron(worker)
    assert payouts_of(worker, s["partner"]) == []
    assert transfers_to(stripe, s["account"]) == []
    rows = commissions_of(worker, s["partner"])
    assert [(c["status"], c["payout_id"]) for c in rows] == [("approved", None), ("approved", None)]

    # control: the same balance is paid once the schedule is due today (weekly on today's weekday)
    p = ok(worker.patch(f"/api/v1/programs/{s['program']['id']}",
                        {"payout_schedule": {"every": "week", "weekday": _utc_today().isoweekday()}}))
    assert p["payout_schedule"] == {"every": "week", "weekday": _utc_today().isoweekday()}
    cron(worker)
    pos = payouts_of(worker, s["partner"])
    assert len(pos) == 1
    assert_paid(worker, stripe, s, pos[0], 6500, 2)


def test_weekly_schedule_not_due_pays_nothing(worker, stripe):
    other = _utc_today().isoweekday() % 7 + 1
    s = paid_partner_setup(worker, stripe, sale_amount=30000, min_payout=1000,
                           schedule={"every": "week", "weekday": other})
    cron(worker)
    assert payouts_of(worker, s["partner"]) == []
    assert transfers_to(stripe, s["account"]) == []
    assert [c["status"] for c in commissions_of(worker, s["partner"])] == ["approved", "approved"]


# ----------------------------------------------------------------------------------------------
# 4: clawbacks
# ----------------------------------------------------------------------------------------------

def test_clawback_of_paid_sale_is_netted_from_next_payout(worker, stripe):
    s = paid_partner_setup(worker, stripe, sale_amount=30000, min_payout=1000)
    cron(worker)
    first = payouts_of(worker, s["partner"])
    assert len(first) == 1
    assert_paid(worker, stripe, s, first[0], 6500, 2)

    # a partial refund of the paid sale: a negative clawback, approved at once
    b = ok(worker.post(REFUND, {"invoice_id": s["invoice"], "amount": 10000}))
    assert b["refund"]["effect"] == "clawback_created", b
    cb = b["clawback"]
    assert (cb["kind"], cb["amount"], cb["status"], cb["payout_id"]) == ("clawback", -2000, "approved", None), cb
    assert b["commission"]["status"] == "paid"

    # net -2000: nothing is paid
    cron(worker)
    assert len(payouts_of(worker, s["partner"])) == 1
    assert len(transfers_to(stripe, s["account"])) == 1

    # a new sale of 20000 (commission 4000): the next payout is 4000 - 2000
    _inv2, cm2 = sale(worker, s["customer"], 20000)
    assert cm2["amount"] == 4000
    cron(worker)
    pos = payouts_of(worker, s["partner"])
    assert len(pos) == 2, pos
    second = pos[1]
    assert second["id"] != first[0]["id"]
    assert_paid(worker, stripe, s, second, 2000, 2)
    ids = {c["id"] for c in commissions_of(worker, s["partner"]) if c["payout_id"] == second["id"]}
    assert ids == {cb["id"], cm2["id"]}
    ts = transfers_to(stripe, s["account"])
    assert sorted(t["amount"] for t in ts) == [2000, 6500]  # the fake orders transfers of one second by id
    assert fake_state(stripe)["connected_balances"][s["account"]]["usd"] == 8500


# ----------------------------------------------------------------------------------------------
# 5-8: Stripe failures and concurrency
# ----------------------------------------------------------------------------------------------

def test_stripe_500_then_success_is_reconciled_then_resent_under_a_fresh_key(worker, stripe):
    s = paid_partner_setup(worker, stripe, sale_amount=30000, min_payout=1000)
    fault(stripe, "fail_next", path_prefix="/v1/transfers", status=500, count=1, method="POST")
    cron(worker)
    pos = payouts_of(worker, s["partner"])
    assert len(pos) == 1, pos
    po = pos[0]
    assert (po["status"], po["amount"], po["stripe_transfer_id"], po["attempts"]) == ("processing", 6500, None, 1), po
    assert po["failure_message"], po
    assert transfers_to(stripe, s["account"]) == []
    reqs = transfer_requests(stripe, po["id"])
    assert len(reqs) == 1 and reqs[0]["injected"] == "fail" and reqs[0]["status"] == 500, reqs
    rows = commissions_of(worker, s["partner"])
    assert all(c["status"] == "approved" and c["payout_id"] == po["id"] for c in rows), rows

    cron(worker)  # too early: the attempt may still be in flight, nothing is resent
    assert len(transfer_requests(stripe, po["id"])) == 1
    reconcile_cron(worker)  # no transfer in the payout's group: resent under attempt 2's key
    pos = payouts_of(worker, s["partner"])
    assert len(pos) == 1 and pos[0]["id"] == po["id"], pos
    assert_paid(worker, stripe, s, pos[0], 6500, 2)
    assert len(transfers_to(stripe, s["account"])) == 1
    reqs = transfer_requests(stripe, po["id"])
    assert [r["idempotency_key"] for r in reqs] == [po["id"], po["id"] + "-a2"]
    assert reqs[1]["status"] == 200 and reqs[1]["injected"] is None
    lookups = [r for r in fake_requests(stripe) if r["method"] == "GET" and r["path"] == "/v1/transfers"
               and urllib.parse.parse_qs(r.get("query") or "").get("transfer_group") == [po["id"]]]
    assert len(lookups) == 1, lookups


def test_lost_answer_is_recovered_with_the_same_transfer(worker, stripe):
    s = paid_partner_setup(worker, stripe, sale_amount=30000, min_payout=1000)
    fault(stripe, "drop_next", path_prefix="/v1/transfers", count=1, method="POST")
    cron(worker)
    pos = payouts_of(worker, s["partner"])
    assert len(pos) == 1, pos
    po = pos[0]
    assert (po["status"], po["stripe_transfer_id"]) == ("processing", None), po
    ts = transfers_to(stripe, s["account"])
    assert len(ts) == 1, ts  # the transfer was executed, the answer lost
    assert_transfer(ts[0], po, s["account"])
    reqs = transfer_requests(stripe, po["id"])
    assert len(reqs) == 1 and reqs[0]["injected"] == "drop", reqs

    reconcile_cron(worker)  # found by its transfer_group: paid with it, nothing resent
    pos = payouts_of(worker, s["partner"])
    assert len(pos) == 1 and pos[0]["id"] == po["id"], pos
    assert_paid(worker, stripe, s, pos[0], 6500, 2)
    assert pos[0]["stripe_transfer_id"] == ts[0]["id"]
    assert [t["id"] for t in transfers_to(stripe, s["account"])] == [ts[0]["id"]]
    reqs = transfer_requests(stripe, po["id"])
    assert len(reqs) == 1, reqs


def test_insufficient_balance_fails_nobody_and_pays_after_top_up(worker, stripe):
    """`balance_insufficient` is the platform's problem, not the partner's: nothing fails, the
    claim is released, payouts pause until `balance.available` (or the pause ends)."""
    set_balance(stripe, "eur", 1)
    try:
        s = paid_partner_setup(worker, stripe, sale_amount=30000, min_payout=1000, currency="eur")
        cron(worker)
        assert payouts_of(worker, s["partner"]) == []
        assert transfers_to(stripe, s["account"]) == []
        rows = commissions_of(worker, s["partner"])
        assert [(c["status"], c["payout_id"]) for c in rows] == [("approved", None), ("approved", None)]
        assert payouts_enabled(worker, s["partner"]) is True
        assert worker.rows("SELECT cause FROM payout_pause")[0]["cause"] == "balance_insufficient"

        set_balance(stripe, "eur", BIG)
        ev = ctl(stripe, "POST", "events", {"type": "balance.available", "data_object": {"object": "balance"}})
        assert ok(deliver(worker, stripe, ev))["effect"] == "payouts_resumed"
        assert worker.count("SELECT COUNT(*) FROM payout_pause") == 0
        cron(worker)
        pos = payouts_of(worker, s["partner"])
        assert len(pos) == 1, pos
        assert_paid(worker, stripe, s, pos[0], 6500, 2)
        assert len(transfers_to(stripe, s["account"])) == 1
    finally:
        set_balance(stripe, "eur", BIG)


def test_transfers_disabled_fails_payout_then_new_payout_after_fix(worker, stripe):
    s = paid_partner_setup(worker, stripe, sale_amount=30000, min_payout=1000)
    ctl(stripe, "POST", f"accounts/{s['account']}/disable_transfers")  # event not delivered
    assert payouts_enabled(worker, s["partner"]) is True
    cron(worker)
    pos = payouts_of(worker, s["partner"])
    assert len(pos) == 1, pos
    failed = pos[0]
    assert (failed["status"], failed["stripe_transfer_id"]) == ("failed", None), failed
    assert "capabilities" in failed["failure_message"], failed
    rows = commissions_of(worker, s["partner"])
    assert [(c["status"], c["payout_id"]) for c in rows] == [("approved", None), ("approved", None)]
    assert transfers_to(stripe, s["account"]) == []

    # The partner's payouts are off until Stripe reports the account fixed: no failure loop.
    assert payouts_enabled(worker, s["partner"]) is False
    cron(worker)
    assert len(payouts_of(worker, s["partner"])) == 1
    ctl(stripe, "POST", f"accounts/{s['account']}/complete_onboarding")
    ok(deliver(worker, stripe, last_account_event(stripe, s["account"])))
    assert payouts_enabled(worker, s["partner"]) is True
    cron(worker)
    pos = payouts_of(worker, s["partner"])
    assert len(pos) == 2 and pos[0]["status"] == "failed", pos
    assert_paid(worker, stripe, s, pos[1], 6500, 2)
    assert len(transfers_to(stripe, s["account"])) == 1


def test_two_overlapping_cron_runs_pay_each_partner_once(worker, stripe):
    p = program(worker, min_payout=1000)
    setups = []
    for _ in range(2):
        pn = worker.partner(p)
        ln = worker.link(pn, p)
        ext = attributed_customer(worker, ln)
        inv, _cm = sale(worker, ext, 30000)
        acct = enable_payouts(worker, stripe, pn)
        setups.append({"program": p, "partner": pn, "account": acct, "invoice": inv})
    fault(stripe, "delay_next", path_prefix="/v1/transfers", seconds=1, count=1, method="POST")
    errors, started = [], []

    def run():
        started.append(time.time())
        try:
            cron(worker)
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
        time.sleep(0.05)
    for t in threads:
        t.join()
    assert not errors, errors
    paid = []
    for s in setups:
        pos = payouts_of(worker, s["partner"])
        assert len(pos) == 1, pos
        assert_paid(worker, stripe, s, pos[0], 6500, 2)
        assert len(transfers_to(stripe, s["account"])) == 1
        paid.append(pos[0]["id"])
    # the runs did overlap: the delayed transfer was one of ours, and the second run started
    # while it was still held by the fake
    delayed = [r for r in fake_requests(stripe) if r["injected"] == "delay" and r["idempotency_key"] in paid]
    assert len(delayed) == 1, delayed
    assert max(started) < delayed[0]["time"] + 1.0, (started, delayed[0]["time"])
    # a later run changes nothing
    cron(worker)
    for s in setups:
        assert len(payouts_of(worker, s["partner"])) == 1
        assert len(transfers_to(stripe, s["account"])) == 1


# ----------------------------------------------------------------------------------------------
# 9: Stripe webhooks
# ----------------------------------------------------------------------------------------------

def _onboarded_not_enabled(worker, stripe):
    p = program(worker)
    pn = worker.partner(p)
    acct = onboard(worker, pn)["account_id"]
    ctl(stripe, "POST", f"accounts/{acct}/complete_onboarding")
    return pn, acct, last_account_event(stripe, acct)


def test_webhook_good_signature_enables_payouts(worker, stripe):
    pn, acct, ev = _onboarded_not_enabled(worker, stripe)
    assert payouts_enabled(worker, pn) is False
    body = ok(deliver(worker, stripe, ev))
    assert body == {"received": True, "duplicate": False, "effect": "account_updated"}, body
    assert payouts_enabled(worker, pn) is True
    assert partner_row(worker, pn)["payouts_enabled"] == 1
    assert worker.count("SELECT COUNT(*) FROM stripe_events WHERE id=?", ev["id"]) == 1


def test_webhook_bad_signatures_are_refused_and_change_nothing(worker, stripe):
    pn, acct, ev = _onboarded_not_enabled(worker, stripe)
    secret = worker.secrets["STRIPE_WEBHOOK_SECRET"]
    payload = json.dumps(ev)
    now = int(time.time())

    signed = sign(stripe, payload, secret)
    tampered = signed["payload"].replace(ev["id"], ev["id"][:-1] + ("A" if ev["id"][-1] != "A" else "B"))
    assert tampered != signed["payload"]
    cases = {
        "tampered body": (tampered, signed["header"]),
        "wrong secret": (payload, sign(stripe, payload, "whsec_not_the_right_secret")["header"]),
        "stale timestamp": (payload, sign(stripe, payload, secret, now - 600)["header"]),
        "future timestamp": (payload, sign(stripe, payload, secret, now + 600)["header"]),
        "timestamp changed": (payload, "t=%d,%s" % (int(signed["header"].split(",")[0][2:]) - 1, signed["header"].split(",")[1])),
        "no v1": (payload, f"t={now}"),
        "garbage": (payload, "nonsense"),
        "missing header": (payload, None),
    }
    for name, (body, header) in cases.items():
        r = post_webhook(worker, body, header)
        assert r.status_code == 400, (name, r.status_code, r.text)
        assert r.json()["error"]["code"] == "invalid_signature", (name, r.text)
    assert payouts_enabled(worker, pn) is False
    assert worker.count("SELECT COUNT(*) FROM stripe_events WHERE id=?", ev["id"]) == 0

    # the genuine event is still accepted afterwards (nothing was recorded by the refusals)
    body = ok(deliver(worker, stripe, ev))
    assert body["duplicate"] is False and body["effect"] == "account_updated"
    assert payouts_enabled(worker, pn) is True


def test_webhook_timestamp_within_tolerance_is_accepted(worker, stripe):
    pn, acct, ev = _onboarded_not_enabled(worker, stripe)
    body = ok(deliver(worker, stripe, ev, timestamp=int(time.time()) - 200))
    assert body["duplicate"] is False
    assert payouts_enabled(worker, pn) is True


def test_webhook_replayed_event_is_a_duplicate_and_changes_nothing(worker, stripe):
    pn, acct, enabled_ev = _onboarded_not_enabled(worker, stripe)
    assert ok(deliver(worker, stripe, enabled_ev))["duplicate"] is False
    assert payouts_enabled(worker, pn) is True

    # Stripe then disables transfers; that event is delivered
    ctl(stripe, "POST", f"accounts/{acct}/disable_transfers")
    disabled_ev = last_account_event(stripe, acct)
    assert disabled_ev["id"] != enabled_ev["id"]
    body = ok(deliver(worker, stripe, disabled_ev))
    assert body == {"received": True, "duplicate": False, "effect": "account_updated"}, body
    assert payouts_enabled(worker, pn) is False

    # a replay of the older "enabled" event (fresh signature, same id) changes nothing
    body = ok(deliver(worker, stripe, enabled_ev))
    assert body == {"received": True, "duplicate": True, "effect": "none"}, body
    assert payouts_enabled(worker, pn) is False
    # and so does a replay of the latest one
    body = ok(deliver(worker, stripe, disabled_ev))
    assert body["duplicate"] is True
    assert payouts_enabled(worker, pn) is False
    assert worker.count("SELECT COUNT(*) FROM stripe_events WHERE id IN (?, ?)", enabled_ev["id"], disabled_ev["id"]) == 2


def test_webhook_header_with_several_v1_one_valid(worker, stripe):
    pn, acct, ev = _onboarded_not_enabled(worker, stripe)
    secret = worker.secrets["STRIPE_WEBHOOK_SECRET"]
    payload = json.dumps(ev)
    good = sign(stripe, payload, secret)["header"]  # t=..,v1=..
    t, v1 = good.split(",")
    wrong = sign(stripe, payload, "whsec_rolled_old_secret", int(t[2:]))["header"].split(",")[1]
    header = f"{t},{wrong},v1={'0' * 64},{v1},v0=deadbeef"
    body = ok(post_webhook(worker, payload, header))
    assert body["duplicate"] is False and body["effect"] == "account_updated"
    assert payouts_enabled(worker, pn) is True


def test_webhook_transfer_reversal_is_recorded_once_as_a_paid_clawback(worker, stripe):
    s = paid_partner_setup(worker, stripe, sale_amount=30000, min_payout=1000)
    cron(worker)
    po = payouts_of(worker, s["partner"])[0]
    assert po["status"] == "paid"
    key = {"Authorization": f"Bearer {worker.secrets['STRIPE_SECRET_KEY']}"}
    r = requests.post(f"{stripe}/v1/transfers/{po['stripe_transfer_id']}/reversals", data={"amount": 1500},
                      headers=key, timeout=30)
    assert r.status_code == 200, r.text
    ev = [e for e in fake_state(stripe)["events"]
          if e["type"] == "transfer.reversed" and e["data"]["object"]["id"] == po["stripe_transfer_id"]]
    assert len(ev) == 1
    body = ok(deliver(worker, stripe, ev[0]))
    assert body == {"received": True, "duplicate": False, "effect": "transfer_reversed"}, body
    after = payouts_of(worker, s["partner"])[0]
    assert (after["status"], after["reversed_amount"]) == ("paid", 1500), after
    claw = [c for c in commissions_of(worker, s["partner"]) if c["reason"] == "transfer_reversed"]
    assert [(c["kind"], c["status"], c["amount"], c["payout_id"]) for c in claw] == [("clawback", "paid", -1500, po["id"])]
    assert ok(deliver(worker, stripe, ev[0]))["duplicate"] is True
    # A later (cumulative) event for the same reversal, delivered again under another id, adds nothing.
    again = json.loads(json.dumps(ev[0]))
    again["id"] = ev[0]["id"] + "x"
    assert ok(deliver(worker, stripe, again))["effect"] == "transfer_reversed"
    assert len([c for c in commissions_of(worker, s["partner"]) if c["reason"] == "transfer_reversed"]) == 1
    paid = sum(c["amount"] for c in commissions_of(worker, s["partner"]) if c["status"] == "paid")
    assert paid == 6500 - 1500


def test_webhook_unhandled_event_type_is_acknowledged(worker, stripe):
    ev = ctl(stripe, "POST", "events", {"type": "payout.paid", "data_object": {"id": "po_fake", "object": "payout"}})
    body = ok(deliver(worker, stripe, ev))
    assert body == {"received": True, "duplicate": False, "effect": "ignored"}, body
    assert ok(deliver(worker, stripe, ev))["duplicate"] is True


# ----------------------------------------------------------------------------------------------
# 10: onboarding
# ----------------------------------------------------------------------------------------------

def test_onboarding_twice_reuses_the_account(worker, stripe):
    p = program(worker)
    pn = worker.partner(p)
    first = onboard(worker, pn)
    assert set(first) >= {"url", "expires_at", "account_id"}, first
    assert first["account_id"].startswith("acct_")
    assert first["url"].startswith(stripe + "/connect/onboarding/"), first
    exp = datetime.datetime.fromisoformat(first["expires_at"].replace("Z", "+00:00"))
    assert exp > _utc_today(), first

    second = onboard(worker, pn)
    assert second["account_id"] == first["account_id"]
    assert second["url"].startswith(stripe + "/connect/onboarding/")
    accounts = [a for a in fake_state(stripe)["accounts"].values()
                if (a.get("metadata") or {}).get("partner_id") == pn["id"]]
    assert len(accounts) == 1, accounts
    a = accounts[0]
    assert (a["id"], a["type"], a["email"]) == (first["account_id"], "express", pn["email"])
    assert a["capabilities"]["transfers"] in ("inactive", "pending", "active")
    assert partner_row(worker, pn)["stripe_account_id"] == first["account_id"]
    assert payouts_enabled(worker, pn) is False


def test_onboarding_unknown_partner_is_404(worker, stripe):
    before = len(fake_state(stripe)["accounts"])
    assert_error(worker.post("/api/v1/partners/pn_00000000000000000000000000/stripe/onboard", {}), 404, "not_found")
    assert_error(worker.post("/api/v1/partners/not-an-id/stripe/onboard", {}), 404, "not_found")
    assert len(fake_state(stripe)["accounts"]) == before


def test_onboarding_again_after_link_used_gives_a_fresh_link(worker, stripe):
    # stay within one minute (the key changes every minute): start early in a minute
    if time.time() % 60 > 50:
        time.sleep(60 - time.time() % 60 + 0.2)
    p = program(worker)
    pn = worker.partner(p)
    first = onboard(worker, pn)
    r = requests.get(first["url"], params={"action": "refresh"}, allow_redirects=False, timeout=30)
    assert r.status_code == 302  # the partner left the link: it is used now
    second = onboard(worker, pn)
    assert second["account_id"] == first["account_id"]
    r = requests.get(second["url"], allow_redirects=False, timeout=30)
    assert r.status_code == 200, (second["url"] == first["url"], r.status_code, r.headers.get("Location"))


# ----------------------------------------------------------------------------------------------
# duplicate_payout_account (issue 14): partners paid to the same account wait for the merchant
# ----------------------------------------------------------------------------------------------

def enable_with_bank(worker, stripe, partner, account_number):
    """Onboards the partner with a bank account of this number (the fake's fingerprint is the
    same for the same number on any connected account) and delivers account.updated."""
    acct = onboard(worker, partner)["account_id"]
    ctl(stripe, "POST", f"accounts/{acct}/complete_onboarding", {"account_number": account_number})
    body = ok(deliver(worker, stripe, last_account_event(stripe, acct)))
    assert body["effect"] == "account_updated", body
    return acct


def test_duplicate_payout_account_holds_payouts_until_the_merchant_approves(worker, stripe):
    set_balance(stripe)
    shared = str(uuid_digits())
    a = paid_partner_setup(worker, stripe, enable=False)
    b = paid_partner_setup(worker, stripe, enable=False)
    c = paid_partner_setup(worker, stripe, enable=False)
    a["account"] = enable_with_bank(worker, stripe, a["partner"], shared)
    b["account"] = enable_with_bank(worker, stripe, b["partner"], shared)
    c["account"] = enable_with_bank(worker, stripe, c["partner"], str(uuid_digits()))
    assert partner_row(worker, a["partner"])["bank_fingerprint"] == partner_row(worker, b["partner"])["bank_fingerprint"]
    for s in (a, b):
        pn = ok(worker.get(f"/api/v1/partners/{s['partner']['id']}"))
        assert pn["payout_hold_reasons"] == ["duplicate_payout_account"], pn
    assert ok(worker.get(f"/api/v1/partners/{c['partner']['id']}"))["payout_hold_reasons"] == []
    cron(worker)
    assert transfers_to(stripe, a["account"]) == [] and transfers_to(stripe, b["account"]) == []
    assert [t["amount"] for t in transfers_to(stripe, c["account"])] == [c["expected"]], "others are paid"
    # the merchant approves A's account: A is paid, B still waits
    pn = ok(worker.post(f"/api/v1/partners/{a['partner']['id']}/approve_payout_account"))
    assert pn["payout_hold_reasons"] == [] and pn["payout_account_approved_at"]
    again = ok(worker.post(f"/api/v1/partners/{a['partner']['id']}/approve_payout_account"))
    assert again["payout_account_approved_at"] == pn["payout_account_approved_at"], "idempotent"
    cron(worker)
    assert [t["amount"] for t in transfers_to(stripe, a["account"])] == [a["expected"]]
    assert transfers_to(stripe, b["account"]) == []
    # B's program turns the rule off: B is paid too, once
    ok(worker.patch(f"/api/v1/programs/{b['program']['id']}", {"fraud_rules": {"duplicate_payout_account": "off"}}))
    assert ok(worker.get(f"/api/v1/partners/{b['partner']['id']}"))["payout_hold_reasons"] == []
    cron(worker)
    cron(worker)
    assert [t["amount"] for t in transfers_to(stripe, b["account"])] == [b["expected"]]
    assert [t["amount"] for t in transfers_to(stripe, a["account"])] == [a["expected"]]


def test_same_person_in_two_programs_is_one_payee(worker, stripe):
    """Partners are per program: the same email in two programs sharing one bank account is the
    same person, not a duplicate."""
    set_balance(stripe)
    shared = str(uuid_digits())
    email = f"{uid('same').lower()}@partners.test"
    p1, p2 = program(worker), program(worker)
    for p in (p1, p2):
        pn = worker.partner(p, email=email)
        acct = enable_with_bank(worker, stripe, pn, shared)
        assert ok(worker.get(f"/api/v1/partners/{pn['id']}"))["payout_hold_reasons"] == [], acct


def uuid_digits():
    """A random 12-digit bank account number."""
    return "".join(random.choice("0123456789") for _ in range(12))
