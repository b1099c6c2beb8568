"""Randomized money soak (issue 12): a seeded sequence of operations on a real `wrangler dev`
(local D1) paying through the Stripe fake, with Stripe faults injected at random; then, with
Stripe healthy again and the cron run to quiescence, the money invariants of
`tests/soak/invariants.py` are checked against the D1 rows and the fake's transfers.

    python tests/soak/soak.py --seed 7 --ops 10000 --faults 500 [--log ops.jsonl] [--keep]

Prints a JSON summary on stdout (seed, operations and faults by type, anomalies, violations) and
exits 1 when there is a violation. Every choice comes from `random.Random(seed)`; replaying a
seed replays the same choices. The Worker and overlapping cron runs are concurrent, so a replay
is faithful up to their timing (a background cron may claim a little earlier or later).
"""

import argparse
import json
import os
import random
import sys
import tempfile
import threading
import time
import traceback
import uuid
from collections import Counter, defaultdict

import requests

HERE = os.path.dirname(os.path.abspath(__file__))
TESTS = os.path.dirname(HERE)
ROOT = os.path.dirname(TESTS)
for p in (TESTS, HERE):
    if p not in sys.path:
        sys.path.insert(0, p)

import conftest  # noqa: E402  (Worker, dev_vars, free_port, stop_process)
import harness  # noqa: E402  (conftest.start_wrangler, with a fallback for a schema.sql that does not apply)
from stripe_fake.server import sign_payload, start as start_stripe, stop as stop_stripe  # noqa: E402
from apihelpers import rollup_mismatches  # noqa: E402
from invariants import INVARIANTS, check, summarize  # noqa: E402

LEAD, SALE, REFUND = "/api/v1/track/lead", "/api/v1/track/sale", "/api/v1/track/refund"
PLATFORM_HOOK = "/api/v1/webhooks/stripe"
CONNECT_HOOK = "/api/v1/webhooks/stripe/connect"
CURRENCIES = ["usd", "eur", "jpy"]
SALE_CURRENCIES = ["usd", "eur", "jpy", "gbp"]
# rough rates to the payout currency, for `payout_amount` of a sale in another currency
RATE = {"usd": 1.0, "eur": 1.08, "gbp": 1.27, "jpy": 0.0067}
BIG = 10**12
# Worker's Stripe request timeout is 15 s (src/stripe.rs): a longer delay is a timeout
TIMEOUT_DELAY = 16.0
# PAYOUT_RECONCILE_AFTER_SECONDS. The Worker's only guard against resending while an earlier
# attempt is still executing at Stripe is this age (counted from the `now` of the run that last
# touched the payout): it must exceed the longest request, as production's 300 s does. With 0,
# an overlapping run reconciles a payout whose (delayed) request has not executed yet, finds no
# transfer and resends under a new key: two transfers, an artifact of the setting. 30 s exceeds
# the longest injected delay (16 s) plus a run's own duration.
RECONCILE_AFTER = 30


# ----------------------------------------------------------------------------------------------
# environment: the Stripe fake (in process) and `wrangler dev` with the soak's vars
# ----------------------------------------------------------------------------------------------

class Env:
    """One Stripe fake and one `wrangler dev` on fresh local state; `close()` stops both."""

    def __init__(self, extra_vars=None, persist=None, reconcile_after=None):
        reconcile_after = RECONCILE_AFTER if reconcile_after is None else reconcile_after
        self.server, _thread, self.stripe = start_stripe(port=0)
        self.fake = self.server.fake
        # a Worker that timed out closed the connection before the fake's (delayed) answer: quiet
        report = self.server.handle_error

        def handle_error(request, client_address):
            if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
                report(request, client_address)
        self.server.handle_error = handle_error
        self.persist = persist or tempfile.mkdtemp(prefix="refport-soak-")
        self.secrets = conftest.dev_vars()
        vars_ = {"STRIPE_API_BASE": self.stripe, "EMAIL_API_URL": "",
                 "PAYOUT_RECONCILE_AFTER_SECONDS": str(reconcile_after), "PAYOUT_PAUSE_MAX_SECONDS": "1"}
        self.reconcile_after = reconcile_after
        vars_.update(extra_vars or {})
        vars_ = {k: v for k, v in vars_.items() if v != ""}
        try:
            self.proc, base, self.note = harness.start_wrangler(self.persist, conftest.free_port(), conftest.free_port(), vars_)
        except Exception:
            stop_stripe(self.server)
            raise
        self.worker = conftest.Worker(base, self.persist, self.stripe, self.secrets)

    def close(self):
        try:
            conftest.stop_process(self.proc)
        finally:
            stop_stripe(self.server)


# ----------------------------------------------------------------------------------------------
# the driver
# ----------------------------------------------------------------------------------------------

