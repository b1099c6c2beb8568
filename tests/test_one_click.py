"""One click per visitor (issue 14): the same visitor (salted IP and user agent) on the same link
within an hour is one click in rows, stats and rollups; the visitor still gets the redirect and a
cookie that attributes, and the click's row counts the visits (`hits`).

Click ids v2 (core/src/click_id.rs) are rebuilt here independently from the documented scheme,
so the tests can name the id of any visitor in any hour and feed the consumer's batch write
(the test hook) visits an hour apart without waiting an hour."""

import hashlib
import hmac
import time

from apihelpers import crockford, ok, rollup_mismatches, setup_link, uid, wait_clicks

from conftest import BROWSER_UA

HOUR_MS = 3_600_000
DAY_MS = 86_400_000
LEAD = "/api/v1/track/lead"
HOOK = "/api/v1/_test/click-batch"
AD_CLICK, BANNED_REFERRER = 1, 2


def click_key(salt):
    return hmac.new(salt.encode(), b"refport click id v1", hashlib.sha256).digest()


def v2_click_id(salt, link_id, at_ms, ip, ua, flags=0):
    """The v2 id of the visitor (ip, ua) on `link_id` in the hour of `at_ms`: the stamp is the
    hour's start, 75 bits of HMAC(key, "visitor|" + len(ip) as 8 bytes + ip + ua) and 5 flag
    bits; the MAC is HMAC(key, "v2|" + stamp + "|" + link id), 80 bits."""
    key = click_key(salt)
    ip, ua = ip.encode(), ua.encode()
    v = hmac.new(key, b"visitor|" + len(ip).to_bytes(8, "big") + ip + ua, hashlib.sha256).digest()[:10]
    bits = (int.from_bytes(v, "big") >> 5) << 5 | flags
    hour = at_ms - at_ms % HOUR_MS
    stamp = crockford((hour << 80) | bits, 26)
    mac = hmac.new(key, f"v2|{stamp}|{link_id}".encode(), hashlib.sha256).digest()[:10]
    return f"clk_{stamp}{crockford(int.from_bytes(mac, 'big'), 16)}{link_id[len('link_'):]}"


def now_ms():
    return int(time.time() * 1000)


def clicks_of(worker, link):
    return worker.rows("SELECT id, created_at, hits FROM clicks WHERE link_id = ? ORDER BY created_at", link["id"])


def rollup_clicks(worker, link):
    return worker.count("SELECT COALESCE(SUM(clicks), 0) FROM daily_stats WHERE link_id = ?", link["id"])


def settle(worker, link, rows, hits):
    """Waits until the link's rows are `rows` and their hits sum to `hits` (the queue writes late)."""
    deadline = time.time() + 20
    while time.time() < deadline:
        got = clicks_of(worker, link)
        if len(got) == rows and sum(r["hits"] for r in got) == hits:
            return got
        time.sleep(0.1)
    raise AssertionError(f"expected {rows} row(s) with {hits} hit(s): {clicks_of(worker, link)}")


def test_same_visitor_five_times_is_one_click_with_five_hits(worker):
    p, pn, link = setup_link(worker)
    me = worker.visitor()
    answers = [worker.click(link, visitor=me) for _ in range(5)]
    ids = set()
    for r in answers:
        assert r.status_code == 302, r.text
        cid = r.headers["Location"].split("refport_id=")[1]
        assert r.headers["Set-Cookie"].startswith(f"refport_id={cid};"), r.headers
        ids.add(cid)
    # The same visitor within the hour: the same id (two if the five straddled an hour's start:
    # the later ones fold into the earlier row all the same).
    assert len(ids) <= 2, ids
    [row] = settle(worker, link, 1, 5)
    assert rollup_clicks(worker, link) == 1
    assert ok(worker.get(f"/api/v1/partners/{pn['id']}/stats"))["clicks"] == 1
    stats = ok(worker.get(f"/api/v1/programs/{p['id']}/stats"))
    assert stats["totals"]["clicks"] == 1, stats["totals"]
    by_link = ok(worker.get(f"/api/v1/programs/{p['id']}/stats?group_by=link"))["data"]
    assert {r["link_id"]: r["clicks"] for r in by_link} == {link["id"]: 1}
    with worker.db() as c:
        assert rollup_mismatches(c, p["id"]) == []

    # A lead presenting the last cookie's id is attributed to the partner.
    last = answers[-1].headers["Set-Cookie"].split(";")[0].split("=", 1)[1]
    body = ok(worker.post(LEAD, {"click_id": last, "customer_external_id": uid("cust")}))
    assert body["attributed"] is True and body["event"]["partner_id"] == pn["id"], body
    assert body["event"]["click_id"] == last


