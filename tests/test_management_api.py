"""End-to-end tests of the management API (SPEC section 2): programs, validation (a refused
request writes nothing), partners, links, clicks and stats, API keys and auth, routing.

Every test builds its own program (unique domains) through the `worker` fixture's helpers, so the
tests are independent of each other and of their order. Assertions are on exact statuses, error
codes, headers and the rows stored in local D1."""

import contextlib
import glob
import hashlib
import json
import os
import re
from concurrent.futures import ThreadPoolExecutor

import pytest
from apihelpers import assert_error, click_id_of, setup_link, tag, wait_clicks

# Every setting of SPEC 1 that a program carries on the wire.
PROGRAM_SETTINGS = {
    "name", "description", "logo_url", "brand_color", "domains", "allowed_hosts", "cookie_domain",
    "payout_currency", "min_payout", "payout_schedule", "attribution_window_days",
    "attribution_model", "hold_days", "rewards",
}


# ----------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------

def program_body(**overrides):
    """A valid program create body with fresh, unique domains."""
    t = tag()
    body = {
        "name": f"Program {t}",
        "domains": [f"go.{t}.test"],
        "allowed_hosts": [f"{t}.test"],
        "cookie_domain": f"{t}.test",
        "payout_currency": "usd",
    }
    body.update(overrides)
    return body


@contextlib.contextmanager
def nothing_written(worker):
    """Asserts that the block leaves every table's row count unchanged."""
    before = worker.table_counts()
    yield
    assert worker.table_counts() == before


def post_raw(worker, path, data, key="admin"):
    return worker.request("POST", path, data=data, key=key, headers={"Content-Type": "application/json"})


def list_all(worker, path, limit, key="admin"):
    """Follows `next_cursor` to the end; returns the pages."""
    pages, cursor = [], None
    for _ in range(500):
        q = f"?limit={limit}" + (f"&cursor={cursor}" if cursor else "")
        r = worker.get(path + q, key=key)
        assert r.status_code == 200, r.text
        body = r.json()
        assert set(body) == {"data", "next_cursor"}
        pages.append(body["data"])
        cursor = body["next_cursor"]
        if cursor is None:
            return pages
    raise AssertionError("pagination never ended")


def make_key(worker, permissions, program_id=None, name="test key"):
    body = {"name": name, "permissions": permissions}
    if program_id:
        body["program_id"] = program_id
    return worker.ok("POST", "/api/v1/api-keys", body, status=201)


# ----------------------------------------------------------------------------------------------
# API: programs
# ----------------------------------------------------------------------------------------------

def test_program_create_returns_every_setting_with_defaults(worker):
    t = tag()
    r = worker.post("/api/v1/programs", {
        "name": "  Acme Partners  ", "domains": [f"Go.{t}.test"], "allowed_hosts": [f"{t}.test"],
        "payout_currency": "USD",
    })
    assert r.status_code == 201, r.text
    p = r.json()
    assert re.match(r"^prog_[0-9A-Z]{26}$", p["id"])
    assert PROGRAM_SETTINGS <= set(p)
    assert {k: p[k] for k in PROGRAM_SETTINGS} == {
        "name": "Acme Partners",
        "description": "",
        "logo_url": None,
        "brand_color": "#4f46e5",
        "domains": [f"go.{t}.test"],
        "allowed_hosts": [f"{t}.test"],
        "cookie_domain": None,
        "payout_currency": "usd",
        "min_payout": 5000,
        "payout_schedule": {"every": "month", "day": 1},
        "attribution_window_days": 90,
        "attribution_model": "last_click",
        "hold_days": 30,
        "rewards": {},
    }
    assert worker.rows("SELECT domain FROM program_domains WHERE program_id = ?", p["id"]) == [{"domain": f"go.{t}.test"}]


def test_program_create_keeps_explicit_settings(worker):
    body = program_body(
        description="Earn 20%", logo_url="https://cdn.example.test/logo.png", brand_color="#FF0000",
        min_payout=10000, payout_schedule={"every": "week", "weekday": 1}, attribution_window_days=30,
        attribution_model="first_click", hold_days=14,
        rewards={"lead": {"type": "flat", "amount": 500},
                 "sale": {"type": "percentage", "amount": 2000, "duration_months": 12}},
    )
    p = worker.ok("POST", "/api/v1/programs", body, status=201)
    expected = dict(body, brand_color="#ff0000")
    assert {k: p[k] for k in PROGRAM_SETTINGS} == expected


def test_program_get_equals_created(worker):
    p = worker.program()
    r = worker.get(f"/api/v1/programs/{p['id']}")
    assert r.status_code == 200
    assert r.json() == p


def test_program_get_unknown_is_404(worker):
    assert_error(worker.get("/api/v1/programs/prog_00000000000000000000000000"), 404, "not_found")
    assert_error(worker.get("/api/v1/programs/not-an-id"), 404, "not_found")


