"""End-to-end tests of coupon codes (issue 16): `POST/GET /api/v1/partners/{id}/coupons`,
`DELETE /api/v1/coupons/{id}`, `coupon_code` on `track/lead` and `track/sale`, and a Stripe
checkout's promotion code (zero-code tracking).

A code attributes a customer with no partner to the code's partner; under `last_click` it
overrides an earlier click, under `first_click` it does not; an unknown, deleted or malformed
code is recorded (reason `coupon_not_found` when nothing else attributes), never an error."""

import time
import pytest
from apihelpers import assert_error, ok, uid
from test_payouts import stripe  # noqa: F401  (a fixture)
from test_stripe_tracking import checkout, commissions_in, deliver_all, events_of, leads_of, sales_of

LEAD, SALE = "/api/v1/track/lead", "/api/v1/track/sale"
COUPON_FIELDS = {"id", "program_id", "partner_id", "code", "created_at"}


def coupons_of(worker, partner):
    return f"/api/v1/partners/{partner['id']}/coupons"


def coupon(worker, partner, code=None):
    code = code or uid("C").replace("-", "_")[:20]
    c = worker.ok("POST", coupons_of(worker, partner), {"code": code}, status=201)
    assert set(c) == COUPON_FIELDS, c
    return c


def make_key(worker, permissions, program_id=None):
    body = {"name": uid("key"), "permissions": permissions}
    if program_id:
        body["program_id"] = program_id
    return worker.ok("POST", "/api/v1/api-keys", body, status=201)["key"]


def lead(worker, ext, click_id="", **kw):
    return worker.post(LEAD, {"click_id": click_id, "customer_external_id": ext, **kw})


def sale(worker, ext, amount, invoice=None, **kw):
    return worker.post(SALE, {"customer_external_id": ext, "amount": amount, "currency": "usd",
                              "invoice_id": invoice or uid("inv"), **kw})


def customer_row(worker, program, ext):
    rows = worker.rows("SELECT * FROM customers WHERE program_id=? AND external_id=?", program["id"], ext)
    assert len(rows) == 1, rows
    return rows[0]


def commissions_of(worker, partner):
    return worker.rows("SELECT kind, amount, partner_id FROM commissions WHERE partner_id=? ORDER BY created_at",
                       partner["id"])


# ----------------------------------------------------------------------------------------------
# the coupons API
# ----------------------------------------------------------------------------------------------

def test_create_list_delete(worker):
    p = worker.program()
    pn = worker.partner(p)
    c = coupon(worker, pn, "Jane-10_x")
    assert (c["code"], c["partner_id"], c["program_id"]) == ("Jane-10_x", pn["id"], p["id"])
    assert c["id"].startswith("cpn_")
    second = coupon(worker, pn, "  JANE20 ")
    assert second["code"] == "JANE20"  # trimmed, kept as entered
    listed = ok(worker.get(coupons_of(worker, pn)))
    assert [x["id"] for x in listed["data"]] == [second["id"], c["id"]] and listed["next_cursor"] is None
    page = ok(worker.get(coupons_of(worker, pn) + "?limit=1"))
    assert [x["id"] for x in page["data"]] == [second["id"]] and page["next_cursor"] == second["id"]
    assert ok(worker.delete(f"/api/v1/coupons/{c['id']}")) == {"id": c["id"], "deleted": True}
    assert [x["id"] for x in ok(worker.get(coupons_of(worker, pn)))["data"]] == [second["id"]]
    assert_error(worker.delete(f"/api/v1/coupons/{c['id']}"), 404, "not_found")
    assert_error(worker.delete("/api/v1/coupons/nope"), 404, "not_found")
    # A deleted code is free again (among live coupons only).
    again = coupon(worker, pn, "jane-10_X")
    assert again["id"] != c["id"]
    row = worker.rows("SELECT code, code_key, deleted_at FROM coupons WHERE id=?", c["id"])[0]
    assert row["code_key"] == "jane-10_x" and row["deleted_at"] is not None