def test_two_visitors_are_two_clicks(worker):
    p, pn, link = setup_link(worker)
    ip = worker.visitor()
    a = worker.click_id(link, visitor=ip)
    b = worker.click_id(link, visitor=worker.visitor())            # another IP, same browser
    c = worker.click_id(link, visitor=ip, ua=BROWSER_UA + " Edg/130.0")  # same IP, another browser
    assert len({a, b, c}) == 3
    assert worker.click_id(link, visitor=ip) == a  # the first again
    rows = settle(worker, link, 3, 4)
    assert sorted(r["hits"] for r in rows) == [1, 1, 2]
    assert rollup_clicks(worker, link) == 3
    assert ok(worker.get(f"/api/v1/partners/{pn['id']}/stats"))["clicks"] == 3


def test_the_id_is_the_documented_v2_id_and_carries_the_ad_click_flag(worker):
    p, pn, link = setup_link(worker)
    salt = worker.secrets["IP_HASH_SALT"]
    ip = worker.visitor()
    t0 = now_ms()
    plain = worker.click_id(link, visitor=ip)
    ad = worker.click_id(link, visitor=ip, query="?utm_source=google&gclid=Cj0KCQ-x_y")
    meta = worker.click_id(link, visitor=ip, query="?fbclid=IwAR0abc")  # Meta tags organic links too
    empty = worker.click_id(link, visitor=ip, query="?gclid=")
    t1 = now_ms()
    at = t1 if plain == v2_click_id(salt, link["id"], t1, ip, BROWSER_UA) else t0
    assert plain == v2_click_id(salt, link["id"], at, ip, BROWSER_UA)
    assert ad == v2_click_id(salt, link["id"], at, ip, BROWSER_UA, AD_CLICK) != plain
    assert meta == plain and empty == plain
    # The landing page still gets the visitor's own query (the ad click id included).
    r = worker.click(link, visitor=ip, query="?gclid=abc")
    assert "refport_id=" in r.headers["Location"]
    # Two rows: the visits with and without an ad click id are told apart (a fraud signal).
    rows = settle(worker, link, 2, 5)
    assert {r["id"]: r["hits"] for r in rows} == {plain: 3, ad: 2}


def _click(cid, link, at):
    return {"id": cid, "program_id": link["program_id"], "partner_id": link["partner_id"], "link_id": link["id"],
            "at": at, "country": None, "referrer_host": None, "ip_hash": None, "ua_hash": None}


def test_an_hour_slides_from_the_counted_click(worker):
    """Through the consumer's batch write: visits an hour bucket apart fold into the previous
    bucket's row while less than an hour after it began, then make a new click."""
    p, pn, link = setup_link(worker)
    salt = worker.secrets["IP_HASH_SALT"]
    h = (now_ms() - 3 * DAY_MS) // DAY_MS * DAY_MS + 12 * HOUR_MS  # noon, three days ago
    ip, ua = "198.51.100.7", BROWSER_UA
    a = v2_click_id(salt, link["id"], h - HOUR_MS, ip, ua)
    b = v2_click_id(salt, link["id"], h, ip, ua)
    minute = 60_000

    def post(*visits):
        return ok(worker.post(HOOK, {"clicks": [_click(cid, link, at) for cid, at in visits]}))

    assert post((a, h - 10 * minute))["inserted"] == 1          # 11:50: a new click
    assert post((b, h + 10 * minute))["inserted"] == 0          # 12:10: 20 minutes later, folds
    assert {r["id"]: r["hits"] for r in clicks_of(worker, link)} == {a: 2}
    assert post((b, h + 49 * minute))["inserted"] == 0          # 12:49: still within the hour of 11:50
    w = post((b, h + 50 * minute))                              # 12:50: an hour after 11:50: new
    assert w["inserted"] == 1 and w["rows_written"] <= 2, w
    assert post((b, h + 55 * minute))["inserted"] == 0          # the same id: a hit of that row
    assert {r["id"]: (r["hits"], r["created_at"]) for r in clicks_of(worker, link)} == \
        {a: (3, h - 10 * minute), b: (2, h + 50 * minute)}
    assert rollup_clicks(worker, link) == 2
    with worker.db() as c:
        assert rollup_mismatches(c, p["id"]) == []