def test_program_list_cursor_pagination(worker):
    mine = [worker.program()["id"] for _ in range(3)]
    pages = list_all(worker, "/api/v1/programs", limit=2)
    assert all(len(pg) == 2 for pg in pages[:-1]) and 1 <= len(pages[-1]) <= 2
    ids = [p["id"] for pg in pages for p in pg]
    assert len(ids) == len(set(ids)), "a program was listed twice"
    assert set(mine) <= set(ids)
    assert ids == sorted(ids, reverse=True), "newest first, stable order across pages"
    assert len(ids) == worker.count("SELECT COUNT(*) FROM programs")


def test_program_list_rejects_bad_query(worker):
    assert_error(worker.get("/api/v1/programs?limit=0"), 400, "invalid_query")
    assert_error(worker.get("/api/v1/programs?limit=101"), 400, "invalid_query")
    assert_error(worker.get("/api/v1/programs?limit=x"), 400, "invalid_query")
    assert_error(worker.get("/api/v1/programs?cursor=a;b"), 400, "invalid_query")
    assert_error(worker.get("/api/v1/programs?bogus=1"), 400, "invalid_query")


def test_program_patch_hold_days_keeps_other_settings(worker):
    p = worker.program()
    r = worker.patch(f"/api/v1/programs/{p['id']}", {"hold_days": 7})
    assert r.status_code == 200, r.text
    after = r.json()
    assert after["hold_days"] == 7
    assert {k: after[k] for k in PROGRAM_SETTINGS - {"hold_days"}} == {k: p[k] for k in PROGRAM_SETTINGS - {"hold_days"}}
    assert worker.get(f"/api/v1/programs/{p['id']}").json()["hold_days"] == 7
    assert worker.rows("SELECT hold_days FROM programs WHERE id = ?", p["id"]) == [{"hold_days": 7}]


def test_program_patch_null_clears_cookie_domain(worker):
    p = worker.program()
    assert p["cookie_domain"]
    after = worker.ok("PATCH", f"/api/v1/programs/{p['id']}", {"cookie_domain": None})
    assert after["cookie_domain"] is None
    assert after["domains"] == p["domains"] and after["name"] == p["name"]
    assert worker.get(f"/api/v1/programs/{p['id']}").json()["cookie_domain"] is None


def test_program_patch_breaking_validation_is_422_and_changes_nothing(worker):
    p = worker.program()
    with nothing_written(worker):
        r = worker.patch(f"/api/v1/programs/{p['id']}", {"domains": ["go.elsewhere-" + tag() + ".test"], "hold_days": 1})
        assert_error(r, 422, "invalid_cookie_domain", field="cookie_domain")
    assert worker.get(f"/api/v1/programs/{p['id']}").json() == p
    assert worker.rows("SELECT domain FROM program_domains WHERE program_id = ?", p["id"]) == [{"domain": p["domains"][0]}]


def test_program_patch_unknown_field_is_400(worker):
    p = worker.program()
    assert_error(worker.patch(f"/api/v1/programs/{p['id']}", {"hold_dayz": 1}), 400, "invalid_request")
    assert worker.get(f"/api/v1/programs/{p['id']}").json() == p


# ----------------------------------------------------------------------------------------------
# API: validation writes nothing
# ----------------------------------------------------------------------------------------------

PROGRAM_REFUSALS = [
    # (id, change to a valid body, status, code, field)
    ("unknown-field", {"bogus": 1}, 400, "invalid_request", None),
    ("name-int", {"name": 1}, 400, "invalid_request", None),
    ("min-payout-str", {"min_payout": "x"}, 400, "invalid_request", None),
    ("min-payout-float", {"min_payout": 1.5}, 400, "invalid_request", None),
    ("domains-not-list", {"domains": "go.x.test"}, 400, "invalid_request", None),
    ("missing-name", {"name": None}, 400, "invalid_request", None),
    ("missing-domains", {"domains": None}, 400, "invalid_request", None),
    ("missing-currency", {"payout_currency": None}, 400, "invalid_request", None),
    ("negative-min-payout", {"min_payout": -1}, 422, "invalid_amount", "min_payout"),
    ("bad-currency", {"payout_currency": "xyz"}, 422, "invalid_currency", "payout_currency"),
    ("blank-name", {"name": "   "}, 422, "invalid_name", "name"),
    ("no-domains", {"domains": []}, 422, "invalid_hostname", "domains"),
    ("domain-space", {"domains": ["bad host.test"]}, 422, "invalid_hostname", "domains[0]"),
    ("domain-single-label", {"domains": ["localhost"]}, 422, "invalid_hostname", "domains[0]"),
    ("domain-port", {"domains": ["go.x.test:8080"]}, 422, "invalid_hostname", "domains[0]"),
    ("domain-scheme", {"domains": ["https://go.x.test"]}, 422, "invalid_hostname", "domains[0]"),
    ("domain-dash", {"domains": ["-go.x.test"]}, 422, "invalid_hostname", "domains[0]"),
    ("allowed-host-bad", {"allowed_hosts": ["a..test"]}, 422, "invalid_hostname", "allowed_hosts[0]"),
    ("cookie-domain-unrelated", {"cookie_domain": "other.test"}, 422, "invalid_cookie_domain", "cookie_domain"),
    ("window-zero", {"attribution_window_days": 0}, 422, "invalid_window", "attribution_window_days"),
    ("hold-too-long", {"hold_days": 366}, 422, "invalid_hold", "hold_days"),
    ("bad-colour", {"brand_color": "red"}, 422, "invalid_color", "brand_color"),
    ("logo-http", {"logo_url": "http://cdn.x.test/l.png"}, 422, "invalid_url", "logo_url"),
]


