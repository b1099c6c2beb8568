"""The payout run of the benchmark (section (d) of bench/README.md), driven by bench/driver.py.

One Refport `wrangler dev` of its own (own ports, own --persist-to) with STRIPE_API_BASE on the
Stripe fake of tests/stripe_fake (its own process), the payout vars the e2e tests use, and N
partners (BENCH_PAYOUT_PARTNERS) who are all due today:

1. one template partner is made entirely through Refport's API, the way a real one is: a program
   with a daily payout schedule, the partner, a link, a real click, a lead and a sale (two
   commissions), Stripe onboarding through `POST /partners/{id}/stripe/onboard` (the Express
   account in the fake), onboarding completed in the fake, whose signed `account.updated` goes
   to Refport's Connect webhook (payouts enabled from a fresh account read), and both
   commissions approved through `POST /commissions/{id}/approve`;
2. the fake gets N-1 more Express accounts, created with the parameters Refport's own
   `create_account` sends, onboarding completed (transfers active, payouts enabled);
3. with that Worker stopped, every row the API wrote for the template (partner, link, click,
   customer, events, commissions, their audit rows, outbox events, Stripe events received) is
   copied N-1 times into its local D1 file with fresh ids of the same kinds (and fresh unique
   values: email, link key, customer, invoice, Stripe account), foreign keys checked;
4. the Worker is started again (so its isolate counters cover the payout run alone), the
   platform balance is set, and the cron is triggered the way the tests do
   (`/cdn-cgi/handler/scheduled`) as many times as it takes, each time after the previous run's
   work has settled (its queue messages consumed, nothing in flight, no payout moving);
5. checked: N payouts paid in D1, one per partner; the fake's transfers (every page of
   `GET /v1/transfers`) counted per destination: exactly one per partner's account, none twice,
   none elsewhere.
"""

import concurrent.futures
import hashlib
import hmac
import http.client
import json
import re
import secrets as pysecrets
import sqlite3
import threading
import time
import urllib.parse

CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
ALNUM = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
PAY_DOMAIN = "pay.bench.test"
# Distinctive template values: each is replaced by its clone's value wherever it appears.
TPL_EMAIL = "tplpartner7q@payouts.bench.test"
TPL_NAME = "Payout Partner tpl7q"
TPL_KEY = "tplkey7q"
TPL_CUSTOMER = "tplcust7q"
TPL_INVOICE = "tplinv7q"
SALE_AMOUNT = 10000  # 20 % -> 2,000 + the 500 lead reward = 2,500 per partner


def ulid_id(prefix, now_ms):
    """An id as Refport makes them (core/src/ids.rs): prefix_ + 48-bit ms time + 80 random bits,
    Crockford base32, 26 characters."""
    v = ((now_ms & ((1 << 48) - 1)) << 80) | int.from_bytes(pysecrets.token_bytes(10), "big")
    return prefix + "_" + "".join(CROCKFORD[(v >> (i * 5)) & 31] for i in range(25, -1, -1))


def stripe_like_id(prefix, n):
    return prefix + "".join(pysecrets.choice(ALNUM) for _ in range(n))


def b32_80(b):
    v = int.from_bytes(b[:10], "big")
    return "".join(CROCKFORD[(v >> (i * 5)) & 31] for i in range(15, -1, -1))


def click_key(salt):
    """The click-id MAC key (core/src/click_id.rs `derive_key`): HMAC-SHA256(IP_HASH_SALT,
    "refport click id v1")."""
    return hmac.new(salt.encode(), b"refport click id v1", hashlib.sha256).digest()


def click_mac(salt, stamp, link_id, v2=False):
    """The MAC of a signed click id (core/src/click_id.rs): the first 80 bits of HMAC-SHA256,
    under `click_key`, of "<stamp>|<link id>" (v1) or "v2|<stamp>|<link id>" (v2), Crockford
    base32."""
    msg = ("v2|" if v2 else "") + f"{stamp}|{link_id}"
    return b32_80(hmac.new(click_key(salt), msg.encode(), hashlib.sha256).digest())


def stamp_value(stamp):
    return sum(CROCKFORD.index(c) << (5 * (25 - i)) for i, c in enumerate(stamp.upper()))


def stamp_of(value):
    return "".join(CROCKFORD[(value >> (i * 5)) & 31] for i in range(25, -1, -1))


