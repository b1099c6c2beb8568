"""Clicks at scale (issue 13): clicks through the CLICKS queue written in batches, signed click ids
that attribute before (and without) the click's row, daily rollups kept by triggers and read by
every stats endpoint, retention of raw clicks, the isolate link cache, and the metrics endpoint.

The queue runs inside `wrangler dev` (max_batch_timeout 5 s): click rows appear a few seconds
after their redirects, so tests poll for them."""

import os
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from apihelpers import (assert_error, crockford, ok, rollup_mismatches, setup_link, signed_click_id, uid,
                        wait_clicks)
from test_one_click import v2_click_id

from conftest import (BROWSER_UA, Worker, dev_vars, free_port, quick_clicks, start_wrangler, stop_process,
                      variant_config)

LEAD, SALE, REFUND = "/api/v1/track/lead", "/api/v1/track/sale", "/api/v1/track/refund"
DAY_MS = 86_400_000
HOUR_MS = 3_600_000


def metrics(worker):
    return ok(worker.get("/api/v1/metrics"))["counters"]


def lead(worker, click_id, ext, **kw):
    return worker.post(LEAD, {"click_id": click_id, "customer_external_id": ext, **kw})


def sale(worker, ext, amount, invoice=None, currency="usd", **kw):
    return worker.post(SALE, {"customer_external_id": ext, "amount": amount, "currency": currency,
                              "invoice_id": invoice or uid("inv"), **kw})


def now_ms():
    return int(time.time() * 1000)


# -- signed click ids --------------------------------------------------------------------------

def test_redirect_issues_signed_click_ids_that_name_their_link(worker):
    p, pn, link = setup_link(worker)
    ip = worker.visitor()
    before = now_ms()
    cid = worker.click_id(link, visitor=ip)
    after = now_ms()
    salt = worker.secrets["IP_HASH_SALT"]
    stamp = cid[4:30]
    at = int("".join(f"{'0123456789ABCDEFGHJKMNPQRSTVWXYZ'.index(c):05b}" for c in stamp[:10]), 2)
    # v2: the time is the start of the click's hour
    assert at % HOUR_MS == 0 and before - before % HOUR_MS <= at <= after, (at, before, after)
    # Recomputing the id independently gives the same id: the scheme is what the docs say.
    assert cid == v2_click_id(salt, link["id"], at, ip, BROWSER_UA)
    wait_clicks(worker, link, 1)


def test_lead_with_a_signed_click_whose_row_does_not_exist_is_attributed(worker):
    """The row of a click may still be in the queue (or deleted by retention): the signed id is
    enough. No click row is ever written for this id."""
    p, pn, link = setup_link(worker)
    at = now_ms() - 1000
    cid = signed_click_id(worker.secrets["IP_HASH_SALT"], link["id"], at)
    assert worker.count("SELECT COUNT(*) FROM clicks WHERE id = ?", cid) == 0
    ext = uid("cust")
    body = ok(lead(worker, cid, ext))
    assert body["attributed"] is True and body["reason"] is None, body
    assert body["event"]["partner_id"] == pn["id"] and body["event"]["click_id"] == cid
    assert body["event"]["program_id"] == p["id"]  # found from the link, no program_id sent
    [cust] = worker.rows("SELECT * FROM customers WHERE program_id = ? AND external_id = ?", p["id"], ext)
    assert (cust["partner_id"], cust["link_id"], cust["click_id"], cust["clicked_at"]) == (pn["id"], link["id"], cid, at)
    [ev] = worker.rows("SELECT link_id FROM events WHERE id = ?", body["event"]["id"])
    assert ev["link_id"] == link["id"]
    assert worker.count("SELECT COUNT(*) FROM clicks WHERE id = ?", cid) == 0


def test_forged_or_foreign_signed_click_ids_attribute_nothing(worker):
    p, pn, link = setup_link(worker)
    _, _, other = setup_link(worker)
    salt = worker.secrets["IP_HASH_SALT"]
    genuine = signed_click_id(salt, link["id"], now_ms())
    # The same stamp and MAC pointed at another partner's link: the MAC no longer verifies.
    moved = genuine[:4 + 42] + other["id"][len("link_"):]
    wrong_key = signed_click_id("not-the-salt", link["id"], now_ms())
    for cid in (moved, wrong_key):
        body = ok(lead(worker, cid, uid("cust"), program_id=p["id"]))
        assert body["attributed"] is False and body["reason"] == "click_not_found", (cid, body)