def test_one_batch_folds_across_hours_exactly(worker):
    """A batch holding the previous hour's visit and this hour's (layers), and one whose visits of
    the same id straddle the end of the previous row's hour (some fold, the rest make a row)."""
    p, pn, link = setup_link(worker)
    salt = worker.secrets["IP_HASH_SALT"]
    h = (now_ms() - 3 * DAY_MS) // DAY_MS * DAY_MS + 15 * HOUR_MS
    minute = 60_000
    ids = lambda ip: [v2_click_id(salt, link["id"], h + k * HOUR_MS, ip, BROWSER_UA) for k in (-1, 0, 1)]
    a0, a1, a2 = ids("198.51.100.1")
    b0, b1, _ = ids("198.51.100.2")
    visits = [
        (a1, h + 5 * minute), (a0, h - 30 * minute), (a2, h + HOUR_MS + 1 * minute), (a1, h + 40 * minute),
        (a0, h - 20 * minute),
    ]
    w = ok(worker.post(HOOK, {"clicks": [_click(c, link, at) for c, at in visits]}))
    # 14:30 new (a0); 14:40 and 15:05 fold into it (before 15:30); 15:40 new (a1); 16:01 folds into a1.
    assert w["inserted"] == 2, w
    got = {r["id"]: (r["hits"], r["created_at"]) for r in clicks_of(worker, link)}
    assert got == {a0: (3, h - 30 * minute), a1: (2, h + 40 * minute)}, got

    # b0 stored at 14:10; one batch of b1 at 15:05 (folds), 15:09 (folds), 15:10 and 15:30 (a row).
    ok(worker.post(HOOK, {"clicks": [_click(b0, link, h - 50 * minute)]}))
    w = ok(worker.post(HOOK, {"clicks": [_click(b1, link, h + m * minute) for m in (30, 5, 10, 9)]}))
    assert w["inserted"] == 1, w
    got = {r["id"]: (r["hits"], r["created_at"]) for r in clicks_of(worker, link)}
    assert got[b0] == (3, h - 50 * minute) and got[b1] == (2, h + 10 * minute), got
    assert rollup_clicks(worker, link) == 4
    with worker.db() as c:
        assert rollup_mismatches(c, p["id"]) == []


def test_a_batch_delivered_again_counts_no_click_twice(worker):
    p, pn, link = setup_link(worker)
    salt = worker.secrets["IP_HASH_SALT"]
    h = (now_ms() - 2 * DAY_MS) // HOUR_MS * HOUR_MS
    batch = [_click(v2_click_id(salt, link["id"], h, f"198.51.100.{i}", BROWSER_UA), link, h + i) for i in range(10)]
    batch += batch[:3]  # three visitors twice
    assert ok(worker.post(HOOK, {"clicks": batch}))["inserted"] == 10
    assert ok(worker.post(HOOK, {"clicks": batch}))["inserted"] == 0
    assert rollup_clicks(worker, link) == 10
    assert worker.count("SELECT COUNT(*) FROM clicks WHERE link_id = ?", link["id"]) == 10
    # hits count visits at least once: a redelivered batch adds its visits again
    assert worker.count("SELECT SUM(hits) FROM clicks WHERE link_id = ?", link["id"]) == 26


def test_rows_written_per_new_click_stays_about_one(worker):
    p, pn, link = setup_link(worker)
    m0 = ok(worker.get("/api/v1/metrics"))["counters"]
    n = 30
    me = worker.visitor()
    ids = [worker.click_id(link) for _ in range(n)] + [worker.click_id(link, visitor=me) for _ in range(5)]
    assert len(set(ids)) in (n + 1, n + 2)
    wait_clicks(worker, link, len(set(ids)))
    settle(worker, link, len(set(ids)), n + 5)
    time.sleep(0.5)
    m1 = ok(worker.get("/api/v1/metrics"))["counters"]
    d = {k: m1[k] - m0.get(k, 0) for k in m1}
    assert d["clicks_inserted"] == len(set(ids)), d
    # one row per new click, one per row a repeated visit adds to, one rollup row per batch
    assert d["click_rows_written"] <= d["clicks_inserted"] + 5 + d["click_batches"], d
    print(f"rows written per new click: {d['click_rows_written'] / d['clicks_inserted']:.2f} ({d})")