HOUR_MS = 3_600_000
V2_FLAG_BITS = 5


def fresh_click_like(old, now_ms, link_old, link_new, salt):
    """A new click id like `old`, for the copy's link: a plain time-ordered id when `old` is one;
    a v1 signed id (random stamp) for a v1 one; for a v2 one (core/src/click_id.rs `issue_v2`),
    the stamp of the hour bucket of `now_ms` with 75 fresh visitor bits (so the copies never
    share a row) and `old`'s 5 flag bits (so their leads meet the same fraud rules)."""
    body = old.split("_", 1)[1]
    if len(body) == 26:
        return ulid_id("clk", now_ms)
    stamp, given, link_body = body[:26], body[26:42], body[42:]
    if link_old != "link_" + link_body or not salt:
        raise RuntimeError(f"click id {old!r} is not signed the way bench/payouts.py signs them: teach it")
    if click_mac(salt, stamp, link_old) == given:
        new_stamp = ulid_id("clk", now_ms)[4:]
        return f"clk_{new_stamp}{click_mac(salt, new_stamp, link_new)}{link_new[5:]}"
    if click_mac(salt, stamp, link_old, v2=True) == given:
        flags = stamp_value(stamp) & ((1 << V2_FLAG_BITS) - 1)
        visitor = int.from_bytes(pysecrets.token_bytes(10), "big") >> (80 - 75)
        at = now_ms - now_ms % HOUR_MS
        new_stamp = stamp_of(((at & ((1 << 48) - 1)) << 80) | (visitor << V2_FLAG_BITS) | flags)
        return f"clk_{new_stamp}{click_mac(salt, new_stamp, link_new, v2=True)}{link_new[5:]}"
    raise RuntimeError(f"click id {old!r} is not signed the way bench/payouts.py signs them: teach it")