def test_lead_right_after_its_click_is_attributed(worker):
    """A lead one second after the redirect (well within the queue's 5 s batch window)."""
    p, pn, link = setup_link(worker)
    cid = worker.click_id(link)
    time.sleep(1)
    body = ok(lead(worker, cid, uid("cust")))
    assert body["attributed"] is True and body["event"]["partner_id"] == pn["id"], body
    assert wait_clicks(worker, link, 1) == 1


def test_signed_click_of_a_banned_partner_is_not_attributed(worker):
    p, pn, link = setup_link(worker)
    cid = signed_click_id(worker.secrets["IP_HASH_SALT"], link["id"], now_ms())
    ok(worker.patch(f"/api/v1/partners/{pn['id']}", {"status": "banned"}))
    body = ok(lead(worker, cid, uid("cust")))
    assert body["attributed"] is False and body["reason"] == "partner_banned", body


def test_signed_click_outside_the_window_is_expired(worker):
    p, pn, link = setup_link(worker, program_overrides={"attribution_window_days": 7})
    cid = signed_click_id(worker.secrets["IP_HASH_SALT"], link["id"], now_ms() - 8 * DAY_MS)
    body = ok(lead(worker, cid, uid("cust")))
    assert body["attributed"] is False and body["reason"] == "click_expired", body


# -- the queue: batched, exactly once ------------------------------------------------------------

def test_clicks_arrive_in_batches_each_once_with_two_rows_written_per_click(worker):
    p, pn, link = setup_link(worker)
    m0 = metrics(worker)
    n = 30
    ids = [worker.click_id(link) for _ in range(n)]
    assert len(set(ids)) == n
    assert wait_clicks(worker, link, n) == n
    time.sleep(0.5)
    m1 = metrics(worker)
    d = {k: m1[k] - m0.get(k, 0) for k in m1}
    assert d["redirects"] >= n and d["clicks_queued"] >= n, d
    assert d["click_queue_failures"] == 0, d
    assert d["clicks_inserted"] >= n, d
    assert d["click_batches"] < n, f"clicks were not batched: {d}"
    assert d["click_rows_written"] <= 2 * d["clicks_inserted"], d  # the goal: <= 2 rows per click
    [row] = worker.rows("SELECT SUM(clicks) AS n FROM daily_stats WHERE link_id = ?", link["id"])
    assert row["n"] == n
    with worker.db() as c:
        assert rollup_mismatches(c, p["id"]) == []


def test_concurrent_clicks_leave_the_isolate_in_few_queue_calls_and_messages_and_none_is_lost(worker):
    """The redirect buffers its clicks for a few milliseconds (`click_buffer`): concurrent visits
    share `sendBatch` calls and messages (a flush's clicks packed in one message: the queue bills
    per message), and every one is still written once, hashes included."""
    p, pn, link = setup_link(worker)
    m0 = metrics(worker)
    n = 60
    with ThreadPoolExecutor(max_workers=12) as pool:
        ids = list(pool.map(lambda i: worker.click_id(link, ua=f"{BROWSER_UA} burst/{i}"), range(n)))
    assert len(set(ids)) == n
    assert wait_clicks(worker, link, n) == n
    time.sleep(0.5)
    m1 = metrics(worker)
    d = {k: m1[k] - m0.get(k, 0) for k in m1}
    assert d["clicks_queued"] == n and d["click_queue_failures"] == 0, d
    assert 1 <= d["click_sends"] < n, f"every click was its own queue call: {d}"
    # One message per flush (a flush of 60 typical clicks fits in one 64 KB message).
    assert d["click_messages_sent"] == d["click_sends"], d
    assert d["click_messages"] == d["click_messages_sent"] and d["click_messages_clicks"] == n, d
    rows = worker.rows("SELECT id, ip_hash, ua_hash FROM clicks WHERE link_id = ?", link["id"])
    assert sorted(r["id"] for r in rows) == sorted(ids)
    assert all(r["ip_hash"] and len(r["ua_hash"]) == 32 for r in rows), rows[:3]
    assert len({r["ua_hash"] for r in rows}) == n  # each visitor's own user agent, hashed at flush time


