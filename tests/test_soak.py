"""The money soak (issue 12), short and seeded for `make test`; `make soak` runs the long one
(`python tests/soak/soak.py --seed N --ops 10000 --faults 500`).

The short run starts its own `wrangler dev` (PAYOUT_RECONCILE_AFTER_SECONDS=0, a short payout
pause) and its own Stripe fake, so nothing it injects reaches the other suites. The checker is
tested on synthetic states too, so a run that reports 0 violations cannot be vacuous."""

import copy
import json
import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "soak"))

from invariants import INVARIANTS, check  # noqa: E402

SEED = int(os.environ.get("REFPORT_SOAK_SEED", "1"))
OPS = int(os.environ.get("REFPORT_SOAK_OPS", "400"))
FAULTS = int(os.environ.get("REFPORT_SOAK_FAULTS", "25"))
# e.g. "reversal_full,reversal_partial" while a known violation is being fixed
EXCLUDE = [f for f in os.environ.get("REFPORT_SOAK_EXCLUDE_FAULTS", "").split(",") if f]


# ----------------------------------------------------------------------------------------------
# the checker on synthetic states
# ----------------------------------------------------------------------------------------------

def cm(id, partner="pn_1", kind="sale", status="paid", amount=1000, payout="po_1", currency="usd", **kw):
    row = {"id": id, "program_id": "prog_1", "partner_id": partner, "kind": kind, "status": status, "amount": amount,
           "original_amount": amount, "sale_amount": 0, "refunded_amount": 0, "clawed_back": 0,
           "currency": currency, "payout_id": payout, "parent_id": None, "reason": None}
    row.update(kw)
    return row


def clean_state():
    """Partner pn_1 (acct_1): a sale of 10000 (commission 2000) and a lead (500) paid in po_1
    (2500, tr_1); the sale then half refunded: a clawback of -1000 paid in po_2 with a new lead
    of 1500 (500, tr_2). Partner pn_2 (acct_2): 700 approved but below the 1000 minimum."""
    return {
        "programs": [{"id": "prog_1", "payout_currency": "usd", "min_payout": 1000}],
        "partners": [
            {"id": "pn_1", "program_id": "prog_1", "status": "active", "stripe_account_id": "acct_1", "payouts_enabled": 1},
            {"id": "pn_2", "program_id": "prog_1", "status": "active", "stripe_account_id": "acct_2", "payouts_enabled": 1},
        ],
        "payouts": [
            {"id": "po_1", "program_id": "prog_1", "partner_id": "pn_1", "amount": 2500, "currency": "usd",
             "status": "paid", "stripe_transfer_id": "tr_1", "reversed_amount": 0, "commission_count": 2},
            {"id": "po_2", "program_id": "prog_1", "partner_id": "pn_1", "amount": 500, "currency": "usd",
             "status": "paid", "stripe_transfer_id": "tr_2", "reversed_amount": 0, "commission_count": 2},
        ],
        "commissions": [
            cm("cm_1", amount=2000, sale_amount=10000, refunded_amount=5000, clawed_back=1000),
            cm("cm_2", kind="lead", amount=500),
            cm("cm_3", kind="clawback", amount=-1000, payout="po_2", parent_id="cm_1", reason="refund"),
            cm("cm_4", kind="lead", amount=1500, payout="po_2"),
            cm("cm_5", partner="pn_2", kind="lead", status="approved", amount=700, payout=None),
        ],
        "transfers": [
            {"id": "tr_1", "amount": 2500, "amount_reversed": 0, "currency": "usd", "destination": "acct_1",
             "transfer_group": "po_1", "metadata": {"payout_id": "po_1"}},
            {"id": "tr_2", "amount": 500, "amount_reversed": 0, "currency": "usd", "destination": "acct_1",
             "transfer_group": "po_2", "metadata": {"payout_id": "po_2"}},
        ],
        "accounts": {a: {"id": a, "payouts_enabled": True, "capabilities": {"transfers": "active"}}
                     for a in ("acct_1", "acct_2")},
        "deauthorized": [],
        "pause": None,
    }


