"""End-to-end tests of the CSV export (`GET /api/v1/{commissions,payouts,partners}/export`) and
the partner import (`POST /api/v1/programs/{id}/partners/import`), issue 17.

Exports are read back with Python's `csv` module: RFC 4180 quoting, CRLF line ends, a `'` before
any text cell a spreadsheet would run as a formula, the list endpoints' filters, every row past
one internal page, never another program's rows. Imports: a dry run writes nothing, a real run
is idempotent by email, bad rows are reported while good ones land, 10,000 rows in bounded D1
round trips, and `invite=true` emails invitations."""

import csv
import io
import time

from apihelpers import assert_error, uid

V = "/api/v1"
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def parse(r):
    """An export's rows as dicts, after checking its headers and line ends."""
    assert r.status_code == 200, (r.status_code, r.text[:500])
    assert r.headers["content-type"] == "text/csv; charset=utf-8", r.headers
    assert r.headers["content-disposition"].startswith("attachment; filename="), r.headers
    assert r.headers["content-disposition"].endswith('.csv"'), r.headers
    body = r.content.decode("utf-8")
    assert body.endswith("\r\n"), body[-50:]
    return list(csv.DictReader(io.StringIO(body, newline="")))


def seed_commissions(worker, program, partner, n, status="pending", tag=None, held=False, amount=1250):
    """`n` bonus commissions straight into D1, ids time-ordered like the Worker's."""
    tag = tag or uid("s").replace("-", "")[:10].upper()
    now = int(time.time() * 1000)
    rows = [(f"cm_0{tag}{i:07d}", program["id"], partner["id"], "bonus", amount + i, amount + i, "usd", status,
             "fraud" if status == "rejected" else None, '["click_spam"]' if held else None, f"seeded {i}", now, now)
            for i in range(n)]
    with worker.writable() as c:
        c.executemany(
            "INSERT INTO commissions (id, program_id, partner_id, kind, original_amount, amount, currency, status,"
            " reason, hold_reasons, description, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)", rows)
    return [r[0] for r in rows]


def seed_payouts(worker, program, partner, statuses):
    now = int(time.time() * 1000)
    tag = uid("p").replace("-", "")[:10].upper()
    rows = [(f"po_0{tag}{i:04d}", program["id"], partner["id"], 5000 + i, "usd", s,
             "card_declined: no" if s == "failed" else None, now, now, now if s == "paid" else None)
            for i, s in enumerate(statuses)]
    with worker.writable() as c:
        c.executemany("INSERT INTO payouts (id, program_id, partner_id, amount, currency, status, failure_message,"
                      " created_at, updated_at, paid_at) VALUES (?,?,?,?,?,?,?,?,?,?)", rows)
    return [r[0] for r in rows]


def list_all(worker, path):
    """Every id a list endpoint answers, paging with its cursor."""
    ids, cursor = [], None
    while True:
        sep = "&" if "?" in path else "?"
        r = worker.get(f"{path}{sep}limit=100" + (f"&cursor={cursor}" if cursor else ""))
        assert r.status_code == 200, r.text
        body = r.json()
        ids += [x["id"] for x in body["data"]]
        cursor = body["next_cursor"]
        if not cursor:
            return ids


def make_key(worker, permissions, program_id=None):
    body = {"name": uid("key"), "permissions": permissions}
    if program_id:
        body["program_id"] = program_id
    return worker.ok("POST", f"{V}/api-keys", body, status=201)["key"]


def d1_calls(worker):
    return worker.metrics()["d1_calls"]


# ----------------------------------------------------------------------------------------------
# export
# ----------------------------------------------------------------------------------------------

TRICKY = ["Doe, Jane", 'Say "hi"', "two\nlines", "crlf\r\nname", "=HYPERLINK(\"http://evil.test\",\"x\")",
          "+1", "-2", "@x", "\tx", "\rx", "plain é"]