@pytest.fixture(scope="module")
def worker_without_clicks_queue(stripe_server, email_sink, tmp_path_factory):
    """A deployment whose wrangler.toml has no CLICKS producer (one from before the queue)."""
    persist = str(tmp_path_factory.mktemp("wrangler-no-clicks-queue"))
    config = variant_config(os.path.join(persist, "wrangler.toml"),
                            drop=lambda b: b.startswith("[[queues.producers]]") and 'binding = "CLICKS"' in b,
                            edit=quick_clicks)
    toml = open(config).read()
    assert 'binding = "CLICKS"' not in toml and 'binding = "PAYOUTS"' in toml
    proc, base = start_wrangler(persist, free_port(), free_port(), {"STRIPE_API_BASE": stripe_server,
                                                                     "EMAIL_API_URL": email_sink.url}, config=config)
    try:
        yield Worker(base, persist, stripe_server, dev_vars(), email_sink)
    finally:
        stop_process(proc)


def test_without_the_clicks_queue_buffered_clicks_go_to_d1_directly(worker_without_clicks_queue):
    w = worker_without_clicks_queue
    p, pn, link = setup_link(w)
    m0 = metrics(w)
    n = 30
    with ThreadPoolExecutor(max_workers=8) as pool:
        ids = list(pool.map(lambda i: w.click_id(link, ua=f"{BROWSER_UA} direct/{i}"), range(n)))
    assert wait_clicks(w, link, n) == n
    m1 = metrics(w)
    d = {k: m1[k] - m0.get(k, 0) for k in m1}
    assert d["click_queue_failures"] == n and d["clicks_queued"] == 0 and d.get("click_sends", 0) == 0, d
    rows = w.rows("SELECT id, ua_hash FROM clicks WHERE link_id = ?", link["id"])
    assert sorted(r["id"] for r in rows) == sorted(ids) and all(len(r["ua_hash"]) == 32 for r in rows)
    [row] = w.rows("SELECT SUM(clicks) AS n FROM daily_stats WHERE link_id = ?", link["id"])
    assert row["n"] == n


def _click(cid, link, at, **kw):
    return {"id": cid, "program_id": link["program_id"], "partner_id": link["partner_id"], "link_id": link["id"],
            "at": at, "country": None, "referrer_host": None, "ip_hash": None, "ua_hash": None, **kw}


def test_a_click_delivered_twice_is_stored_and_counted_once(worker):
    """At-least-once delivery: the consumer's batch write (through the test hook, which runs the
    same code on the same D1) given the same clicks again, in the same or another batch, stores
    and counts each click once."""
    p, pn, link = setup_link(worker)
    at = now_ms()
    ids = [signed_click_id(worker.secrets["IP_HASH_SALT"], link["id"], at + i) for i in range(5)]
    first = [_click(i, link, at) for i in ids[:3]]
    hook = "/api/v1/_test/click-batch"
    assert ok(worker.post(hook, {"clicks": first})) ["inserted"] == 3
    assert ok(worker.post(hook, {"clicks": first}))["inserted"] == 0            # redelivered
    overlap = [_click(i, link, at) for i in ids[2:]] + [_click(ids[4], link, at)]
    assert ok(worker.post(hook, {"clicks": overlap}))["inserted"] == 2          # one old, two new, one twice
    assert worker.count("SELECT COUNT(*) FROM clicks WHERE link_id = ?", link["id"]) == 5
    [row] = worker.rows("SELECT SUM(clicks) AS n FROM daily_stats WHERE link_id = ?", link["id"])
    assert row["n"] == 5
    # Two days and a hundred clicks in one batch: several statements, one atomic batch.
    suffix = uid("t").split("-")[1]
    many = [_click(f"clk_hook{i:04d}x{suffix}", link, at - (i % 2) * DAY_MS) for i in range(100)]
    w = ok(worker.post(hook, {"clicks": many}))
    assert w["inserted"] == 100 and w["rows_written"] <= 100 + 4, w
    assert ok(worker.post(hook, {"clicks": many}))["inserted"] == 0
    [row] = worker.rows("SELECT SUM(clicks) AS n FROM daily_stats WHERE link_id = ?", link["id"])
    assert row["n"] == 105
    with worker.db() as c:
        assert rollup_mismatches(c, p["id"]) == []
    # The hook is the admin's and the tests' only.
    key = ok(worker.post("/api/v1/api-keys", {"name": "w", "permissions": ["read", "write", "track"]}), 201)["key"]
    assert_error(worker.post(hook, {"clicks": first}, key=key), 403, "forbidden")


