"""End-to-end tests of Refport's outgoing webhooks (SPEC 4 and 7.4) over real HTTP: a receiving
server started by the test on 127.0.0.1 checks every `Refport-Signature` (HMAC-SHA256 of
"t.body" with the endpoint's `whsec_` secret, recomputed here), applies each event id exactly
once (order-independent), and can answer 500 or be down. The delivery log
(`GET /api/v1/webhooks/{id}/deliveries`) and the local D1 outbox are checked against what the
receiver saw.

Endpoints are global to the deployment (every test's events fan out to every subscribed
endpoint), so each test creates its own program and only looks at events whose `data.program_id`
is its own, and deletes its endpoints at teardown.

Retries wait 1 minute (then 5m, 30m, ...). The tests check that the cron does NOT resend before
`next_attempt_at`, then simulate the minute passing by moving the endpoint's pending
`next_attempt_at` into the past in the local D1 file (`advance_backoff`), and check the actual
resend by the cron."""

import hashlib
import hmac
import json
import random
import re
import sqlite3
import threading
import time
import uuid
from collections import Counter
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from apihelpers import ok, uid
from test_payouts import (BIG, attributed_customer, commissions_of, ctl, deliver, enable_payouts,
                          last_account_event, payouts_of, program, sale, set_balance)

WEBHOOKS = "/api/v1/webhooks"
ALL_EVENTS = ["partner.enrolled", "partner.updated", "partner.banned", "lead.created", "sale.created",
              "commission.created", "commission.updated", "commission.approved", "commission.paid",
              "payout.paid", "payout.failed", "payout.reversed"]
HEADER_RE = re.compile(r"^t=(\d+),v1=([0-9a-f]{64})$")
TOLERANCE = 300


# ----------------------------------------------------------------------------------------------
# the receiving server
# ----------------------------------------------------------------------------------------------

def verify_signature(secret, header, body, now, tolerance=TOLERANCE):
    """Stripe-style check, written independently of the SDK: answers (ok, reason)."""
    if not header:
        return False, "missing header"
    fields = [p.split("=", 1) for p in header.split(",") if "=" in p]
    ts = [v.strip() for k, v in fields if k.strip() == "t"]
    sigs = [v.strip() for k, v in fields if k.strip() == "v1"]
    if len(ts) != 1 or not ts[0].isdigit() or not sigs:
        return False, "malformed header"
    expected = hmac.new(secret.encode(), ts[0].encode() + b"." + body, hashlib.sha256).hexdigest()
    if not any(hmac.compare_digest(expected, s) for s in sigs):
        return False, "signature mismatch"
    if abs(now - int(ts[0])) > tolerance:
        return False, "timestamp outside tolerance"
    return True, None


STATUS_RANK = {"pending": 0, "approved": 1, "processing": 1, "paid": 2, "failed": 2, "rejected": 3}


class Projection:
    """The receiver's state built from events, keyed by event id (applied at most once) and
    independent of arrival order: per subject, the event with the latest (created_at, status
    rank) wins (a cron run approves and pays with one timestamp)."""

    def __init__(self):
        self.applied = {}            # event id -> event
        self.effects = Counter()     # event id -> times applied (must stay 1)
        self.duplicates = Counter()  # event id -> deliveries ignored as already applied

    def apply(self, event):
        if event["id"] in self.applied:
            self.duplicates[event["id"]] += 1
            return False
        self.applied[event["id"]] = event
        self.effects[event["id"]] += 1
        return True

    def state(self):
        out = {}
        for e in self.applied.values():
            subject = e["data"]["id"]
            key = (e["created_at"], STATUS_RANK.get(e["data"].get("status"), 0))
            if subject not in out or key > out[subject][0]:
                out[subject] = (key, e["data"])
        return {k: v[1] for k, v in out.items()}


class Receiver:
    """A merchant's webhook receiver on 127.0.0.1: verifies, dedupes by event id, can fail."""

    def __init__(self):
        self.lock = threading.Lock()
        self.secrets = {}          # path -> secret
        self.secret_set = {}       # path -> threading.Event
        self.deliveries = []       # every request, in arrival order
        self.projection = Projection()
        self.fail_first = None     # predicate(event) -> answer 500 to its first delivery
        self.apply_before_fail = False  # "crashed after commit": applied, then 500
        self.fail_all = None       # predicate(event) -> always 500
        self.seen = Counter()      # event id -> deliveries received
        self.server = None
        self.port = 0
        self.start()

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self):
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                status = receiver.handle(self.path, dict(self.headers.items()), body)
                self.send_response(status)
                self.send_header("content-type", "text/plain")
                self.end_headers()
                self.wfile.write(b"ok" if status == 200 else b"no")

            def log_message(self, *args):
                pass

        ThreadingHTTPServer.allow_reuse_address = True
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    def endpoint_url(self):
        path = f"/hooks/{uuid.uuid4().hex[:12]}"
        self.secret_set[path] = threading.Event()
        return f"http://127.0.0.1:{self.port}{path}", path

    def set_secret(self, path, secret):
        self.secrets[path] = secret
        self.secret_set[path].set()

    # -- one delivery ---------------------------------------------------------------------------
    def handle(self, path, headers, body):
        now = time.time()
        h = {k.lower(): v for k, v in headers.items()}
        ev = self.secret_set.get(path)
        if ev is not None:
            ev.wait(10)  # a delivery may race the create answer that tells us the secret
        secret = self.secrets.get(path)
        ok, reason = (False, "unknown path") if secret is None else verify_signature(secret, h.get("refport-signature"), body, now)
        try:
            event = json.loads(body)
        except ValueError:
            event = None
        rec = {"path": path, "headers": h, "body": body, "received_at": now, "verified": ok, "reason": reason,
               "event": event, "answered": None}
        with self.lock:
            self.deliveries.append(rec)
            if not ok or not isinstance(event, dict) or h.get("refport-event-id") != event.get("id"):
                rec["answered"] = 400
                return 400
            eid = event["id"]
            self.seen[eid] += 1
            if self.fail_all and self.fail_all(event):
                rec["answered"] = 500
                return 500
            if self.fail_first and self.fail_first(event) and self.seen[eid] == 1:
                if self.apply_before_fail:
                    self.projection.apply(event)
                rec["answered"] = 500
                return 500
            self.projection.apply(event)
            rec["answered"] = 200
            return 200

    # -- queries --------------------------------------------------------------------------------
    def events(self, program_id, path=None):
        """Applied events of one program (optionally: received on one endpoint path)."""
        with self.lock:
            ids = None if path is None else {d["event"]["id"] for d in self.deliveries if d["answered"] == 200 and d["path"] == path}
            return [e for e in self.projection.applied.values()
                    if e["data"].get("program_id") == program_id and (ids is None or e["id"] in ids)]

    def deliveries_of(self, program_id, path=None):
        with self.lock:
            return [d for d in self.deliveries if isinstance(d["event"], dict)
                    and (d["event"].get("data") or {}).get("program_id") == program_id
                    and (path is None or d["path"] == path)]


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    try:
        r.stop()
    except Exception:
        pass