def test_export_quotes_and_guards_every_text_cell(worker):
    p = worker.program()
    made = []
    for name in TRICKY:
        made.append(worker.partner(p, name=f"tmp {uid()}"))
    # Names as stored data (the API trims a leading tab or CR, an older import may not have).
    with worker.writable() as c:
        c.executemany("UPDATE partners SET name = ? WHERE id = ?", [(n, m["id"]) for n, m in zip(TRICKY, made)])
    r = worker.get(f"{V}/partners/export?program_id={p['id']}")
    raw = r.content.decode()
    rows = parse(r)
    assert len(rows) == len(TRICKY)
    by_id = {row["id"]: row for row in rows}
    for name, m in zip(TRICKY, made):
        want = "'" + name if name.startswith(FORMULA_START) else name
        assert by_id[m["id"]]["name"] == want, (name, by_id[m["id"]]["name"])
    # No cell of the document opens with a formula character.
    for row in rows:
        for v in row.values():
            assert not v.startswith(FORMULA_START), row
    # RFC 4180 on the wire: quoted, quotes doubled, CRLF between records.
    assert '"Doe, Jane"' in raw and '"Say ""hi"""' in raw and '"two\nlines"' in raw
    assert "\"'=HYPERLINK(\"\"http://evil.test\"\",\"\"x\"\")\"" in raw
    assert raw.split("\r\n", 1)[0].startswith("id,created_at,program_id,email,name,status")
    assert rows[0]["email"] and rows[0]["status"] == "active"


def test_commission_export_amounts_and_guarded_description(worker):
    p = worker.program()
    pn = worker.partner(p, name="Ann, Inc.")
    r = worker.post(f"{V}/commissions", {"partner_id": pn["id"], "amount": 123456, "description": "-2 bonus, \"q\""})
    assert r.status_code == 201, r.text
    [row] = parse(worker.get(f"{V}/commissions/export?program_id={p['id']}"))
    assert row["amount"] == "123456" and row["amount_decimal"] == "1234.56" and row["currency"] == "usd"
    assert row["description"] == "'-2 bonus, \"q\""
    assert row["partner_email"] == pn["email"] and row["partner_name"] == "Ann, Inc."
    assert row["kind"] == "bonus" and row["status"] in ("pending", "approved")
    assert row["created_at"].endswith("Z")


def test_export_filters_match_the_lists(worker):
    p = worker.program()
    a, b = worker.partner(p), worker.partner(p)
    seed_commissions(worker, p, a, 30, "pending")
    seed_commissions(worker, p, a, 7, "pending", held=True)
    seed_commissions(worker, p, b, 12, "approved")
    seed_commissions(worker, p, b, 5, "rejected")
    seed_payouts(worker, p, a, ["paid", "failed", "paid"])
    seed_payouts(worker, p, b, ["paid"])
    pid = p["id"]
    for q in ["", "&status=pending", "&status=approved", f"&partner_id={a['id']}", "&held=true", "&held=false",
              f"&partner_id={b['id']}&status=rejected"]:
        listed = list_all(worker, f"{V}/commissions?program_id={pid}{q}")
        exported = [row["id"] for row in parse(worker.get(f"{V}/commissions/export?program_id={pid}{q}"))]
        assert exported == listed, q
        assert listed or q.startswith("&partner_id"), q
    held = parse(worker.get(f"{V}/commissions/export?program_id={pid}&held=true"))
    assert len(held) == 7 and all(r["held"] == "true" and r["hold_reasons"] == "click_spam" for r in held)
    for q in ["", "&status=paid", "&status=failed", f"&partner_id={b['id']}"]:
        listed = list_all(worker, f"{V}/payouts?program_id={pid}{q}")
        rows = parse(worker.get(f"{V}/payouts/export?program_id={pid}{q}"))
        assert [r["id"] for r in rows] == listed and listed, q
    failed = parse(worker.get(f"{V}/payouts/export?program_id={pid}&status=failed"))[0]
    assert failed["amount"] == "5001" and failed["amount_decimal"] == "50.01" and failed["paid_at"] == ""
    # The list's query parsing: the same 400s.
    assert_error(worker.get(f"{V}/commissions/export?status=nope"), 400, "invalid_query")
    assert_error(worker.get(f"{V}/payouts/export?partner_id=cm_x"), 400, "invalid_query")
    assert_error(worker.get(f"{V}/partners/export?limit=5"), 400, "invalid_query")
    assert_error(worker.get(f"{V}/payouts/export?cursor="), 400, "invalid_query")
    assert_error(worker.get(f"{V}/commissions/export", key=None), 401, "unauthorized")


