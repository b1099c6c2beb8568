"""The money invariants the soak checks once Stripe is healthy again and the cron is quiescent.

Pure functions over plain data (rows of the local D1 and the Stripe fake's objects), so a unit
test can feed them a synthetic state with a planted violation (tests/test_soak.py).

Definitions, from schema.sql:

- A *transfer* is a Stripe transfer in the fake (`/_control/state` transfers). Its *net* is
  `amount - amount_reversed`. It belongs to a payout when `payouts.stripe_transfer_id` names it.
- A *paid commission* is a `commissions` row with `status = 'paid'` (a `paid` row always has a
  `payout_id`: CHECK in schema.sql), of any kind: `lead` and `sale` rows are positive, `clawback`
  rows negative.
- An *applied clawback* is a `kind = 'clawback'` row with `status = 'paid'`: it was netted inside
  a payout. That covers both the clawback of a refund (`reason = 'refund'`, approved when created
  and netted from the next payout) and the record of a Stripe transfer reversal (`reason =
  'transfer_reversed'`, created paid inside the reversed payout). An approved clawback not yet
  claimed by a payout is *not* applied.
- So "paid commissions net of applied clawbacks" per (partner, currency) is the plain sum of
  `amount` over `status = 'paid'` rows, and "transferred net of reversals" the sum of the nets of
  the transfers to the partner's Connect account in that currency. They must be equal.
- A *payable balance* is a (program, partner, currency) group of `approved` commissions with no
  `payout_id`, whose sum reaches the threshold (the program's `min_payout` in its current payout
  currency, 1 in an earlier payout currency, and always >= 1), of a partner whose status is
  `active` and whose Connect account can receive transfers *at Stripe* (payouts enabled,
  `transfers` capability active, not deauthorized). After quiescence none may be left.
- The clawback a refunded paid sale is owed: with `target = round_half_even(original_amount *
  (sale_amount - refunded_amount) / sale_amount)` (core/src/commission.rs `plan_refund`), the
  sale's `clawed_back` must be `max(0, amount - target)`, and its `clawback` children with
  reason `refund` (not rejected) must sum to `-clawed_back`.

Every violation is a dict {"invariant", "kind", ...details}. `INVARIANTS` lists the names.
"""

from collections import defaultdict

INVARIANTS = {
    "transfer_payout_link": "every transfer belongs to exactly one payout; every payout to at most one transfer",
    "net_transferred_equals_net_paid": "per partner and currency, transferred net of reversals = paid commissions net of applied clawbacks",
    "commission_in_one_payout": "no commission in two payouts",
    "refunded_paid_sale_clawback": "every refunded paid sale has its clawback",
    "payable_balance_paid": "every payable balance is paid",
    "transfer_currency": "no transfer currency differs from its commissions'",
    # Not in issue 12's list; reported the same way because it is money too.
    "refund_nets_sale": "(extra) a refunded sale nets to its pro rata commission: amount - clawbacks",
    # Issue 13: stats read the daily rollups only, so they are money's report card.
    "rollups_match_raw": "(extra) daily rollups equal the sums recomputed from raw clicks, events and commissions",
}


def round_half_even_div(num, den):
    """round_half_even(num / den) for integers, den > 0 (core/src/money.rs mul_div_half_even)."""
    q, r = divmod(num, den)
    if 2 * r > den or (2 * r == den and q % 2 == 1):
        q += 1
    return q


def refund_target(c):
    sale = max(int(c["sale_amount"] or 0), 0)
    if sale == 0:
        return 0
    remaining = max(sale - int(c["refunded_amount"] or 0), 0)
    return round_half_even_div(max(int(c["original_amount"]), 0) * remaining, sale)


def account_can_receive(acct, deauthorized=()):
    if not acct or acct.get("id") in deauthorized:
        return False
    caps = acct.get("capabilities") or {}
    return bool(acct.get("payouts_enabled")) and caps.get("transfers") == "active"


def _v(invariant, kind, **details):
    return {"invariant": invariant, "kind": kind, **details}


