"""Fraud rules with holds (issue 14), end to end against `wrangler dev`: every rule shows its
commission held (and left alone by the cron) or rejected, then decided by the merchant; rules
are validated (422 with the field, nothing written); changing a rule never touches commissions
already created; held commissions are listed with `?held=true` and carry `hold_reasons` in the
API and in webhooks.

Programs here use `hold_days: 0`, so the cron approves every commission that is not held at its
first run: a held commission still pending after a cron run is held by the rule, not the clock.
"""

import json

import pytest
from apihelpers import assert_error, ok, uid

LEAD, SALE = "/api/v1/track/lead", "/api/v1/track/sale"
RULES = ["self_referral", "email_domain_match", "disposable_email", "paid_traffic", "click_spam",
         "duplicate_payout_account", "banned_referrer"]
DEFAULTS = {"self_referral": "reject", "email_domain_match": "hold", "disposable_email": "hold",
            "paid_traffic": "hold", "click_spam": "hold", "duplicate_payout_account": "hold",
            "banned_referrer": "off"}


def setup(worker, partner_email=None, **program):
    p = worker.program(hold_days=0, **program)
    pn = worker.partner(p, **({"email": partner_email} if partner_email else {}))
    return p, pn, worker.link(pn, p)


def lead(worker, link, email=None, ext=None, **click):
    cid = worker.click_id(link, **click)
    body = {"click_id": cid, "customer_external_id": ext or uid("cust")}
    if email:
        body["customer_email"] = email
    return ok(worker.post(LEAD, body))


def commission(worker, cid):
    return worker.rows("SELECT status, reason, hold_reasons FROM commissions WHERE id = ?", cid)[0]


def held_ids(worker, program):
    body = ok(worker.get(f"/api/v1/commissions?program_id={program['id']}&held=true"))
    return [c["id"] for c in body["data"]]


def run_cron(worker):
    r = worker.scheduled()
    assert r.status_code == 200, r.text


def assert_held(worker, program, cm, reasons):
    assert (cm["status"], cm["held"], cm["hold_reasons"], cm["reason"]) == ("pending", True, reasons, None), cm
    run_cron(worker)
    row = commission(worker, cm["id"])
    assert row["status"] == "pending", "the cron must never approve a held commission"
    assert json.loads(row["hold_reasons"]) == reasons
    assert cm["id"] in held_ids(worker, program)


def approve(worker, cm):
    return ok(worker.post(f"/api/v1/commissions/{cm['id']}/approve"))


def reject(worker, cm, reason="looks like fraud"):
    return ok(worker.post(f"/api/v1/commissions/{cm['id']}/reject", {"reason": reason}))


# ----------------------------------------------------------------------------------------------
# settings
# ----------------------------------------------------------------------------------------------

def test_defaults_and_partial_updates(worker):
    p = worker.program()
    assert p["fraud_rules"] == DEFAULTS
    assert (p["click_spam_threshold"], p["banned_referrers"]) == (20, [])
    body = ok(worker.patch(f"/api/v1/programs/{p['id']}", {
        "fraud_rules": {"paid_traffic": "off", "banned_referrer": "reject"},
        "click_spam_threshold": 5, "banned_referrers": ["Spam.Example", "ads.example.net"]}))
    assert body["fraud_rules"] == {**DEFAULTS, "paid_traffic": "off", "banned_referrer": "reject"}
    assert (body["click_spam_threshold"], body["banned_referrers"]) == (5, ["spam.example", "ads.example.net"])
    # a second PATCH naming one rule keeps the others as they were
    body = ok(worker.patch(f"/api/v1/programs/{p['id']}", {"fraud_rules": {"click_spam": "reject"}}))
    assert body["fraud_rules"] == {**DEFAULTS, "paid_traffic": "off", "banned_referrer": "reject", "click_spam": "reject"}
    assert ok(worker.get(f"/api/v1/programs/{p['id']}"))["fraud_rules"] == body["fraud_rules"]


@pytest.mark.parametrize("body, code, field", [
    ({"fraud_rules": {"bogus": "hold"}}, "unknown_fraud_rule", "fraud_rules.bogus"),
    ({"fraud_rules": {"paid_traffic": "block"}}, "invalid_fraud_action", "fraud_rules.paid_traffic"),
    ({"fraud_rules": {"click_spam": True}}, "invalid_fraud_action", "fraud_rules.click_spam"),
    ({"fraud_rules": {"duplicate_payout_account": "reject"}}, "invalid_fraud_action", "fraud_rules.duplicate_payout_account"),
    ({"click_spam_threshold": 0}, "invalid_threshold", "click_spam_threshold"),
    ({"banned_referrers": ["not a host"]}, "invalid_hostname", "banned_referrers[0]"),
])
def test_bad_rules_are_422_and_write_nothing(worker, body, code, field):
    p = worker.program()
    before = ok(worker.get(f"/api/v1/programs/{p['id']}"))
    assert_error(worker.patch(f"/api/v1/programs/{p['id']}", body), 422, code, field)
    assert ok(worker.get(f"/api/v1/programs/{p['id']}")) == before
    # and on create
    n = worker.count("SELECT COUNT(*) FROM programs")
    tag = uid("p")
    create = {"name": tag, "domains": [f"go.{tag}.test"], "allowed_hosts": [f"{tag}.test"], "payout_currency": "usd", **body}
    assert_error(worker.post("/api/v1/programs", create), 422, code, field)
    assert worker.count("SELECT COUNT(*) FROM programs") == n