def test_bots_and_head_requests_queue_nothing(worker):
    p, pn, link = setup_link(worker)
    m0 = metrics(worker)
    assert worker.click(link, ua="Mozilla/5.0 (compatible; Googlebot/2.1)").status_code == 302
    assert worker.click(link, method="HEAD").status_code == 302
    m1 = metrics(worker)
    assert m1["clicks_queued"] == m0["clicks_queued"]
    time.sleep(6)
    assert worker.count("SELECT COUNT(*) FROM clicks WHERE link_id = ?", link["id"]) == 0


# -- rollups and stats ---------------------------------------------------------------------------

def _busy_program(worker):
    """A program with clicks, leads, sales (one in another currency), a refund, an approval and a
    rejection, on two partners and three links."""
    p, pn, link = setup_link(worker)
    pn2 = worker.partner(p)
    link2 = worker.link(pn2, p)
    link3 = worker.link(pn2, p, path="/other")
    clicks = [worker.click_id(l) for l in (link, link, link, link2, link3)]
    custs = []
    for cid in clicks[:4]:
        ext = uid("cust")
        ok(lead(worker, cid, ext))
        custs.append(ext)
    s1 = ok(sale(worker, custs[0], 10_000))
    ok(sale(worker, custs[1], 5_000, invoice=uid("inv")))
    ok(sale(worker, custs[3], 20_000, currency="eur", payout_amount=21_500))
    ok(worker.post(REFUND, {"invoice_id": s1["event"]["invoice_id"], "amount": 2_500}))
    cms = ok(worker.get(f"/api/v1/commissions?program_id={p['id']}&limit=100"))["data"]
    ok(worker.post(f"/api/v1/commissions/{cms[0]['id']}/approve"))
    ok(worker.post(f"/api/v1/commissions/{cms[1]['id']}/reject", {"reason": "fraud check"}))
    wait_clicks(worker, link, 3)
    wait_clicks(worker, link3, 1)
    return p, (pn, pn2), (link, link2, link3)


def test_rollups_equal_what_the_raw_rows_say(worker):
    p, _, _ = _busy_program(worker)
    with worker.db() as c:
        assert rollup_mismatches(c, p["id"]) == []
        assert c.execute("SELECT COUNT(*) FROM daily_stats WHERE program_id = ?", (p["id"],)).fetchone()[0] > 0


def test_partner_stats_come_from_rollups(worker):
    p, (pn, pn2), (link, link2, link3) = _busy_program(worker)
    s = ok(worker.get(f"/api/v1/partners/{pn2['id']}/stats"))
    assert (s["clicks"], s["leads"], s["sales"]) == (2, 1, 1), s
    assert s["currency"] == "usd" and s["sale_amount"] == 21_500
    assert s["amounts"][0]["currency"] == "usd"
    e = s["earnings"]
    assert e["total"] == e["pending"] + e["approved"] + e["paid"]
    with worker.db() as c:
        [(earned,)] = c.execute("SELECT COALESCE(SUM(amount), 0) FROM commissions WHERE partner_id = ? AND status != 'rejected'",
                                (pn2["id"],)).fetchall()
    assert e["total"] == earned