@pytest.fixture
def endpoints(worker):
    """Creates endpoints for a test and deletes them afterwards (so nothing keeps retrying)."""
    created = []

    def make(receiver, events=None, description=None):
        url, path = receiver.endpoint_url()
        body = {"url": url, "events": events or ALL_EVENTS}
        if description:
            body["description"] = description
        r = worker.post(WEBHOOKS, body)
        assert r.status_code == 201, (r.status_code, r.text)
        ep = r.json()
        receiver.set_secret(path, ep["secret"])
        ep["_path"] = path
        created.append(ep["id"])
        return ep

    yield make
    for eid in created:
        worker.delete(f"{WEBHOOKS}/{eid}")


@pytest.fixture
def stripe(worker, stripe_server):
    set_balance(stripe_server, "usd", BIG)
    yield stripe_server
    set_balance(stripe_server, "usd", BIG)


# ----------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------

def ms(iso):
    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000)


def deliveries(worker, endpoint_id):
    """Every delivery of the endpoint, all pages: an endpoint without a program also gets the
    events other tests' programs leave in the shared Worker's outbox, which can pass a page."""
    out, cursor = [], None
    for _ in range(100):
        body = ok(worker.get(f"{WEBHOOKS}/{endpoint_id}/deliveries?limit=100" + (f"&cursor={cursor}" if cursor else "")))
        out += body["data"]
        cursor = body["next_cursor"]
        if cursor is None:
            return out
    raise AssertionError("pagination never ended")


def outbox_events(worker, program_id):
    """Every event the outbox holds for one program (D1)."""
    return worker.rows("SELECT id, type, subject_id, payload, created_at FROM webhook_events "
                       "WHERE json_extract(payload, '$.program_id') = ? ORDER BY created_at, id", program_id)


def wait_until(fn, timeout=15.0, interval=0.2, what="condition"):
    deadline = time.time() + timeout
    while True:
        v = fn()
        if v:
            return v
        if time.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(interval)


def cron(worker):
    r = worker.scheduled()
    assert r.status_code == 200, (r.status_code, r.text)


def cron_until(worker, fn, runs=12, what="condition"):
    """Runs the cron (which delivers at most 10 due deliveries per run) until fn() holds."""
    for _ in range(runs):
        if fn():
            return
        cron(worker)
        time.sleep(0.3)
    assert fn(), f"not reached after {runs} cron runs: {what}"


def advance_backoff(worker, endpoint_id):
    """Simulates the backoff passing (1 minute after a first failure): makes the endpoint's
    pending deliveries due now, by a direct write to the local D1 file. Answers how many."""
    for _ in range(50):
        try:
            conn = worker.writable()
            try:
                cur = conn.execute(
                    "UPDATE webhook_deliveries SET next_attempt_at = ? WHERE endpoint_id = ? AND status = 'pending'",
                    (int(time.time() * 1000) - 1000, endpoint_id))
                conn.commit()
                return cur.rowcount
            finally:
                conn.close()
        except sqlite3.OperationalError as e:  # database is locked: the Worker is writing
            last = e
            time.sleep(0.1)
    raise last


def new_setup(worker, stripe, **kw):
    """A program (hold 0, daily payouts, min 1000) with one payouts-enabled partner and a link."""
    p = program(worker, min_payout=1000, **kw)
    pn = worker.partner(p)
    ln = worker.link(pn, p)
    return p, pn, ln


def assert_signed(d, secret):
    """A delivery's headers: the exact signature format, the event id header, JSON."""
    h = d["headers"]
    m = HEADER_RE.match(h.get("refport-signature", ""))
    assert m, h.get("refport-signature")
    assert abs(int(m.group(1)) - d["received_at"]) <= TOLERANCE
    expected = hmac.new(secret.encode(), m.group(1).encode() + b"." + d["body"], hashlib.sha256).hexdigest()
    assert hmac.compare_digest(m.group(2), expected)
    assert h.get("refport-event-id") == d["event"]["id"]
    assert h.get("content-type", "").startswith("application/json")
    e = d["event"]
    assert set(e) == {"id", "type", "created_at", "data"}, e
    assert e["id"].startswith("evt_") and e["type"] in ALL_EVENTS
    assert isinstance(e["data"], dict)


# ----------------------------------------------------------------------------------------------
# 1. the whole flow: every event arrives, signed, applied exactly once, order-independent
# ----------------------------------------------------------------------------------------------