def fresh_like(old, now_ms, stripe=False):
    """A new id of the same kind and shape as `old`: Refport's time-ordered ids, the outbox's
    `evt_` + random hex (made in SQL), or Stripe's own ids."""
    prefix, _, body = old.partition("_")
    if stripe:
        return stripe_like_id(prefix + "_" + body[:1], len(body) - 1)
    if re.fullmatch(r"[0-9A-HJKMNP-TV-Z]{26}", body):
        return ulid_id(prefix, now_ms)
    if re.fullmatch(r"[0-9a-f]+", body) and len(body) % 2 == 0:
        return prefix + "_" + pysecrets.token_hex(len(body) // 2)
    raise RuntimeError(f"do not know how to make an id like {old!r}: teach bench/payouts.py")


class Http:
    """HTTP/1.1 to one 127.0.0.1 port (stdlib): a keep-alive connection per thread, or a new
    connection per request (`keepalive=False`: the Stripe fake writes its headers and body in two
    sends, and on a kept-alive connection Nagle's algorithm then waits for the client's delayed
    ACK, about 40 ms per answer; a fresh connection is still in quick-ACK mode, about 2 ms)."""

    def __init__(self, port, keepalive=True):
        self.port = port
        self.keepalive = keepalive
        self.local = threading.local()

    def call(self, method, path, body=None, headers=None, form=None, timeout=60):
        h = dict(headers or {})
        data = None
        if form is not None:
            data = urllib.parse.urlencode(form).encode()
            h["Content-Type"] = "application/x-www-form-urlencoded"
        elif body is not None:
            data = json.dumps(body).encode()
            h["Content-Type"] = "application/json"
        for attempt in (1, 2):
            c = getattr(self.local, "conn", None)
            if c is None:
                c = self.local.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
            try:
                c.request(method, path, body=data, headers=h)
                r = c.getresponse()
                raw = r.read()
                if not self.keepalive:
                    c.close()
                    self.local.conn = None
                return r.status, raw
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                c.close()
                self.local.conn = None
                if attempt == 2:
                    raise

    def json(self, method, path, body=None, headers=None, form=None, expect=(200, 201)):
        status, raw = self.call(method, path, body, headers, form)
        if status not in expect:
            raise RuntimeError(f"{method} :{self.port}{path} -> {status}: {raw[:500]!r}")
        return json.loads(raw) if raw else None


def wait_for(what, fn, timeout=60.0, every=0.1):
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v:
            return v
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(every)


# -- 1. the template partner, through the API ----------------------------------------------------

def make_template(rp, admin, fake, secrets_, db_path, browser_ua):
    """Everything through Refport's API; answers the template's ids."""
    auth = {"Authorization": f"Bearer {admin}"}
    prog = rp.json("POST", "/api/v1/programs", {
        "name": "Bench payouts", "domains": [PAY_DOMAIN], "allowed_hosts": ["bench.test"],
        "cookie_domain": "bench.test", "payout_currency": "usd", "min_payout": 1000, "hold_days": 0,
        "payout_schedule": {"every": "day"},
        "rewards": {"lead": {"type": "flat", "amount": 500}, "sale": {"type": "percentage", "amount": 2000}},
    }, auth)
    pn = rp.json("POST", f"/api/v1/programs/{prog['id']}/partners", {"email": TPL_EMAIL, "name": TPL_NAME}, auth)
    link = rp.json("POST", f"/api/v1/partners/{pn['id']}/links", {"url": "https://bench.test/pay", "key": TPL_KEY}, auth)
    key = rp.json("POST", "/api/v1/api-keys", {"name": "bench payouts merchant", "program_id": prog["id"],
                                               "permissions": ["track"]}, auth)["key"]
    track = {"Authorization": f"Bearer {key}"}
    # A real click (browser UA); its id is read back from the clicks table once written (a
    # queued click arrives seconds later).
    status, raw = rp.call("GET", f"/{TPL_KEY}", headers={"Host": PAY_DOMAIN, "User-Agent": browser_ua})
    if status != 302:
        raise RuntimeError(f"template click: {status} {raw[:200]!r}")

    def click_id():
        c = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=10)
        try:
            r = c.execute("SELECT id FROM clicks WHERE link_id = ?", (link["id"],)).fetchone()
            return r and r[0]
        finally:
            c.close()

    cid = wait_for("the template's click row", click_id, timeout=60, every=0.2)
    lead = rp.json("POST", "/api/v1/track/lead", {"click_id": cid, "customer_external_id": TPL_CUSTOMER}, track)
    sale = rp.json("POST", "/api/v1/track/sale", {"customer_external_id": TPL_CUSTOMER, "amount": SALE_AMOUNT,
                                                  "currency": "usd", "invoice_id": TPL_INVOICE}, track)
    if not (lead.get("attributed") and sale.get("attributed") and sale.get("commission")):
        raise RuntimeError(f"template not attributed: lead {lead}, sale {sale}")

    # Stripe onboarding: the account is created by Refport; the fake completes onboarding and
    # sends the signed account.updated to Refport's Connect endpoint.
    fake.json("POST", "/_control/webhook", {"url": f"http://127.0.0.1:{rp.port}/api/v1/webhooks/stripe/connect",
                                            "secret": secrets_["STRIPE_CONNECT_WEBHOOK_SECRET"], "connect": True})
    acct = rp.json("POST", f"/api/v1/partners/{pn['id']}/stripe/onboard", {}, auth)["account_id"]
    fake.json("POST", f"/_control/accounts/{acct}/complete_onboarding", {})

    def enabled():
        return rp.json("GET", f"/api/v1/partners/{pn['id']}", headers=auth)["payouts_enabled"]

    wait_for("the template partner's payouts_enabled (Connect webhook)", enabled, timeout=30, every=0.2)

    def delivered():
        d = fake.json("GET", "/_control/deliveries")["data"]
        return d and all(x.get("status") is not None for x in d) and d

    deliveries = wait_for("the fake's webhook deliveries", delivered, timeout=30, every=0.2)
    if any(x["status"] != 200 for x in deliveries):
        raise RuntimeError(f"a Connect webhook was refused: {deliveries}")
    # No more webhooks: the bulk accounts below are onboarded in the fake only (their partners'
    # rows are copied from the template's, payouts enabled).
    fake.json("POST", "/_control/webhook", {"url": None, "connect": True})

    cms = rp.json("GET", f"/api/v1/commissions?partner_id={pn['id']}", headers=auth)["data"]
    if len(cms) != 2:
        raise RuntimeError(f"template commissions: {cms}")
    notes = []
    for cm in cms:
        if cm["status"] != "approved":
            status, raw = rp.call("POST", f"/api/v1/commissions/{cm['id']}/approve", {}, auth)
            if status != 200:
                notes.append(f"POST /commissions/{{id}}/approve ({cm['kind']}) answered {status} {raw[:120].decode(errors='replace')}")
    cms = rp.json("GET", f"/api/v1/commissions?partner_id={pn['id']}", headers=auth)["data"]
    if sorted(c["status"] for c in cms) != ["approved", "approved"]:
        raise RuntimeError(f"template commissions not approved: {cms}; {notes}")
    # What the API answered is kept: an error answer for a change that was nevertheless made is
    # a finding (the report lists it), not a reason to stop.
    return {"program_id": prog["id"], "partner_id": pn["id"], "link_id": link["id"], "account": acct,
            "amount": sum(c["amount"] for c in cms), "notes": notes}