def kinds(violations):
    return {(v["invariant"], v["kind"]) for v in violations}


def test_checker_passes_a_clean_state():
    assert check(clean_state(), {"cm_1": {"po_1"}, "cm_3": {"po_2"}}) == []


def test_checker_accepts_a_recorded_reversal():
    s = clean_state()
    s["transfers"][0]["amount_reversed"] = 300
    s["payouts"][0]["reversed_amount"] = 300
    s["commissions"].append(cm("cm_r", kind="clawback", amount=-300, payout="po_1", parent_id="cm_1",
                               reason="transfer_reversed"))
    assert check(s) == []


def test_checker_catches_a_double_paid_transfer():
    s = clean_state()
    # a second transfer for po_1 (a resend under a fresh key after a lost answer): paid twice
    s["transfers"].append(dict(s["transfers"][0], id="tr_dup"))
    got = kinds(check(s))
    assert ("transfer_payout_link", "transfer_without_payout") in got
    assert ("transfer_payout_link", "payout_with_several_transfers") in got
    assert ("net_transferred_equals_net_paid", "net_mismatch") in got
    v = next(v for v in check(s) if v["kind"] == "net_mismatch")
    assert (v["partner_id"], v["currency"], v["transferred_net"], v["paid_net"]) == ("pn_1", "usd", 5500, 3000)


def test_checker_catches_an_unrecorded_reversal():
    s = clean_state()
    s["transfers"][1]["amount_reversed"] = 500  # Stripe reversed tr_2; D1 still says paid
    got = kinds(check(s))
    assert ("net_transferred_equals_net_paid", "net_mismatch") in got
    assert ("transfer_payout_link", "transfer_of_unpaid_payout") not in got


def test_checker_catches_a_commission_in_two_payouts():
    s = clean_state()
    got = kinds(check(s, {"cm_2": {"po_1", "po_2"}}))
    assert ("commission_in_one_payout", "commission_seen_in_two_transferred_payouts") in got
    s = clean_state()
    s["commissions"][1]["payout_id"] = "po_2"  # moved out of the paid po_1
    assert ("commission_in_one_payout", "payout_commissions_changed_after_claim") in kinds(check(s))


def test_checker_catches_a_missing_clawback():
    s = clean_state()
    s["commissions"] = [c for c in s["commissions"] if c["id"] != "cm_3"]
    s["payouts"][1].update(amount=1500, commission_count=1)
    s["transfers"][1]["amount"] = 1500
    got = kinds(check(s))
    assert ("refunded_paid_sale_clawback", "missing_or_wrong_clawback") in got
    assert ("refund_nets_sale", "refunded_sale_nets_wrong") in got


def test_checker_catches_an_unpaid_payable_balance():
    s = clean_state()
    s["commissions"][4]["amount"] = 1000  # pn_2 reaches the minimum, nothing paid
    got = check(s)
    assert kinds(got) == {("payable_balance_paid", "payable_balance_unpaid")}
    # not payable: banned, below the minimum, or an account Stripe cannot pay
    for change in (lambda s: s["partners"][1].update(status="banned"),
                   lambda s: s["commissions"][4].update(amount=999),
                   lambda s: s["accounts"]["acct_2"]["capabilities"].update(transfers="inactive")):
        t = copy.deepcopy(s)
        change(t)
        assert check(t) == []
    # a balance left in an earlier payout currency is payable from 1 unit
    t = copy.deepcopy(s)
    t["commissions"][4].update(amount=1, currency="eur")
    assert kinds(check(t)) == {("payable_balance_paid", "payable_balance_unpaid")}
    t = copy.deepcopy(s)
    t["payouts"][1]["status"] = "processing"
    assert ("payable_balance_paid", "payout_left_processing") in kinds(check(t))