def test_every_event_arrives_signed_and_is_applied_once(worker, stripe, receiver, endpoints):
    ep = endpoints(receiver)
    secret = ep["secret"]
    assert re.fullmatch(r"whsec_[A-Za-z0-9_-]+", secret)

    p, pn, ln = new_setup(worker, stripe)
    ext = attributed_customer(worker, ln)                           # lead.created + commission.created (500)
    lead_cm = ok(worker.get(f"/api/v1/commissions?partner_id={pn['id']}"))["data"][0]
    inv1, cm1 = sale(worker, ext, 30000)                             # 6000
    inv2, cm2 = sale(worker, ext, 10000)                             # 2000, rejected below
    inv3, cm3 = sale(worker, ext, 5000)                              # 1000, partially refunded
    inv4, cm4 = sale(worker, ext, 4000)                              # 800, fully refunded
    ok(worker.post(f"/api/v1/commissions/{lead_cm['id']}/approve"))  # commission.updated approved
    ok(worker.post(f"/api/v1/commissions/{cm2['id']}/reject", {"reason": "fraud"}))
    ok(worker.post("/api/v1/track/refund", {"invoice_id": inv3, "amount": 2500}, headers={"Idempotency-Key": uid("rf")}))
    ok(worker.post("/api/v1/track/refund", {"invoice_id": inv4}))

    # a second partner whose transfer fails (transfers capability off), then is fixed
    pn2 = worker.partner(p)
    ln2 = worker.link(pn2, p)
    ext2 = attributed_customer(worker, ln2)
    sale(worker, ext2, 10000)
    acct1 = enable_payouts(worker, stripe, pn)
    acct2 = enable_payouts(worker, stripe, pn2)
    ctl(stripe, "POST", f"accounts/{acct2}/disable_transfers")

    cron(worker)  # approves (hold 0) and pays pn; pn2's transfer fails
    pos = payouts_of(worker, pn)
    assert [(x["status"], x["amount"]) for x in pos] == [("paid", 500 + 6000 + 500)], pos
    failed = payouts_of(worker, pn2)
    assert [x["status"] for x in failed] == ["failed"], failed
    ctl(stripe, "POST", f"accounts/{acct2}/complete_onboarding")
    ok(deliver(worker, stripe, last_account_event(stripe, acct2)))  # Stripe reports the account fixed
    cron(worker)  # pays pn2 with a new payout
    pos2 = payouts_of(worker, pn2)
    assert [x["status"] for x in pos2] == ["failed", "paid"], pos2
    assert acct1

    # every event of the program in the outbox reaches the receiver (the cron delivers the rest)
    def all_arrived():
        want = {e["id"] for e in outbox_events(worker, p["id"])}
        got = {e["id"] for e in receiver.events(p["id"])}
        return want and want <= got
    cron_until(worker, all_arrived, what="every outbox event delivered")
    outbox = outbox_events(worker, p["id"])
    mine = receiver.events(p["id"])
    assert {e["id"] for e in mine} == {e["id"] for e in outbox}
    assert all(e["type"] in ALL_EVENTS for e in mine)

    # the body is what the outbox holds (payload as data), signed with the endpoint's secret
    by_id = {e["id"]: e for e in outbox}
    for d in receiver.deliveries_of(p["id"]):
        assert d["verified"], d["reason"]
        assert_signed(d, secret)
        row = by_id[d["event"]["id"]]
        assert d["event"]["type"] == row["type"]
        assert d["event"]["data"] == json.loads(row["payload"])
        assert abs(ms(d["event"]["created_at"]) - row["created_at"]) <= 1

    # exactly once per event id, and the expected events are there
    assert set(receiver.projection.effects.values()) == {1}
    types = Counter(e["type"] for e in mine)
    commissions = {c["id"]: c for c in commissions_of(worker, pn) + commissions_of(worker, pn2)}
    assert types["lead.created"] == 2
    assert types["commission.created"] == len(commissions) == 7
    assert types["payout.paid"] == 2 and types["payout.failed"] == 1
    created = {e["data"]["id"] for e in mine if e["type"] == "commission.created"}
    assert created == set(commissions)
    updates = [(e["data"]["id"], e["data"]["status"], e["data"]["amount"], e["data"]["reason"])
               for e in mine if e["type"] == "commission.updated"]
    assert (lead_cm["id"], "approved", 500, None) in updates
    assert (cm2["id"], "rejected", 2000, "fraud") in updates
    assert (cm3["id"], "pending", 500, None) in updates
    assert (cm4["id"], "rejected", 0, "refund") in updates or (cm4["id"], "rejected", 800, "refund") in updates
    for cid in (lead_cm["id"], cm1["id"], cm3["id"]):
        assert (cid, "paid") in {(u[0], u[1]) for u in updates}, cid
    lead_ev = next(e for e in mine if e["type"] == "lead.created" and e["data"]["partner_id"] == pn["id"])
    assert lead_ev["data"]["customer_external_id"] == ext
    assert lead_ev["data"]["click_id"].startswith("clk_")
    paid = next(e for e in mine if e["type"] == "payout.paid" and e["data"]["partner_id"] == pn["id"])
    assert paid["data"]["id"] == pos[0]["id"] and paid["data"]["amount"] == 7000 and paid["data"]["status"] == "paid"
    assert paid["data"]["stripe_transfer_id"] == pos[0]["stripe_transfer_id"]
    fail_ev = next(e for e in mine if e["type"] == "payout.failed")
    assert fail_ev["data"]["id"] == failed[0]["id"] and fail_ev["data"]["failure_message"]

    # the receiver's projection equals the API's final state, whatever the arrival order
    final_state = {k: v for k, v in receiver.projection.state().items() if v.get("program_id") == p["id"]}
    for c in commissions.values():
        got = final_state[c["id"]]
        assert (got["status"], got["amount"], got["payout_id"]) == (c["status"], c["amount"], c["payout_id"]), (got, c)
    for po in pos + pos2:
        assert final_state[po["id"]]["status"] == po["status"]
    orders = [list(mine), list(reversed(mine))] + [random.Random(seed).sample(mine, len(mine)) for seed in range(5)]
    for order in orders:
        proj = Projection()
        for e in order:
            assert proj.apply(e)
            assert not proj.apply(e)  # a second delivery of the same id changes nothing
        assert proj.state() == final_state

    # a replayed delivery (same body and signature) is verified and ignored by event id
    d = receiver.deliveries_of(p["id"])[0]
    before = dict(receiver.projection.effects)
    r = requests.post(f"http://127.0.0.1:{receiver.port}{d['path']}", data=d["body"],
                      headers={"Refport-Signature": d["headers"]["refport-signature"],
                               "Refport-Event-Id": d["headers"]["refport-event-id"],
                               "Content-Type": "application/json"}, timeout=10)
    assert r.status_code == 200
    assert dict(receiver.projection.effects) == before
    assert receiver.projection.duplicates[d["event"]["id"]] >= 1

    # the delivery log: one delivered row per event, attempts 1, last_status 200
    log = {x["event_id"]: x for x in deliveries(worker, ep["id"]) if x["event_id"] in by_id}
    assert set(log) == set(by_id)
    for x in log.values():
        assert (x["status"], x["attempts"], x["last_status"], x["last_error"], x["next_attempt_at"]) == \
            ("delivered", 1, 200, None, None), x
        assert x["delivered_at"] and x["event_type"] == by_id[x["event_id"]]["type"]


def test_lead_created_attributed_is_a_json_boolean(worker, stripe, receiver, endpoints):
    endpoints(receiver, ["lead.created"])
    p, pn, ln = new_setup(worker, stripe)
    attributed_customer(worker, ln)  # the track answer says "attributed": true
    ok(worker.post("/api/v1/track/lead", {"click_id": "clk_unknown", "customer_external_id": uid("c"), "program_id": p["id"]}))
    evs = wait_until(lambda: len(receiver.events(p["id"])) == 2 and receiver.events(p["id"]), what="two leads")
    flags = [e["data"]["attributed"] for e in evs]
    assert all(type(f) is bool for f in flags), flags
    assert sorted(flags) == [False, True]


# ----------------------------------------------------------------------------------------------
# 2. the receiver answers 500: retry state, no early resend, the resend is applied once
# ----------------------------------------------------------------------------------------------

def test_receiver_500_is_retried_with_backoff_and_applied_once(worker, stripe, receiver, endpoints):
    ep = endpoints(receiver, ["commission.created"])
    p, pn, ln = new_setup(worker, stripe)
    ext = attributed_customer(worker, ln)
    wait_until(lambda: len(receiver.events(p["id"])) == 1, what="the lead commission")

    # the next event: the receiver applies it, then crashes (500) before acknowledging
    receiver.fail_first = lambda e: e["data"].get("program_id") == p["id"] and e["data"].get("kind") == "sale"
    receiver.apply_before_fail = True
    _inv, cm = sale(worker, ext, 10000)
    wait_until(lambda: any(d["answered"] == 500 for d in receiver.deliveries_of(p["id"])), what="the first (failed) attempt")
    first = next(d for d in receiver.deliveries_of(p["id"]) if d["answered"] == 500)
    assert_signed(first, ep["secret"])
    eid = first["event"]["id"]
    assert first["event"]["data"]["id"] == cm["id"]

    def row():
        return next((x for x in deliveries(worker, ep["id"]) if x["event_id"] == eid), None)
    r1 = wait_until(lambda: (lambda x: x if x and x["attempts"] == 1 else None)(row()), what="attempt 1 recorded")
    assert (r1["status"], r1["attempts"], r1["last_status"], r1["delivered_at"]) == ("pending", 1, 500, None), r1
    assert "500" in r1["last_error"], r1
    wait_s = (ms(r1["next_attempt_at"]) - first["received_at"] * 1000) / 1000
    assert 50 <= wait_s <= 70, f"first backoff should be 1 minute, is {wait_s:.1f} s"

    # the cron does not resend before next_attempt_at
    cron(worker)
    cron(worker)
    time.sleep(0.5)
    assert receiver.seen[eid] == 1
    assert (row()["attempts"], row()["status"], row()["next_attempt_at"]) == (1, "pending", r1["next_attempt_at"])

    # a minute later the cron resends it: same event id, signed again; applied once in all
    assert advance_backoff(worker, ep["id"]) >= 1
    cron_until(worker, lambda: row()["status"] == "delivered", what="the retry delivered")
    r2 = row()
    assert (r2["attempts"], r2["last_status"], r2["last_error"], r2["next_attempt_at"]) == (2, 200, None, None), r2
    assert r2["delivered_at"]
    assert receiver.seen[eid] == 2
    second = [d for d in receiver.deliveries_of(p["id"]) if d["event"]["id"] == eid][1]
    assert_signed(second, ep["secret"])
    assert second["body"] == first["body"]
    assert receiver.projection.effects[eid] == 1 and receiver.projection.duplicates[eid] == 1