@pytest.mark.parametrize("change,status,code,field", [c[1:] for c in PROGRAM_REFUSALS], ids=[c[0] for c in PROGRAM_REFUSALS])
def test_program_create_refused_writes_nothing(worker, change, status, code, field):
    body = program_body()
    for k, v in change.items():
        if v is None:
            del body[k]
        else:
            body[k] = v
    with nothing_written(worker):
        assert_error(worker.post("/api/v1/programs", body), status, code, field)


RAW_BODIES = [
    ("malformed", '{"name": "x",', 400, "invalid_json"),
    ("trailing-garbage", '{"name": "x"} x', 400, "invalid_json"),
    ("empty", "", 400, "invalid_json"),
    ("whitespace", "  \n", 400, "invalid_json"),
    ("array", "[1, 2]", 400, "invalid_request"),
    ("string", '"program"', 400, "invalid_request"),
    ("null", "null", 400, "invalid_request"),
]


@pytest.mark.parametrize("data,status,code", [c[1:] for c in RAW_BODIES], ids=[c[0] for c in RAW_BODIES])
def test_program_create_bad_body_writes_nothing(worker, data, status, code):
    with nothing_written(worker):
        assert_error(post_raw(worker, "/api/v1/programs", data), status, code)


def test_program_create_body_over_64k_is_413(worker):
    data = json.dumps(program_body(description="x" * (64 * 1024)))
    assert len(data) > 64 * 1024
    with nothing_written(worker):
        assert_error(post_raw(worker, "/api/v1/programs", data), 413, "payload_too_large")


def test_program_domain_taken_is_409_and_claims_nothing(worker):
    a = worker.program()
    fresh = f"go.{tag()}.test"
    body = program_body(domains=[fresh, a["domains"][0].upper()], cookie_domain=None)
    with nothing_written(worker):
        assert_error(worker.post("/api/v1/programs", body), 409, "domain_taken")
    assert worker.count("SELECT COUNT(*) FROM program_domains WHERE domain = ?", fresh) == 0
    assert worker.rows("SELECT program_id FROM program_domains WHERE domain = ?", a["domains"][0]) == [{"program_id": a["id"]}]


def test_program_patch_to_taken_domain_is_409_and_changes_nothing(worker):
    a, b = worker.program(), worker.program(cookie_domain=None)
    with nothing_written(worker):
        assert_error(worker.patch(f"/api/v1/programs/{b['id']}", {"domains": a["domains"]}), 409, "domain_taken")
    assert worker.get(f"/api/v1/programs/{b['id']}").json() == b


def test_program_patch_removing_a_domain_with_links_is_409(worker):
    p, pn, link = setup_link(worker)
    new_domain = "go2." + p["cookie_domain"]
    with nothing_written(worker):
        assert_error(worker.patch(f"/api/v1/programs/{p['id']}", {"domains": [new_domain]}), 409, "domain_in_use")
    assert worker.get(f"/api/v1/programs/{p['id']}").json() == p
    assert worker.count("SELECT COUNT(*) FROM program_domains WHERE domain = ?", new_domain) == 0
    click_id_of(worker.click(link))
    wait_clicks(worker, link, 1)


def test_concurrent_creates_claim_a_domain_once(worker):
    body = program_body()
    with ThreadPoolExecutor(max_workers=6) as pool:
        rs = list(pool.map(lambda _: worker.post("/api/v1/programs", body), range(6)))
    assert sorted(r.status_code for r in rs) == [201] + [409] * 5
    assert all(r.json()["error"]["code"] == "domain_taken" for r in rs if r.status_code == 409)
    winner = next(r.json()["id"] for r in rs if r.status_code == 201)
    assert worker.rows("SELECT program_id FROM program_domains WHERE domain = ?", body["domains"][0]) == [{"program_id": winner}]
    assert worker.count("SELECT COUNT(*) FROM programs WHERE name = ?", body["name"]) == 1


