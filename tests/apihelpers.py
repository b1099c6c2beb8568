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

CLICK_ID = re.compile(r"^clk_[0-9A-HJKMNP-TV-Z]{26}$")  # Crockford base32, 26 chars


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