def test_receiver_500_every_time_backs_off_1m_then_5m(worker, stripe, receiver, endpoints):
    ep = endpoints(receiver, ["lead.created"])
    p, pn, ln = new_setup(worker, stripe)
    receiver.fail_all = lambda e: e["data"].get("program_id") == p["id"]
    attributed_customer(worker, ln)

    def row():
        rows = [x for x in deliveries(worker, ep["id"])]
        return rows[0] if rows else None
    r1 = wait_until(lambda: (lambda x: x if x and x["attempts"] == 1 else None)(row()), what="attempt 1")
    assert (r1["status"], r1["last_status"]) == ("pending", 500)
    t1 = time.time()
    assert 50_000 <= ms(r1["next_attempt_at"]) - t1 * 1000 <= 70_000
    advance_backoff(worker, ep["id"])
    cron_until(worker, lambda: row()["attempts"] == 2, what="attempt 2")
    r2 = row()
    assert (r2["status"], r2["last_status"]) == ("pending", 500), r2
    assert 290_000 <= ms(r2["next_attempt_at"]) - time.time() * 1000 <= 310_000, r2
    assert receiver.events(p["id"]) == [], "a 500 is never an acknowledgement"
    assert receiver.seen[r1["event_id"]] == 2


# ----------------------------------------------------------------------------------------------
# 3. first attempt right after the change, for every emitting API call
# ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("change", ["approve", "reject", "ban"])
def test_api_changes_are_delivered_right_away_without_the_cron(worker, stripe, receiver, endpoints, change):
    ep = endpoints(receiver, ["commission.updated"])
    p, pn, ln = new_setup(worker, stripe)
    attributed_customer(worker, ln)
    cm = ok(worker.get(f"/api/v1/commissions?partner_id={pn['id']}"))["data"][0]
    if change == "approve":
        ok(worker.post(f"/api/v1/commissions/{cm['id']}/approve"))
        want = "approved"
    elif change == "reject":
        ok(worker.post(f"/api/v1/commissions/{cm['id']}/reject", {"reason": "duplicate account"}))
        want = "rejected"
    else:
        ok(worker.patch(f"/api/v1/partners/{pn['id']}", {"status": "banned"}))
        want = "rejected"
    outbox = [e for e in outbox_events(worker, p["id"]) if e["type"] == "commission.updated"]
    assert [json.loads(e["payload"])["status"] for e in outbox] == [want], outbox
    deadline = time.time() + 5
    while time.time() < deadline and not receiver.events(p["id"]):
        time.sleep(0.2)
    evs = receiver.events(p["id"])
    log = worker.rows("SELECT status, attempts FROM webhook_deliveries WHERE endpoint_id = ?", ep["id"])
    assert [(e["type"], e["data"]["id"], e["data"]["status"]) for e in evs] == [("commission.updated", cm["id"], want)], log


# ----------------------------------------------------------------------------------------------
# 4. bad endpoint definitions write nothing
# ----------------------------------------------------------------------------------------------

BAD_CREATES = [
    ({"url": "http://hooks.example.com/refport", "events": ["lead.created"]}, 422, "invalid_url"),
    ({"url": "ftp://hooks.example.com/refport", "events": ["lead.created"]}, 422, "invalid_url"),
    ({"url": "hooks.example.com/refport", "events": ["lead.created"]}, 422, "invalid_url"),
    ({"url": "https://user:pw@hooks.example.com/refport", "events": ["lead.created"]}, 422, "invalid_url"),
    ({"url": "https://hooks.example.com/" + "a" * 2100, "events": ["lead.created"]}, 422, "invalid_url"),
    ({"url": "https://hooks.example.com/refport", "events": ["lead.made"]}, 422, "invalid_events"),
    ({"url": "https://hooks.example.com/refport", "events": ["commission.created", "Commission.Created"]}, 422, "invalid_events"),
    ({"url": "https://hooks.example.com/refport", "events": []}, 422, "invalid_events"),
    ({"url": "https://hooks.example.com/refport", "events": ["lead.created", "lead.created"]}, 422, "invalid_events"),
    ({"url": "https://hooks.example.com/refport", "events": ALL_EVENTS + ["lead.created"]}, 422, "invalid_events"),
    ({"url": "https://hooks.example.com/refport", "events": ["lead.created"], "description": "x" * 201}, 422, "invalid_description"),
    ({"url": "https://hooks.example.com/refport", "events": ["lead.created"], "secret": "whsec_mine"}, 400, "invalid_request"),
    ({"url": "https://hooks.example.com/refport"}, 400, "invalid_request"),
    ({"url": "https://hooks.example.com/refport", "events": "lead.created"}, 400, "invalid_request"),
    ({"url": 42, "events": ["lead.created"]}, 400, "invalid_request"),
]


@pytest.mark.parametrize("body,status,code", BAD_CREATES, ids=[f"{c}-{i}" for i, (_, _, c) in enumerate(BAD_CREATES)])
def test_bad_endpoint_definitions_are_refused_and_write_nothing(worker, body, status, code):
    before = worker.count("SELECT COUNT(*) FROM webhook_endpoints")
    r = worker.post(WEBHOOKS, body)
    assert r.status_code == status, (r.status_code, r.text)
    err = r.json()["error"]
    assert err["code"] == code, err
    assert err["message"]
    if status == 422:
        assert err["field"] in ("url", "events", "description"), err
    assert worker.count("SELECT COUNT(*) FROM webhook_endpoints") == before


def test_endpoint_api_refuses_malformed_json_missing_auth_and_track_keys(worker):
    before = worker.count("SELECT COUNT(*) FROM webhook_endpoints")
    r = worker.request("POST", WEBHOOKS, data="{not json", headers={"Content-Type": "application/json"})
    assert (r.status_code, r.json()["error"]["code"]) == (400, "invalid_json")
    good = {"url": "https://hooks.example.com/refport", "events": ["lead.created"]}
    r = worker.post(WEBHOOKS, good, key=None)
    assert r.status_code == 401
    key = ok(worker.post("/api/v1/api-keys", {"name": "backend", "permissions": ["track"]}), 201)["key"]
    for method, path in [("POST", WEBHOOKS), ("GET", WEBHOOKS)]:
        r = worker.request(method, path, good if method == "POST" else None, key=key)
        assert r.status_code == 403, (method, r.status_code, r.text)
    assert worker.count("SELECT COUNT(*) FROM webhook_endpoints") == before