def test_export_pages_past_one_internal_page_and_never_shows_another_program(worker):
    p, other = worker.program(), worker.program()
    a = worker.partner(p)
    seeded = seed_commissions(worker, p, a, 2500, "approved")
    foreign = seed_commissions(worker, other, worker.partner(other), 40, "approved")
    before = d1_calls(worker)
    t0 = time.monotonic()
    rows = parse(worker.get(f"{V}/commissions/export?program_id={p['id']}"))
    took = time.monotonic() - t0
    calls = d1_calls(worker) - before
    ids = [r["id"] for r in rows]
    assert len(ids) == 2500 and set(ids) == set(seeded)
    assert ids == sorted(ids, reverse=True)
    assert not set(foreign) & set(ids)
    print(f"\nexport of 2,500 commissions: {took:.2f}s, {calls} D1 calls")
    assert calls <= 4, calls  # 3 pages of 1,000 (+ the key, for a stored one)
    # A key bound to the program sees only it, with or without naming it; another program is 404.
    key = make_key(worker, ["read"], p["id"])
    bound = parse(worker.get(f"{V}/commissions/export", key=key))
    assert {r["program_id"] for r in bound} == {p["id"]} and len(bound) == 2500
    assert_error(worker.get(f"{V}/commissions/export?program_id={other['id']}", key=key), 404, "not_found")
    assert {r["program_id"] for r in parse(worker.get(f"{V}/payouts/export", key=key))} <= {p["id"]}
    assert {r["program_id"] for r in parse(worker.get(f"{V}/partners/export", key=key))} == {p["id"]}
    # A cursor starts after a given row (what Refport-Next-Cursor names past the row cap).
    tail = parse(worker.get(f"{V}/commissions/export?program_id={p['id']}&cursor={ids[999]}"))
    assert [r["id"] for r in tail] == ids[1000:]


def test_partner_export_has_group_link_and_coupon(worker):
    p = worker.program()
    g = worker.ok("POST", f"{V}/programs/{p['id']}/groups", {"name": "VIP, gold"}, status=201)
    pn = worker.partner(p, group_id=g["id"], country="de")
    link = worker.link(pn, p, key="ann-link")
    worker.ok("POST", f"{V}/partners/{pn['id']}/coupons", {"code": "ANN10"}, status=201)
    worker.partner(p)
    rows = parse(worker.get(f"{V}/partners/export?program_id={p['id']}"))
    row = next(r for r in rows if r["id"] == pn["id"])
    assert (row["group_id"], row["group_name"], row["country"]) == (g["id"], "VIP, gold", "DE")
    assert (row["link_key"], row["link_url"], row["coupon_code"]) == ("ann-link", link["url"], "ANN10")
    assert row["short_url"] == f"https://{link['domain']}/ann-link"
    assert len(parse(worker.get(f"{V}/partners/export?program_id={p['id']}&status=banned"))) == 0


# ----------------------------------------------------------------------------------------------
# import
# ----------------------------------------------------------------------------------------------

def csv_text(header, rows):
    out = io.StringIO(newline="")
    w = csv.writer(out, lineterminator="\r\n")
    w.writerow(header)
    w.writerows(rows)
    return out.getvalue()


def post_import(worker, program, text, query="", **kw):
    return worker.request("POST", f"{V}/programs/{program['id']}/partners/import{query}", data=text.encode(),
                          headers={"Content-Type": "text/csv"}, **kw)


def counts(worker, program):
    pid = program["id"]
    return {t: worker.count(f"SELECT COUNT(*) FROM {t} WHERE program_id = ?", pid)
            for t in ("partners", "links", "coupons", "invitations")}


