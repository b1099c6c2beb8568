"""End-to-end tests of payout review mode (issue 17): a program with `payout_mode: "review"` has
its due payouts prepared as `awaiting_approval` by the cron (commissions claimed, nothing sent to
Stripe, `payout.awaiting_approval` delivered to the merchant's webhook endpoints); the merchant
approves each one (`POST /api/v1/payouts/{id}/approve`: sent once through the normal payout path)
or cancels it (`POST /api/v1/payouts/{id}/cancel`: its commissions go back to the approved pool).

Runs against `wrangler dev` and the Stripe fake of tests/stripe_fake, like tests/test_payouts.py
(whose helpers and `stripe` fixture this reuses); every test builds its own program, partner and
Connect account and looks only at its own payouts and transfers."""

import pytest

from apihelpers import assert_error, ok
from test_payouts import (assert_paid, attributed_customer, commissions_of, cron, enable_payouts,  # noqa: F401
                          program, sale, stripe, transfer_requests, transfers_for_payout, transfers_to)
from test_webhooks_out import cron_until, endpoints, outbox_events, receiver  # noqa: F401

V = "/api/v1"


def review_setup(worker, stripe, mode="review", sale_amount=30000):
    """A program (hold 0, daily, minimum 1000) in `mode`, one payouts-enabled partner with a lead
    (500) and a sale (20 %). Answers the dict assert_paid expects."""
    p = program(worker, min_payout=1000, payout_mode=mode)
    assert p["payout_mode"] == mode, p
    pn = worker.partner(p)
    ln = worker.link(pn, p)
    ext = attributed_customer(worker, ln)
    inv, cm = sale(worker, ext, sale_amount)
    acct = enable_payouts(worker, stripe, pn)
    return {"program": p, "partner": pn, "link": ln, "customer": ext, "account": acct,
            "expected": 500 + sale_amount * 20 // 100}


def payouts_of(worker, partner):
    return sorted(ok(worker.get(f"{V}/payouts?partner_id={partner['id']}"))["data"], key=lambda p: p["id"])


def approve(worker, payout, **kw):
    return worker.post(f"{V}/payouts/{payout['id']}/approve", **kw)


def cancel(worker, payout, **kw):
    return worker.post(f"{V}/payouts/{payout['id']}/cancel", **kw)


def prepared(worker, stripe, s):
    """Runs the cron and answers the one payout it prepared for review (nothing sent)."""
    cron(worker)
    pos = payouts_of(worker, s["partner"])
    assert [(x["status"], x["amount"], x["commission_count"]) for x in pos] == \
        [("awaiting_approval", s["expected"], 2)], pos
    po = pos[0]
    assert po["stripe_transfer_id"] is None and po["paid_at"] is None, po
    rows = commissions_of(worker, s["partner"])
    assert [(c["status"], c["payout_id"]) for c in rows] == [("approved", po["id"])] * 2, rows
    assert transfers_to(stripe, s["account"]) == [] and transfer_requests(stripe, po["id"]) == []
    return po


# ----------------------------------------------------------------------------------------------
# the program setting
# ----------------------------------------------------------------------------------------------

def test_payout_mode_defaults_to_automatic_is_patched_and_bad_values_write_nothing(worker):
    p = worker.program()
    assert p["payout_mode"] == "automatic", p
    q = ok(worker.patch(f"{V}/programs/{p['id']}", {"payout_mode": "review"}))
    assert q["payout_mode"] == "review" and ok(worker.get(f"{V}/programs/{p['id']}"))["payout_mode"] == "review"
    # a PATCH of another field keeps it
    assert ok(worker.patch(f"{V}/programs/{p['id']}", {"hold_days": 3}))["payout_mode"] == "review"
    before = ok(worker.get(f"{V}/programs/{p['id']}"))
    for bad in ["manual", "Review", "", 1, ["review"], {"mode": "review"}]:
        err = assert_error(worker.patch(f"{V}/programs/{p['id']}", {"payout_mode": bad}), 400, "invalid_request")
        assert "payout_mode" in err["message"], err
    assert ok(worker.get(f"{V}/programs/{p['id']}")) == before
    n = worker.count("SELECT COUNT(*) FROM programs")
    err = assert_error(worker.post(f"{V}/programs", {"name": "Bad mode", "domains": ["go.badmode.test"],
                                                     "allowed_hosts": ["badmode.test"], "payout_currency": "usd",
                                                     "payout_mode": "later"}), 400, "invalid_request")
    assert "payout_mode" in err["message"], err
    assert worker.count("SELECT COUNT(*) FROM programs") == n
    assert ok(worker.patch(f"{V}/programs/{p['id']}", {"payout_mode": "automatic"}))["payout_mode"] == "automatic"


# ----------------------------------------------------------------------------------------------
# review: prepare, approve once
# ----------------------------------------------------------------------------------------------

def test_review_run_prepares_then_approve_sends_exactly_one_transfer(worker, stripe, receiver, endpoints):
    ep = endpoints(receiver, events=["payout.awaiting_approval", "payout.paid"])
    s = review_setup(worker, stripe)
    po = prepared(worker, stripe, s)
    listed = ok(worker.get(f"{V}/payouts?program_id={s['program']['id']}&status=awaiting_approval"))["data"]
    assert [x["id"] for x in listed] == [po["id"]]

    # the outbox holds one payout.awaiting_approval, delivered signed to the endpoint
    events = [e for e in outbox_events(worker, s["program"]["id"]) if e["type"] == "payout.awaiting_approval"]
    assert [e["subject_id"] for e in events] == [po["id"]], events

    def delivered():
        return [e for e in receiver.events(s["program"]["id"], ep["_path"]) if e["type"] == "payout.awaiting_approval"]
    cron_until(worker, delivered, what="payout.awaiting_approval delivered")
    got = delivered()
    assert len(got) == 1, got
    assert got[0]["data"]["id"] == po["id"] and got[0]["data"]["status"] == "awaiting_approval", got
    assert got[0]["data"]["amount"] == s["expected"] and got[0]["data"]["currency"] == "usd", got

    # more runs send nothing and prepare nothing more; a new commission waits (one payout at a time)
    sale(worker, s["customer"], 10000)  # 2000
    cron(worker)
    assert [x["id"] for x in payouts_of(worker, s["partner"])] == [po["id"]]
    assert transfers_to(stripe, s["account"]) == []
    late = [c for c in commissions_of(worker, s["partner"]) if c["payout_id"] is None]
    assert [(c["status"], c["amount"]) for c in late] == [("approved", 2000)], late

    # approve: sent once through the payouts queue
    body = ok(approve(worker, po))
    assert body["id"] == po["id"] and body["status"] in ("processing", "paid"), body
    worker.payouts_settled()
    paid = ok(worker.get(f"{V}/payouts?partner_id={s['partner']['id']}&status=paid"))["data"]
    assert [x["id"] for x in paid] == [po["id"]], paid
    assert_paid(worker, stripe, s, paid[0], s["expected"], 2)
    assert len(transfer_requests(stripe, po["id"])) == 1

    # a second approval (and a cancel) is a conflict, and sends nothing
    for r in (approve(worker, po), cancel(worker, po)):
        err = assert_error(r, 409, "not_awaiting_approval")
        assert "paid" in err["message"], err
    worker.payouts_settled()
    cron(worker)  # prepares the late commission's payout, sends nothing
    assert len(transfers_for_payout(stripe, po["id"])) == 1
    assert len(transfers_to(stripe, s["account"])) == 1
    pos = payouts_of(worker, s["partner"])
    assert [(x["status"], x["amount"]) for x in pos] == [("paid", s["expected"]), ("awaiting_approval", 2000)], pos
    assert ok(cancel(worker, pos[1]))["status"] == "canceled"


def test_approving_twice_at_once_sends_one_transfer(worker, stripe):
    import concurrent.futures

    s = review_setup(worker, stripe)
    po = prepared(worker, stripe, s)
    with concurrent.futures.ThreadPoolExecutor(4) as ex:
        codes = sorted(r.status_code for r in ex.map(lambda _: approve(worker, po), range(4)))
    assert codes == [200, 409, 409, 409], codes
    worker.payouts_settled()
    assert_paid(worker, stripe, s, payouts_of(worker, s["partner"])[0], s["expected"], 2)
    assert len(transfer_requests(stripe, po["id"])) == 1


# ----------------------------------------------------------------------------------------------
# review: cancel releases, a later run pays once
# ----------------------------------------------------------------------------------------------

def test_cancel_releases_commissions_and_a_later_run_pays_them_once(worker, stripe):
    s = review_setup(worker, stripe)
    po1 = prepared(worker, stripe, s)
    ids = sorted(c["id"] for c in commissions_of(worker, s["partner"]))
    body = ok(cancel(worker, po1))
    assert (body["id"], body["status"], body["amount"]) == (po1["id"], "canceled", s["expected"]), body
    rows = commissions_of(worker, s["partner"])
    assert [(c["status"], c["payout_id"], c["paid_at"]) for c in rows] == [("approved", None, None)] * 2, rows
    assert_error(cancel(worker, po1), 409, "not_awaiting_approval")
    assert_error(approve(worker, po1), 409, "not_awaiting_approval")

    # the next review run prepares them again, in a new payout
    cron(worker)
    pos = payouts_of(worker, s["partner"])
    assert [(x["id"], x["status"]) for x in pos][0] == (po1["id"], "canceled")
    po2 = pos[1]
    assert (po2["status"], po2["amount"], po2["commission_count"]) == ("awaiting_approval", s["expected"], 2), pos
    assert sorted(c["id"] for c in commissions_of(worker, s["partner"]) if c["payout_id"] == po2["id"]) == ids
    assert ok(cancel(worker, po2))["status"] == "canceled"

    # back to automatic: the next run pays them, once
    assert ok(worker.patch(f"{V}/programs/{s['program']['id']}", {"payout_mode": "automatic"}))["payout_mode"] == "automatic"
    cron(worker)
    pos = payouts_of(worker, s["partner"])
    assert [x["status"] for x in pos] == ["canceled", "canceled", "paid"], pos
    assert_paid(worker, stripe, s, pos[2], s["expected"], 2)
    assert len(transfers_to(stripe, s["account"])) == 1
    assert transfers_for_payout(stripe, po1["id"]) == [] and transfers_for_payout(stripe, po2["id"]) == []
    cron(worker)
    assert len(transfers_to(stripe, s["account"])) == 1
    assert sum(c["amount"] for c in commissions_of(worker, s["partner"]) if c["status"] == "paid") == s["expected"]


# ----------------------------------------------------------------------------------------------
# automatic mode unchanged; scoping
# ----------------------------------------------------------------------------------------------

def test_automatic_mode_pays_on_the_due_day_as_before(worker, stripe):
    s = review_setup(worker, stripe, mode="automatic")
    cron(worker)
    pos = payouts_of(worker, s["partner"])
    assert [x["status"] for x in pos] == ["paid"], pos
    assert_paid(worker, stripe, s, pos[0], s["expected"], 2)
    assert not [e for e in outbox_events(worker, s["program"]["id"]) if e["type"] == "payout.awaiting_approval"]
    err = assert_error(approve(worker, pos[0]), 409, "not_awaiting_approval")
    assert "paid" in err["message"], err
    assert_error(cancel(worker, pos[0]), 409, "not_awaiting_approval")
    assert len(transfers_to(stripe, s["account"])) == 1


def test_other_programs_key_gets_404_and_changes_nothing(worker, stripe):
    s = review_setup(worker, stripe)
    po = prepared(worker, stripe, s)
    other = worker.program()
    key = worker.ok("POST", f"{V}/api-keys", {"name": "other", "permissions": ["read", "write"],
                                                "program_id": other["id"]}, status=201)["key"]
    mine = worker.ok("POST", f"{V}/api-keys", {"name": "mine-read", "permissions": ["read"],
                                                 "program_id": s["program"]["id"]}, status=201)["key"]
    for r in (approve(worker, po, key=key), cancel(worker, po, key=key)):
        assert_error(r, 404, "not_found")
    for r in (approve(worker, po, key=mine), cancel(worker, po, key=mine)):
        assert_error(r, 403, "forbidden")
    for bad in ("po_doesnotexist0000000000", "cm_123", "x"):
        assert_error(worker.post(f"{V}/payouts/{bad}/approve"), 404, "not_found")
    assert_error(worker.get(f"{V}/payouts/{po['id']}/approve"), 405, "method_not_allowed")
    assert payouts_of(worker, s["partner"])[0]["status"] == "awaiting_approval"
    assert transfers_to(stripe, s["account"]) == []
    assert ok(cancel(worker, po))["status"] == "canceled"  # the program's own (admin) key may