class Soak:
    OPS = {  # operation -> weight
        "click": 10, "lead": 9, "sale": 16, "sale_foreign": 5, "sale_retry": 1,
        "refund_partial": 5, "refund_full": 3, "refund_retry": 1,
        "approve": 3, "reject": 1.5, "deliver_events": 10,
        "cron": 7, "cron_overlap": 2, "cron_background": 2,
        "create_partner": 3, "create_link": 1, "create_program": 0.4, "onboard": 3,
        "complete_onboarding": 3, "ban": 0.4, "currency_change": 0.6, "top_up": 1.5,
    }
    FAULTS = {  # fault -> weight
        "transfer_500": 8, "transfer_500_saved": 5, "transfer_500_saved_executed": 5,
        "transfer_dropped": 6, "transfer_delay": 4, "transfer_timeout": 1,
        "lookup_500": 3, "lookup_dropped": 2,
        "rate_limit_429": 4, "rate_limit_400": 1, "lock_timeout": 1,
        "idempotency_keys_expired": 4, "balance_exhausted": 4,
        "reversal_full": 3, "reversal_partial": 4,
        "transfers_capability_lost": 2, "onboarding_500": 1, "api_key_revoked": 1,
        "webhook_late": 4, "webhook_duplicate": 4, "webhook_out_of_order": 4,
    }
    API_FAULTS = {"transfer_500", "transfer_500_saved", "transfer_500_saved_executed", "transfer_dropped",
                  "transfer_delay", "transfer_timeout", "lookup_500", "lookup_dropped", "rate_limit_429",
                  "rate_limit_400", "lock_timeout", "onboarding_500"}
    MAX_PENDING_API_FAULTS = 4

    def __init__(self, env, seed, ops, faults, log_path=None, progress=True, timeout_faults=True, exclude_faults=()):
        self.env, self.w, self.fake, self.stripe = env, env.worker, env.fake, env.stripe
        self.seed, self.n_ops, self.n_faults = seed, ops, faults
        self.rng = random.Random(seed)
        self.progress = progress
        self.timeout_faults = timeout_faults
        self.exclude_faults = set(exclude_faults)
        unknown = self.exclude_faults - set(self.FAULTS)
        if unknown:
            raise ValueError(f"unknown faults {sorted(unknown)}; known: {sorted(self.FAULTS)}")
        self.log = open(log_path, "w") if log_path else None
        self.sk = env.secrets["STRIPE_SECRET_KEY"]
        self.platform_secret = env.secrets["STRIPE_WEBHOOK_SECRET"]
        self.connect_secret = env.secrets.get("STRIPE_CONNECT_WEBHOOK_SECRET") or self.platform_secret
        self.ops_done = Counter()
        self.faults_done = Counter()
        self.anomalies = Counter()
        self.anomaly_samples = []
        self.partner_ops = defaultdict(list)  # partner id -> op indexes touching it
        self.op_index = 0
        # the model: what the driver created (in creation order, so choices replay)
        self.programs = []   # dicts from the API + "currency"
        self.partners = []   # {"id", "program", "status", "account", "completed", "links"}
        self.links = []      # (link dict, partner dict)
        self.clicks = []     # (click id, link, partner)
        self.customers = []  # (ext id, program id)
        self.sales = []      # {"invoice", "program", "customer", "amount", "currency", "payout_amount", "refunded", "body"}
        self.refunds = []    # (key, body, response json) for retries
        self.disabled_accounts = set()  # accounts whose transfers capability a fault took away
        # Stripe events: everything the fake emitted, delivered by this driver
        self.ev_cursor = 0
        self.pending = []    # [(event id, type, account, payload)]
        self.held = {}       # event id -> op index until which it is held back (late)
        self.delivered = []  # delivered (event id, type, account, payload)
        self.out_of_order_next = False
        self.key_restore_at = None
        # cron runs in flight in the background
        self.bg = []
        self.history = defaultdict(set)  # commission id -> payout ids it was seen in
        self.connect_route = self._probe_connect_route()

    # -- plumbing ------------------------------------------------------------------------------
    def _probe_connect_route(self):
        r = requests.post(self.w.base + CONNECT_HOOK, data=b"{}", headers={"Content-Type": "application/json"}, timeout=30)
        return r.status_code not in (404, 405)

    def note(self, op, r, expected, **ctx):
        """Counts an HTTP answer that was not among the expected statuses (an anomaly)."""
        if r is None or r.status_code in expected:
            return
        key = f"{op}:{r.status_code}"
        try:
            code = r.json().get("error", {}).get("code")
        except ValueError:
            code = None
        key += f":{code}" if code else ""
        self.anomalies[key] += 1
        if len(self.anomaly_samples) < 40:
            self.anomaly_samples.append({"op_index": self.op_index, "op": op, "status": r.status_code,
                                         "body": r.text[:400], **ctx})

    def record(self, op, **ctx):
        self.ops_done[op] += 1
        pid = ctx.get("partner_id")
        if pid:
            self.partner_ops[pid].append(self.op_index)
        if self.log:
            self.log.write(json.dumps({"i": self.op_index, "op": op, **ctx}, default=str) + "\n")

    def record_fault(self, fault, **ctx):
        self.faults_done[fault] += 1
        pid = ctx.get("partner_id")
        if pid:
            self.partner_ops[pid].append(self.op_index)
        if self.log:
            self.log.write(json.dumps({"i": self.op_index, "fault": fault, **ctx}, default=str) + "\n")

    def ctl(self, path, body=None, method="POST"):
        r = requests.request(method, f"{self.stripe}/_control/{path}",
                             data=json.dumps(body) if body is not None else None,
                             headers={"Content-Type": "application/json"}, timeout=30)
        if r.status_code != 200:
            raise RuntimeError(f"control {path}: {r.status_code} {r.text}")
        return r.json()

    def pick(self, seq):
        return seq[self.rng.randrange(len(seq))] if seq else None

    def weighted(self, table, allowed=None):
        items = [(k, w) for k, w in table.items() if allowed is None or k in allowed]
        total = sum(w for _, w in items)
        x = self.rng.random() * total
        for k, w in items:
            x -= w
            if x < 0:
                return k
        return items[-1][0]

    def active_partners(self, program=None):
        return [p for p in self.partners if p["status"] == "active" and (program is None or p["program"] is program)]

    def amount_for(self, currency):
        if currency == "jpy":
            return self.rng.randint(300, 40000)
        return self.rng.randint(500, 40000)

    # -- model helpers -------------------------------------------------------------------------
    def new_program(self, currency=None):
        cur = currency or self.pick(CURRENCIES)
        mins = [100, 500, 1000, 2500]
        sale_reward = ({"type": "percentage", "amount": self.rng.choice([1000, 1500, 2000, 3000]), "duration_months": 12}
                       if self.rng.random() < 0.8 else {"type": "flat", "amount": self.rng.choice([300, 800, 1500])})
        body = {"hold_days": 0, "payout_schedule": {"every": "day"}, "min_payout": self.pick(mins),
                "payout_currency": cur,
                "rewards": {"lead": {"type": "flat", "amount": self.rng.choice([100, 200, 500])}, "sale": sale_reward}}
        p = self.w.program(**body)
        p["currency"] = cur
        self.programs.append(p)
        self.record("create_program", program_id=p["id"], currency=cur)
        return p

    def new_partner(self, program):
        pn = self.w.partner(program)
        d = {"id": pn["id"], "program": program, "status": "active", "account": None, "completed": False, "links": []}
        self.partners.append(d)
        self.record("create_partner", partner_id=pn["id"], program_id=program["id"])
        self.new_link(d)
        return d

    def new_link(self, partner):
        ln = self.w.link({"id": partner["id"]}, partner["program"], path=f"/p{len(self.links)}")
        partner["links"].append(ln)
        self.links.append((ln, partner))
        self.record("create_link", partner_id=partner["id"], link_id=ln["id"])
        return ln

    # -- operations ----------------------------------------------------------------------------
    def op_create_program(self):
        if len(self.programs) >= 3 + self.n_ops // 2500:
            return self.op_create_partner()
        self.new_program()

    def op_create_partner(self):
        if len(self.partners) >= 6 + self.n_ops // 100:
            return self.op_onboard()
        self.new_partner(self.pick(self.programs))

    def op_create_link(self):
        pn = self.pick(self.active_partners())
        if pn is None or len(pn["links"]) >= 3:
            return self.op_click()
        self.new_link(pn)

    def op_click(self):
        if not self.links:
            return self.op_create_partner()
        ln, pn = self.pick(self.links)
        r = self.w.click(ln)
        self.note("click", r, (302,))
        loc = r.headers.get("Location", "")
        if "refport_id=" in loc:
            cid = loc.split("refport_id=")[1].split("&")[0]
            self.clicks.append((cid, ln, pn))
        self.record("click", partner_id=pn["id"], link_id=ln["id"])

    def op_lead(self):
        if not self.clicks:
            return self.op_click()
        # a click from a little while ago (its row is written after the redirect's response)
        i = self.rng.randrange(max(1, len(self.clicks) - 1)) if len(self.clicks) > 1 else 0
        cid, ln, pn = self.clicks[i]
        ext = f"cust-{self.seed}-{len(self.customers)}"
        r = self.w.post(LEAD, {"click_id": cid, "customer_external_id": ext, "program_id": pn["program"]["id"]})
        self.note("lead", r, (200,))
        self.customers.append((ext, pn["program"]["id"]))
        self.record("lead", partner_id=pn["id"], customer=ext, status=r.status_code)

    def _sale(self, foreign):
        if not self.customers:
            return self.op_lead()
        ext, prog_id = self.pick(self.customers)
        prog = next(p for p in self.programs if p["id"] == prog_id)
        cur = prog["currency"]
        inv = f"inv-{self.seed}-{len(self.sales)}"
        body = {"customer_external_id": ext, "invoice_id": inv, "program_id": prog_id}
        if foreign:
            sale_cur = self.pick([c for c in SALE_CURRENCIES if c != cur])
            amount = self.amount_for(sale_cur)
            payout_amount = max(0, int(round(amount * RATE[sale_cur] / RATE[cur])))
            body.update(amount=amount, currency=sale_cur, payout_amount=payout_amount)
        else:
            sale_cur, amount, payout_amount = cur, self.amount_for(cur), None
            body.update(amount=amount, currency=cur)
        r = self.w.post(SALE, body)
        self.note("sale", r, (200,), currency=sale_cur)
        cm = (r.json() or {}).get("commission") if r.status_code == 200 else None
        if r.status_code == 200:
            self.sales.append({"invoice": inv, "program": prog_id, "amount": amount, "currency": sale_cur,
                               "refunded": 0, "body": body})
        self.record("sale_foreign" if foreign else "sale", partner_id=(cm or {}).get("partner_id"), invoice=inv,
                    amount=amount, currency=sale_cur, payout_amount=payout_amount, status=r.status_code)

    def op_sale(self):
        self._sale(False)

    def op_sale_foreign(self):
        self._sale(True)

    def op_sale_retry(self):
        s = self.pick(self.sales)
        if s is None:
            return self.op_sale()
        r = self.w.post(SALE, s["body"])
        self.note("sale_retry", r, (200,))
        self.record("sale_retry", invoice=s["invoice"], status=r.status_code)

    def _refund(self, full):
        open_ = [s for s in self.sales if s["refunded"] < s["amount"]]
        s = self.pick(open_)
        if s is None:
            return self.op_sale()
        remaining = s["amount"] - s["refunded"]
        body = {"invoice_id": s["invoice"], "program_id": s["program"]}
        if not full and remaining >= 2:
            body["amount"] = self.rng.randint(1, remaining - 1)
        headers = {}
        key = None
        if self.rng.random() < 0.6:
            key = f"rf-{self.seed}-{len(self.refunds)}"
            headers["Idempotency-Key"] = key
        r = self.w.request("POST", REFUND, body, headers=headers)
        # 409: nothing left / concurrent update; 422: a refund rounding to nothing in the payout currency
        self.note("refund", r, (200, 409, 422))
        j = r.json() if r.headers.get("content-type", "").startswith("application/json") else {}
        if r.status_code == 200:
            s["refunded"] += int(j["refund"]["amount"])
            if key:
                self.refunds.append((key, body, j))
        elif r.status_code == 409 and (j.get("error") or {}).get("code") == "nothing_to_refund":
            s["refunded"] = s["amount"]
        cm = (j or {}).get("commission") or {}
        self.record("refund_full" if full else "refund_partial", partner_id=cm.get("partner_id"), invoice=s["invoice"],
                    amount=body.get("amount"), status=r.status_code,
                    effect=((j or {}).get("refund") or {}).get("effect"))

    def op_refund_partial(self):
        self._refund(False)

    def op_refund_full(self):
        self._refund(True)

    def op_refund_retry(self):
        if not self.refunds:
            return self.op_refund_partial()
        key, body, first = self.pick(self.refunds)
        r = self.w.request("POST", REFUND, body, headers={"Idempotency-Key": key})
        self.note("refund_retry", r, (200,))
        if r.status_code == 200 and r.json()["refund"]["id"] != first["refund"]["id"]:
            self.anomalies["refund_retry:different_refund"] += 1
        self.record("refund_retry", invoice=body["invoice_id"], status=r.status_code)

    def _open_commissions(self, statuses):
        rows = self.w.rows(
            f"SELECT id, partner_id, status FROM commissions WHERE status IN ({','.join('?' * len(statuses))}) "
            "AND kind != 'clawback' AND payout_id IS NULL ORDER BY id", *statuses)
        return rows

    def op_approve(self):
        c = self.pick(self._open_commissions(["pending"]))
        if c is None:
            return self.op_sale()
        r = self.w.post(f"/api/v1/commissions/{c['id']}/approve")
        self.note("approve", r, (200, 409))
        self.record("approve", partner_id=c["partner_id"], commission_id=c["id"], status=r.status_code)

    def op_reject(self):
        c = self.pick(self._open_commissions(["pending", "approved"]))
        if c is None:
            return self.op_sale()
        r = self.w.post(f"/api/v1/commissions/{c['id']}/reject", {"reason": "soak: manual reject"})
        self.note("reject", r, (200, 409))
        self.record("reject", partner_id=c["partner_id"], commission_id=c["id"], status=r.status_code)

    def op_ban(self):
        act = self.active_partners()
        banned = len(self.partners) - len(act)
        if banned >= max(1, len(self.partners) // 12) or len(act) < 3:
            return self.op_click()
        pn = self.pick(act)
        r = self.w.patch(f"/api/v1/partners/{pn['id']}", {"status": "banned"})
        self.note("ban", r, (200,))
        if r.status_code == 200:
            pn["status"] = "banned"
        self.record("ban", partner_id=pn["id"], status=r.status_code)

    def op_currency_change(self):
        prog = self.pick(self.programs)
        cur = self.pick([c for c in CURRENCIES if c != prog["currency"]])
        r = self.w.patch(f"/api/v1/programs/{prog['id']}", {"payout_currency": cur})
        self.note("currency_change", r, (200,))
        if r.status_code == 200:
            prog["currency"] = cur
        self.record("currency_change", program_id=prog["id"], currency=cur, status=r.status_code)

    def op_onboard(self):
        cands = [p for p in self.active_partners() if p["account"] is None]
        pn = self.pick(cands)
        if pn is None:
            return self.op_complete_onboarding()
        r = self.w.post(f"/api/v1/partners/{pn['id']}/stripe/onboard", {})
        # 409 stripe_unavailable / 422 stripe_error: an injected fault on accounts or links
        self.note("onboard", r, (200, 409, 422))
        if r.status_code == 200:
            pn["account"] = r.json()["account_id"]
            if self.rng.random() < 0.6:
                self.complete(pn)
        self.record("onboard", partner_id=pn["id"], account=pn["account"], status=r.status_code)

    def complete(self, pn):
        self.ctl(f"accounts/{pn['account']}/complete_onboarding")
        pn["completed"] = True
        self.disabled_accounts.discard(pn["account"])

    def op_complete_onboarding(self):
        cands = [p for p in self.partners if p["account"] and (not p["completed"] or p["account"] in self.disabled_accounts)]
        pn = self.pick(cands)
        if pn is None:
            return self.op_click()
        self.complete(pn)
        self.record("complete_onboarding", partner_id=pn["id"], account=pn["account"])

    def top_up(self):
        for cur in CURRENCIES + ["gbp"]:
            self.ctl("balance", {"currency": cur, "amount": BIG})
        with self.fake.lock:
            bal = self.fake.balance_object()
        self.ctl("events", {"type": "balance.available", "data_object": bal})

    def op_top_up(self):
        self.top_up()
        self.record("top_up")

    # -- cron ------------------------------------------------------------------------------------
    def cron_once(self, tag):
        r = self.w.scheduled()
        if r.status_code != 200:
            self.anomalies[f"{tag}:{r.status_code}"] += 1
            if len(self.anomaly_samples) < 40:
                self.anomaly_samples.append({"op_index": self.op_index, "op": tag, "status": r.status_code,
                                             "body": r.text[:400]})

    def _threaded_cron(self, tag):
        def run():
            try:
                self.cron_once(tag)
            except Exception as e:  # noqa: BLE001
                self.anomalies[f"{tag}:exception:{type(e).__name__}"] += 1
        t = threading.Thread(target=run, daemon=True)
        t.start()
        return t

    def join_background(self, limit=0):
        while len(self.bg) > limit:
            self.bg.pop(0).join()

    def op_cron(self):
        self.join_background(1)
        self.cron_once("cron")
        self.snapshot()
        self.record("cron")

    def op_cron_overlap(self):
        self.join_background(1)
        ts = [self._threaded_cron("cron_overlap")]
        time.sleep(self.rng.choice([0, 0.02, 0.1, 0.3]))
        ts.append(self._threaded_cron("cron_overlap"))
        for t in ts:
            t.join()
        self.snapshot()
        self.record("cron_overlap")

    def op_cron_background(self):
        self.join_background(0)
        self.bg.append(self._threaded_cron("cron_background"))
        self.record("cron_background")

    def snapshot(self):
        for r in self.w.rows("SELECT id, payout_id FROM commissions WHERE payout_id IS NOT NULL"):
            self.history[r["id"]].add(r["payout_id"])

    # -- Stripe events ---------------------------------------------------------------------------
    def pull_events(self):
        with self.fake.lock:
            new = self.fake.events[self.ev_cursor:]
            self.ev_cursor = len(self.fake.events)
            items = [(e["id"], e["type"], e.get("account"), json.dumps(e, indent=2)) for e in new]
        self.pending.extend(items)

    def deliver(self, ev):
        eid, typ, account, payload = ev
        if account and self.connect_route:
            path, secret = CONNECT_HOOK, self.connect_secret
        else:
            path, secret = PLATFORM_HOOK, self.platform_secret
        r = self.w.session.post(self.w.base + path, data=payload.encode(), timeout=30,
                                headers={"Content-Type": "application/json", "Stripe-Signature": sign_payload(payload, secret)})
        self.note("webhook", r, (200,), event=eid, type=typ)
        return r

    def op_deliver_events(self, everything=False):
        self.pull_events()
        ready = [e for e in self.pending if everything or self.held.get(e[0], -1) < self.op_index]
        if not everything and len(ready) > 12:
            ready = ready[:12]
        if self.out_of_order_next and len(ready) > 1:
            if self.rng.random() < 0.5:
                ready = list(reversed(ready))
            else:
                self.rng.shuffle(ready)
            self.out_of_order_next = False
        sent = set()
        for ev in ready:
            self.deliver(ev)
            self.delivered.append(ev)
            sent.add(ev[0])
            self.held.pop(ev[0], None)
        self.pending = [e for e in self.pending if e[0] not in sent]
        self.record("deliver_events", n=len(ready), events=[(e[0], e[1], e[2]) for e in ready])

    # -- faults ----------------------------------------------------------------------------------
    def pending_api_faults(self):
        with self.fake.lock:
            return sum(1 for f in self.fake.faults if f["count"] > 0)

    def fault(self):
        allowed = set(self.FAULTS) - self.exclude_faults
        if self.pending_api_faults() >= self.MAX_PENDING_API_FAULTS:
            allowed -= self.API_FAULTS
        if not self.timeout_faults:
            allowed.discard("transfer_timeout")
        if self.key_restore_at is not None:  # our own reversals need the key
            allowed -= {"api_key_revoked", "reversal_full", "reversal_partial"}
        kind = self.weighted(self.FAULTS, allowed)
        getattr(self, "fault_" + kind)(kind)

    def _rule(self, kind, endpoint, **rule):
        self.ctl(endpoint, rule)
        self.record_fault(kind, rule=rule)

    def fault_transfer_500(self, k):
        self._rule(k, "fail_next", path_prefix="/v1/transfers", method="POST", count=1, status=500)

    def fault_transfer_500_saved(self, k):
        self._rule(k, "fail_next", path_prefix="/v1/transfers", method="POST", count=1, status=500, saved=True)

    def fault_transfer_500_saved_executed(self, k):
        self._rule(k, "fail_next", path_prefix="/v1/transfers", method="POST", count=1, status=500, saved=True, execute=True)

    def fault_transfer_dropped(self, k):
        self._rule(k, "drop_next", path_prefix="/v1/transfers", method="POST", count=1)

    def fault_transfer_delay(self, k):
        self._rule(k, "delay_next", path_prefix="/v1/transfers", method="POST", count=1,
                   seconds=self.rng.choice([0.5, 1.0, 2.0]))

    def fault_transfer_timeout(self, k):
        self._rule(k, "delay_next", path_prefix="/v1/transfers", method="POST", count=1, seconds=TIMEOUT_DELAY)

    def fault_lookup_500(self, k):
        self._rule(k, "fail_next", path_prefix="/v1/transfers", method="GET", count=1, status=500)

    def fault_lookup_dropped(self, k):
        self._rule(k, "drop_next", path_prefix="/v1/transfers", method="GET", count=1)

    def fault_rate_limit_429(self, k):
        self._rule(k, "fail_next", path_prefix="/v1/transfers", method=self.rng.choice(["POST", "POST", "GET"]),
                   count=1, status=429, code="rate_limit")

    def fault_rate_limit_400(self, k):
        self._rule(k, "fail_next", path_prefix="/v1/transfers", method="POST", count=1, status=400, code="rate_limit")

    def fault_lock_timeout(self, k):
        self._rule(k, "fail_next", path_prefix="/v1/transfers", method="POST", count=1, code="lock_timeout")

    def fault_onboarding_500(self, k):
        self._rule(k, "fail_next", path_prefix=self.rng.choice(["/v1/accounts", "/v1/account_links"]), method="POST",
                   count=1, status=500)

    def fault_idempotency_keys_expired(self, k):
        n = self.ctl("expire_idempotency_keys", {})["expired"]
        self.record_fault(k, expired=n)

    def fault_balance_exhausted(self, k):
        cur = self.pick(CURRENCIES)
        amount = self.rng.randint(0, 3000)
        self.ctl("balance", {"currency": cur, "amount": amount})
        self.record_fault(k, currency=cur, amount=amount)

    def _reversible(self):
        with self.fake.lock:
            return [(t["id"], t["amount"] - t.get("amount_reversed", 0), t["destination"])
                    for t in self.fake.transfers.values() if t["amount"] - t.get("amount_reversed", 0) > 0]

    def _reverse(self, k, full):
        cands = self._reversible()
        if not cands:
            return self.fault_webhook_duplicate("webhook_duplicate") if self.delivered else self.fault_transfer_500("transfer_500")
        tid, remaining, dest = self.pick(cands)
        amount = remaining if full or remaining < 2 else self.rng.randint(1, remaining - 1)
        # our own POST /v1/transfers/{id}/reversals must not use up a fault meant for the Worker
        with self.fake.lock:
            parked = [f for f in self.fake.faults if "/v1/transfers".startswith(f["path_prefix"]) or f["path_prefix"].startswith("/v1/transfers")]
            self.fake.faults = [f for f in self.fake.faults if f not in parked]
        try:
            r = requests.post(f"{self.stripe}/v1/transfers/{tid}/reversals", data={"amount": amount},
                              headers={"Authorization": f"Bearer {self.sk}"}, timeout=30)
        finally:
            with self.fake.lock:
                self.fake.faults = parked + self.fake.faults
        if r.status_code != 200:
            self.anomalies[f"{k}:{r.status_code}"] += 1
        partner = next((p["id"] for p in self.partners if p["account"] == dest), None)
        self.record_fault(k, transfer=tid, amount=amount, partner_id=partner, status=r.status_code)

    def fault_reversal_full(self, k):
        self._reverse(k, True)

    def fault_reversal_partial(self, k):
        self._reverse(k, False)

    def fault_transfers_capability_lost(self, k):
        cands = [p for p in self.partners if p["account"] and p["completed"] and p["account"] not in self.disabled_accounts]
        pn = self.pick(cands)
        if pn is None:
            return self.fault_webhook_late("webhook_late")
        self.ctl(f"accounts/{pn['account']}/disable_transfers")
        self.disabled_accounts.add(pn["account"])
        self.record_fault(k, partner_id=pn["id"], account=pn["account"])

    def fault_api_key_revoked(self, k):
        self.ctl("revoke_key", {"key": self.sk, "reason": "expired"})
        self.key_restore_at = self.op_index + self.rng.randint(3, 30)
        self.record_fault(k, until_op=self.key_restore_at)

    def restore_key(self):
        # the fake has no "unrevoke": a rolled key is modelled by forgetting the revocation
        with self.fake.lock:
            self.fake.revoked.pop(self.sk, None)
        self.key_restore_at = None

    def fault_webhook_late(self, k):
        self.pull_events()
        cands = [e for e in self.pending if e[0] not in self.held]
        ev = self.pick(cands)
        if ev is None:
            self.out_of_order_next = True
            return self.record_fault("webhook_out_of_order")
        until = self.op_index + self.rng.randint(20, 400)
        self.held[ev[0]] = until
        self.record_fault(k, event=ev[0], type=ev[1], until_op=until)

    def fault_webhook_duplicate(self, k):
        ev = self.pick(self.delivered)
        if ev is None:
            return self.fault_webhook_late("webhook_late") if self.pending else self.fault_transfer_500("transfer_500")
        self.deliver(ev)
        self.record_fault(k, event=ev[0], type=ev[1])

    def fault_webhook_out_of_order(self, k):
        self.out_of_order_next = True
        self.record_fault(k)

    # -- the run ---------------------------------------------------------------------------------
    def bootstrap(self):
        self.top_up()
        for cur in CURRENCIES:
            prog = self.new_program(cur)
            for _ in range(2):
                pn = self.new_partner(prog)
                self.op_index += 1
                if self.rng.random() < 0.7:
                    r = self.w.post(f"/api/v1/partners/{pn['id']}/stripe/onboard", {})
                    self.note("onboard", r, (200,))
                    if r.status_code == 200:
                        pn["account"] = r.json()["account_id"]
                        self.complete(pn)
                    self.record("onboard", partner_id=pn["id"], account=pn["account"], status=r.status_code)

    def run(self):
        t0 = time.time()
        self.bootstrap()
        faults_left = self.n_faults
        start = sum(self.ops_done.values())
        while sum(self.ops_done.values()) - start < self.n_ops:
            self.op_index += 1
            done = sum(self.ops_done.values()) - start
            if self.key_restore_at is not None and self.op_index >= self.key_restore_at:
                self.restore_key()
            if faults_left > 0 and self.rng.random() < faults_left / max(1, self.n_ops - done):
                self.fault()
                faults_left -= 1
            op = self.weighted(self.OPS)
            try:
                getattr(self, "op_" + op)()
            except requests.RequestException as e:
                self.anomalies[f"{op}:exception:{type(e).__name__}"] += 1
                self.record(op, error=str(e)[:200])
            if self.progress and self.op_index % 250 == 0:
                print(f"[soak] op {done}/{self.n_ops} faults {sum(self.faults_done.values())} "
                      f"{time.time() - t0:.0f}s", file=sys.stderr, flush=True)
        self.run_seconds = time.time() - t0

    # -- quiescence ------------------------------------------------------------------------------
    def fingerprint(self):
        d1 = self.w.rows("SELECT (SELECT group_concat(status || ':' || n || ':' || s) FROM "
                         "(SELECT status, COUNT(*) n, COALESCE(SUM(amount), 0) s FROM payouts GROUP BY status)) AS p, "
                         "(SELECT group_concat(status || ':' || n || ':' || s) FROM "
                         "(SELECT status, COUNT(*) n, COALESCE(SUM(amount), 0) s FROM commissions GROUP BY status)) AS c, "
                         "(SELECT COUNT(*) FROM commissions WHERE payout_id IS NOT NULL) AS claimed, "
                         "(SELECT COUNT(*) FROM payouts WHERE status = 'processing') AS processing")[0]
        with self.fake.lock:
            tr = (len(self.fake.transfers), sum(t.get("amount_reversed", 0) for t in self.fake.transfers.values()),
                  len(self.fake.events))
        return (tuple(d1.values()), tr), d1["processing"]

    def quiesce(self, max_runs=80):
        t0 = time.time()
        self.join_background(0)
        with self.fake.lock:
            self.fake.faults = []
        self.restore_key()
        self.top_up()
        for pn in self.partners:
            if pn["account"] in self.disabled_accounts:
                self.complete(pn)
        runs, stable, last = 0, 0, None
        while runs < max_runs:
            self.op_deliver_events(everything=True)
            self.ops_done["deliver_events"] -= 1
            pause = self.w.rows("SELECT until_ms FROM payout_pause WHERE id = 1")
            if pause:
                wait = pause[0]["until_ms"] / 1000 - time.time()
                if 0 < wait <= 5:
                    time.sleep(wait + 0.05)
            if self.env.reconcile_after:
                young = self.w.rows("SELECT MAX(updated_at) AS t FROM payouts WHERE status = 'processing'")[0]["t"]
                if young:
                    wait = young / 1000 + self.env.reconcile_after - time.time()
                    if wait > 0:
                        time.sleep(min(wait, self.env.reconcile_after) + 0.1)
            self.cron_once("quiesce_cron")
            runs += 1
            self.snapshot()
            self.pull_events()
            fp, processing = self.fingerprint()
            stable = stable + 1 if fp == last and not self.pending and not processing else 0
            last = fp
            if stable >= 2:
                break
        self.quiesce_runs = runs
        self.quiesce_seconds = time.time() - t0
        self.quiet = stable >= 2

    # -- the check -------------------------------------------------------------------------------
    def collect(self):
        st = self.ctl("state", method="GET")
        created_by = {e["data"]["object"]["id"]: e.get("request") for e in st["events"] if e["type"] == "transfer.created"}
        for t in st["transfers"].values():
            t["created_by"] = created_by.get(t["id"])
        if self.log:
            with self.fake.lock:
                reqs = [dict(r) for r in self.fake.requests]
            with open(self.log.name + ".stripe-requests.json", "w") as f:
                json.dump(reqs, f, default=str)
        rows = self.w.rows
        conn = self.w.db()
        try:
            mismatches = rollup_mismatches(conn)
        finally:
            conn.close()
        return {
            "payouts": rows("SELECT * FROM payouts ORDER BY id"),
            "commissions": rows("SELECT * FROM commissions ORDER BY id"),
            "partners": rows("SELECT * FROM partners ORDER BY id"),
            "programs": rows("SELECT id, payout_currency, min_payout FROM programs ORDER BY id"),
            "pause": (rows("SELECT * FROM payout_pause") or [None])[0],
            "transfers": list(st["transfers"].values()),
            "accounts": st["accounts"],
            "deauthorized": st["deauthorized"],
            "rollup_mismatches": mismatches,
        }

    def replay_command(self):
        cmd = f"python tests/soak/soak.py --seed {self.seed} --ops {self.n_ops} --faults {self.n_faults}"
        if not self.timeout_faults:
            cmd += " --no-timeouts"
        if self.exclude_faults:
            cmd += " --exclude-faults " + ",".join(sorted(self.exclude_faults))
        if self.env.reconcile_after != RECONCILE_AFTER:
            cmd += f" --reconcile-after {self.env.reconcile_after}"
        return cmd

    def stripe_stats(self, state):
        with self.fake.lock:
            reqs = [dict(r) for r in self.fake.requests]
        by = Counter()
        for r in reqs:
            path = r["path"]
            kind = ("reversal" if path.endswith("/reversals") else "transfer" if path.startswith("/v1/transfers")
                    else path.split("/")[2] if path.count("/") >= 2 else path)
            tag = f"{r['method']} {kind} {r['status']}"
            if r.get("injected"):
                tag += f" injected={r['injected']}"
            if r.get("replayed"):
                tag += " replayed"
            by[tag] += 1
        po = state["payouts"]
        return {
            "requests": dict(sorted(by.items())),
            "payouts_resent_under_a_new_key": sum(1 for p in po if int(p.get("transfer_attempt") or 1) > 1),
            "payouts_with_failed_attempts": sum(1 for p in po if int(p.get("attempts") or 0) > 0),
            "payouts_reversed_in_d1": sum(1 for p in po if int(p.get("reversed_amount") or 0) > 0),
            "clawbacks": dict(Counter(f"{c['reason']}:{c['status']}" for c in state["commissions"] if c["kind"] == "clawback")),
        }

    def payout_requests(self, payout_id):
        with self.fake.lock:
            reqs = [dict(r) for r in self.fake.requests]
        out = []
        for r in reqs:
            params = r.get("params") or {}
            q = r.get("query") or {}
            key = r.get("idempotency_key") or ""
            if (key == payout_id or key.startswith(payout_id + "-") or (params.get("metadata") or {}).get("payout_id") == payout_id
                    or payout_id in json.dumps(q)):
                out.append({k: r.get(k) for k in ("time", "method", "path", "idempotency_key", "status", "injected", "replayed")})
        return out

    def summary(self, state, violations):
        for v in violations:
            ids = [p["id"] for p in [v.get("payout"), v.get("payout_named_by_transfer")] + list(v.get("payouts") or []) if p]
            if ids and v["invariant"] in ("transfer_payout_link", "commission_in_one_payout", "transfer_currency"):
                v["stripe_requests"] = {i: self.payout_requests(i) for i in ids[:3]}
            pid = v.get("partner_id") or (v.get("payout") or {}).get("partner_id")
            if pid and self.partner_ops.get(pid):
                v["ops_of_partner"] = self.partner_ops[pid][:60]
        return {
            "seed": self.seed,
            "replay": self.replay_command(),
            "operations": sum(self.ops_done.values()),
            "operations_by_type": dict(sorted(self.ops_done.items())),
            "faults": sum(self.faults_done.values()),
            "faults_by_type": dict(sorted(self.faults_done.items())),
            "harness_note": self.env.note,
            "connect_webhook_route": CONNECT_HOOK if self.connect_route else f"(absent: {PLATFORM_HOOK})",
            "anomalies": dict(sorted(self.anomalies.items())),
            "anomaly_samples": self.anomaly_samples[:15],
            "totals": {
                "programs": len(state["programs"]), "partners": len(state["partners"]),
                "commissions": len(state["commissions"]),
                "payouts_by_status": dict(Counter(p["status"] for p in state["payouts"])),
                "transfers": len(state["transfers"]),
                "transfers_reversed": sum(1 for t in state["transfers"] if t.get("amount_reversed")),
                "events_delivered": len(self.delivered),
            },
            "stripe": self.stripe_stats(state),
            "config": {"PAYOUT_RECONCILE_AFTER_SECONDS": self.env.reconcile_after, "PAYOUT_PAUSE_MAX_SECONDS": 1,
                       "excluded_faults": sorted(self.exclude_faults), "timeout_faults": self.timeout_faults},
            "quiescence": {"cron_runs": self.quiesce_runs, "quiet": self.quiet, "seconds": round(self.quiesce_seconds, 1)},
            "seconds": {"operations": round(self.run_seconds, 1)},
            "invariants": INVARIANTS,
            "violations_by_kind": summarize(violations),
            "violation_count": len(violations),
            "violations": violations,
        }


def soak(seed, ops, faults, log_path=None, progress=True, keep=False, timeout_faults=True, env=None,
         exclude_faults=(), reconcile_after=None):
    """Runs one soak on a fresh Worker and Stripe fake; answers the summary dict."""
    own = env is None
    env = env or Env(reconcile_after=reconcile_after)
    t0 = time.time()
    try:
        s = Soak(env, seed, ops, faults, log_path=log_path, progress=progress, timeout_faults=timeout_faults,
                 exclude_faults=exclude_faults)
        s.run()
        s.quiesce()
        state = s.collect()
        violations = check(state, s.history)
        if not s.quiet:
            violations.append({"invariant": "payable_balance_paid", "kind": "no_quiescence",
                               "cron_runs": s.quiesce_runs})
        out = s.summary(state, violations)
        out["seconds"]["total"] = round(time.time() - t0, 1)
        out["persist"] = env.persist if keep else None
        return out
    finally:
        if own:
            env.close()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=None, help="default: random (printed)")
    ap.add_argument("--ops", type=int, default=10000)
    ap.add_argument("--faults", type=int, default=500)
    ap.add_argument("--log", default=None, help="write every operation and fault as JSON lines")
    ap.add_argument("--no-timeouts", action="store_true", help="no 16 s transfer delays (faster)")
    ap.add_argument("--exclude-faults", default="", help="comma-separated fault types never injected")
    ap.add_argument("--reconcile-after", type=int, default=RECONCILE_AFTER,
                    help=f"PAYOUT_RECONCILE_AFTER_SECONDS (default {RECONCILE_AFTER}: longer than any injected delay; "
                         "0 lets a run reconcile a payout whose transfer request is still in flight)")
    ap.add_argument("--keep", action="store_true", help="keep the wrangler state directory (for sqlite3)")
    ap.add_argument("--out", default=None, help="also write the JSON summary here")
    args = ap.parse_args(argv)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1, 10**6)
    print(f"[soak] seed {seed}: {args.ops} operations, {args.faults} faults", file=sys.stderr, flush=True)
    try:
        out = soak(seed, args.ops, args.faults, log_path=args.log, keep=args.keep, timeout_faults=not args.no_timeouts,
                   exclude_faults=[f for f in args.exclude_faults.split(",") if f],
                   reconcile_after=args.reconcile_after)
    except Exception:
        traceback.print_exc()
        print(json.dumps({"seed": seed, "error": "the soak itself failed (see stderr)"}))
        return 2
    text = json.dumps(out, indent=2, default=str)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)
    print(f"[soak] seed {seed}: {out['operations']} operations, {out['faults']} faults, "
          f"{out['violation_count']} violations {out['violations_by_kind']}", file=sys.stderr)
    return 1 if out["violation_count"] else 0


if __name__ == "__main__":
    sys.exit(main())