# -- 2. Stripe accounts for the copies -----------------------------------------------------------

def make_accounts(fake, stripe_key, partner_ids, emails, threads=4):
    """One Express account per partner, as Refport's `create_account` asks for it (same-country
    partner: card_payments with transfers, the `full` agreement), onboarding completed: each
    (account id, the fingerprint of its own bank account), so no two partners share a payout
    account (the `duplicate_payout_account` fraud rule holds partners who do)."""
    auth = {"Authorization": f"Bearer {stripe_key}"}

    def one(i):
        pid = partner_ids[i]
        acct = fake.json("POST", "/v1/accounts", headers={**auth, "Idempotency-Key": f"acct-{pid}-us"}, form={
            "type": "express", "email": emails[i], "country": "US",
            "capabilities[transfers][requested]": "true", "metadata[partner_id]": pid,
            "capabilities[card_payments][requested]": "true"})
        done = fake.json("POST", f"/_control/accounts/{acct['id']}/complete_onboarding", {})
        if done["capabilities"].get("transfers") != "active" or not done["payouts_enabled"]:
            raise RuntimeError(f"account {acct['id']} cannot receive transfers: {done['capabilities']}")
        return acct["id"], done["external_accounts"]["data"][0]["fingerprint"]

    with concurrent.futures.ThreadPoolExecutor(threads) as ex:
        return list(ex.map(one, range(len(partner_ids))))


# -- 3. copies of the template's rows ------------------------------------------------------------

def template_rows(c, t):
    """(table, columns, rows) of every row the API wrote for the template partner, parents first."""
    pid = t["partner_id"]
    q = [
        ("partners", "id = ?", (pid,)),
        ("links", "partner_id = ?", (pid,)),
        ("clicks", "partner_id = ?", (pid,)),
        ("customers", "partner_id = ?", (pid,)),
        ("events", "partner_id = ? OR customer_id IN (SELECT id FROM customers WHERE partner_id = ?)", (pid, pid)),
        ("commissions", "partner_id = ?", (pid,)),
        ("commission_changes", "commission_id IN (SELECT id FROM commissions WHERE partner_id = ?)", (pid,)),
        ("webhook_events", "payload LIKE '%' || ? || '%' OR subject_id IN "
                           "(SELECT id FROM commissions WHERE partner_id = ?1 UNION SELECT id FROM customers WHERE partner_id = ?1 "
                           "UNION SELECT id FROM events WHERE partner_id = ?1)", (pid,)),
        ("stripe_events", "1", ()),  # a fresh D1: only the template's account events were received
    ]
    out = []
    for table, where, args in q:
        cur = c.execute(f"SELECT * FROM {table} WHERE {where}", args)
        cols = [d[0] for d in cur.description]
        rows = cur.fetchall()
        if table == "commission_changes":  # INTEGER PRIMARY KEY AUTOINCREMENT: new rows get their own
            i = cols.index("id")
            cols = cols[:i] + cols[i + 1:]
            rows = [r[:i] + r[i + 1:] for r in rows]
        out.append((table, cols, rows))
    return out


