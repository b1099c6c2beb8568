"""End-to-end tests of issue 16's reward rules against `wrangler dev`: reward modifiers (country,
product, sale amount, customer type, event name, metadata), partner groups (partner override >
group > program, per field), per-customer caps, per-partner minimum payouts, manual commissions
(`kind: "bonus"`) and the terms the portal shows in words. Each test builds its own program."""

import time
import uuid
from concurrent.futures import ThreadPoolExecutor

from apihelpers import assert_error, ok, signed_click_id, uid
from test_payouts import cron, enable_payouts, stripe, transfers_to  # noqa: F401 (stripe: a fixture)

LEAD, SALE = "/api/v1/track/lead", "/api/v1/track/sale"

COUNTRY_AND_PRODUCT = {
    "sale": {
        "type": "percentage", "amount": 2000,
        "modifiers": [
            {"conditions": [{"field": "product_id", "op": "eq", "value": "prod_pro"}],
             "type": "percentage", "amount": 3000},
            {"conditions": [{"field": "country", "op": "in", "value": ["DE", "AT"]}],
             "type": "flat", "amount": 2500},
        ],
    },
    "lead": {
        "type": "flat", "amount": 100,
        "modifiers": [{"conditions": [{"field": "country", "op": "eq", "value": "DE"}], "type": "flat", "amount": 400}],
    },
}


def lead_from(worker, link, country=None, customer=None):
    """A click and a lead on it. With `country`, the click is written through the clicks queue
    consumer's own batch write (the test hook) with that country, since `wrangler dev` gives
    every request the same `request.cf` country; without, a real redirect."""
    if country:
        at = int(time.time() * 1000)
        cid = signed_click_id(worker.secrets["IP_HASH_SALT"], link["id"], at)
        click = {"id": cid, "program_id": link["program_id"], "partner_id": link["partner_id"], "link_id": link["id"],
                 "at": at, "country": country, "referrer_host": None, "ip_hash": None, "ua_hash": None}
        assert ok(worker.post("/api/v1/_test/click-batch", {"clicks": [click]}))["inserted"] == 1
    else:
        cid = worker.click_id(link)
    customer = customer or uid("cus")
    r = ok(worker.post(LEAD, {"click_id": cid, "customer_external_id": customer}), 200)
    return customer, r


def sale(worker, customer, amount, **extra):
    body = {"customer_external_id": customer, "amount": amount, "currency": "USD", "invoice_id": uid("in")}
    body.update(extra)
    return ok(worker.post(SALE, body), 200)


def commission_amount(r):
    return r["commission"]["amount"] if r.get("commission") else None


def test_country_and_product_modifiers_pay_the_best_matching_terms(worker):
    p = worker.program(rewards=COUNTRY_AND_PRODUCT)
    pn = worker.partner(p)
    link = worker.link(pn, p)
    de, lead = lead_from(worker, link, "DE")
    assert commission_amount(lead) == 400  # the DE lead modifier
    us, lead = lead_from(worker, link, "US")
    assert commission_amount(lead) == 100  # no modifier matches: the base lead reward
    assert worker.rows("SELECT country FROM customers WHERE external_id = ?", de)[0]["country"] == "DE"

    assert commission_amount(sale(worker, us, 10_000)) == 2000  # base 20 %
    assert commission_amount(sale(worker, us, 10_000, product_id="prod_pro")) == 3000  # 30 %
    assert commission_amount(sale(worker, de, 10_000)) == 2500  # DE: flat 25.00
    # DE and Pro both match: the one paying the most wins.
    assert commission_amount(sale(worker, de, 10_000, product_id="prod_pro")) == 3000
    assert commission_amount(sale(worker, de, 5_000, product_id="prod_pro")) == 2500
    stored = worker.rows("SELECT product_id FROM events WHERE kind = 'sale' AND product_id IS NOT NULL AND customer_id IN "
                         "(SELECT id FROM customers WHERE program_id = ?)", p["id"])
    assert [r["product_id"] for r in stored] == ["prod_pro"] * 3


