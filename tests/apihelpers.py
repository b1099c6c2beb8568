"""Helpers shared by the e2e suites (importable: conftest puts tests/ on sys.path)."""

import re
import uuid
from urllib.parse import parse_qs, urlsplit


def uid(prefix="x"):
    """A unique, readable value for ids the client chooses (customers, invoices, names)."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def ok(r, status=200):
    """The response's JSON, after checking its exact status."""
    assert r.status_code == status, (r.status_code, r.text)
    return r.json()


def assert_error(r, status, code, field=None):
    """The API's error shape: exact status, JSON `{"error": {"code", "message"[, "field"]}}`."""
    assert r.status_code == status, (r.status_code, r.text)
    assert r.headers["Content-Type"].startswith("application/json"), r.headers
    err = r.json()["error"]
    assert err["code"] == code, err
    assert isinstance(err["message"], str) and err["message"], err
    if field is not None:
        assert err.get("field") == field, err
    return err


# -- programs, links and clicks (the management API and redirect suites) -------------------------

# A signed click id (core/src/click_id.rs): 26 time-ordered + 16 MAC characters (Crockford
# base32), then the body of the link id.
CLICK_ID = re.compile(r"^clk_[0-9A-HJKMNP-TV-Z]{42}[0-9A-Za-z]{1,64}$")


def tag():
    return uuid.uuid4().hex[:10]


def setup_link(worker, program_overrides=None, **link_overrides):
    p = worker.program(**(program_overrides or {}))
    pn = worker.partner(p)
    link = worker.link(pn, p, **link_overrides)
    return p, pn, link


def click_id_of(r):
    """The click id a counted redirect carries; checks Location and cookie agree."""
    assert r.status_code == 302, (r.status_code, r.text)
    q = parse_qs(urlsplit(r.headers["Location"]).query)
    assert len(q["refport_id"]) == 1, r.headers["Location"]
    cid = q["refport_id"][0]
    assert CLICK_ID.match(cid), cid
    return cid


def wait_clicks(worker, link, n):
    return worker.wait_count("SELECT COUNT(*) FROM clicks WHERE link_id = ?", link["id"], expect=n)


# -- daily rollups (migrations/0003) -------------------------------------------------------------

# What `daily_stats` must hold, recomputed from the raw rows: per (program, partner, link, day,
# currency) the clicks, leads, sales, sale amounts and commissions by status.
RAW_ROLLUP_SQL = """
WITH commission_links AS (
  SELECT c.*, COALESCE((SELECT e.link_id FROM events e
         WHERE e.id = COALESCE(c.event_id, (SELECT pc.event_id FROM commissions pc WHERE pc.id = c.parent_id))), '') AS link
  FROM commissions c
), parts AS (
  SELECT program_id, partner_id, link_id AS link, created_at / 86400000 AS day, '' AS currency,
         1 AS clicks, 0 AS leads, 0 AS sales, 0 AS sale_amount, 0 AS pending, 0 AS approved, 0 AS paid, 0 AS rejected
  FROM clicks
  UNION ALL
  SELECT e.program_id, e.partner_id, COALESCE(e.link_id, ''), e.created_at / 86400000,
         -- a sale's payout currency as of the sale: its commission's (fixed on the row; the
         -- program's may have changed since), else the program's
         CASE WHEN e.kind != 'sale' THEN ''
              WHEN e.payout_amount IS NOT NULL THEN COALESCE(
                (SELECT sc.currency FROM commissions sc WHERE sc.event_id = e.id AND sc.kind = 'sale'), p.payout_currency)
              ELSE COALESCE(e.currency, '') END,
         0, e.kind = 'lead', e.kind = 'sale', CASE WHEN e.kind = 'sale' THEN COALESCE(e.payout_amount, e.amount, 0) ELSE 0 END,
         0, 0, 0, 0
  FROM events e JOIN programs p ON p.id = e.program_id WHERE e.partner_id IS NOT NULL
  UNION ALL
  SELECT program_id, partner_id, link, created_at / 86400000, currency, 0, 0, 0, 0,
         CASE WHEN status = 'pending' THEN amount ELSE 0 END, CASE WHEN status = 'approved' THEN amount ELSE 0 END,
         CASE WHEN status = 'paid' THEN amount ELSE 0 END, CASE WHEN status = 'rejected' THEN amount ELSE 0 END
  FROM commission_links
)
SELECT program_id, partner_id, link, day, currency, SUM(clicks), SUM(leads), SUM(sales), SUM(sale_amount),
       SUM(pending), SUM(approved), SUM(paid), SUM(rejected)
FROM parts WHERE (:program IS NULL OR program_id = :program) GROUP BY 1, 2, 3, 4, 5
"""

ROLLUP_SQL = """
SELECT program_id, partner_id, link_id, day, currency, clicks, leads, sales, sale_amount, pending, approved, paid, rejected
FROM daily_stats WHERE (:program IS NULL OR program_id = :program)
"""


def rollup_mismatches(conn, program_id=None):
    """Differences between `daily_stats` and the rollups recomputed from raw rows (all-zero rows
    are equal to absent ones). Empty when they agree. Valid while no click was deleted."""
    def rows(sql):
        out = {}
        for r in conn.execute(sql, {"program": program_id}).fetchall():
            r = tuple(r)
            if any(r[5:]):
                out[r[:5]] = r[5:]
        return out
    raw, kept = rows(RAW_ROLLUP_SQL), rows(ROLLUP_SQL)
    return [(k, raw.get(k), kept.get(k)) for k in sorted(set(raw) | set(kept)) if raw.get(k) != kept.get(k)]


# -- signed click ids (core/src/click_id.rs), built independently from the documented scheme ----

CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def crockford(value, chars):
    return "".join(CROCKFORD[(value >> (5 * i)) & 31] for i in reversed(range(chars)))


def signed_click_id(salt, link_id, at_ms, random_bytes=None, key=None):
    """A click id as the redirect issues it: time-ordered stamp, 80-bit MAC, link id body."""
    import hashlib
    import hmac
    import os
    rnd = random_bytes if random_bytes is not None else os.urandom(10)
    stamp = crockford((at_ms << 80) | int.from_bytes(rnd, "big"), 26)
    key = key or hmac.new(salt.encode(), b"refport click id v1", hashlib.sha256).digest()
    digest = hmac.new(key, f"{stamp}|{link_id}".encode(), hashlib.sha256).digest()[:10]
    return f"clk_{stamp}{crockford(int.from_bytes(digest, 'big'), 16)}{link_id[len('link_'):]}"