def test_concurrent_links_with_same_key_create_one(worker):
    p = worker.program()
    pn = worker.partner(p)
    body = {"url": f"https://{p['allowed_hosts'][0]}/", "key": "race"}
    with ThreadPoolExecutor(max_workers=6) as pool:
        rs = list(pool.map(lambda _: worker.post(f"/api/v1/partners/{pn['id']}/links", body), range(6)))
    assert sorted(r.status_code for r in rs) == [201] + [409] * 5
    assert all(r.json()["error"]["code"] == "key_taken" for r in rs if r.status_code == 409)
    assert worker.count("SELECT COUNT(*) FROM links WHERE domain = ? AND key = 'race'", p["domains"][0]) == 1


def test_concurrent_partners_with_same_email_create_one(worker):
    p = worker.program()
    body = {"email": f"race-{tag()}@x.test", "name": "Racer"}
    with ThreadPoolExecutor(max_workers=6) as pool:
        rs = list(pool.map(lambda _: worker.post(f"/api/v1/programs/{p['id']}/partners", body), range(6)))
    assert sorted(r.status_code for r in rs) == [201] + [409] * 5
    assert all(r.json()["error"]["code"] == "partner_exists" for r in rs if r.status_code == 409)
    assert worker.count("SELECT COUNT(*) FROM partners WHERE program_id = ?", p["id"]) == 1


def test_partner_patch_to_taken_email_is_409(worker):
    p = worker.program()
    a, b = worker.partner(p), worker.partner(p)
    with nothing_written(worker):
        assert_error(worker.patch(f"/api/v1/partners/{b['id']}", {"email": a["email"]}), 409, "partner_exists")
    assert worker.get(f"/api/v1/partners/{b['id']}").json() == b


@pytest.fixture
def link_ctx(worker):
    p = worker.program()
    pn = worker.partner(p)
    existing = worker.link(pn, p, key="taken")
    return p, pn, existing


LINK_REFUSALS = [
    # (id, body builder from the program, status, code)
    ("host-not-allowed", lambda p: {"url": "https://evil.test/x"}, 422, "host_not_allowed"),
    ("host-suffix-trick", lambda p: {"url": f"https://{p['allowed_hosts'][0]}.evil.test/"}, 422, "host_not_allowed"),
    ("javascript", lambda p: {"url": "javascript:alert(1)"}, 422, "invalid_url"),
    ("ftp", lambda p: {"url": f"ftp://{p['allowed_hosts'][0]}/file"}, 422, "invalid_url"),
    ("relative", lambda p: {"url": "/pricing"}, 422, "invalid_url"),
    ("credentials", lambda p: {"url": f"https://u:p@{p['allowed_hosts'][0]}/"}, 422, "invalid_url"),
    ("reserved-api", lambda p: {"url": f"https://{p['allowed_hosts'][0]}/", "key": "api"}, 422, "reserved_key"),
    ("reserved-dashboard", lambda p: {"url": f"https://{p['allowed_hosts'][0]}/", "key": "dashboard"}, 422, "reserved_key"),
    ("reserved-case", lambda p: {"url": f"https://{p['allowed_hosts'][0]}/", "key": "Embed"}, 422, "reserved_key"),
    ("key-slash", lambda p: {"url": f"https://{p['allowed_hosts'][0]}/", "key": "a/b"}, 422, "invalid_key"),
    ("key-dot", lambda p: {"url": f"https://{p['allowed_hosts'][0]}/", "key": "a.b"}, 422, "invalid_key"),
    ("key-empty", lambda p: {"url": f"https://{p['allowed_hosts'][0]}/", "key": ""}, 422, "invalid_key"),
    ("key-too-long", lambda p: {"url": f"https://{p['allowed_hosts'][0]}/", "key": "k" * 65}, 422, "invalid_key"),
    ("key-taken", lambda p: {"url": f"https://{p['allowed_hosts'][0]}/", "key": "taken"}, 409, "key_taken"),
    ("domain-not-in-program", lambda p: {"url": f"https://{p['allowed_hosts'][0]}/", "domain": "go.other.test"}, 422, "domain_not_in_program"),
    ("unknown-field", lambda p: {"url": f"https://{p['allowed_hosts'][0]}/", "slug": "x"}, 400, "invalid_request"),
    ("missing-url", lambda p: {"key": "nourl"}, 400, "invalid_request"),
]


@pytest.mark.parametrize("build,status,code", [c[1:] for c in LINK_REFUSALS], ids=[c[0] for c in LINK_REFUSALS])
def test_link_create_refused_writes_nothing(worker, link_ctx, build, status, code):
    p, pn, _ = link_ctx
    with nothing_written(worker):
        assert_error(worker.post(f"/api/v1/partners/{pn['id']}/links", build(p)), status, code)