def test_customer_type_sale_amount_and_metadata_conditions(worker):
    rewards = {"sale": {"type": "percentage", "amount": 1000, "modifiers": [
        {"conditions": [{"field": "customer_type", "op": "eq", "value": "new"}], "type": "flat", "amount": 5000},
        {"conditions": [{"field": "sale_amount", "op": "gte", "value": 100_000},
                        {"field": "metadata.plan", "op": "contains", "value": "annual"}],
         "match": "all", "type": "percentage", "amount": 2000},
    ]}}
    p = worker.program(rewards=rewards)
    pn = worker.partner(p)
    customer, _ = lead_from(worker, worker.link(pn, p))
    assert commission_amount(sale(worker, customer, 10_000)) == 5000  # the first purchase
    assert commission_amount(sale(worker, customer, 10_000)) == 1000  # recurring: base 10 %
    assert commission_amount(sale(worker, customer, 200_000, metadata={"plan": "pro-monthly"})) == 20_000
    assert commission_amount(sale(worker, customer, 200_000, metadata={"plan": "pro-annual"})) == 40_000


def test_modifier_errors_name_their_path_and_write_nothing(worker):
    p = worker.program()
    cases = [
        ({"field": "plan", "op": "eq", "value": "x"}, "field"),
        ({"field": "country", "op": "gte", "value": "DE"}, "op"),
        ({"field": "country", "op": "like", "value": "DE"}, "op"),
        ({"field": "sale_amount", "op": "gte", "value": "100"}, "value"),
        ({"field": "country", "op": "in", "value": "DE"}, "value"),
        ({"field": "customer_type", "op": "eq", "value": "returning"}, "value"),
    ]
    good = {"conditions": [{"field": "country", "op": "eq", "value": "DE"}], "type": "flat", "amount": 1}
    for cond, part in cases:
        bad = {"conditions": [{"field": "country", "op": "eq", "value": "FR"}, cond], "type": "flat", "amount": 1}
        body = {"rewards": {"sale": {"type": "flat", "amount": 100, "modifiers": [good, good, bad]}}}
        r = worker.patch(f"/api/v1/programs/{p['id']}", body)
        assert_error(r, 422, "invalid_condition", f"rewards.sale.modifiers[2].conditions[1].{part}")
    too_many = {"sale": {"type": "flat", "amount": 1, "modifiers": [good] * 21}}
    assert_error(worker.patch(f"/api/v1/programs/{p['id']}", {"rewards": too_many}), 422, "invalid_reward",
                 "rewards.sale.modifiers")
    lead_pct = {"lead": {"type": "flat", "amount": 1, "modifiers": [{**good, "type": "percentage", "amount": 10}]}}
    assert_error(worker.patch(f"/api/v1/programs/{p['id']}", {"rewards": lead_pct}), 422, "invalid_reward",
                 "rewards.lead.modifiers[0].type")
    # the program is unchanged
    assert ok(worker.get(f"/api/v1/programs/{p['id']}"))["rewards"] == p["rewards"]


