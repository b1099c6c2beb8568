"""Sub-IDs (issue 16): a branded-link click may carry `sub1`, `sub2`, `sub3` (each 1 to 64
printable characters after decoding; refport_core::click::sub_ids). A valid one is stored on the
click and forwarded to the destination under the same name; an invalid one, and every other
parameter of the click URL, is neither. Stats group by them from the rollups
(`daily_sub_stats`, migrations/0008), never from raw clicks; the portal lists them."""

import time
from urllib.parse import parse_qsl, urlsplit

from apihelpers import assert_error, click_id_of, ok, setup_link, uid, wait_clicks

HOOK = "/api/v1/_test/click-batch"


def location_query(r):
    assert r.status_code == 302, (r.status_code, r.text)
    return parse_qsl(urlsplit(r.headers["Location"]).query, keep_blank_values=True)


def stored(worker, cid):
    [row] = worker.rows("SELECT sub1, sub2, sub3 FROM clicks WHERE id = ?", cid)
    return row["sub1"], row["sub2"], row["sub3"]


def raw_sub_rollup_mismatches(worker, program_id):
    """daily_sub_stats' clicks against the raw click rows that carry a sub-ID."""
    raw = {tuple(r.values())[:-1]: r["n"] for r in worker.rows(
        "SELECT partner_id, link_id, created_at / 86400000 AS day, COALESCE(sub1, ''), COALESCE(sub2, ''),"
        " COALESCE(sub3, ''), COUNT(*) AS n FROM clicks WHERE program_id = ?"
        " AND (sub1 IS NOT NULL OR sub2 IS NOT NULL OR sub3 IS NOT NULL) GROUP BY 1, 2, 3, 4, 5, 6", program_id)}
    kept = {tuple(r.values())[:-1]: r["n"] for r in worker.rows(
        "SELECT partner_id, link_id, day, sub1, sub2, sub3, SUM(clicks) AS n FROM daily_sub_stats"
        " WHERE program_id = ? GROUP BY 1, 2, 3, 4, 5, 6 HAVING SUM(clicks) > 0", program_id)}
    return [(k, raw.get(k), kept.get(k)) for k in sorted(set(raw) | set(kept)) if raw.get(k) != kept.get(k)]


def test_sub_ids_are_stored_and_forwarded_other_parameters_are_not(worker):
    p, pn, link = setup_link(worker, path="/landing?sub1=merchant&x=1")
    r = worker.click(link, query="?sub1=tiktok&sub2=a%20b+c&sub3=%C3%A9t%C3%A9&utm_source=yt&gclid=abc&sub4=no")
    cid = click_id_of(r)
    assert location_query(r) == [("x", "1"), ("sub1", "tiktok"), ("sub2", "a b c"), ("sub3", "été"), ("refport_id", cid)]
    assert "%20" in r.headers["Location"] and "utm_source" not in r.headers["Location"]
    wait_clicks(worker, link, 1)
    assert stored(worker, cid) == ("tiktok", "a b c", "été")
    listed = ok(worker.get(f"/api/v1/clicks?link_id={link['id']}"))["data"]
    assert [(c["id"], c["sub1"], c["sub2"], c["sub3"]) for c in listed] == [(cid, "tiktok", "a b c", "été")]

    # 64 characters (of any width) pass; the first occurrence of a name is the one read
    wide = "日" * 64
    r = worker.click(link, query=f"?sub2={'%E6%97%A5' * 64}&sub2=second&sub3={'z' * 64}")
    cid2 = click_id_of(r)
    assert location_query(r) == [("sub1", "merchant"), ("x", "1"), ("sub2", wide), ("sub3", "z" * 64), ("refport_id", cid2)]
    wait_clicks(worker, link, 2)
    assert stored(worker, cid2) == (None, wide, "z" * 64)


def test_invalid_sub_ids_are_ignored_and_not_forwarded(worker):
    p, pn, link = setup_link(worker, path="/landing?sub1=merchant")
    bad = ["sub1=", "sub1=%20%20", "sub1=a%00b", "sub1=a%0Db", "sub1=%7F", "sub1=%FF", "sub1=%E2%80%AEx",
           f"sub1={'a' * 65}", f"sub1={'%E6%97%A5' * 65}"]
    ids = []
    for q in bad:
        r = worker.click(link, query=f"?{q}&sub2=ok")
        cid = click_id_of(r)
        # the destination's own sub1 stays; the click's invalid one is dropped, its valid sub2 kept
        assert location_query(r) == [("sub1", "merchant"), ("sub2", "ok"), ("refport_id", cid)], q
        ids.append(cid)
    wait_clicks(worker, link, len(bad))
    for q, cid in zip(bad, ids):
        assert stored(worker, cid) == (None, "ok", None), q