def test_program_stats_by_day_partner_and_link(worker):
    p, (pn, pn2), (link, link2, link3) = _busy_program(worker)
    today = time.strftime("%Y-%m-%d", time.gmtime())
    by_day = ok(worker.get(f"/api/v1/programs/{p['id']}/stats"))
    assert by_day["group_by"] == "day" and by_day["to"] == today and len(by_day["data"]) == 30
    assert by_day["data"][-1]["date"] == today
    t = by_day["totals"]
    assert (t["clicks"], t["leads"], t["sales"]) == (5, 4, 3), t
    assert sum(d["clicks"] for d in by_day["data"]) == 5
    assert all(d["clicks"] == 0 for d in by_day["data"][:-1])
    usd = next(a for a in t["amounts"] if a["currency"] == "usd")
    assert usd["sale_amount"] == 10_000 + 5_000 + 21_500

    by_partner = ok(worker.get(f"/api/v1/programs/{p['id']}/stats?group_by=partner&from={today}&to={today}"))
    got = {r["partner_id"]: (r["clicks"], r["leads"], r["sales"]) for r in by_partner["data"]}
    assert got == {pn["id"]: (3, 3, 2), pn2["id"]: (2, 1, 1)}, got
    assert by_partner["data"][0]["partner_id"] == pn["id"]  # busiest first
    assert by_partner["has_more"] is False
    top1 = ok(worker.get(f"/api/v1/programs/{p['id']}/stats?group_by=partner&limit=1"))
    assert len(top1["data"]) == 1 and top1["has_more"] is True

    by_link = ok(worker.get(f"/api/v1/programs/{p['id']}/stats?group_by=link&partner_id={pn2['id']}"))
    got = {r["link_id"]: r["clicks"] for r in by_link["data"]}
    assert got == {link2["id"]: 1, link3["id"]: 1}, got


def test_program_stats_rejects_bad_queries_and_other_programs(worker):
    p, pn, link = setup_link(worker)
    base = f"/api/v1/programs/{p['id']}/stats"
    for q in ("from=2026-13-01", "to=yesterday", "from=2026-02-01&to=2026-01-01", "from=2020-01-01&to=2026-01-01",
              "group_by=week", "limit=0", "limit=5000", "partner_id=nope", "bogus=1"):
        assert_error(worker.get(f"{base}?{q}"), 400, "invalid_query")
    other, _, _ = setup_link(worker)
    key = ok(worker.post("/api/v1/api-keys", {"name": "bound", "program_id": other["id"], "permissions": ["read"]}), 201)["key"]
    assert_error(worker.get(base, key=key), 404, "not_found")
    assert ok(worker.get(f"/api/v1/programs/{other['id']}/stats", key=key))["totals"]["clicks"] == 0


def test_retention_deletes_old_click_rows_and_stats_keep_them(worker):
    p, pn, link = setup_link(worker, program_overrides={"attribution_window_days": 7})
    cid_new = worker.click_id(link)
    wait_clicks(worker, link, 1)
    # A click from 400 days ago: older than every program's window plus the 30-day margin.
    old_at = now_ms() - 400 * DAY_MS
    old_id = "clk_" + crockford(old_at << 80, 26)
    ok(worker.post("/api/v1/_test/click-batch", {"clicks": [_click(old_id, link, old_at)]}))
    assert ok(worker.get(f"/api/v1/partners/{pn['id']}/stats"))["clicks"] == 2
    r = worker.scheduled()
    assert r.status_code == 200, r.text
    assert worker.count("SELECT COUNT(*) FROM clicks WHERE id = ?", old_id) == 0
    assert worker.count("SELECT COUNT(*) FROM clicks WHERE id = ?", cid_new) == 1
    assert ok(worker.get(f"/api/v1/partners/{pn['id']}/stats"))["clicks"] == 2
    assert metrics(worker)["clicks_deleted"] >= 1


# -- the isolate cache ---------------------------------------------------------------------------