def test_link_patch_refused_keeps_link(worker, link_ctx):
    p, pn, existing = link_ctx
    other = worker.link(pn, p, key="other")
    with nothing_written(worker):
        assert_error(worker.patch(f"/api/v1/links/{other['id']}", {"url": "https://evil.test/"}), 422, "host_not_allowed")
        assert_error(worker.patch(f"/api/v1/links/{other['id']}", {"url": "javascript:alert(1)"}), 422, "invalid_url")
        assert_error(worker.patch(f"/api/v1/links/{other['id']}", {"key": "admin"}), 422, "reserved_key")
        assert_error(worker.patch(f"/api/v1/links/{other['id']}", {"key": "taken"}), 409, "key_taken")
    assert worker.get(f"/api/v1/links/{other['id']}").json() == other


@pytest.mark.parametrize("email", ["not-an-email", "a@b", "@x.test", "a b@x.test", ""])
def test_partner_bad_email_is_422(worker, email):
    p = worker.program()
    with nothing_written(worker):
        assert_error(worker.post(f"/api/v1/programs/{p['id']}/partners", {"email": email, "name": "Jane"}), 422, "invalid_email", "email")


def test_partner_duplicate_email_is_409(worker):
    p = worker.program()
    pn = worker.partner(p)
    with nothing_written(worker):
        r = worker.post(f"/api/v1/programs/{p['id']}/partners", {"email": pn["email"].upper(), "name": "Again"})
        assert_error(r, 409, "partner_exists")


def test_partner_same_email_in_another_program_is_allowed(worker):
    p1, p2 = worker.program(), worker.program()
    pn = worker.partner(p1)
    assert worker.partner(p2, email=pn["email"])["program_id"] == p2["id"]


def test_partner_unknown_field_is_400(worker):
    p = worker.program()
    with nothing_written(worker):
        r = worker.post(f"/api/v1/programs/{p['id']}/partners", {"email": "x@y.test", "name": "X", "role": "admin"})
        assert_error(r, 400, "invalid_request")


# ----------------------------------------------------------------------------------------------
# API: auth and API keys
# ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("key", [None, "rp_live_" + "A" * 32, "not-a-key", "rp_live_short"])
def test_missing_or_wrong_key_is_401(worker, key):
    assert_error(worker.get("/api/v1/programs", key=key), 401, "unauthorized")


def test_wrong_auth_scheme_is_401(worker):
    r = worker.get("/api/v1/programs", key=None, headers={"Authorization": f"Basic {worker.admin_key}"})
    assert_error(r, 401, "unauthorized")


def test_unauthenticated_write_writes_nothing(worker):
    with nothing_written(worker):
        assert_error(worker.post("/api/v1/programs", program_body(), key=None), 401, "unauthorized")


def test_api_key_is_shown_once_and_never_listed(worker):
    created = make_key(worker, ["read"])
    secret = created["key"]
    assert re.match(r"^rp_live_[A-Za-z0-9]{32}$", secret)
    assert created["permissions"] == ["read"] and created["program_id"] is None
    assert re.match(r"^key_[0-9A-Z]{26}$", created["id"])
    r = worker.get("/api/v1/api-keys?limit=100")
    assert r.status_code == 200
    listed = [k for k in r.json()["data"] if k["id"] == created["id"]]
    assert len(listed) == 1 and "key" not in listed[0]
    assert secret not in r.text
    assert secret[-4:] in listed[0]["key_hint"] and secret not in listed[0]["key_hint"]


def test_api_key_stored_as_sha256_only(worker):
    created = make_key(worker, ["read"])
    secret = created["key"]
    rows = worker.rows("SELECT key_hash FROM api_keys WHERE id = ?", created["id"])
    assert rows == [{"key_hash": hashlib.sha256(secret.encode()).hexdigest()}]
    files = [f for f in glob.glob(os.path.join(worker.persist, "v3", "d1", "**", "*"), recursive=True) if os.path.isfile(f)]
    assert files
    for f in files:
        with open(f, "rb") as fh:
            assert secret.encode() not in fh.read(), f"raw API key found in {f}"


def test_api_key_invalid_permissions_is_422(worker):
    with nothing_written(worker):
        assert_error(worker.post("/api/v1/api-keys", {"name": "x", "permissions": []}), 422, "invalid_permissions")
        assert_error(worker.post("/api/v1/api-keys", {"name": "x", "permissions": ["admin"]}), 422, "invalid_permissions")


def test_read_only_key_can_read_but_not_write(worker):
    p = worker.program()
    key = make_key(worker, ["read"])["key"]
    assert worker.get(f"/api/v1/programs/{p['id']}", key=key).status_code == 200
    assert worker.get("/api/v1/programs", key=key).status_code == 200
    with nothing_written(worker):
        assert_error(worker.post("/api/v1/programs", program_body(), key=key), 403, "forbidden")
        assert_error(worker.patch(f"/api/v1/programs/{p['id']}", {"hold_days": 1}, key=key), 403, "forbidden")
        assert_error(worker.post(f"/api/v1/programs/{p['id']}/partners", {"email": "a@b.test", "name": "A"}, key=key), 403, "forbidden")
        assert_error(worker.post("/api/v1/api-keys", {"name": "x", "permissions": ["read"]}, key=key), 403, "forbidden")