def test_endpoint_create_answers_the_secret_once_and_lists_without_it(worker, receiver, endpoints):
    ep = endpoints(receiver, ["payout.paid", "lead.created"], description="  ops  ")
    assert set(ep) >= {"id", "url", "events", "description", "created_at", "secret"}
    assert ep["id"].startswith("we_") and ep["events"] == ["payout.paid", "lead.created"]
    assert ep["description"] == "ops"
    listed = [e for e in ok(worker.get(f"{WEBHOOKS}?limit=100"))["data"] if e["id"] == ep["id"]]
    assert len(listed) == 1 and "secret" not in listed[0], listed
    assert listed[0]["url"] == ep["url"]
    # the secret is stored nowhere (derived): not in the endpoint row
    row = worker.rows("SELECT * FROM webhook_endpoints WHERE id = ?", ep["id"])[0]
    assert ep["secret"] not in json.dumps(row)
    # localhost http is allowed (local development); https elsewhere
    assert ep["url"].startswith("http://127.0.0.1:")


# ----------------------------------------------------------------------------------------------
# 5. subscriptions and DELETE
# ----------------------------------------------------------------------------------------------

def test_only_subscribed_event_types_are_delivered(worker, stripe, receiver, endpoints):
    leads = endpoints(receiver, ["lead.created"])
    payouts = endpoints(receiver, ["payout.paid", "payout.failed"])
    p, pn, ln = new_setup(worker, stripe)
    ext = attributed_customer(worker, ln)
    sale(worker, ext, 10000)
    wait_until(lambda: receiver.events(p["id"], leads["_path"]), what="the lead")
    time.sleep(1)
    assert [e["type"] for e in receiver.events(p["id"], leads["_path"])] == ["lead.created"]
    assert receiver.deliveries_of(p["id"], payouts["_path"]) == []
    ids = {e["id"] for e in outbox_events(worker, p["id"]) if e["type"] != "lead.created"}
    assert ids, "commission events exist in the outbox"
    assert worker.count("SELECT COUNT(*) FROM webhook_deliveries WHERE endpoint_id = ?", payouts["id"]) == 0


def test_delete_stops_deliveries(worker, stripe, receiver, endpoints):
    ep = endpoints(receiver, ["lead.created", "commission.created"])
    p, pn, ln = new_setup(worker, stripe)
    ext = attributed_customer(worker, ln)
    wait_until(lambda: len(receiver.events(p["id"])) == 2, what="lead + commission delivered")

    # one delivery left pending (the receiver answers 500), then the endpoint is deleted
    receiver.fail_all = lambda e: e["data"].get("program_id") == p["id"]
    sale(worker, ext, 10000)
    wait_until(lambda: any(x["status"] == "pending" and x["attempts"] == 1 for x in deliveries(worker, ep["id"])),
               what="a pending delivery")
    body = ok(worker.delete(f"{WEBHOOKS}/{ep['id']}"))
    assert body == {"id": ep["id"], "deleted": True}
    rows = worker.rows("SELECT status, last_error, next_attempt_at FROM webhook_deliveries WHERE endpoint_id = ?", ep["id"])
    assert sorted(r["status"] for r in rows) == ["delivered", "delivered", "failed"], rows
    assert [(r["last_error"], r["next_attempt_at"]) for r in rows if r["status"] == "failed"] == [("endpoint deleted", None)]

    n_rows = len(rows)
    n_seen = len(receiver.deliveries_of(p["id"]))
    receiver.fail_all = None
    ext2 = attributed_customer(worker, ln)
    sale(worker, ext2, 10000)
    advance_backoff(worker, ep["id"])
    cron(worker)
    time.sleep(1)
    assert worker.count("SELECT COUNT(*) FROM webhook_deliveries WHERE endpoint_id = ?", ep["id"]) == n_rows
    assert len(receiver.deliveries_of(p["id"])) == n_seen
    assert worker.get(f"{WEBHOOKS}/{ep['id']}/deliveries").status_code == 404
    assert worker.delete(f"{WEBHOOKS}/{ep['id']}").status_code == 404
    assert ep["id"] not in [e["id"] for e in ok(worker.get(f"{WEBHOOKS}?limit=100"))["data"]]


# ----------------------------------------------------------------------------------------------
# 6. the outbox never loses an event while the receiver is down
# ----------------------------------------------------------------------------------------------

def test_outbox_keeps_events_while_the_receiver_is_down(worker, stripe, receiver, endpoints):
    ep = endpoints(receiver, ["lead.created", "commission.created"])
    receiver.stop()  # the port is closed: connection refused
    p, pn, ln = new_setup(worker, stripe)
    ext = attributed_customer(worker, ln)
    inv, cm = sale(worker, ext, 10000)
    outbox = [e for e in outbox_events(worker, p["id"]) if e["type"] in ("lead.created", "commission.created")]
    assert Counter(e["type"] for e in outbox) == {"lead.created": 1, "commission.created": 2}, outbox

    def mine():
        ids = {e["id"] for e in outbox}
        return [x for x in deliveries(worker, ep["id"]) if x["event_id"] in ids]
    wait_until(lambda: len(mine()) == 3 and all(x["attempts"] == 1 for x in mine()), what="3 failed first attempts")
    for x in mine():
        assert (x["status"], x["attempts"], x["last_status"], x["delivered_at"]) == ("pending", 1, None, None), x
        assert x["last_error"], x
        assert ms(x["next_attempt_at"]) > time.time() * 1000 + 30_000, x
    cron(worker)  # nothing is due yet
    assert all((x["status"], x["attempts"]) == ("pending", 1) for x in mine())

    receiver.start()  # back on the same port
    time.sleep(0.5)
    assert all(x["status"] == "pending" for x in mine()), "the pending deliveries are still there"
    assert {e["id"] for e in outbox} <= {e["id"] for e in outbox_events(worker, p["id"])}  # (the cron adds approvals)
    assert advance_backoff(worker, ep["id"]) >= 3
    cron_until(worker, lambda: all(x["status"] == "delivered" for x in mine()), what="all delivered after restart")
    assert all((x["attempts"], x["last_status"]) == (2, 200) for x in mine()), mine()
    got = receiver.events(p["id"])
    assert {e["id"] for e in got} == {e["id"] for e in outbox}
    for d in receiver.deliveries_of(p["id"]):
        assert_signed(d, ep["secret"])
    assert set(receiver.projection.effects[e["id"]] for e in got) == {1}
    assert {e["data"]["id"] for e in got if e["type"] == "commission.created"} >= {cm["id"]}


# ----------------------------------------------------------------------------------------------
# 7. every event, fired by its change, with its payload (issue 17)
# ----------------------------------------------------------------------------------------------

def of_type(receiver, program_id, event_type, subject=None):
    return [e for e in receiver.events(program_id)
            if e["type"] == event_type and (subject is None or e["data"]["id"] == subject)]