def check(state, history=None):
    """All violations in `state`:

    state = {"payouts": [row], "commissions": [row], "partners": [row], "programs": [row],
             "transfers": [fake transfer], "accounts": {acct_id: fake account},
             "deauthorized": [acct_id], "pause": row or None,
             "rollup_mismatches": [(key, from raw rows, kept in daily_stats)] (optional)}
    history = {commission_id: set(payout ids the commission was seen in during the run)}
    """
    out = []
    payouts = state["payouts"]
    commissions = state["commissions"]
    partners = {p["id"]: p for p in state["partners"]}
    programs = {p["id"]: p for p in state["programs"]}
    transfers = state["transfers"]
    accounts = state.get("accounts") or {}
    deauthorized = set(state.get("deauthorized") or ())

    po_by_id = {p["id"]: p for p in payouts}
    po_by_tr = {}
    for p in payouts:
        if p.get("stripe_transfer_id"):
            po_by_tr.setdefault(p["stripe_transfer_id"], []).append(p)
    tr_by_id = {t["id"]: t for t in transfers}
    tr_by_payout = defaultdict(list)  # by the transfer's own claim (metadata / transfer_group)
    for t in transfers:
        claimed = {(t.get("metadata") or {}).get("payout_id"), t.get("transfer_group")} - {None, ""}
        for pid in claimed:
            tr_by_payout[pid].append(t)
    cms_of_payout = defaultdict(list)
    for c in commissions:
        if c.get("payout_id"):
            cms_of_payout[c["payout_id"]].append(c)
    partner_of_acct = {p["stripe_account_id"]: p["id"] for p in state["partners"] if p.get("stripe_account_id")}

    def tnet(t):
        return int(t["amount"]) - int(t.get("amount_reversed") or 0)

    def tbrief(t):
        return {"id": t["id"], "amount": t["amount"], "amount_reversed": t.get("amount_reversed", 0),
                "currency": t["currency"], "destination": t.get("destination"),
                "payout_id": (t.get("metadata") or {}).get("payout_id"), "transfer_group": t.get("transfer_group"),
                **({"created_by": t["created_by"]} if t.get("created_by") else {})}

    def pbrief(p):
        return {k: p.get(k) for k in ("id", "partner_id", "amount", "currency", "status", "stripe_transfer_id",
                                      "reversed_amount", "commission_count", "failure_message")}

    # 1. every transfer belongs to exactly one payout; every payout to at most one transfer -----
    inv = "transfer_payout_link"
    for t in transfers:
        owners = po_by_tr.get(t["id"], [])
        if len(owners) != 1:
            meta_po = po_by_id.get((t.get("metadata") or {}).get("payout_id"))
            out.append(_v(inv, "transfer_without_payout" if not owners else "transfer_in_several_payouts",
                          transfer=tbrief(t), payouts=[pbrief(p) for p in owners],
                          payout_named_by_transfer=pbrief(meta_po) if meta_po else None))
            continue
        po = owners[0]
        if (t.get("metadata") or {}).get("payout_id") not in (None, po["id"]) or t.get("transfer_group") not in (None, "", po["id"]):
            out.append(_v(inv, "transfer_recorded_on_another_payout", transfer=tbrief(t), payout=pbrief(po)))
        if int(t["amount"]) != int(po["amount"]):
            out.append(_v(inv, "transfer_amount_differs_from_payout", transfer=tbrief(t), payout=pbrief(po)))
        pn = partners.get(po["partner_id"]) or {}
        if t.get("destination") != pn.get("stripe_account_id"):
            out.append(_v(inv, "transfer_destination_not_the_partner", transfer=tbrief(t), payout=pbrief(po),
                          partner_account=pn.get("stripe_account_id")))
        if po["status"] != "paid" and tnet(t) > 0:
            out.append(_v(inv, "transfer_of_unpaid_payout", transfer=tbrief(t), payout=pbrief(po)))
    for p in payouts:
        own = {t["id"]: t for t in tr_by_payout.get(p["id"], [])}
        if p.get("stripe_transfer_id") and p["stripe_transfer_id"] in tr_by_id:
            own[p["stripe_transfer_id"]] = tr_by_id[p["stripe_transfer_id"]]
        if len(own) > 1:
            out.append(_v(inv, "payout_with_several_transfers", payout=pbrief(p),
                          transfers=[tbrief(t) for t in own.values()]))
        if p["status"] == "paid":
            if not p.get("stripe_transfer_id"):
                out.append(_v(inv, "paid_payout_without_transfer", payout=pbrief(p)))
            elif p["stripe_transfer_id"] not in tr_by_id:
                out.append(_v(inv, "paid_payout_names_unknown_transfer", payout=pbrief(p)))

    # 2. per partner and currency: transferred net of reversals = paid net of applied clawbacks ---
    inv = "net_transferred_equals_net_paid"
    transferred = defaultdict(int)
    tr_of = defaultdict(list)
    for t in transfers:
        pid = partner_of_acct.get(t.get("destination"))
        if pid is None:
            out.append(_v(inv, "transfer_to_unknown_account", transfer=tbrief(t)))
            continue
        key = (pid, t["currency"])
        transferred[key] += tnet(t)
        tr_of[key].append(tbrief(t))
    paid = defaultdict(int)
    paid_parts = defaultdict(lambda: defaultdict(int))
    for c in commissions:
        if c["status"] == "paid":
            key = (c["partner_id"], c["currency"])
            paid[key] += int(c["amount"])
            label = c["kind"] if c["kind"] != "clawback" else f"clawback:{c.get('reason')}"
            paid_parts[key][label] += int(c["amount"])
    for key in sorted(set(transferred) | set(paid)):
        if transferred[key] != paid[key]:
            pid, cur = key
            out.append(_v(inv, "net_mismatch", partner_id=pid, currency=cur,
                          transferred_net=transferred[key], paid_net=paid[key],
                          difference=transferred[key] - paid[key], paid_by_kind=dict(paid_parts[key]),
                          transfers=tr_of[key],
                          payouts=[pbrief(p) for p in payouts if p["partner_id"] == pid and p["currency"] == cur]))

    # 3. no commission in two payouts ------------------------------------------------------------
    inv = "commission_in_one_payout"
    for cid, seen in sorted((history or {}).items()):
        transferred_in = sorted(p for p in seen if tr_by_payout.get(p) or (po_by_id.get(p) or {}).get("stripe_transfer_id"))
        if len(transferred_in) > 1:
            out.append(_v(inv, "commission_seen_in_two_transferred_payouts", commission_id=cid,
                          payouts=[pbrief(po_by_id[p]) if p in po_by_id else {"id": p} for p in transferred_in]))
    for p in payouts:
        if p["status"] not in ("paid", "processing"):
            continue
        own = [c for c in cms_of_payout.get(p["id"], [])
               if not (c["kind"] == "clawback" and c.get("reason") == "transfer_reversed")]
        total = sum(int(c["amount"]) for c in own)
        if total != int(p["amount"]) or len(own) != int(p.get("commission_count") or 0):
            out.append(_v(inv, "payout_commissions_changed_after_claim", payout=pbrief(p),
                          commissions_sum=total, commissions_count=len(own),
                          commissions=[{k: c.get(k) for k in ("id", "kind", "status", "amount")} for c in own]))

    # 4. every refunded paid sale has its clawback ---------------------------------------------
    inv = "refunded_paid_sale_clawback"
    children = defaultdict(list)
    for c in commissions:
        if c["kind"] == "clawback" and c.get("parent_id"):
            children[c["parent_id"]].append(c)
    for c in commissions:
        if c["kind"] != "sale" or c["status"] != "paid" or int(c.get("refunded_amount") or 0) <= 0:
            continue
        target = refund_target(c)
        expected = max(0, max(int(c["amount"]), 0) - target)
        refund_claws = [x for x in children[c["id"]] if x.get("reason") == "refund" and x["status"] != "rejected"]
        claw_sum = -sum(int(x["amount"]) for x in refund_claws)
        if int(c["clawed_back"]) != expected or claw_sum != int(c["clawed_back"]):
            out.append(_v(inv, "missing_or_wrong_clawback", commission_id=c["id"], partner_id=c["partner_id"],
                          sale_amount=c["sale_amount"], refunded_amount=c["refunded_amount"],
                          original_amount=c["original_amount"], amount=c["amount"], target=target,
                          expected_clawed_back=expected, clawed_back=c["clawed_back"], clawback_rows_sum=claw_sum,
                          clawbacks=[{k: x.get(k) for k in ("id", "amount", "status", "payout_id")} for x in children[c["id"]]]))

    # 5. every payable balance is paid -----------------------------------------------------------
    inv = "payable_balance_paid"
    for p in payouts:
        if p["status"] == "processing":
            out.append(_v(inv, "payout_left_processing", payout=pbrief(p), pause=state.get("pause")))
        if p["status"] == "failed":
            stuck = [c["id"] for c in cms_of_payout.get(p["id"], []) if c["status"] == "approved"]
            if stuck:
                out.append(_v(inv, "approved_commissions_held_by_failed_payout", payout=pbrief(p), commissions=stuck))
    groups = defaultdict(lambda: [0, 0])
    for c in commissions:
        if c["status"] == "approved" and not c.get("payout_id"):
            g = groups[(c["program_id"], c["partner_id"], c["currency"])]
            g[0] += int(c["amount"])
            g[1] += 1
    for (prog_id, pid, cur), (net, n) in sorted(groups.items()):
        prog = programs.get(prog_id) or {}
        pn = partners.get(pid) or {}
        threshold = int(prog.get("min_payout") or 0) if cur == prog.get("payout_currency") else 1
        threshold = max(1, threshold)
        acct = accounts.get(pn.get("stripe_account_id") or "")
        if net >= threshold and pn.get("status") == "active" and account_can_receive(acct, deauthorized):
            out.append(_v(inv, "payable_balance_unpaid", program_id=prog_id, partner_id=pid, currency=cur,
                          net=net, commissions=n, threshold=threshold,
                          d1_payouts_enabled=pn.get("payouts_enabled"),
                          d1_payouts_disabled_reason=pn.get("payouts_disabled_reason"),
                          stripe_account=pn.get("stripe_account_id"), pause=state.get("pause")))

    # 6. no transfer currency differs from its commissions' --------------------------------------
    inv = "transfer_currency"
    for t in transfers:
        pos = list(po_by_tr.get(t["id"], []))
        meta = po_by_id.get((t.get("metadata") or {}).get("payout_id"))
        if meta and meta not in pos:
            pos.append(meta)
        for po in pos:
            bad = [c["id"] for c in cms_of_payout.get(po["id"], []) if c["currency"] != t["currency"]]
            if po["currency"] != t["currency"] or bad:
                out.append(_v(inv, "currency_mismatch", transfer=tbrief(t), payout=pbrief(po),
                              commissions_in_other_currency=bad))

    # 7. (extra) a refunded sale nets to its pro rata commission ---------------------------------
    inv = "refund_nets_sale"
    for c in commissions:
        if c["kind"] != "sale" or int(c.get("refunded_amount") or 0) <= 0:
            continue
        if c["status"] == "rejected" and c.get("reason") != "refund":
            continue  # rejected by an operator or a ban: what it nets to is the operator's call
        target = refund_target(c)
        if c["status"] == "rejected":
            expected, actual_base = 0, 0
        else:
            expected, actual_base = min(target, max(int(c["amount"]), 0)), int(c["amount"])
        claws = -sum(int(x["amount"]) for x in children[c["id"]]
                     if x.get("reason") == "refund" and x["status"] != "rejected")
        actual = actual_base - claws
        if actual != expected:
            out.append(_v(inv, "refunded_sale_nets_wrong", commission_id=c["id"], partner_id=c["partner_id"],
                          status=c["status"], sale_amount=c["sale_amount"], refunded_amount=c["refunded_amount"],
                          original_amount=c["original_amount"], amount=c["amount"], clawed_back=c["clawed_back"],
                          clawbacks=[{k: x.get(k) for k in ("id", "amount", "status", "payout_id")} for x in children[c["id"]]],
                          expected_net=expected, actual_net=actual))

    # 8. (extra) daily rollups equal the raw rows ------------------------------------------------
    # key = (program, partner, link, day, currency); values = (clicks, leads, sales, sale amount,
    # pending, approved, paid, rejected), as apihelpers.rollup_mismatches answers them.
    for key, raw, kept in state.get("rollup_mismatches") or ():
        out.append(_v("rollups_match_raw", "rollup_row_differs" if raw and kept else
                      "rollup_row_missing" if raw else "rollup_row_without_rows",
                      key=list(key), from_raw_rows=list(raw or ()), in_daily_stats=list(kept or ())))
    return out


def summarize(violations):
    by = defaultdict(int)
    for v in violations:
        by[f"{v['invariant']}/{v['kind']}"] += 1
    return dict(sorted(by.items()))