def test_codes_are_unique_per_program_whatever_the_case(worker):
    p = worker.program()
    a, b = worker.partner(p), worker.partner(p)
    coupon(worker, a, "SUMMER24")
    for code in ["SUMMER24", "summer24", " Summer24 "]:
        assert_error(worker.post(coupons_of(worker, b), {"code": code}), 409, "coupon_code_taken")
    # Another program may use the same code.
    other = worker.partner(worker.program())
    assert coupon(worker, other, "summer24")["code"] == "summer24"
    assert worker.count("SELECT COUNT(*) FROM coupons WHERE code_key='summer24'") == 2


def test_invalid_codes_are_422_naming_code(worker):
    p = worker.program()
    pn = worker.partner(p)
    before = worker.count("SELECT COUNT(*) FROM coupons")
    for bad in ["ab", "", "   ", "x" * 41, "has space", "50%OFF", "été2024", "a.b.c"]:
        assert_error(worker.post(coupons_of(worker, pn), {"code": bad}), 422, "invalid_coupon_code", field="code")
    assert_error(worker.post(coupons_of(worker, pn), {"code": 12345}), 400, "invalid_request")
    assert_error(worker.post(coupons_of(worker, pn), {}), 400, "invalid_request")
    assert_error(worker.post(coupons_of(worker, pn), {"code": "abc", "extra": 1}), 400, "invalid_request")
    assert worker.count("SELECT COUNT(*) FROM coupons") == before
    assert coupon(worker, pn, "x" * 40)["code"] == "x" * 40
    assert coupon(worker, pn, "a-_")["code"] == "a-_"


def test_scope_of_program_bound_and_read_only_keys(worker):
    a, b = worker.program(), worker.program()
    pa, pb = worker.partner(a), worker.partner(b)
    cb = coupon(worker, pb, "OTHERPROG")
    key = make_key(worker, ["read", "write"], program_id=a["id"])
    # Partner and coupon of another program: not found, nothing written.
    assert_error(worker.post(coupons_of(worker, pb), {"code": "NOPE1"}, key=key), 404, "not_found")
    assert_error(worker.get(coupons_of(worker, pb), key=key), 404, "not_found")
    assert_error(worker.delete(f"/api/v1/coupons/{cb['id']}", key=key), 404, "not_found")
    assert worker.count("SELECT COUNT(*) FROM coupons WHERE id=? AND deleted_at IS NULL", cb["id"]) == 1
    # Its own program's: fine.
    mine = worker.ok("POST", coupons_of(worker, pa), {"code": "MINE1"}, key=key, status=201)
    assert ok(worker.get(coupons_of(worker, pa), key=key))["data"][0]["id"] == mine["id"]
    # Read-only and track-only keys cannot create or delete.
    ro = make_key(worker, ["read"])
    assert_error(worker.post(coupons_of(worker, pa), {"code": "RO123"}, key=ro), 403, "forbidden")
    assert_error(worker.delete(f"/api/v1/coupons/{mine['id']}", key=ro), 403, "forbidden")
    tr = make_key(worker, ["track"])
    assert_error(worker.get(coupons_of(worker, pa), key=tr), 403, "forbidden")
    assert_error(worker.get("/api/v1/partners/pn_missing/coupons"), 404, "not_found")


def test_a_banned_partner_gets_no_new_code(worker):
    p = worker.program()
    pn = worker.partner(p)
    ok(worker.patch(f"/api/v1/partners/{pn['id']}", {"status": "banned"}))
    assert_error(worker.post(coupons_of(worker, pn), {"code": "BANNED1"}), 409, "partner_banned")


# ----------------------------------------------------------------------------------------------
# attribution
# ----------------------------------------------------------------------------------------------

def test_a_lead_with_a_code_attributes_a_new_customer(worker):
    p = worker.program()
    pn = worker.partner(p)
    c = coupon(worker, pn, "LEADCODE")
    ext = uid("cust")
    body = ok(lead(worker, ext, coupon_code="leadcode", program_id=p["id"]))
    assert body["attributed"] is True and body["reason"] is None, body
    ev = body["event"]
    assert (ev["partner_id"], ev["click_id"], ev["coupon_code"], ev["coupon_id"]) == (pn["id"], None, "leadcode", c["id"])
    assert body["commission"]["partner_id"] == pn["id"] and body["commission"]["amount"] == 500
    row = customer_row(worker, p, ext)
    assert (row["partner_id"], row["click_id"], row["link_id"]) == (pn["id"], None, None)
    assert row["clicked_at"] is not None
    # A later sale of the customer earns the partner its sale commission.
    s = ok(sale(worker, ext, 10_000, program_id=p["id"]))
    assert s["attributed"] is True and s["commission"]["amount"] == 2000 and s["event"]["partner_id"] == pn["id"]