def test_import_dry_run_writes_nothing_then_real_run_twice_creates_once(worker):
    p = worker.program()
    host, domain = p["allowed_hosts"][0], p["domains"][0]
    g = worker.ok("POST", f"{V}/programs/{p['id']}/groups", {"name": "Imported"}, status=201)
    existing = worker.partner(p, name="Old Name")
    t = uid("k").replace("-", "_")
    text = csv_text(
        ["name", "email", "link_key", "link_url", "group_id", "coupon_code", "country"],
        [["Ann, the first", f"ann-{t}@x.test", f"ann_{t}", f"https://{host}/a?x=1", g["id"], f"ANN_{t}"[:40], "de"],
         ["Bob", f"bob-{t}@x.test", "", f"https://{host}/b", "", "", ""],
         ["Renamed", existing["email"].upper(), "", "", "", "", "FR"],
         ["Cy", f"cy-{t}@x.test", "", "", "", "", ""]])
    before = counts(worker, p)
    tables = worker.table_counts()
    dry = post_import(worker, p, text, "?dry_run=true")
    assert dry.status_code == 200, dry.text
    d = dry.json()
    assert d["dry_run"] is True and d["summary"] == {"created": 3, "updated": 1, "errors": 0}, d
    assert [r["row"] for r in d["rows"]] == [2, 3, 4, 5]
    assert [r["result"] for r in d["rows"]] == ["created", "created", "updated", "created"]
    assert d["rows"][2]["partner_id"] == existing["id"] and d["rows"][2]["changes"] == ["name", "country"]
    assert "partner_id" not in d["rows"][0] and d["rows"][0]["changes"] == ["link", "coupon_code"]
    assert counts(worker, p) == before and worker.table_counts() == tables

    real = post_import(worker, p, text).json()
    assert real["dry_run"] is False and real["summary"]["created"] == 3 and real["summary"]["updated"] == 1, real
    after = counts(worker, p)
    assert after == {"partners": before["partners"] + 3, "links": before["links"] + 2,
                     "coupons": before["coupons"] + 1, "invitations": 0}, after
    ann = worker.ok("GET", f"{V}/partners/{real['rows'][0]['partner_id']}")
    assert (ann["name"], ann["country"], ann["group_id"], ann["status"]) == ("Ann, the first", "DE", g["id"], "active")
    assert worker.rows("SELECT key, url, domain FROM links WHERE partner_id = ?", ann["id"]) == [
        {"key": f"ann_{t}", "url": f"https://{host}/a?x=1", "domain": domain}]
    old = worker.ok("GET", f"{V}/partners/{existing['id']}")
    assert (old["name"], old["country"]) == ("Renamed", "FR")
    # The imported link redirects.
    r = worker.click({"domain": domain, "key": f"ann_{t}"})
    assert r.status_code == 302 and r.headers["Location"].startswith(f"https://{host}/a?x=1&refport_id="), r.headers

    again = post_import(worker, p, text).json()
    assert again["summary"] == {"created": 0, "updated": 4, "errors": 0, "invited": 0, "emails_sent": 0}, again
    assert all(r["changes"] == [] for r in again["rows"]), again["rows"]
    assert counts(worker, p) == after
    assert not worker.emails.to(f"ann-{t}@x.test")