def test_a_visit_that_is_not_a_click_still_forwards_its_sub_ids(worker):
    p, pn, link = setup_link(worker)
    r = worker.click(link, ua=None, query="?sub1=preview&utm_medium=x")
    assert r.status_code == 302 and "Set-Cookie" not in r.headers
    assert r.headers["Location"] == link["url"] + "?sub1=preview"
    r = worker.click(link, ua=None, query="?utm_medium=x")
    assert r.headers["Location"] == link["url"]


def test_stats_group_by_sub_ids_from_the_rollups(worker):
    p, pn, link = setup_link(worker)
    other = worker.partner(p)
    link2 = worker.link(other, p)
    plan = [("?sub1=tiktok&sub2=bio", link)] * 3 + [("?sub1=yt", link)] * 2 + [("?sub2=only", link), ("", link),
                                                                                 ("?sub1=tiktok", link2), ("", link2)]
    clicks = [(q, ln, click_id_of(worker.click(ln, query=q))) for q, ln in plan]
    wait_clicks(worker, link, 7)
    wait_clicks(worker, link2, 2)
    # A lead and a sale through a tiktok click; a lead through an untagged one.
    tagged_click = clicks[0][2]
    cust = uid("cust")
    ok(worker.post("/api/v1/track/lead", {"click_id": tagged_click, "customer_external_id": cust}))
    ok(worker.post("/api/v1/track/sale", {"customer_external_id": cust, "amount": 10000, "currency": "usd",
                                          "invoice_id": uid("in"), "program_id": p["id"]}))
    ok(worker.post("/api/v1/track/lead", {"click_id": clicks[6][2], "customer_external_id": uid("cust")}))

    def by(group, **params):
        q = "&".join(f"{k}={v}" for k, v in {"group_by": group, **params}.items())
        return ok(worker.get(f"/api/v1/programs/{p['id']}/stats?{q}"))

    s = by("sub1")
    assert s["group_by"] == "sub1"
    rows = {r["sub1"]: (r["clicks"], r["leads"], r["sales"]) for r in s["data"]}
    assert rows == {"tiktok": (4, 1, 1), "yt": (2, 0, 0), None: (3, 1, 0)}, s["data"]
    assert [r["sub1"] for r in s["data"]] == ["tiktok", None, "yt"], "busiest first"
    assert (s["totals"]["clicks"], s["totals"]["leads"], s["totals"]["sales"]) == (9, 2, 1)
    tiktok = next(r for r in s["data"] if r["sub1"] == "tiktok")
    assert [(a["currency"], a["sale_amount"]) for a in tiktok["amounts"]] == [("usd", 10000)]
    # commissions are not split by sub-ID: all of them in the group without one, the totals right
    assert tiktok["amounts"][0]["earnings"]["total"] == 0
    assert s["totals"]["amounts"][0]["earnings"]["total"] == 500 + 2000 + 500
    assert {r["sub2"]: r["clicks"] for r in by("sub2")["data"]} == {"bio": 3, "only": 1, None: 5}
    assert {r["sub3"]: r["clicks"] for r in by("sub3")["data"]} == {None: 9}
    assert by("sub1", limit=1)["has_more"] is True
    one = by("sub1", partner_id=other["id"])
    assert {r["sub1"]: r["clicks"] for r in one["data"]} == {"tiktok": 1, None: 1}
    assert by("sub1", **{"from": "2020-01-01", "to": "2020-01-31"})["data"] == []

    # the partner's stats by sub-ID, over its own data only
    ps = ok(worker.get(f"/api/v1/partners/{pn['id']}/stats?group_by=sub1"))
    assert ps["clicks"] == 7 and ps["group_by"] == "sub1"
    assert {r["sub1"]: r["clicks"] for r in ps["data"]} == {"tiktok": 3, "yt": 2, None: 2}
    assert "group_by" not in ok(worker.get(f"/api/v1/partners/{pn['id']}/stats"))

    # bad values: a 400 naming the parameter
    for path in (f"/api/v1/programs/{p['id']}/stats?group_by=sub4", f"/api/v1/partners/{pn['id']}/stats?group_by=sub0",
                 f"/api/v1/partners/{pn['id']}/stats?group_by=partner"):
        err = assert_error(worker.get(path), 400, "invalid_query")
        assert "group_by" in err["message"], err
    assert_error(worker.get(f"/api/v1/partners/{pn['id']}/stats?group_by=sub1&limit=0"), 400, "invalid_query")
    assert_error(worker.get(f"/api/v1/partners/{pn['id']}/stats?sub1=x"), 400, "invalid_query")

    assert raw_sub_rollup_mismatches(worker, p["id"]) == []

    # the portal: the partner's combinations, busiest first
    tok = ok(worker.post("/api/v1/embed-tokens", {"program_id": p["id"], "partner_id": pn["id"]}), 201)["token"]
    st = ok(worker.get("/api/v1/portal/stats", key=None, headers={"Authorization": f"Bearer {tok}"}))
    assert st["sub_ids"] == [
        {"sub1": "tiktok", "sub2": "bio", "sub3": None, "clicks": 3, "leads": 1, "sales": 1},
        {"sub1": "yt", "sub2": None, "sub3": None, "clicks": 2, "leads": 0, "sales": 0},
        {"sub1": None, "sub2": "only", "sub3": None, "clicks": 1, "leads": 0, "sales": 0},
    ], st["sub_ids"]