def test_groups_crud_and_terms_partner_over_group_over_program(worker):
    p = worker.program(min_payout=5000, hold_days=30)
    base = f"/api/v1/programs/{p['id']}/groups"
    gold = ok(worker.post(base, {"name": "Gold", "rewards": {"sale": {"type": "percentage", "amount": 3000}},
                                 "min_payout": 1000, "hold_days": 0}), 201)
    silver = ok(worker.post(base, {"name": "Silver"}), 201)
    assert (gold["min_payout"], gold["hold_days"], gold["partners"]) == (1000, 0, 0)
    assert_error(worker.post(base, {"name": "gold"}), 409, "group_exists")
    assert_error(worker.post(base, {"name": ""}), 422, "invalid_name", "name")
    assert_error(worker.post(base, {"name": "X", "hold_days": 400}), 422, "invalid_hold", "hold_days")
    listed = ok(worker.get(base))["data"]
    assert [g["name"] for g in listed] == ["Gold", "Silver"]

    in_gold = worker.partner(p, group_id=gold["id"])
    own = worker.partner(p, group_id=gold["id"], rewards={"sale": {"type": "flat", "amount": 777}}, min_payout=0)
    plain = worker.partner(p)
    assert in_gold["group_id"] == gold["id"] and own["min_payout"] == 0
    assert ok(worker.get(f"/api/v1/groups/{gold['id']}"))["partners"] == 2

    paid = {}
    for name, pn in (("gold", in_gold), ("own", own), ("plain", plain)):
        customer, _ = lead_from(worker, worker.link(pn, p))
        paid[name] = sale(worker, customer, 10_000)["commission"]
    assert {k: v["amount"] for k, v in paid.items()} == {"gold": 3000, "own": 777, "plain": 2000}

    # hold_days from the group: the cron approves the group's commissions at once, not the others
    worker.scheduled()
    status = {k: ok(worker.get(f"/api/v1/commissions?partner_id={pn['id']}"))["data"]
              for k, pn in (("gold", in_gold), ("plain", plain))}
    assert {c["status"] for c in status["gold"]} == {"approved"}
    assert {c["status"] for c in status["plain"]} == {"pending"}

    # PATCH: move, clear, and the 422 for a group of another program
    other = worker.program()
    foreign = ok(worker.post(f"/api/v1/programs/{other['id']}/groups", {"name": "Gold"}), 201)
    assert_error(worker.patch(f"/api/v1/partners/{plain['id']}", {"group_id": foreign["id"]}), 422, "invalid_group",
                 "group_id")
    assert_error(worker.patch(f"/api/v1/partners/{plain['id']}", {"group_id": "nope"}), 422, "invalid_group",
                 "group_id")
    moved = ok(worker.patch(f"/api/v1/partners/{plain['id']}", {"group_id": silver["id"], "min_payout": 2500}))
    assert (moved["group_id"], moved["min_payout"]) == (silver["id"], 2500)
    g = ok(worker.patch(f"/api/v1/groups/{silver['id']}", {"name": "Silver+", "min_payout": 100}))
    assert (g["name"], g["min_payout"], g["hold_days"]) == ("Silver+", 100, None)
    assert ok(worker.patch(f"/api/v1/groups/{silver['id']}", {"min_payout": None}))["min_payout"] is None

    # a group with partners cannot be deleted; an empty one can
    assert_error(worker.delete(f"/api/v1/groups/{silver['id']}"), 409, "group_in_use")
    ok(worker.patch(f"/api/v1/partners/{plain['id']}", {"group_id": None}))
    assert ok(worker.delete(f"/api/v1/groups/{silver['id']}")) == {"id": silver["id"], "deleted": True}
    assert_error(worker.get(f"/api/v1/groups/{silver['id']}"), 404, "not_found")


def test_a_program_bound_key_sees_no_group_of_another_program(worker):
    a, b = worker.program(), worker.program()
    ga = ok(worker.post(f"/api/v1/programs/{a['id']}/groups", {"name": "A"}), 201)
    key_b = ok(worker.post("/api/v1/api-keys", {"name": "b", "program_id": b["id"], "permissions": ["read", "write"]}), 201)
    secret = key_b["key"]
    assert_error(worker.get(f"/api/v1/groups/{ga['id']}", key=secret), 404, "not_found")
    assert_error(worker.patch(f"/api/v1/groups/{ga['id']}", {"name": "x"}, key=secret), 404, "not_found")
    assert_error(worker.delete(f"/api/v1/groups/{ga['id']}", key=secret), 404, "not_found")
    assert_error(worker.get(f"/api/v1/programs/{a['id']}/groups", key=secret), 404, "not_found")