def clone_template(db_path, t, n_copies, accounts, partner_ids, emails, salt):
    """Inserts n_copies of the template's rows, every template id and unique value replaced."""
    c = sqlite3.connect(db_path, timeout=30)
    try:
        c.execute("PRAGMA foreign_keys = ON")
        rows = template_rows(c, t)
        counts = {table: len(rs) for table, _, rs in rows}
        if counts["partners"] != 1 or counts["commissions"] != 2:
            raise RuntimeError(f"unexpected template rows: {counts}")
        # Every primary key of the template's rows (prefixed ids) gets a fresh id per copy.
        id_cols = {"links": "id", "clicks": "id", "customers": "id", "events": "id", "commissions": "id",
                   "webhook_events": "id", "stripe_events": "id"}
        tpl_ids = []
        for table, cols, rs in rows:
            col = id_cols.get(table)
            if col:
                i = cols.index(col)
                tpl_ids += [(table, r[i]) for r in rs]
        # The template's bank account fingerprint (Refport stored it from Stripe at onboarding):
        # each copy gets its own account's, as its onboarding would have stored it.
        pcols, prows = next((cols, rs) for table, cols, rs in rows if table == "partners")
        tpl_fingerprint = prows[0][pcols.index("bank_fingerprint")]
        if not tpl_fingerprint:
            raise RuntimeError("the template partner has no bank fingerprint: teach bench/payouts.py")
        now = int(time.time() * 1000)
        by_table = {table: [] for table, _, _ in rows}
        pattern = None
        for k in range(n_copies):
            m = {t["partner_id"]: partner_ids[k], t["account"]: accounts[k][0], tpl_fingerprint: accounts[k][1],
                 TPL_EMAIL: emails[k],
                 TPL_NAME: f"Payout Partner {k + 2}", TPL_KEY: f"pk{k + 2}", TPL_CUSTOMER: f"pcust{k + 2}",
                 TPL_INVOICE: f"pinv{k + 2}"}
            for table, old in tpl_ids:
                if table != "clicks":
                    m[old] = fresh_like(old, now, stripe=table == "stripe_events")
            for table, old in tpl_ids:  # signed click ids carry their link: after the links
                if table == "clicks":
                    m[old] = fresh_click_like(old, now, t["link_id"], m[t["link_id"]], salt)

            if pattern is None:  # the template's values, longest first; the same for every copy
                pattern = re.compile("|".join(re.escape(k) for k in sorted(m, key=len, reverse=True)))

            def sub(v):
                return pattern.sub(lambda mo: m[mo.group(0)], v) if isinstance(v, str) else v

            for table, cols, rs in rows:
                by_table[table] += [tuple(sub(v) for v in r) for r in rs]
        for table, cols, _ in rows:
            if by_table[table]:
                c.executemany(f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                              by_table[table])
        bad = c.execute("PRAGMA foreign_key_check").fetchall()
        if bad:
            raise RuntimeError(f"foreign key violations after seeding: {bad[:5]}")
        c.commit()
        return counts
    finally:
        c.close()


# -- 4. the run ----------------------------------------------------------------------------------

def d1_state(db_path, program_id):
    c = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=10)
    try:
        r = dict(c.execute("SELECT status, COUNT(*) FROM payouts WHERE program_id = ? GROUP BY status",
                           (program_id,)).fetchall())
        r["unclaimed"] = c.execute("SELECT COUNT(DISTINCT partner_id) FROM commissions WHERE program_id = ? "
                                   "AND status = 'approved' AND payout_id IS NULL", (program_id,)).fetchone()[0]
        return r
    finally:
        c.close()