def test_a_sale_with_a_code_for_an_unknown_customer(worker):
    p = worker.program()
    pn = worker.partner(p)
    c = coupon(worker, pn, "SaleCode")
    ext, inv = uid("cust"), uid("inv")
    body = ok(sale(worker, ext, 10_000, invoice=inv, coupon_code=" SALECODE ", program_id=p["id"]))
    assert body["attributed"] is True, body
    assert (body["event"]["partner_id"], body["event"]["coupon_id"], body["event"]["coupon_code"]) == (pn["id"], c["id"], "SALECODE")
    cm = body["commission"]
    assert (cm["partner_id"], cm["kind"], cm["amount"], cm["sale_amount"]) == (pn["id"], "sale", 2000, 10_000)
    row = customer_row(worker, p, ext)
    assert (row["partner_id"], row["click_id"], row["first_sale_at"]) == (pn["id"], None, row["first_sale_at"])
    assert row["first_sale_at"] is not None
    # The same sale again (a retry): the first answer, no second commission.
    again = ok(sale(worker, ext, 10_000, invoice=inv, coupon_code="SALECODE", program_id=p["id"]))
    assert again == body
    assert commissions_of(worker, pn) == [{"kind": "sale", "amount": 2000, "partner_id": pn["id"]}]
    # Later sales without the code stay the partner's.
    later = ok(sale(worker, ext, 5_000, program_id=p["id"]))
    assert later["commission"]["partner_id"] == pn["id"] and later["commission"]["amount"] == 1000


@pytest.mark.parametrize("model", ["last_click", "first_click"])
def test_a_code_after_a_click(worker, model):
    p = worker.program(attribution_model=model)
    clicker, influencer = worker.partner(p), worker.partner(p)
    ln = worker.link(clicker, p)
    coupon(worker, influencer, "INFLU")
    ext = uid("cust")
    first = ok(lead(worker, ext, worker.click_id(ln)))
    assert first["event"]["partner_id"] == clicker["id"]
    body = ok(sale(worker, ext, 10_000, coupon_code="influ", program_id=p["id"]))
    winner = influencer if model == "last_click" else clicker
    assert body["attributed"] is True and body["event"]["partner_id"] == winner["id"], body
    assert body["commission"]["partner_id"] == winner["id"]
    row = customer_row(worker, p, ext)
    assert row["partner_id"] == winner["id"]
    if model == "last_click":
        assert (row["click_id"], row["link_id"]) == (None, None)
    else:
        assert row["click_id"] == first["event"]["click_id"]
    # A lead with the code: the same rule.
    ext2 = uid("cust")
    body = ok(lead(worker, ext2, worker.click_id(ln), coupon_code="INFLU"))
    assert body["event"]["partner_id"] == winner["id"], body


def test_first_click_keeps_a_code_customer_from_a_later_click(worker):
    p = worker.program(attribution_model="first_click")
    influencer, clicker = worker.partner(p), worker.partner(p)
    coupon(worker, influencer, "FIRSTCODE")
    ln = worker.link(clicker, p)
    ext = uid("cust")
    ok(sale(worker, ext, 1_000, coupon_code="firstcode", program_id=p["id"]))
    body = ok(lead(worker, ext, worker.click_id(ln)))
    assert body["attributed"] is True and body["event"]["partner_id"] == influencer["id"], body
    assert customer_row(worker, p, ext)["partner_id"] == influencer["id"]