def test_program_bound_key_sees_only_its_program(worker):
    a, b = worker.program(), worker.program()
    pb = worker.partner(b)
    key = make_key(worker, ["read", "write"], program_id=a["id"])["key"]
    assert worker.get(f"/api/v1/programs/{a['id']}", key=key).json() == a
    assert_error(worker.get(f"/api/v1/programs/{b['id']}", key=key), 404, "not_found")
    assert_error(worker.get(f"/api/v1/partners/{pb['id']}", key=key), 404, "not_found")
    assert_error(worker.get(f"/api/v1/programs/{b['id']}/partners", key=key), 404, "not_found")
    listing = worker.get("/api/v1/programs", key=key).json()
    assert [p["id"] for p in listing["data"]] == [a["id"]] and listing["next_cursor"] is None


def test_program_bound_key_cannot_change_other_program(worker):
    a, b = worker.program(), worker.program()
    key = make_key(worker, ["read", "write"], program_id=a["id"])["key"]
    with nothing_written(worker):
        assert_error(worker.patch(f"/api/v1/programs/{b['id']}", {"hold_days": 1}, key=key), 404, "not_found")
        r = worker.post(f"/api/v1/programs/{b['id']}/partners", {"email": "x@y.test", "name": "X"}, key=key)
        assert_error(r, 404, "not_found")
        assert_error(worker.post("/api/v1/programs", program_body(), key=key), 403, "forbidden")
    assert worker.get(f"/api/v1/programs/{b['id']}").json() == b


def test_program_bound_key_clicks_and_links_stay_in_its_program(worker):
    a = worker.program()
    b, pb, link_b = setup_link(worker)
    worker.click_id(link_b)
    assert wait_clicks(worker, link_b, 1) == 1
    key = make_key(worker, ["read"], program_id=a["id"])["key"]
    assert_error(worker.get(f"/api/v1/clicks?program_id={b['id']}", key=key), 404, "not_found")
    assert worker.get(f"/api/v1/clicks?partner_id={pb['id']}", key=key).json() == {"data": [], "next_cursor": None}
    assert worker.get(f"/api/v1/clicks?link_id={link_b['id']}", key=key).json() == {"data": [], "next_cursor": None}
    assert_error(worker.get(f"/api/v1/links/{link_b['id']}", key=key), 404, "not_found")
    assert_error(worker.get(f"/api/v1/partners/{pb['id']}/stats", key=key), 404, "not_found")
    assert_error(worker.get(f"/api/v1/partners/{pb['id']}/links", key=key), 404, "not_found")


def test_key_cannot_grant_more_than_it_holds(worker):
    a, b = worker.program(), worker.program()
    bound = make_key(worker, ["read", "write"], program_id=a["id"])
    with nothing_written(worker):
        r = worker.post("/api/v1/api-keys", {"name": "x", "permissions": ["track"]}, key=bound["key"])
        assert_error(r, 403, "forbidden")
        r = worker.post("/api/v1/api-keys", {"name": "x", "permissions": ["read"], "program_id": b["id"]}, key=bound["key"])
        assert_error(r, 404, "not_found")
    child = worker.ok("POST", "/api/v1/api-keys", {"name": "child", "permissions": ["read"]}, key=bound["key"], status=201)
    assert child["program_id"] == a["id"], "a bound key's keys inherit its program"


def test_track_only_key_cannot_read_programs(worker):
    p = worker.program()
    key = make_key(worker, ["track"])["key"]
    assert_error(worker.get("/api/v1/programs", key=key), 403, "forbidden")
    assert_error(worker.get(f"/api/v1/programs/{p['id']}", key=key), 403, "forbidden")
    assert_error(worker.get("/api/v1/clicks", key=key), 403, "forbidden")


def test_revoked_key_gets_401(worker):
    created = make_key(worker, ["read"])
    key = created["key"]
    assert worker.get("/api/v1/programs", key=key).status_code == 200
    r = worker.delete(f"/api/v1/api-keys/{created['id']}")
    assert r.status_code == 200 and r.json() == {"id": created["id"], "revoked": True}
    assert_error(worker.get("/api/v1/programs", key=key), 401, "unauthorized")
    [row] = worker.rows("SELECT revoked_at FROM api_keys WHERE id = ?", created["id"])
    assert row["revoked_at"] is not None


def test_revoke_unknown_key_is_404(worker):
    assert_error(worker.delete("/api/v1/api-keys/key_00000000000000000000000000"), 404, "not_found")