def test_bad_rows_are_reported_and_good_rows_land(worker):
    p = worker.program()
    other = worker.program()
    host = p["allowed_hosts"][0]
    taken = worker.partner(p)
    worker.link(taken, p, key="taken-key")
    worker.ok("POST", f"{V}/partners/{taken['id']}/coupons", {"code": "TAKEN10"}, status=201)
    foreign_group = worker.ok("POST", f"{V}/programs/{other['id']}/groups", {"name": "Theirs"}, status=201)
    t = uid("e")
    rows = [
        [f"good1-{t}@x.test", "Good One", "", "", "", ""],              # 2 created
        ["not-an-email", "Bad Email", "", "", "", ""],                   # 3 email
        [f"c-{t}@x.test", "Bad Country", "", "", "", "Narnia"],          # 4 country
        [f"k-{t}@x.test", "Reserved Key", "api", "", "", ""],            # 5 link_key reserved
        [f"u-{t}@x.test", "Evil Url", "", "https://evil.test/", "", ""],  # 6 link_url host
        [f"g-{t}@x.test", "Foreign Group", "", "", foreign_group["id"], ""],  # 7 group of another program
        [f"t-{t}@x.test", "Taken Key", "taken-key", "", "", ""],          # 8 key is another partner's
        [f"t2-{t}@x.test", "Taken Code", "", "", "", ""],                # 9 fine
        [f"GOOD1-{t}@x.test", "Dup", "", "", "", ""],                    # 10 duplicate of row 2
        [f"n-{t}@x.test", "", "", "", "", ""],                           # 11 name
        [f"good2-{t}@x.test", "Good Two", "", f"https://{host}/x", "", "US"],  # 12 created
    ]
    text = csv_text(["email", "name", "link_key", "link_url", "group_id", "country"], rows)
    text += f"cc-{t}@x.test,Coupon,,,,\r\n"  # 13 fine
    body = post_import(worker, p, text).json()
    res = {r["row"]: r for r in body["rows"]}
    want = {3: ("email", "invalid_email"), 4: ("country", "invalid_country"), 5: ("link_key", "reserved_key"),
            6: ("link_url", "host_not_allowed"), 7: ("group_id", "invalid_group"), 8: ("link_key", "key_taken"),
            10: ("email", "duplicate_email"), 11: ("name", "invalid_name")}
    for n, (field, code) in want.items():
        assert res[n]["result"] == "error", res[n]
        assert (res[n]["error"]["field"], res[n]["error"]["code"]) == (field, code), res[n]
        assert res[n]["error"]["message"]
    assert "row 2" in res[10]["error"]["message"]
    assert res[3]["email"] == "not-an-email"
    for n in (2, 9, 12, 13):
        assert res[n]["result"] == "created", res[n]
    assert body["summary"] == {"created": 4, "updated": 0, "errors": 8, "invited": 0, "emails_sent": 0}
    emails = {r["email"] for r in worker.rows("SELECT email FROM partners WHERE program_id = ?", p["id"])}
    assert {f"good1-{t}@x.test", f"good2-{t}@x.test", f"t2-{t}@x.test", f"cc-{t}@x.test"} <= emails
    assert not {f"c-{t}@x.test", f"k-{t}@x.test", f"n-{t}@x.test"} & emails
    # A coupon code another partner has: that row only.
    r = post_import(worker, p, csv_text(["email", "name", "coupon_code"],
                                        [[f"z-{t}@x.test", "Z", "taken10"], [f"y-{t}@x.test", "Y", "Y_CODE_1"]])).json()
    assert [x["result"] for x in r["rows"]] == ["error", "created"]
    assert r["rows"][0]["error"]["code"] == "coupon_code_taken" and r["rows"][0]["error"]["field"] == "coupon_code"


def test_import_request_errors(worker):
    p = worker.program()
    assert_error(post_import(worker, p, "email,name,phone\r\na@x.test,A,1\r\n"), 400, "unknown_column")
    assert_error(post_import(worker, p, "email\r\na@x.test\r\n"), 400, "missing_column")
    assert_error(post_import(worker, p, ""), 400, "invalid_csv")
    assert_error(post_import(worker, p, 'email,name\r\n"a@x.test,A\r\n'), 400, "invalid_csv")
    assert_error(post_import(worker, p, "email,name\r\n", "?dry_run=maybe"), 400, "invalid_query")
    many = "email,name\r\n" + "".join(f"r{i}@x.test,R{i}\r\n" for i in range(10_001))
    assert_error(post_import(worker, p, many), 413, "too_many_rows")
    assert_error(post_import(worker, p, "email,name\r\n" + "x" * (5 * 1024 * 1024)), 413, "payload_too_large")
    invites = "email,name\r\n" + "".join(f"i{i}@x.test,I{i}\r\n" for i in range(101))
    assert_error(post_import(worker, p, invites, "?invite=true"), 400, "too_many_invites")
    reader = make_key(worker, ["read"])
    assert_error(post_import(worker, p, "email,name\r\n", key=reader), 403, "forbidden")
    other = worker.program()
    bound = make_key(worker, ["read", "write"], other["id"])
    assert_error(post_import(worker, p, "email,name\r\n", key=bound), 404, "not_found")
    assert counts(worker, p)["partners"] == 0