def wait_events(worker, receiver, program_id, event_type, n=1, subject=None, what=None):
    """Waits (running the cron, which delivers what the request did not) for n events."""
    cron_until(worker, lambda: len(of_type(receiver, program_id, event_type, subject)) >= n,
               what=what or f"{n} {event_type}")
    return of_type(receiver, program_id, event_type, subject)


def same_batch(worker, event_ids):
    """The outbox rows of these events: one created_at (they were written by one batch)."""
    marks = ",".join("?" * len(event_ids))
    rows = worker.rows(f"SELECT created_at FROM webhook_events WHERE id IN ({marks})", *event_ids)
    return len(rows) == len(event_ids) and len({r["created_at"] for r in rows}) == 1


def get_commission(worker, cid):
    return ok(worker.get(f"/api/v1/commissions/{cid}"))


LATER = ("status", "approved_at", "updated_at")


def snapshot_of(worker, data):
    """A conversion's commission as the event captured it (pending, just created) is the GET
    object field for field, but for what the cron's approval (hold 0) may have changed since."""
    api = get_commission(worker, data["id"])
    assert set(data) == set(api), (data, api)
    assert {k: v for k, v in data.items() if k not in LATER} == {k: v for k, v in api.items() if k not in LATER}, (data, api)
    assert data["status"] == "pending" and data["approved_at"] is None and data["updated_at"] == data["created_at"], data
    return True


def test_partner_events_enrolment_update_and_ban(worker, stripe, receiver, endpoints):
    endpoints(receiver, ["partner.enrolled", "partner.updated", "partner.banned", "commission.updated"])
    p = program(worker)

    # API create (active): partner.enrolled, the partner exactly as GET answers it
    pn = worker.partner(p)
    [ev] = wait_events(worker, receiver, p["id"], "partner.enrolled", subject=pn["id"])
    assert ev["data"] == ok(worker.get(f"/api/v1/partners/{pn['id']}")), ev
    assert ev["data"]["status"] == "active"

    # created invited: not enrolled until the invitation is accepted
    invited = ok(worker.post(f"/api/v1/programs/{p['id']}/partners",
                             {"email": f"{uid('inv')}@partners.test", "name": "Ivy", "invite": True}), 201)
    time.sleep(1)
    assert of_type(receiver, p["id"], "partner.enrolled", invited["id"]) == []
    token = invited["invitation"]["accept_url"].split("token=", 1)[1]
    ok(worker.post("/api/v1/invites/accept", {"token": token}, key=None))
    [ev] = wait_events(worker, receiver, p["id"], "partner.enrolled", subject=invited["id"])
    assert ev["data"]["status"] == "active" and ev["data"] == ok(worker.get(f"/api/v1/partners/{invited['id']}"))
    assert worker.post("/api/v1/invites/accept", {"token": token}, key=None).status_code == 409

    # portal sign-up (embed token for a new email): enrolled once, however often it is repeated
    email = f"{uid('portal')}@partners.test"
    tok = ok(worker.post("/api/v1/embed-tokens", {"program_id": p["id"], "partner": {"email": email, "name": "Pat"}}), 201)
    ok(worker.post("/api/v1/embed-tokens", {"program_id": p["id"], "partner": {"email": email, "name": "Pat"}}), 201)
    [ev] = wait_events(worker, receiver, p["id"], "partner.enrolled", subject=tok["partner_id"])
    assert ev["data"]["email"] == email
    time.sleep(0.5)
    cron(worker)
    assert len(of_type(receiver, p["id"], "partner.enrolled", tok["partner_id"])) == 1

    # PATCH: partner.updated with the partner as written
    ok(worker.patch(f"/api/v1/partners/{pn['id']}", {"name": "Renamed"}))
    [ev] = wait_events(worker, receiver, p["id"], "partner.updated", subject=pn["id"])
    assert ev["data"]["name"] == "Renamed" and ev["data"] == ok(worker.get(f"/api/v1/partners/{pn['id']}"))
    assert of_type(receiver, p["id"], "partner.banned") == []

    # ban: partner.updated + partner.banned + the open commission rejected, all in one batch
    ln = worker.link(pn, p)
    attributed_customer(worker, ln)
    [cm] = ok(worker.get(f"/api/v1/commissions?partner_id={pn['id']}"))["data"]
    ok(worker.patch(f"/api/v1/partners/{pn['id']}", {"status": "banned"}))
    [banned] = wait_events(worker, receiver, p["id"], "partner.banned", subject=pn["id"])
    updates = wait_events(worker, receiver, p["id"], "partner.updated", n=2, subject=pn["id"])
    [rejected] = wait_events(worker, receiver, p["id"], "commission.updated", subject=cm["id"])
    assert banned["data"]["status"] == "banned" and banned["data"] == ok(worker.get(f"/api/v1/partners/{pn['id']}"))
    assert rejected["data"]["status"] == "rejected" and rejected["data"]["reason"] == "partner_banned"
    last_update = max(updates, key=lambda e: e["created_at"])
    assert last_update["data"] == banned["data"]
    assert same_batch(worker, [banned["id"], last_update["id"], rejected["id"]])


def test_lead_and_sale_created_from_the_api_carry_their_commission(worker, stripe, receiver, endpoints):
    endpoints(receiver, ["lead.created", "sale.created"])
    p, pn, ln = new_setup(worker, stripe)
    cid = worker.click_id(ln)
    assert worker.wait_count("SELECT COUNT(*) FROM clicks WHERE id=?", cid, expect=1) == 1
    ext = uid("cust")
    lead = ok(worker.post("/api/v1/track/lead", {"click_id": cid, "customer_external_id": ext}))
    inv, cm = sale(worker, ext, 25000)
    ok(worker.post("/api/v1/track/sale", {"customer_external_id": ext, "amount": 25000, "currency": "usd",
                                          "invoice_id": inv}))  # a retry: no second event
    [lev] = wait_events(worker, receiver, p["id"], "lead.created")
    [sev] = wait_events(worker, receiver, p["id"], "sale.created")
    d = lev["data"]
    assert (d["id"], d["kind"], d["customer_external_id"], d["partner_id"], d["click_id"], d["attributed"], d["reason"]) == \
        (lead["event"]["id"], "lead", ext, pn["id"], cid, True, None), d
    assert d["commission"]["id"] == lead["commission"]["id"] and snapshot_of(worker, d["commission"])
    d = sev["data"]
    assert (d["kind"], d["invoice_id"], d["amount"], d["currency"], d["partner_id"], d["attributed"]) == \
        ("sale", inv, 25000, "usd", pn["id"], True), d
    assert d["commission"]["id"] == cm["id"] and snapshot_of(worker, d["commission"])
    assert d["commission"]["amount"] == 5000
    # an unattributed sale is a sale.created too, without a commission
    ok(worker.post("/api/v1/track/sale", {"customer_external_id": uid("nobody"), "amount": 100, "currency": "usd",
                                          "invoice_id": uid("inv"), "program_id": p["id"]}))
    sales = wait_events(worker, receiver, p["id"], "sale.created", n=2)
    other = next(e for e in sales if e["id"] != sev["id"])
    assert (other["data"]["attributed"], other["data"]["commission"], other["data"]["partner_id"]) == (False, None, None)
    time.sleep(0.5)
    cron(worker)
    assert len(of_type(receiver, p["id"], "sale.created")) == 2 and len(of_type(receiver, p["id"], "lead.created")) == 1