def run_crons(rp, db_path, program_id, n, get_metrics, max_crons, log, timeout_per_cron=7200.0):
    """Triggers the cron until every partner is paid (or failed), each time once the previous
    run's work has settled. Answers a dict of what happened."""
    t0 = time.monotonic()
    crons, strikes, cron_secs = 0, 0, 0.0
    history = []
    done_at = None
    last_total = -1
    while crons < max_crons:
        m0 = get_metrics() or {}
        s0 = d1_state(db_path, program_id)
        tc = time.monotonic()
        status, raw = rp.call("GET", "/cdn-cgi/handler/scheduled?cron=" + urllib.parse.quote("*/15 * * * *"),
                              timeout=300)
        cron_secs += time.monotonic() - tc
        crons += 1
        if status != 200:
            raise RuntimeError(f"scheduled handler answered {status}: {raw[:300]!r}")
        # Settle: the messages this run enqueued are consumed, nothing is processing, and the
        # paid + failed count has not moved for a moment; or nothing has moved for 10 s (a
        # payout in flight with an unknown outcome waits for the next run's sweep). However
        # long the consumers take while payouts keep moving, the next run waits: the count of
        # runs is what the design needs, not what the local queue's pace would make it.
        stable_since, prev = time.monotonic(), None
        deadline = time.monotonic() + timeout_per_cron
        while True:
            s = d1_state(db_path, program_id)
            total = s.get("paid", 0) + s.get("failed", 0)
            if total >= n:
                done_at = time.monotonic()
                break
            m = get_metrics() or {}
            enq = m.get("payouts_enqueued", 0) - m0.get("payouts_enqueued", 0)
            consumed = m.get("payout_messages", 0) - m0.get("payout_messages", 0)
            key = (total, s.get("processing", 0), consumed)
            if key != prev:
                prev, stable_since = key, time.monotonic()
            quiet = time.monotonic() - stable_since
            if consumed >= enq and s.get("processing", 0) == 0 and quiet >= (0.0 if enq == 0 else 0.5):
                break
            if quiet >= 10.0 or time.monotonic() > deadline:
                break  # in flight with an unknown outcome, or stuck: the next run sees to it
            time.sleep(0.2)
        s = d1_state(db_path, program_id)
        total = s.get("paid", 0) + s.get("failed", 0)
        history.append({"cron": crons, "t": round(time.monotonic() - t0, 2), **s})
        if crons <= 5 or crons % 10 == 0 or done_at:
            log(f"payouts: cron {crons}: {s.get('paid', 0)} paid, {s.get('failed', 0)} failed, "
                f"{s.get('processing', 0)} in flight, {s.get('unclaimed', 0)} partners unclaimed "
                f"({time.monotonic() - t0:.1f} s)")
        if done_at:
            break
        moved = total != last_total or s.get("processing", 0) or (
            (get_metrics() or {}).get("payouts_enqueued", 0) != m0.get("payouts_enqueued", 0))
        strikes = 0 if moved else strikes + 1
        if strikes >= 3:
            log("payouts: three cron runs in a row changed nothing: stopping")
            break
        if s.get("processing", 0):
            time.sleep(0.5)  # a payout in flight is reconciled once its lease is over
        last_total = total
    return {"crons": crons, "wall_s": (done_at or time.monotonic()) - t0, "complete": done_at is not None,
            "cron_handler_s": cron_secs, "history": history[-20:]}


def fake_transfers(fake, stripe_key):
    """Every transfer the fake made, through its list API (100 per page)."""
    auth = {"Authorization": f"Bearer {stripe_key}"}
    out, after = [], None
    while True:
        q = "limit=100" + (f"&starting_after={after}" if after else "")
        page = fake.json("GET", f"/v1/transfers?{q}", headers=auth)
        out += page["data"]
        if not page["has_more"] or not page["data"]:
            return out
        after = page["data"][-1]["id"]


def verify(db_path, program_id, transfers):
    c = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=10)
    try:
        accounts = dict(c.execute("SELECT id, stripe_account_id FROM partners WHERE program_id = ?", (program_id,)))
        paid = c.execute("SELECT partner_id, COUNT(*), SUM(amount) FROM payouts WHERE program_id = ? AND status = 'paid' "
                         "GROUP BY partner_id", (program_id,)).fetchall()
        amounts = dict(c.execute("SELECT stripe_transfer_id, amount FROM payouts WHERE program_id = ? AND status = 'paid'",
                                 (program_id,)))
        first_at, last_at = c.execute("SELECT MIN(created_at), MAX(paid_at) FROM payouts WHERE program_id = ?",
                                      (program_id,)).fetchone()
    finally:
        c.close()
    per_dest = {}
    for tr in transfers:
        per_dest[tr["destination"]] = per_dest.get(tr["destination"], 0) + 1
    expected = set(accounts.values())
    return {
        "partners": len(accounts),
        "payouts_paid": sum(n for _, n, _ in paid),
        "partners_paid_twice_in_d1": sum(1 for _, n, _ in paid if n > 1),
        "transfers": len(transfers),
        "duplicates": sum(v - 1 for v in per_dest.values() if v > 1),
        "partners_without_transfer": len(expected - set(per_dest)),
        "transfers_elsewhere": sum(v for d, v in per_dest.items() if d not in expected),
        "amount_mismatches": sum(1 for tr in transfers if amounts.get(tr["id"]) != tr["amount"]),
        "d1_first_claim_to_last_paid_s": (last_at - first_at) / 1000 if first_at and last_at else None,
    }
