"""Helpers shared by the e2e suites (importable: conftest puts tests/ on sys.path)."""

import uuid


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