def test_lead_and_sale_created_from_a_stripe_tracked_checkout(worker, stripe, receiver, endpoints):
    from test_stripe_tracking import checkout, deliver_all, events_of, referral
    endpoints(receiver, ["lead.created", "sale.created", "commission.created"])
    p, pn, cid = referral(worker)
    co = checkout(stripe, mode="payment", amount=4900, currency="usd", client_reference_id=cid, create_customer=True)
    deliver_all(worker, stripe, events_of(worker, stripe, co["events"]))
    [lev] = wait_events(worker, receiver, p["id"], "lead.created")
    [sev] = wait_events(worker, receiver, p["id"], "sale.created")
    assert lev["data"]["partner_id"] == pn["id"] and lev["data"]["click_id"] == cid
    assert lev["data"]["customer_external_id"] == co["customer"]
    assert (sev["data"]["invoice_id"], sev["data"]["amount"], sev["data"]["partner_id"]) == (co["payment_intent"], 4900, pn["id"])
    assert sev["data"]["metadata"]["stripe_checkout_session"] == co["session"]["id"]
    assert sev["data"]["commission"]["amount"] == 980
    assert snapshot_of(worker, sev["data"]["commission"])
    created = wait_events(worker, receiver, p["id"], "commission.created", n=2)
    assert {e["data"]["id"] for e in created} == {lev["data"]["commission"]["id"], sev["data"]["commission"]["id"]}
    # each conversion's events were written in the batch that recorded it
    for conv in (lev, sev):
        cm_ev = next(e for e in created if e["data"]["id"] == conv["data"]["commission"]["id"])
        assert same_batch(worker, [conv["id"], cm_ev["id"]])


def test_commission_events_carry_the_get_commission_object(worker, stripe, receiver, endpoints):
    endpoints(receiver, ["commission.created", "commission.updated", "commission.approved", "commission.paid",
                         "payout.paid"])
    # held 30 days: nothing changes a commission until the test says so (then hold 0, the cron)
    p = worker.program(hold_days=30, payout_schedule={"every": "day"}, min_payout=1000, payout_currency="usd")
    pn = worker.partner(p)
    ln = worker.link(pn, p)
    ext = attributed_customer(worker, ln)
    [lead_cm] = ok(worker.get(f"/api/v1/commissions?partner_id={pn['id']}"))["data"]
    _inv, cm = sale(worker, ext, 30000)

    # commission.created: at creation, the payload IS what GET answers (nothing changed since)
    created = wait_events(worker, receiver, p["id"], "commission.created", n=2)
    for e in created:
        api = get_commission(worker, e["data"]["id"])
        assert e["data"] == api, (e["data"], api)
        assert set(e["data"]) == set(api) and len(set(api)) >= 24  # every field, none missing
    # GET /commissions/{id} is also the list's object
    listed = {c["id"]: c for c in ok(worker.get(f"/api/v1/commissions?partner_id={pn['id']}"))["data"]}
    for e in created:
        assert listed[e["data"]["id"]] == e["data"]

    # approval by the API: commission.updated + commission.approved, one batch, the approved row
    ok(worker.post(f"/api/v1/commissions/{lead_cm['id']}/approve"))
    [appr] = wait_events(worker, receiver, p["id"], "commission.approved", subject=lead_cm["id"])
    [upd] = wait_events(worker, receiver, p["id"], "commission.updated", subject=lead_cm["id"])
    assert appr["data"] == upd["data"] == get_commission(worker, lead_cm["id"])
    assert appr["data"]["status"] == "approved" and appr["data"]["approved_at"]
    assert same_batch(worker, [appr["id"], upd["id"]])

    # the cron approves the sale (hold 0) and pays both: approved, then paid, each as written
    ok(worker.patch(f"/api/v1/programs/{p['id']}", {"hold_days": 0}))
    enable_payouts(worker, stripe, pn)
    cron(worker)
    [appr2] = wait_events(worker, receiver, p["id"], "commission.approved", subject=cm["id"])
    assert appr2["data"]["status"] == "approved" and appr2["data"]["payout_id"] is None
    paid = wait_events(worker, receiver, p["id"], "commission.paid", n=2)
    assert {e["data"]["id"] for e in paid} == {lead_cm["id"], cm["id"]}
    [po] = wait_events(worker, receiver, p["id"], "payout.paid")
    for e in paid:
        api = get_commission(worker, e["data"]["id"])
        assert e["data"] == api, (e["data"], api)
        assert (api["status"], api["payout_id"]) == ("paid", po["data"]["id"])
        assert same_batch(worker, [e["id"], po["id"]])
    # payout payload = the payout as the API lists it
    assert po["data"] == next(x for x in payouts_of(worker, pn) if x["id"] == po["data"]["id"])

    # ordering: the latest commission.updated of each commission (by created_at, then status)
    # is the commission as it is now; the payloads are snapshots, one per change
    updates = of_type(receiver, p["id"], "commission.updated", cm["id"])
    assert [e["data"]["status"] for e in sorted(updates, key=lambda e: (e["created_at"], STATUS_RANK[e["data"]["status"]]))] \
        == ["approved", "paid"], updates
    assert receiver.projection.state()[cm["id"]] == get_commission(worker, cm["id"])
    assert worker.get("/api/v1/commissions/cm_doesnotexist").status_code == 404
    assert worker.get("/api/v1/commissions/nope").status_code == 404


def test_payout_failed_and_reversed_events(worker, stripe, receiver, endpoints):
    endpoints(receiver, ["payout.failed", "payout.paid", "payout.reversed"])
    p, pn, ln = new_setup(worker, stripe)
    ext = attributed_customer(worker, ln)
    sale(worker, ext, 30000)
    acct = enable_payouts(worker, stripe, pn)
    ctl(stripe, "POST", f"accounts/{acct}/disable_transfers")
    cron(worker)
    [failed] = wait_events(worker, receiver, p["id"], "payout.failed")
    assert failed["data"]["status"] == "failed" and failed["data"]["failure_message"]
    ctl(stripe, "POST", f"accounts/{acct}/complete_onboarding")
    ok(deliver(worker, stripe, last_account_event(stripe, acct)))
    cron(worker)
    [paid] = wait_events(worker, receiver, p["id"], "payout.paid")
    tr = paid["data"]["stripe_transfer_id"]
    r = requests.post(f"{stripe}/v1/transfers/{tr}/reversals", data={"amount": 1000}, timeout=30,
                      headers={"Authorization": f"Bearer {worker.secrets['STRIPE_SECRET_KEY']}"})
    assert r.status_code == 200, r.text
    [rev] = [e for e in ctl(stripe, "GET", "state")["events"]
             if e["type"] == "transfer.reversed" and e["data"]["object"]["id"] == tr]
    ok(deliver(worker, stripe, rev))
    [reversed_] = wait_events(worker, receiver, p["id"], "payout.reversed")
    assert reversed_["data"]["id"] == paid["data"]["id"] and reversed_["data"]["reversed_amount"] == 1000