def test_amount_cap_pays_the_remainder_then_cap_reached(worker):
    rewards = {"sale": {"type": "flat", "amount": 3000, "max_amount_per_customer": 10_000}}
    p = worker.program(rewards=rewards)
    pn = worker.partner(p)
    customer, _ = lead_from(worker, worker.link(pn, p))
    got = [sale(worker, customer, 1000) for _ in range(5)]
    assert [commission_amount(r) for r in got] == [3000, 3000, 3000, 1000, None]
    assert got[4]["reason"] == "cap_reached"
    stored = worker.rows("SELECT SUM(amount) AS s FROM commissions WHERE partner_id = ?", pn["id"])[0]["s"]
    assert stored == 10_000
    # the rollups agree with the rows
    pending = worker.rows("SELECT SUM(pending) AS s FROM daily_stats WHERE partner_id = ?", pn["id"])[0]["s"]
    assert pending == 10_000


def test_sales_cap_and_concurrent_sales_never_pass_the_cap(worker):
    rewards = {"sale": {"type": "flat", "amount": 1000, "max_sales_per_customer": 2, "max_amount_per_customer": 2500}}
    p = worker.program(rewards=rewards)
    pn = worker.partner(p)
    customer, _ = lead_from(worker, worker.link(pn, p))
    with ThreadPoolExecutor(8) as ex:
        results = list(ex.map(lambda _: sale(worker, customer, 1000), range(8)))
    amounts = sorted(commission_amount(r) or 0 for r in results)
    assert sum(amounts) <= 2500 and len([a for a in amounts if a]) <= 2, amounts
    assert sum(amounts) == 2000, amounts  # two sales of 10.00 fill the sales cap first
    reasons = {r["reason"] for r in results if not r.get("commission")}
    assert reasons == {"cap_reached"}, results
    total = worker.rows("SELECT COALESCE(SUM(amount), 0) AS s, COUNT(*) AS n FROM commissions WHERE partner_id = ?",
                        pn["id"])[0]
    assert (total["s"], total["n"]) == (2000, 2)


def test_cap_validation(worker):
    p = worker.program()
    for reward, field in [
        ({"sale": {"type": "flat", "amount": 1, "max_amount_per_customer": 0}}, "rewards.sale.max_amount_per_customer"),
        ({"sale": {"type": "flat", "amount": 1, "max_sales_per_customer": 0}}, "rewards.sale.max_sales_per_customer"),
        ({"lead": {"type": "flat", "amount": 1, "max_sales_per_customer": 1}}, "rewards.lead.max_sales_per_customer"),
    ]:
        assert_error(worker.patch(f"/api/v1/programs/{p['id']}", {"rewards": reward}), 422, "invalid_reward", field)


def test_manual_commission_is_paid_with_the_next_payout(worker):
    p = worker.program(min_payout=0, hold_days=0)
    pn = worker.partner(p)
    body = {"partner_id": pn["id"], "amount": 15_000, "description": "Launch bonus", "status": "approved"}
    key = str(uuid.uuid4())
    r = worker.post("/api/v1/commissions", body, headers={"Idempotency-Key": key})
    bonus = ok(r, 201)
    assert (bonus["kind"], bonus["amount"], bonus["currency"], bonus["status"], bonus["description"]) == \
        ("bonus", 15_000, "usd", "approved", "Launch bonus")
    assert bonus["approved_at"] and bonus["event_id"] is None
    again = ok(worker.post("/api/v1/commissions", body, headers={"Idempotency-Key": key}), 200)
    assert again["id"] == bonus["id"]
    assert worker.count("SELECT COUNT(*) FROM commissions WHERE partner_id = ?", pn["id"]) == 1
    pending = ok(worker.post("/api/v1/commissions", {"partner_id": pn["id"], "amount": 500, "description": "x"}), 201)
    assert (pending["status"], pending["currency"]) == ("pending", "usd")
    listed = ok(worker.get(f"/api/v1/commissions?partner_id={pn['id']}"))["data"]
    assert {c["kind"] for c in listed} == {"bonus"}
    # the rollups count it for the partner
    row = worker.rows("SELECT SUM(approved) AS a, SUM(pending) AS p FROM daily_stats WHERE partner_id = ?", pn["id"])[0]
    assert (row["a"], row["p"]) == (15_000, 500)