def test_held_filter_is_validated(worker):
    assert_error(worker.get("/api/v1/commissions?held=maybe"), 400, "invalid_query")


# ----------------------------------------------------------------------------------------------
# email rules
# ----------------------------------------------------------------------------------------------

def test_email_domain_match_is_held_then_approved(worker):
    tag = uid("co").lower()
    p, pn, ln = setup(worker, partner_email=f"ann@{tag}.test")
    cm = lead(worker, ln, f"bob@{tag}.test")["commission"]
    assert_held(worker, p, cm, ["email_domain_match"])
    approved = approve(worker, cm)
    assert (approved["status"], approved["held"], approved["hold_reasons"]) == ("approved", False, ["email_domain_match"])
    assert cm["id"] not in held_ids(worker, p)
    # the webhook payloads carry the reasons: created held, then approved
    events = worker.rows("SELECT type, payload FROM webhook_events WHERE subject_id = ? ORDER BY created_at", cm["id"])
    created = [json.loads(e["payload"]) for e in events if e["type"] == "commission.created"]
    assert created and created[0]["hold_reasons"] == ["email_domain_match"] and created[0]["held"] is True


def test_free_mail_domains_are_no_match(worker):
    p, pn, ln = setup(worker, partner_email=f"{uid('ann').lower()}@gmail.com")
    cm = lead(worker, ln, f"{uid('bob').lower()}@gmail.com")["commission"]
    assert (cm["status"], cm["held"], cm["hold_reasons"]) == ("pending", False, [])
    run_cron(worker)
    assert commission(worker, cm["id"])["status"] == "approved"


def test_disposable_email_is_held_then_rejected_and_its_sales_too(worker):
    p, pn, ln = setup(worker)
    ext = uid("cust")
    cm = lead(worker, ln, "someone@mailinator.com", ext=ext)["commission"]
    assert_held(worker, p, cm, ["disposable_email"])
    rejected = reject(worker, cm)
    assert (rejected["status"], rejected["reason"], rejected["held"]) == ("rejected", "looks like fraud", False)
    # a later sale of the same customer is judged on the same email
    s = ok(worker.post(SALE, {"customer_external_id": ext, "amount": 10000, "currency": "usd", "invoice_id": uid("inv")}))
    assert_held(worker, p, s["commission"], ["disposable_email"])
    # a subdomain of a listed service is disposable too
    cm = lead(worker, ln, "x@eu.mailinator.com")["commission"]
    assert cm["hold_reasons"] == ["disposable_email"]


def test_self_referral_actions(worker):
    p, pn, ln = setup(worker)
    cm = lead(worker, ln, pn["email"])["commission"]
    assert (cm["status"], cm["reason"], cm["held"]) == ("rejected", "self_referral", False)
    ok(worker.patch(f"/api/v1/programs/{p['id']}", {"fraud_rules": {"self_referral": "hold"}}))
    cm = lead(worker, ln, pn["email"])["commission"]
    assert_held(worker, p, cm, ["self_referral"])
    assert approve(worker, cm)["status"] == "approved"
    ok(worker.patch(f"/api/v1/programs/{p['id']}", {"fraud_rules": {"self_referral": "off"}}))
    cm = lead(worker, ln, pn["email"])["commission"]
    assert (cm["status"], cm["held"]) == ("pending", False)
    run_cron(worker)
    assert commission(worker, cm["id"])["status"] == "approved"


def test_changing_a_rule_never_touches_existing_commissions(worker):
    tag = uid("co").lower()
    p, pn, ln = setup(worker, partner_email=f"ann@{tag}.test")
    clean = lead(worker, ln, f"carol@{uid('x').lower()}.test")["commission"]
    held = lead(worker, ln, f"bob@{tag}.test")["commission"]
    run_cron(worker)
    before = {c: worker.rows("SELECT status, reason, hold_reasons, amount, updated_at FROM commissions WHERE id = ?", c)[0]
              for c in (clean["id"], held["id"])}
    assert before[clean["id"]]["status"] == "approved" and before[held["id"]]["status"] == "pending"
    ok(worker.patch(f"/api/v1/programs/{p['id']}", {"fraud_rules": {r: "off" for r in RULES}}))
    ok(worker.patch(f"/api/v1/programs/{p['id']}", {"fraud_rules": {"email_domain_match": "reject"}}))
    run_cron(worker)
    after = {c: worker.rows("SELECT status, reason, hold_reasons, amount, updated_at FROM commissions WHERE id = ?", c)[0]
             for c in (clean["id"], held["id"])}
    assert after == before
    # the new rule applies to new commissions only
    cm = lead(worker, ln, f"dave@{tag}.test")["commission"]
    assert (cm["status"], cm["reason"]) == ("rejected", "email_domain_match")