def test_checker_catches_a_transfer_in_another_currency():
    s = clean_state()
    s["commissions"][3]["currency"] = "eur"
    got = kinds(check(s))
    assert ("transfer_currency", "currency_mismatch") in got


def test_checker_catches_a_refund_netted_twice():
    # refunded while claimed (clawback made), then the payout failed and a second refund also
    # lowered the now-unclaimed commission: the refund is taken twice
    s = clean_state()
    s["commissions"].append(cm("cm_9", status="approved", payout=None, amount=500, original_amount=2000,
                               sale_amount=10000, refunded_amount=7500, clawed_back=1000))
    s["commissions"].append(cm("cm_10", kind="clawback", status="approved", payout=None, amount=-1000,
                               parent_id="cm_9", reason="refund"))
    got = check(s)
    assert kinds(got) == {("refund_nets_sale", "refunded_sale_nets_wrong")}
    assert (got[0]["expected_net"], got[0]["actual_net"]) == (500, -500)


def test_checker_catches_a_rollup_that_differs_from_its_rows():
    s = clean_state()
    key = ("prog_1", "pn_1", "ln_1", 20_000, "usd")
    s["rollup_mismatches"] = [(key, (0, 0, 1, 5000, 0, 500, 0, 0), (0, 0, 1, 5000, 0, 1000, 0, 0)),
                              (key[:4] + ("eur",), (0, 0, 1, 900, 90, 0, 0, 0), None)]
    got = check(s)
    assert kinds(got) == {("rollups_match_raw", "rollup_row_differs"), ("rollups_match_raw", "rollup_row_missing")}
    assert got[0]["key"] == list(key) and got[0]["in_daily_stats"][5] == 1000


def test_every_invariant_has_a_planted_case():
    planted = set()
    s = clean_state()
    s["transfers"].append(dict(s["transfers"][0], id="tr_dup"))  # transfer link, net
    planted |= {v["invariant"] for v in check(s, {"cm_2": {"po_1", "po_2"}})}  # two payouts
    s = clean_state()
    by_id = {c["id"]: c for c in s["commissions"]}
    s["commissions"].remove(by_id["cm_3"])  # missing clawback, refund nets wrong
    by_id["cm_4"]["currency"] = "eur"  # transfer currency
    by_id["cm_5"]["amount"] = 5000  # payable balance
    planted |= {v["invariant"] for v in check(s)}
    s = clean_state()
    s["rollup_mismatches"] = [(("prog_1", "pn_1", "ln_1", 1, ""), (3, 0, 0, 0, 0, 0, 0, 0), (2, 0, 0, 0, 0, 0, 0, 0))]
    planted |= {v["invariant"] for v in check(s)}
    assert planted == set(INVARIANTS), set(INVARIANTS) - planted


# ----------------------------------------------------------------------------------------------
# the short soak
# ----------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def soak_env():
    from soak import Env
    env = Env()
    yield env
    env.close()


def test_short_soak_has_no_violations(soak_env):
    from soak import soak
    out = soak(SEED, OPS, FAULTS, progress=False, timeout_faults=False, env=soak_env, exclude_faults=EXCLUDE)
    brief = {k: out[k] for k in ("seed", "replay", "operations", "faults", "faults_by_type", "anomalies", "totals",
                                 "quiescence", "seconds", "violations_by_kind")}
    print(json.dumps(brief, indent=2))
    assert out["operations"] >= OPS and out["faults"] == FAULTS, brief
    assert out["totals"]["payouts_by_status"].get("paid", 0) > 0, brief  # money did move
    shown = [{k: v for k, v in x.items() if k not in ("ops_of_partner", "stripe_requests")} for x in out["violations"][:5]]
    assert out["violation_count"] == 0, (
        f"{out['violation_count']} violations {out['violations_by_kind']}; replay: {out['replay']}\n"
        + json.dumps(shown, indent=1, default=str))