def test_manual_commission_errors_write_nothing(worker):
    p = worker.program()
    pn = worker.partner(p)
    before = worker.count("SELECT COUNT(*) FROM commissions")
    good = {"partner_id": pn["id"], "amount": 100, "description": "ok"}
    for patch, status, code, field in [
        ({"amount": 0}, 422, "invalid_amount", "amount"),
        ({"amount": -5}, 422, "invalid_amount", "amount"),
        ({"currency": "eur"}, 422, "invalid_currency", "currency"),
        ({"description": " "}, 422, "invalid_description", "description"),
        ({"status": "paid"}, 422, "invalid_status", "status"),
        ({"partner_id": "pn_doesnotexist"}, 422, "invalid_partner", "partner_id"),
        ({"partner_id": "nope"}, 422, "invalid_partner", "partner_id"),
    ]:
        assert_error(worker.post("/api/v1/commissions", {**good, **patch}), status, code, field)
    assert_error(worker.post("/api/v1/commissions", {**good, "extra": 1}), 400, "invalid_request")
    ok(worker.patch(f"/api/v1/partners/{pn['id']}", {"status": "banned"}))
    assert_error(worker.post("/api/v1/commissions", good), 409, "partner_banned")
    assert worker.count("SELECT COUNT(*) FROM commissions") == before


def test_min_payout_partner_over_group_over_program_and_bonuses_are_paid(worker, stripe):
    """The program's minimum is 100.00; a group lowers it to 10.00 and one partner of the group
    raises its own to 1,000.00. Each has an approved 20.00 bonus: the cron pays the group's
    partner (through the Stripe fake: one transfer) and holds the other."""
    p = worker.program(min_payout=10_000, hold_days=0, payout_schedule={"every": "day"})
    g = ok(worker.post(f"/api/v1/programs/{p['id']}/groups", {"name": "Low", "min_payout": 1000}), 201)
    low = worker.partner(p, group_id=g["id"])
    high = worker.partner(p, group_id=g["id"], min_payout=100_000)
    accounts = {}
    for pn in (low, high):
        ok(worker.post("/api/v1/commissions", {"partner_id": pn["id"], "amount": 2000, "description": "Launch bonus",
                                               "status": "approved"}), 201)
        accounts[pn["id"]] = enable_payouts(worker, stripe, pn)
    cron(worker)
    worker.payouts_settled()
    paid = ok(worker.get(f"/api/v1/payouts?partner_id={low['id']}"))["data"]
    assert [(x["status"], x["amount"], x["commission_count"]) for x in paid] == [("paid", 2000, 1)]
    assert [t["amount"] for t in transfers_to(stripe, accounts[low["id"]])] == [2000]
    assert ok(worker.get(f"/api/v1/payouts?partner_id={high['id']}"))["data"] == []
    assert transfers_to(stripe, accounts[high["id"]]) == []


def test_portal_shows_the_partners_effective_terms(worker):
    p = worker.program(rewards=COUNTRY_AND_PRODUCT, min_payout=5000, hold_days=30)
    g = ok(worker.post(f"/api/v1/programs/{p['id']}/groups", {"name": "Fast", "hold_days": 0, "min_payout": 1000}), 201)
    pn = worker.partner(p, group_id=g["id"])
    token = ok(worker.post("/api/v1/embed-tokens", {"program_id": p["id"], "partner_id": pn["id"]}), 201)["token"]
    me = ok(worker.get("/api/v1/portal/me", key=token))
    terms = me["program"]["terms"]
    assert "30% of every sale for the lifetime of the customer on prod_pro" in terms, terms
    assert "25.00 USD per sale" in terms and "for customers in DE or AT" in terms, terms
    assert "20% of every sale for the lifetime of the customer otherwise" in terms, terms
    assert "approved right away" in terms and "reaches 10.00 USD" in terms, terms
    assert me["program"]["min_payout"] == 1000