# ----------------------------------------------------------------------------------------------
# 8. the delivery log and resend through the API
# ----------------------------------------------------------------------------------------------

def test_deliveries_list_and_resend(worker, stripe, receiver, endpoints):
    ep = endpoints(receiver, ["lead.created"])
    p, pn, ln = new_setup(worker, stripe)
    receiver.fail_all = lambda e: e["data"].get("program_id") == p["id"]
    attributed_customer(worker, ln)

    def row():
        rows = deliveries(worker, ep["id"])
        return rows[0] if rows else None
    r1 = wait_until(lambda: (lambda x: x if x and x["attempts"] == 1 else None)(row()), what="attempt 1")
    assert (r1["status"], r1["last_status"], r1["endpoint_id"]) == ("pending", 500, ep["id"])
    eid = r1["event_id"]

    # resend while the receiver still fails: one more attempt now, recorded, next retry later
    r = ok(worker.post(f"/api/v1/webhook-deliveries/{r1['id']}/resend"))
    assert (r["id"], r["status"], r["attempts"], r["last_status"]) == (r1["id"], "pending", 2, 500), r
    assert ms(r["next_attempt_at"]) > time.time() * 1000 + 200_000  # the 5 minute backoff
    assert receiver.seen[eid] == 2

    # the receiver recovers: resend delivers now, same event id and body, signed anew
    receiver.fail_all = None
    r = ok(worker.post(f"/api/v1/webhook-deliveries/{r1['id']}/resend"))
    assert (r["status"], r["attempts"], r["last_status"], r["last_error"], r["next_attempt_at"]) == \
        ("delivered", 3, 200, None, None), r
    got = [d for d in receiver.deliveries_of(p["id"]) if d["event"]["id"] == eid]
    assert len(got) == 3 and len({d["body"] for d in got}) == 1
    for d in got:
        assert_signed(d, ep["secret"])

    # a delivered delivery can be resent too (the receiver dedupes by event id)
    r = ok(worker.post(f"/api/v1/webhook-deliveries/{r1['id']}/resend"))
    assert (r["status"], r["attempts"], r["last_status"]) == ("delivered", 4, 200)
    assert receiver.seen[eid] == 4 and receiver.projection.effects[eid] == 1
    assert [x["id"] for x in deliveries(worker, ep["id"])] == [r1["id"]]
    assert deliveries(worker, ep["id"])[0]["attempts"] == 4

    # scope: malformed / unknown ids are 404, a track key 403, another program's key 404
    assert worker.post("/api/v1/webhook-deliveries/nope/resend").status_code == 404
    assert worker.post("/api/v1/webhook-deliveries/wd_000000000000000000000000/resend").status_code == 404
    track = ok(worker.post("/api/v1/api-keys", {"name": "t", "permissions": ["track"]}), 201)["key"]
    assert worker.post(f"/api/v1/webhook-deliveries/{r1['id']}/resend", key=track).status_code == 403
    other = program(worker)
    bound = ok(worker.post("/api/v1/api-keys", {"name": "b", "program_id": other["id"],
                                                "permissions": ["read", "write"]}), 201)["key"]
    assert worker.post(f"/api/v1/webhook-deliveries/{r1['id']}/resend", key=bound).status_code == 404
    assert worker.get(f"{WEBHOOKS}/{ep['id']}/deliveries", key=bound).status_code == 404
    assert worker.get("/api/v1/commissions/" + ok(worker.get(f"/api/v1/commissions?partner_id={pn['id']}"))["data"][0]["id"],
                      key=bound).status_code == 404
    # a deleted endpoint's deliveries cannot be resent
    ok(worker.delete(f"{WEBHOOKS}/{ep['id']}"))
    assert worker.post(f"/api/v1/webhook-deliveries/{r1['id']}/resend").status_code == 404
    assert receiver.seen[eid] == 4


# ----------------------------------------------------------------------------------------------
# 9. allowed_hosts: localhost (any port), and the portal framable from the merchant's local app
# ----------------------------------------------------------------------------------------------

def frame_ancestor_allows(csp, origin):
    """Whether a CSP's frame-ancestors lets `origin` (scheme://host[:port]) frame the page, per
    CSP3 host-source matching (a scheme-less source matches the page's scheme, here http)."""
    directive = next((d.strip() for d in csp.split(";") if d.strip().startswith("frame-ancestors")), None)
    assert directive, csp
    scheme, rest = origin.split("://", 1)
    host, _, port = rest.partition(":")
    port = port or {"http": "80", "https": "443"}[scheme]
    for src in directive.split()[1:]:
        if src == "'self'":
            continue
        m = re.fullmatch(r"(?:(https?)://)?([^:/]+)(?::(\*|\d+))?", src)
        if not m:
            continue
        s_scheme, s_host, s_port = m.groups()
        if (s_scheme or "http") != scheme and not (s_scheme is None and scheme == "https"):
            continue
        if s_host != host:
            continue
        if s_port == "*" or (s_port or {"http": "80", "https": "443"}[s_scheme or "http"]) == port:
            return True
    return False


def test_localhost_allowed_host_and_portal_framable_from_localhost(worker):
    p = worker.program(allowed_hosts=["acme-local.test", "LocalHost"])
    assert p["allowed_hosts"] == ["acme-local.test", "localhost"], p
    r = worker.patch(f"/api/v1/programs/{p['id']}", {"allowed_hosts": ["localhost:3000"]})
    assert r.status_code == 422 and r.json()["error"]["field"] == "allowed_hosts[0]", r.text
    r = worker.patch(f"/api/v1/programs/{p['id']}", {"domains": ["localhost"]})
    assert r.status_code == 422 and r.json()["error"]["field"] == "domains[0]", r.text
    assert ok(worker.patch(f"/api/v1/programs/{p['id']}", {"allowed_hosts": ["localhost", "127.0.0.1"]}))["allowed_hosts"] \
        == ["localhost", "127.0.0.1"]
    pn = worker.partner(p)
    ln = ok(worker.post(f"/api/v1/partners/{pn['id']}/links", {"url": "http://localhost:3000/pricing"}), 201)
    assert ln["url"] == "http://localhost:3000/pricing"
    r = worker.post(f"/api/v1/partners/{pn['id']}/links", {"url": "http://localhost.evil.test/"})
    assert r.status_code == 422 and r.json()["error"]["code"] == "host_not_allowed"

    tok = ok(worker.post("/api/v1/embed-tokens", {"program_id": p["id"], "partner_id": pn["id"]}), 201)["token"]
    r = requests.get(f"{worker.base}/embed/referrals?token={tok}", timeout=30)
    assert r.status_code == 200, r.text[:300]
    csp = r.headers["content-security-policy"]
    for origin in ["http://localhost:3000", "http://localhost:5173", "https://localhost:8443", "http://127.0.0.1:3000"]:
        assert frame_ancestor_allows(csp, origin), (origin, csp)
    for origin in ["http://evil.test", "http://localhost.evil.test:3000", "https://acme-local.test"]:
        assert not frame_ancestor_allows(csp, origin), (origin, csp)
    assert "x-frame-options" not in {k.lower() for k in r.headers}