def test_unknown_malformed_and_deleted_codes_are_recorded_not_refused(worker):
    p = worker.program()
    pn = worker.partner(p)
    c = coupon(worker, pn, "GONE123")
    ok(worker.delete(f"/api/v1/coupons/{c['id']}"))
    for code in ["NOSUCH", "GONE123", "bad code!", "x" * 300]:
        ext = uid("cust")
        body = ok(sale(worker, ext, 10_000, coupon_code=code, program_id=p["id"]))
        assert body["attributed"] is False and body["reason"] == "coupon_not_found", body
        assert body["commission"] is None and body["event"]["partner_id"] is None
        assert body["event"]["coupon_id"] is None and body["event"]["coupon_code"] == code.strip()[:64]
        assert customer_row(worker, p, ext)["partner_id"] is None
        body = ok(lead(worker, uid("cust"), coupon_code=code, program_id=p["id"]))
        assert body["attributed"] is False and body["reason"] == "coupon_not_found", body
    # An attributed conversion with an unknown code stays attributed; the code is recorded.
    ln = worker.link(pn, p)
    ext = uid("cust")
    body = ok(lead(worker, ext, worker.click_id(ln), coupon_code="NOSUCH"))
    assert body["attributed"] is True and body["event"]["partner_id"] == pn["id"] and body["event"]["coupon_id"] is None
    # Without a code, the reasons are what they were.
    assert ok(sale(worker, uid("cust"), 100, program_id=p["id"]))["reason"] == "no_attribution"
    assert ok(lead(worker, uid("cust"), program_id=p["id"]))["reason"] == "click_not_found"
    assert ok(sale(worker, uid("cust"), 100, coupon_code="  ", program_id=p["id"]))["reason"] == "no_attribution"
    # A code that is no string is a malformed body, like any field of the wrong type.
    assert_error(sale(worker, uid("cust"), 100, coupon_code=5, program_id=p["id"]), 400, "invalid_request")


def test_a_code_of_a_banned_partner_attributes_nothing(worker):
    p = worker.program()
    pn = worker.partner(p)
    coupon(worker, pn, "BANME")
    ok(worker.patch(f"/api/v1/partners/{pn['id']}", {"status": "banned"}))
    body = ok(sale(worker, uid("cust"), 10_000, coupon_code="banme", program_id=p["id"]))
    assert body["attributed"] is False and body["reason"] == "partner_banned" and body["commission"] is None


def test_the_code_finds_the_program(worker):
    """No program_id, an unknown customer, an unbound key: the one program with the code."""
    p = worker.program()
    pn = worker.partner(p)
    code = uid("Find").replace("-", "")[:30]
    coupon(worker, pn, code)
    body = ok(sale(worker, uid("cust"), 10_000, coupon_code=code.lower()))
    assert (body["event"]["program_id"], body["event"]["partner_id"]) == (p["id"], pn["id"]), body
    body = ok(lead(worker, uid("cust"), coupon_code=code))
    assert (body["event"]["program_id"], body["event"]["partner_id"]) == (p["id"], pn["id"]), body
    # The same code in a second program: ambiguous, as for a customer known in two programs.
    coupon(worker, worker.partner(worker.program()), code.upper())
    assert_error(sale(worker, uid("cust"), 100, coupon_code=code), 409, "ambiguous_program")


def test_codes_of_another_program_do_not_attribute(worker):
    a, b = worker.program(), worker.program()
    coupon(worker, worker.partner(b), "CROSSPROG")
    body = ok(sale(worker, uid("cust"), 10_000, coupon_code="CROSSPROG", program_id=a["id"]))
    assert body["reason"] == "coupon_not_found", body


def quiet(worker, timeout=15.0):
    """Waits until the isolate makes no D1 call of its own: earlier tests' background work (the
    webhook deliveries and queue batches they left) would count in `d1_calls_of`."""
    deadline = time.time() + timeout
    while True:
        a = worker.metrics()["d1_calls"]
        b = worker.metrics()["d1_calls"]
        time.sleep(0.5)
        c = worker.metrics()["d1_calls"]
        if c - b == b - a or time.time() > deadline:
            return


def d1_calls_of(worker, fn):
    """D1 round trips `fn` made (as tests/test_scale.py counts them: the second metrics read
    authenticates its key, calibrated by two reads with nothing between)."""
    quiet(worker)
    a = worker.metrics()["d1_calls"]
    b = worker.metrics()["d1_calls"]
    fn()
    c = worker.metrics()["d1_calls"]
    return (c - b) - (b - a)