def test_warm_redirects_read_neither_kv_nor_d1_and_writes_show_at_once(worker):
    p, pn, link = setup_link(worker)
    worker.click_id(link)  # warms this isolate
    m0 = metrics(worker)
    for _ in range(5):
        worker.click_id(link)
    m1 = metrics(worker)
    assert m1["redirects"] - m0["redirects"] == 5
    assert m1["redirect_isolate_cache_hits"] - m0["redirect_isolate_cache_hits"] == 5
    assert m1["redirect_kv_reads"] == m0["redirect_kv_reads"]
    assert m1["redirect_d1_queries"] == m0["redirect_d1_queries"]

    # A write in the same isolate is seen at once: new destination, then gone.
    new_url = f"https://{p['allowed_hosts'][0]}/moved"
    ok(worker.patch(f"/api/v1/links/{link['id']}", {"url": new_url}))
    assert worker.click(link).headers["Location"].startswith(new_url + "?refport_id=")
    ok(worker.patch(f"/api/v1/partners/{pn['id']}", {"status": "banned"}))
    r = worker.click(link)
    assert r.status_code == 302 and "set-cookie" not in {k.lower() for k in r.headers}
    assert r.headers["Location"] == new_url
    assert worker.delete(f"/api/v1/links/{link['id']}").status_code in (200, 204)
    assert worker.click(link).status_code == 404


def test_metrics_need_an_unbound_read_key(worker):
    m = metrics(worker)
    assert {"redirects", "clicks_inserted", "click_rows_written", "d1_calls", "kv_reads"} <= set(m)
    p, _, _ = setup_link(worker)
    bound = ok(worker.post("/api/v1/api-keys", {"name": "bound", "program_id": p["id"], "permissions": ["read"]}), 201)["key"]
    assert_error(worker.get("/api/v1/metrics", key=bound), 403, "forbidden")
    assert_error(worker.get("/api/v1/metrics", key=None), 401, "unauthorized")


# -- D1 round trips of the conversion API --------------------------------------------------------

def d1_calls_of(worker, fn):
    """D1 round trips `fn` made, from the isolate counters around it. The second metrics read
    authenticates its key (one call), calibrated by two reads with nothing between."""
    a = metrics(worker)["d1_calls"]
    b = metrics(worker)["d1_calls"]
    fn()
    c = metrics(worker)["d1_calls"]
    return (c - b) - (b - a)


def test_track_sale_and_lead_take_the_fewest_d1_round_trips(worker):
    """A new sale: the key (1), every read in one batch (1), the write in one batch that reads
    the stored row back (1); a retry answers after the reads (2). A lead also reads the link its
    signed click id names (4; retry 3). Without program_id and a key bound to no program,
    finding the customer's program adds one read."""
    # Endpoints other tests left would receive these events: a write that queues a delivery
    # also delivers it after the response (more D1 calls, in the background).
    while True:
        page = ok(worker.get("/api/v1/webhooks?limit=100"))["data"]
        if not page:
            break
        for ep in page:
            assert worker.delete(f"/api/v1/webhooks/{ep['id']}").status_code in (200, 204)
    p, pn, link = setup_link(worker)
    bound = worker.ok("POST", "/api/v1/api-keys", {"name": "rt", "permissions": ["track"], "program_id": p["id"]},
                      status=201)["key"]
    cid = worker.click_id(link)
    assert wait_clicks(worker, link, 1) == 1  # the queue's consumer is idle: the counters see only our requests
    ext, inv = uid("cus"), uid("inv")

    def call(path, body, key=bound):
        r = worker.post(path, body, key=key)
        assert r.status_code in (200, 201), r.text
        out.append(r.json())

    out = []
    assert d1_calls_of(worker, lambda: call(LEAD, {"click_id": cid, "customer_external_id": ext})) == 4
    assert out[-1]["attributed"] is True
    assert d1_calls_of(worker, lambda: call(LEAD, {"click_id": cid, "customer_external_id": ext})) == 3
    assert out[-1] == out[-2]
    body = {"customer_external_id": ext, "amount": 5000, "currency": "usd", "invoice_id": inv}
    assert d1_calls_of(worker, lambda: call(SALE, body)) == 3
    assert out[-1]["attributed"] is True and out[-1]["commission"]["amount"] > 0
    assert d1_calls_of(worker, lambda: call(SALE, body)) == 2
    assert out[-1] == out[-2]
    # The deployment's admin key (checked without D1), no program_id: the customer's program is
    # looked up first.
    body2 = {**body, "invoice_id": uid("inv")}
    assert d1_calls_of(worker, lambda: call(SALE, body2, key="admin")) == 3
    assert out[-1]["event"]["program_id"] == p["id"]