def test_a_program_bound_key_sees_only_its_program(worker):
    pa, pna, la = setup_link(worker)
    pb, pnb, lb = setup_link(worker)
    click_id_of(worker.click(la, query="?sub1=alpha"))
    click_id_of(worker.click(lb, query="?sub1=bravo"))
    wait_clicks(worker, la, 1)
    wait_clicks(worker, lb, 1)
    key = ok(worker.post("/api/v1/api-keys", {"name": "a only", "program_id": pa["id"], "permissions": ["read"]}), 201)["key"]
    s = ok(worker.get(f"/api/v1/programs/{pa['id']}/stats?group_by=sub1", key=key))
    assert {r["sub1"]: r["clicks"] for r in s["data"]} == {"alpha": 1}
    # program-bound keys name other programs' data as not found, whatever the grouping
    for path in (f"/api/v1/programs/{pb['id']}/stats?group_by=sub1", f"/api/v1/partners/{pnb['id']}/stats?group_by=sub1"):
        r = worker.get(path, key=key)
        assert r.status_code in (403, 404) and "bravo" not in r.text, (path, r.status_code, r.text)
    # a partner of program A named with program B's stats answers nothing of B
    s = ok(worker.get(f"/api/v1/programs/{pa['id']}/stats?group_by=sub1&partner_id={pnb['id']}", key=key))
    assert s["data"] == [] and s["totals"]["clicks"] == 0
    # clicks listed with the key: its program's only
    listed = ok(worker.get("/api/v1/clicks", key=key))["data"]
    assert {c["sub1"] for c in listed} == {"alpha"}


def test_tagged_clicks_cost_about_one_row_each(worker):
    """The consumer's batch (through the test hook): clicks with sub-IDs add one rollup row and
    its index entry per (link, day, sub-IDs) group per batch, not per click; a redelivered batch
    counts nothing again."""
    p, pn, link = setup_link(worker)
    at = int(time.time() * 1000)
    suffix = uid("t").split("-")[1]

    def click(i, **subs):
        return {"id": f"clk_sub{i:04d}x{suffix}", "program_id": p["id"], "partner_id": pn["id"], "link_id": link["id"],
                "at": at, "country": None, "referrer_host": None, "ip_hash": None, "ua_hash": None, **subs}

    batch = [click(i, sub1="a" if i % 2 else "b", sub3="x") for i in range(60)] + [click(60 + i) for i in range(40)]
    w = ok(worker.post(HOOK, {"clicks": batch}))
    # 100 click rows, 1 daily_stats row and 2 daily_sub_stats rows, each with its index entry
    assert w["inserted"] == 100 and w["rows_written"] <= 100 + 2 + 4, w
    assert ok(worker.post(HOOK, {"clicks": batch}))["inserted"] == 0
    rows = {(r["sub1"], r["sub2"], r["sub3"]): r["clicks"] for r in worker.rows(
        "SELECT sub1, sub2, sub3, clicks FROM daily_sub_stats WHERE link_id = ?", link["id"])}
    assert rows == {("a", "", "x"): 30, ("b", "", "x"): 30}
    assert raw_sub_rollup_mismatches(worker, p["id"]) == []