def test_ten_thousand_rows_in_bounded_d1_round_trips(worker):
    p = worker.program()
    host = p["allowed_hosts"][0]
    t = uid("b").replace("-", "")[-8:]
    rows = [[f"bulk{i}-{t}@x.test", f"Bulk {i}", f"b{t}{i}", f"https://{host}/p{i % 7}", f"B{t}{i}"]
            for i in range(10_000)]
    text = csv_text(["email", "name", "link_key", "link_url", "coupon_code"], rows)
    renamed = csv_text(["email", "name"], [[r[0], r[1] + " (renamed)"] for r in rows])
    # Reads: a few batches of 500-value lookups; writes: 500 rows per statement, 20 statements
    # per batch; a changed partner is one UPDATE, 100 per batch.
    for body, query, label, most in ((text, "?dry_run=true", "dry run", 10), (text, "", "import", 15),
                                     (text, "", "second import", 10), (renamed, "", "rename import", 115)):
        before = d1_calls(worker)
        t0 = time.monotonic()
        r = post_import(worker, p, body, query)
        took = time.monotonic() - t0
        calls = d1_calls(worker) - before
        assert r.status_code == 200, r.text[:500]
        s = r.json()["summary"]
        print(f"\n10,000-row {label}: {took:.2f}s wall, {calls} D1 round trips, {len(body)} bytes, summary {s}")
        assert calls <= most, calls
        if label in ("second import", "rename import"):
            assert (s["created"], s["updated"], s["errors"]) == (0, 10_000, 0), s
        else:
            assert (s["created"], s["errors"]) == (10_000, 0), s
    assert worker.count("SELECT COUNT(*) FROM partners WHERE program_id = ? AND name LIKE '% (renamed)'", p["id"]) == 10_000
    assert counts(worker, p) == {"partners": 10_000, "links": 10_000, "coupons": 10_000, "invitations": 0}


def test_invite_true_invites_only_new_partners(worker):
    p = worker.program()
    existing = worker.partner(p)
    t = uid("i")
    text = csv_text(["email", "name"], [[f"inv1-{t}@x.test", "Ivy"], [f"inv2-{t}@x.test", "Ian"],
                                        [existing["email"], "Known"]])
    assert post_import(worker, p, text, "?invite=true&dry_run=true").json()["summary"]["created"] == 2
    assert not worker.emails.to(f"inv1-{t}@x.test")
    body = post_import(worker, p, text, "?invite=true").json()
    assert body["summary"]["invited"] == 2 and body["summary"]["emails_sent"] == 2, body
    for addr in (f"inv1-{t}@x.test", f"inv2-{t}@x.test"):
        [mail] = worker.emails.to(addr)
        assert "invite?token=" in mail["text"], mail
        pid = next(r["partner_id"] for r in body["rows"] if r["email"] == addr)
        assert worker.ok("GET", f"{V}/partners/{pid}")["status"] == "invited"
    assert not worker.emails.to(existing["email"])
    # The emailed link works: accepting activates the partner.
    token = worker.emails.to(f"inv1-{t}@x.test")[0]["text"].split("token=", 1)[1].split()[0]
    acc = worker.post(f"{V}/invites/accept", {"token": token}, key=None)
    assert acc.status_code == 200, acc.text
    # Again: nobody is invited twice.
    again = post_import(worker, p, text, "?invite=true").json()
    assert again["summary"]["created"] == 0 and again["summary"]["invited"] == 0
    assert len(worker.emails.to(f"inv2-{t}@x.test")) == 1
    assert counts(worker, p)["invitations"] == 2