# ----------------------------------------------------------------------------------------------
# API: partners and links
# ----------------------------------------------------------------------------------------------

def test_partner_create_and_get(worker):
    p = worker.program()
    r = worker.post(f"/api/v1/programs/{p['id']}/partners", {"email": "  Jane.Doe@Example.TEST ", "name": " Jane Doe "})
    assert r.status_code == 201, r.text
    pn = r.json()
    assert re.match(r"^pn_[0-9A-Z]{26}$", pn["id"])
    assert {k: pn[k] for k in ("program_id", "email", "name", "status", "payouts_enabled")} == {
        "program_id": p["id"], "email": "jane.doe@example.test", "name": "Jane Doe", "status": "active", "payouts_enabled": False,
    }
    assert worker.get(f"/api/v1/partners/{pn['id']}").json() == pn
    assert worker.rows("SELECT program_id, email, status FROM partners WHERE id = ?", pn["id"]) == [
        {"program_id": p["id"], "email": "jane.doe@example.test", "status": "active"}]


def test_partner_list(worker):
    p = worker.program()
    mine = {worker.partner(p)["id"] for _ in range(3)}
    pages = list_all(worker, f"/api/v1/programs/{p['id']}/partners", limit=2)
    ids = [x["id"] for pg in pages for x in pg]
    assert len(pages) == 2 and len(ids) == 3 and set(ids) == mine


def test_partner_patch_name_and_status(worker):
    p = worker.program()
    pn = worker.partner(p)
    after = worker.ok("PATCH", f"/api/v1/partners/{pn['id']}", {"name": "Renamed"})
    assert after["name"] == "Renamed" and after["status"] == "active" and after["email"] == pn["email"]
    after = worker.ok("PATCH", f"/api/v1/partners/{pn['id']}", {"status": "banned"})
    assert after["status"] == "banned" and after["name"] == "Renamed"
    assert worker.get(f"/api/v1/partners/{pn['id']}").json()["status"] == "banned"
    assert worker.rows("SELECT name, status FROM partners WHERE id = ?", pn["id"]) == [{"name": "Renamed", "status": "banned"}]


def test_partner_patch_bad_status_is_400(worker):
    pn = worker.partner(worker.program())
    with nothing_written(worker):
        assert_error(worker.patch(f"/api/v1/partners/{pn['id']}", {"status": "deleted"}), 400, "invalid_request")
    assert worker.get(f"/api/v1/partners/{pn['id']}").json() == pn


def test_banned_partner_cannot_get_new_links(worker):
    p = worker.program()
    pn = worker.partner(p)
    worker.ok("PATCH", f"/api/v1/partners/{pn['id']}", {"status": "banned"})
    with nothing_written(worker):
        r = worker.post(f"/api/v1/partners/{pn['id']}/links", {"url": f"https://{p['allowed_hosts'][0]}/"})
        assert_error(r, 409, "partner_banned")


def test_link_create_with_chosen_key(worker):
    p = worker.program()
    pn = worker.partner(p)
    url = f"https://{p['allowed_hosts'][0]}/pricing?plan=pro"
    r = worker.post(f"/api/v1/partners/{pn['id']}/links", {"url": url, "key": "jane-doe_2"})
    assert r.status_code == 201, r.text
    link = r.json()
    assert re.match(r"^link_[0-9A-Z]{26}$", link["id"])
    domain = p["domains"][0]
    assert {k: link[k] for k in ("partner_id", "program_id", "domain", "key", "url", "short_url")} == {
        "partner_id": pn["id"], "program_id": p["id"], "domain": domain, "key": "jane-doe_2", "url": url,
        "short_url": f"https://{domain}/jane-doe_2",
    }
    assert worker.rows("SELECT domain, key, url, deleted_at FROM links WHERE id = ?", link["id"]) == [
        {"domain": domain, "key": "jane-doe_2", "url": url, "deleted_at": None}]


def test_link_create_with_generated_key(worker):
    p = worker.program()
    pn = worker.partner(p)
    keys = {worker.link(pn, p)["key"] for _ in range(3)}
    assert len(keys) == 3
    assert all(re.fullmatch(r"[A-Za-z0-9]{7}", k) for k in keys), keys


def test_link_create_on_second_domain(worker):
    t = tag()
    p = worker.program(domains=[f"go.{t}.test", f"ref.{t}.test"], allowed_hosts=[f"{t}.test"], cookie_domain=f"{t}.test")
    pn = worker.partner(p)
    link = worker.link(pn, p, domain=f"REF.{t}.test", key="jane")
    assert link["domain"] == f"ref.{t}.test" and link["short_url"] == f"https://ref.{t}.test/jane"