def test_a_held_commission_can_be_refunded_and_banned_like_any_pending_one(worker):
    p, pn, ln = setup(worker)
    ext = uid("cust")
    lead(worker, ln, "x@mailinator.com", ext=ext)
    inv = uid("inv")
    s = ok(worker.post(SALE, {"customer_external_id": ext, "amount": 10000, "currency": "usd", "invoice_id": inv}))
    assert s["commission"]["held"] is True
    ok(worker.post("/api/v1/track/refund", {"invoice_id": inv}))
    row = commission(worker, s["commission"]["id"])
    assert (row["status"], row["reason"]) == ("rejected", "refund")
    assert s["commission"]["id"] not in held_ids(worker, p)


# ----------------------------------------------------------------------------------------------
# click rules: what the converting click carries in its (signed) id and what its visitor did
# ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("param", ["gclid", "gbraid", "wbraid", "msclkid", "ttclid", "twclid", "li_fat_id"])
def test_paid_traffic_is_held(worker, param):
    p, pn, ln = setup(worker)
    # the lead comes before the click's row is written: the id itself carries the ad click
    cm = lead(worker, ln, query=f"?utm_source=x&{param}=Cj0KCQ")["commission"]
    assert_held(worker, p, cm, ["paid_traffic"])
    assert approve(worker, cm)["status"] == "approved"


def test_fbclid_and_empty_ad_ids_are_organic(worker):
    p, pn, ln = setup(worker)
    for q in ("?fbclid=IwAR0abc", "?gclid=", "?GCLID=abc"):
        cm = lead(worker, ln, query=q)["commission"]
        assert (cm["held"], cm["hold_reasons"]) == (False, []), q


def test_paid_traffic_reject_and_off(worker):
    p, pn, ln = setup(worker, fraud_rules={"paid_traffic": "reject"})
    cm = lead(worker, ln, query="?gclid=abc")["commission"]
    assert (cm["status"], cm["reason"]) == ("rejected", "paid_traffic")
    ok(worker.patch(f"/api/v1/programs/{p['id']}", {"fraud_rules": {"paid_traffic": "off"}}))
    cm = lead(worker, ln, query="?gclid=abc")["commission"]
    assert (cm["status"], cm["held"]) == ("pending", False)


def test_a_held_customers_sales_are_held_on_its_click(worker):
    p, pn, ln = setup(worker)
    ext = uid("cust")
    lead(worker, ln, ext=ext, query="?msclkid=abc")
    s = ok(worker.post(SALE, {"customer_external_id": ext, "amount": 5000, "currency": "usd", "invoice_id": uid("inv")}))
    assert_held(worker, p, s["commission"], ["paid_traffic"])
    assert reject(worker, s["commission"])["status"] == "rejected"


def test_click_spam_is_held_past_the_threshold(worker):
    p, pn, ln = setup(worker, click_spam_threshold=3)
    other = worker.link(pn, p, path="/pricing")
    spammer, normal = worker.visitor(), worker.visitor()
    # 4 visits over two of the partner's links (one of them with an ad click id: its own row)
    for link, q in ((ln, ""), (ln, ""), (other, ""), (other, "?gclid=x")):
        assert worker.click(link, visitor=spammer, query=q).status_code == 302
    worker.click(ln, visitor=normal)
    worker.wait_count("SELECT COALESCE(SUM(hits), 0) FROM clicks WHERE partner_id = ?", pn["id"], expect=5)
    held = lead(worker, ln, visitor=spammer)["commission"]
    assert_held(worker, p, held, ["click_spam"])
    # 4 visits in 24 hours on the partner's links: more than 3, whichever link converts
    clean = lead(worker, ln, visitor=normal)["commission"]
    assert (clean["held"], clean["hold_reasons"]) == (False, [])
    run_cron(worker)
    assert commission(worker, clean["id"])["status"] == "approved"
    assert reject(worker, held)["status"] == "rejected"


def test_banned_referrer(worker):
    p, pn, ln = setup(worker, banned_referrers=["coupons.example"])
    ref = {"Referer": "https://www.coupons.example/acme-deals"}
    # off by default: nothing happens
    cm = lead(worker, ln, headers=ref)["commission"]
    assert cm["hold_reasons"] == []
    # hold: the click carries the flag; another referrer does not
    ok(worker.patch(f"/api/v1/programs/{p['id']}", {"fraud_rules": {"banned_referrer": "hold"}}))
    cm = lead(worker, ln, headers=ref)["commission"]
    assert_held(worker, p, cm, ["banned_referrer"])
    assert reject(worker, cm)["reason"] == "looks like fraud"
    cm = lead(worker, ln, headers={"Referer": "https://blog.example/post"})["commission"]
    assert cm["hold_reasons"] == []
    # reject: such a click does not attribute at all
    ok(worker.patch(f"/api/v1/programs/{p['id']}", {"fraud_rules": {"banned_referrer": "reject"}}))
    body = lead(worker, ln, headers=ref)
    assert (body["attributed"], body["reason"], body["commission"]) == (False, "click_not_found", None)