def test_the_code_lookup_costs_no_extra_round_trip(worker):
    """A unique sale with a code: the key, the reads (one batch, the coupon in it), the write
    (one batch): 3, as without a code; a retry 2."""
    while True:  # endpoints would get deliveries after the response (more D1 calls)
        page = ok(worker.get("/api/v1/webhooks?limit=100"))["data"]
        if not page:
            break
        for ep in page:
            assert worker.delete(f"/api/v1/webhooks/{ep['id']}").status_code in (200, 204)
    p = worker.program()
    pn = worker.partner(p)
    coupon(worker, pn, "TRIPS")
    key = make_key(worker, ["track"], program_id=p["id"])
    out = []
    body = {"customer_external_id": uid("cust"), "amount": 1_000, "currency": "usd", "invoice_id": uid("inv"),
            "coupon_code": "trips"}
    call = lambda: out.append(ok(worker.post(SALE, body, key=key)))  # noqa: E731
    assert d1_calls_of(worker, call) == 3
    assert out[-1]["commission"]["partner_id"] == pn["id"]
    assert d1_calls_of(worker, call) == 2
    assert out[-1] == out[-2]
    lead_body = {"click_id": "", "customer_external_id": uid("cust"), "coupon_code": "TRIPS"}
    assert d1_calls_of(worker, lambda: out.append(ok(worker.post(LEAD, lead_body, key=key)))) == 3
    assert out[-1]["event"]["partner_id"] == pn["id"]


# ----------------------------------------------------------------------------------------------
# Stripe-native tracking: a checkout's promotion code
# ----------------------------------------------------------------------------------------------

def test_a_checkout_promotion_code_attributes_like_a_coupon(worker, stripe):
    """No Refport click: the promotion code the buyer applied (a Refport coupon code) finds the
    program and attributes the lead and the sale to the code's partner."""
    p = worker.program(hold_days=0)
    pn = worker.partner(p)
    code = uid("Promo").replace("-", "")[:24]
    c = coupon(worker, pn, code)
    co = checkout(stripe, mode="payment", amount=4900, currency="usd", create_customer=True,
                  promotion_code=code.upper())
    assert co["session"]["discounts"][0]["promotion_code"].startswith("promo_")
    answers = deliver_all(worker, stripe, events_of(worker, stripe, co["events"]))
    done = [a for a in answers.values() if a.get("outcome") == "attributed"]
    assert len(done) == 1 and done[0]["effect"] == "lead_and_sale" and done[0]["partner_id"] == pn["id"], answers
    [lead] = leads_of(worker, p)
    [sale] = sales_of(worker, p)
    assert (lead["partner_id"], lead["click_id"], lead["coupon_id"]) == (pn["id"], None, c["id"])
    assert (sale["partner_id"], sale["coupon_id"], sale["amount"]) == (pn["id"], c["id"], 4900)
    assert sorted((x["kind"], x["amount"]) for x in commissions_in(worker, p)) == [("lead", 500), ("sale", 980)]
    [cust] = worker.rows("SELECT * FROM customers WHERE program_id=?", p["id"])
    assert (cust["partner_id"], cust["stripe_customer_id"]) == (pn["id"], co["customer"])
    # A second checkout of the same Stripe customer (known now) with the code: one more sale of
    # the partner's, no second lead.
    again = checkout(stripe, mode="payment", amount=1000, currency="usd", customer=co["customer"],
                     promotion_code=code)
    deliver_all(worker, stripe, events_of(worker, stripe, again["events"]))
    assert [s["partner_id"] for s in sales_of(worker, p)] == [pn["id"], pn["id"]]
    assert len(leads_of(worker, p)) == 1


def test_a_promotion_code_that_is_no_coupon_changes_nothing(worker, stripe):
    p = worker.program(hold_days=0)
    worker.partner(p)
    co = checkout(stripe, mode="payment", amount=4900, currency="usd", promotion_code=uid("NOTOURS"))
    evts = events_of(worker, stripe, co["events"])
    answers = deliver_all(worker, stripe, evts)
    [completed] = [answers[e["id"]] for e in evts if e["type"] == "checkout.session.completed"]
    assert (completed["outcome"], completed["reason"]) == ("ignored", "coupon_not_found"), completed
    assert leads_of(worker, p) == [] and sales_of(worker, p) == []