def test_link_get_and_list(worker):
    p = worker.program()
    pn = worker.partner(p)
    links = [worker.link(pn, p) for _ in range(3)]
    assert worker.get(f"/api/v1/links/{links[0]['id']}").json() == links[0]
    pages = list_all(worker, f"/api/v1/partners/{pn['id']}/links", limit=2)
    listed = [x for pg in pages for x in pg]
    assert sorted(listed, key=lambda x: x["id"]) == sorted(links, key=lambda x: x["id"])


def test_link_patch_url(worker):
    p, pn, link = setup_link(worker)
    new_url = f"https://{p['allowed_hosts'][1]}/new"
    after = worker.ok("PATCH", f"/api/v1/links/{link['id']}", {"url": new_url})
    assert after["url"] == new_url and after["key"] == link["key"] and after["id"] == link["id"]
    assert worker.get(f"/api/v1/links/{link['id']}").json()["url"] == new_url


def test_link_delete(worker):
    p, pn, link = setup_link(worker)
    r = worker.delete(f"/api/v1/links/{link['id']}")
    assert r.status_code == 200 and r.json() == {"id": link["id"], "deleted": True}
    assert_error(worker.get(f"/api/v1/links/{link['id']}"), 404, "not_found")
    assert worker.get(f"/api/v1/partners/{pn['id']}/links").json()["data"] == []
    [row] = worker.rows("SELECT deleted_at FROM links WHERE id = ?", link["id"])
    assert row["deleted_at"] is not None
    assert_error(worker.delete(f"/api/v1/links/{link['id']}"), 404, "not_found")


def test_deleted_link_key_can_be_reused(worker):
    p, pn, link = setup_link(worker, key="reuse")
    worker.ok("DELETE", f"/api/v1/links/{link['id']}")
    again = worker.link(pn, p, key="reuse", path="/second")
    assert again["id"] != link["id"]
    r = worker.click(again)
    assert r.headers["Location"].startswith(again["url"] + "?refport_id=")
    wait_clicks(worker, again, 1)


# ----------------------------------------------------------------------------------------------
# API: clicks and stats
# ----------------------------------------------------------------------------------------------

def test_clicks_list_filters_by_link_and_partner(worker):
    p = worker.program()
    pn1, pn2 = worker.partner(p), worker.partner(p)
    l1a, l1b, l2 = worker.link(pn1, p), worker.link(pn1, p), worker.link(pn2, p)
    ids = {"l1a": {worker.click_id(l1a) for _ in range(2)}, "l1b": {worker.click_id(l1b)}, "l2": {worker.click_id(l2)}}
    assert worker.wait_count("SELECT COUNT(*) FROM clicks WHERE program_id = ?", p["id"], expect=4) == 4

    def listed(q):
        r = worker.get(f"/api/v1/clicks?{q}&limit=100")
        assert r.status_code == 200, r.text
        return r.json()["data"]

    by_link = listed(f"link_id={l1a['id']}")
    assert {c["id"] for c in by_link} == ids["l1a"]
    assert all(c["link_id"] == l1a["id"] and c["partner_id"] == pn1["id"] and c["program_id"] == p["id"] for c in by_link)
    assert {c["id"] for c in listed(f"partner_id={pn1['id']}")} == ids["l1a"] | ids["l1b"]
    assert {c["id"] for c in listed(f"partner_id={pn2['id']}")} == ids["l2"]
    assert {c["id"] for c in listed(f"program_id={p['id']}")} == ids["l1a"] | ids["l1b"] | ids["l2"]
    assert "ip_hash" not in by_link[0] and "ua_hash" not in by_link[0]


def test_clicks_list_rejects_bad_filter(worker):
    assert_error(worker.get("/api/v1/clicks?link_id=pn_123"), 400, "invalid_query")
    assert_error(worker.get("/api/v1/clicks?partner=pn_123"), 400, "invalid_query")


def test_partner_stats_counts_clicks(worker):
    p, pn, link = setup_link(worker)
    for _ in range(3):
        worker.click_id(link)
    worker.click(link, ua="Googlebot/2.1")
    assert wait_clicks(worker, link, 3) == 3
    stats = worker.ok("GET", f"/api/v1/partners/{pn['id']}/stats")
    assert stats["partner_id"] == pn["id"]
    assert (stats["clicks"], stats["leads"], stats["sales"]) == (3, 0, 0)


# ----------------------------------------------------------------------------------------------
# API: routing
# ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/api/v1/nope", "/api/v1/programs/x/y/z", "/api/v2/programs"])
def test_unknown_api_route_is_404_json(worker, path):
    assert_error(worker.get(path), 404, "not_found")


@pytest.mark.parametrize("method,path", [("DELETE", "/api/v1/programs"), ("PUT", "/api/v1/programs/prog_X"),
                                         ("POST", "/api/v1/links/link_X"), ("PATCH", "/api/v1/clicks")])
def test_wrong_method_is_405(worker, method, path):
    with nothing_written(worker):
        assert_error(worker.request(method, path), 405, "method_not_allowed")
