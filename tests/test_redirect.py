"""End-to-end tests of the branded-link redirect (SPEC section 4): the Location and the
attribution cookie, recorded clicks (salted hashes only), bots and HEAD, link changes, unknown
links and open redirects, and the link cache refresh of programs with more than 1000 links.

Every test builds its own program (unique domains) through the `worker` fixture's helpers, so the
tests are independent of each other and of their order. Assertions are on exact statuses, error
codes, headers and the rows stored in local D1."""

import hashlib
import hmac
import json
import re
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from apihelpers import CLICK_ID, click_id_of, setup_link, tag, wait_clicks

from conftest import BROWSER_UA

# Visitor hashes: HMAC-SHA256 under IP_HASH_SALT, the first 128 bits in hex.
HEX32 = re.compile(r"^[0-9a-f]{32}$")


# ----------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------

def raw_path(worker, host, path, method="GET"):
    """A request to an exact raw path on a branded host (no client-side normalisation)."""
    s = requests.Session()
    req = requests.Request(method, worker.base + "/", headers={"Host": host, "User-Agent": BROWSER_UA}).prepare()
    req.url = worker.base + path
    return s.send(req, allow_redirects=False, timeout=30)


def assert_uncounted_redirect(r, url):
    """A redirect that is not a click: 302 straight to the destination, no id, no cookie."""
    assert r.status_code == 302, (r.status_code, r.text)
    assert r.headers["Location"] == url
    assert "refport_id" not in r.headers["Location"]
    assert "Set-Cookie" not in r.headers


def assert_not_found_page(r):
    """Unknown link: a 404 HTML page, never a redirect, never a cookie."""
    assert r.status_code == 404, (r.status_code, r.headers, r.text[:200])
    assert "Location" not in r.headers
    assert "Set-Cookie" not in r.headers
    assert r.headers["Content-Type"].startswith("text/html")


def hmac_hex(key, msg):
    """The stored visitor hash: HMAC-SHA256 hex, first 32 characters."""
    return full_hmac_hex(key, msg)[:32]


def full_hmac_hex(key, msg):
    return hmac.new(key, msg.encode(), hashlib.sha256).hexdigest()


def clicks_of(worker, link):
    return worker.count("SELECT COUNT(*) FROM clicks WHERE link_id = ?", link["id"])


# ----------------------------------------------------------------------------------------------
# Redirect: location and cookie
# ----------------------------------------------------------------------------------------------

def test_redirect_appends_click_id_keeping_query_and_fragment(worker):
    p = worker.program()
    pn = worker.partner(p)
    url = f"https://{p['allowed_hosts'][0]}/p?a=1&b=two#frag"
    link = worker.ok("POST", f"/api/v1/partners/{pn['id']}/links", {"url": url}, status=201)
    r = worker.click(link)
    cid = click_id_of(r)
    assert r.headers["Location"] == f"https://{p['allowed_hosts'][0]}/p?a=1&b=two&refport_id={cid}#frag"
    assert r.headers["Cache-Control"] == "private, no-store"
    wait_clicks(worker, link, 1)


def test_redirect_without_query(worker):
    p, pn, link = setup_link(worker)
    r = worker.click(link)
    cid = click_id_of(r)
    assert r.headers["Location"] == f"{link['url']}?refport_id={cid}"
    wait_clicks(worker, link, 1)


def test_redirect_replaces_stale_refport_id(worker):
    p = worker.program()
    pn = worker.partner(p)
    url = f"https://{p['allowed_hosts'][0]}/?refport_id=clk_OLD&a=1"
    link = worker.ok("POST", f"/api/v1/partners/{pn['id']}/links", {"url": url}, status=201)
    r = worker.click(link)
    cid = click_id_of(r)
    assert r.headers["Location"] == f"https://{p['allowed_hosts'][0]}/?a=1&refport_id={cid}"
    wait_clicks(worker, link, 1)


def test_redirect_sets_attribution_cookie(worker):
    p, pn, link = setup_link(worker)
    r = worker.click(link)
    cid = click_id_of(r)
    assert r.headers["Set-Cookie"] == (
        f"refport_id={cid}; Max-Age={90 * 86400}; Domain={p['cookie_domain']}; Path=/; Secure; SameSite=Lax")
    wait_clicks(worker, link, 1)


def test_cookie_max_age_follows_attribution_window(worker):
    p, pn, link = setup_link(worker, {"attribution_window_days": 7})
    r = worker.click(link)
    cid = click_id_of(r)
    assert r.headers["Set-Cookie"] == f"refport_id={cid}; Max-Age=604800; Domain={p['cookie_domain']}; Path=/; Secure; SameSite=Lax"
    wait_clicks(worker, link, 1)


def test_cookie_without_cookie_domain_has_no_domain_attribute(worker):
    p, pn, link = setup_link(worker, {"cookie_domain": None})
    r = worker.click(link)
    cid = click_id_of(r)
    assert r.headers["Set-Cookie"] == f"refport_id={cid}; Max-Age=7776000; Path=/; Secure; SameSite=Lax"
    wait_clicks(worker, link, 1)


def test_program_patch_window_and_cookie_domain_reach_the_redirect(worker):
    p, pn, link = setup_link(worker)
    worker.click_id(link)  # cache the link
    worker.ok("PATCH", f"/api/v1/programs/{p['id']}", {"attribution_window_days": 7, "cookie_domain": None})
    r = worker.click(link)
    cid = click_id_of(r)
    assert r.headers["Set-Cookie"] == f"refport_id={cid}; Max-Age=604800; Path=/; Secure; SameSite=Lax"
    wait_clicks(worker, link, 2)


# ----------------------------------------------------------------------------------------------
# Redirect: recorded clicks
# ----------------------------------------------------------------------------------------------

def test_every_click_is_recorded_once(worker):
    p, pn, link = setup_link(worker)
    seen = [click_id_of(worker.click(link)) for _ in range(15)]
    with ThreadPoolExecutor(max_workers=10) as pool:
        seen += [click_id_of(r) for r in pool.map(lambda _: worker.click(link), range(10))]
    assert len(seen) == 25 and len(set(seen)) == 25
    assert wait_clicks(worker, link, 25) == 25
    rows = worker.rows("SELECT id, program_id, partner_id, link_id FROM clicks WHERE link_id = ?", link["id"])
    assert {r["id"] for r in rows} == set(seen)
    assert {(r["program_id"], r["partner_id"]) for r in rows} == {(p["id"], pn["id"])}


def test_click_ids_look_unguessable(worker):
    p, pn, link = setup_link(worker)
    ids = [worker.click_id(link) for _ in range(10)]
    assert all(CLICK_ID.match(i) for i in ids)
    # After the 10 time characters come 16 characters of 80 bits (75 of a keyed hash of the
    # visitor, 5 of flags): distinct for distinct visitors, and not a counter; then a
    # 16-character MAC and the link.
    tails = [i[14:30] for i in ids]
    assert len(set(tails)) == 10
    assert len({c for t in tails for c in t}) > 16
    wait_clicks(worker, link, 10)


def test_click_stores_salted_hashes_not_raw_ip_or_ua(worker):
    p, pn, link = setup_link(worker)
    ua = BROWSER_UA + " refport-test"
    # CF-IPCountry is the fallback: request.cf.country (miniflare's stand-in: "US") comes first.
    r = worker.click(
        link,
        ua=ua,
        headers={"CF-Connecting-IP": "203.0.113.7", "Referer": "https://News.example.test/item?id=1", "CF-IPCountry": "DE"},
    )
    cid = click_id_of(r)
    assert wait_clicks(worker, link, 1) == 1
    [row] = worker.rows("SELECT * FROM clicks WHERE id = ?", cid)
    assert HEX32.match(row["ip_hash"] or ""), row
    assert HEX32.match(row["ua_hash"] or ""), row
    salt = worker.secrets["IP_HASH_SALT"].encode()
    assert row["ip_hash"] == hmac_hex(salt, "203.0.113.7")
    assert row["ua_hash"] == hmac_hex(salt, ua)
    assert row["referrer_host"] == "news.example.test"
    assert row["country"] == "US"
    stored = json.dumps(row)
    for raw in ("127.0.0.1", "203.0.113.7", ua, "Mozilla"):
        assert raw not in stored


def test_click_without_forwarded_ip_still_hashes_the_client_ip(worker):
    """wrangler dev sets CF-Connecting-IP for the local client, as Cloudflare does in production."""
    p, pn, link = setup_link(worker)
    cid = worker.click_id(link, visitor=False)
    assert wait_clicks(worker, link, 1) == 1
    [row] = worker.rows("SELECT ip_hash, ua_hash FROM clicks WHERE id = ?", cid)
    assert row["ip_hash"] == hmac_hex(worker.secrets["IP_HASH_SALT"].encode(), "127.0.0.1")
    assert row["ua_hash"] == hmac_hex(worker.secrets["IP_HASH_SALT"].encode(), BROWSER_UA)


# ----------------------------------------------------------------------------------------------
# Redirect: bots and HEAD
# ----------------------------------------------------------------------------------------------

BOTS = [
    ("googlebot", dict(ua="Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)")),
    ("facebook", dict(ua="facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)")),
    ("slackbot", dict(ua="Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)")),
    ("twitterbot", dict(ua="Twitterbot/1.0")),
    ("curl", dict(ua="curl/8.5.0")),
    ("python-requests", dict(ua="python-requests/2.32.3")),
    ("empty-ua", dict(ua="")),
    ("missing-ua", dict(ua=None, headers={"User-Agent": None})),
    ("head", dict(method="HEAD")),
]


@pytest.mark.parametrize("kw", [b[1] for b in BOTS], ids=[b[0] for b in BOTS])
def test_bots_are_redirected_uncounted_without_cookie(worker, kw):
    p, pn, link = setup_link(worker)
    r = worker.click(link, **kw)
    assert_uncounted_redirect(r, link["url"])
    # A real click afterwards is a barrier: once it is stored, a bot click would be too.
    real = worker.click_id(link)
    assert wait_clicks(worker, link, 1) == 1
    assert worker.rows("SELECT id FROM clicks WHERE link_id = ?", link["id"]) == [{"id": real}]


def test_post_to_a_link_is_not_a_click(worker):
    p, pn, link = setup_link(worker)
    r = worker.click(link, method="POST")
    assert r.status_code == 405
    assert "Location" not in r.headers and "Set-Cookie" not in r.headers
    real = worker.click_id(link)
    wait_clicks(worker, link, 1)
    assert worker.rows("SELECT id FROM clicks WHERE link_id = ?", link["id"]) == [{"id": real}]


# ----------------------------------------------------------------------------------------------
# Redirect: changes, unknown links, open redirects
# ----------------------------------------------------------------------------------------------

def test_updated_link_redirects_to_new_destination_at_once(worker):
    p, pn, link = setup_link(worker)
    worker.click_id(link)  # the link is now in KV
    new_url = f"https://{p['allowed_hosts'][1]}/new?x=1"
    worker.ok("PATCH", f"/api/v1/links/{link['id']}", {"url": new_url})
    r = worker.click(link)
    assert r.headers["Location"] == f"{new_url}&refport_id={click_id_of(r)}"
    assert wait_clicks(worker, link, 2) == 2


def test_deleted_link_is_404_page(worker):
    p, pn, link = setup_link(worker)
    worker.click_id(link)
    worker.ok("DELETE", f"/api/v1/links/{link['id']}")
    assert_not_found_page(worker.click(link))
    assert wait_clicks(worker, link, 1) == 1


def test_unknown_key_is_404_page(worker):
    p, pn, link = setup_link(worker)
    ghost = dict(link, key="no-such-key")
    assert_not_found_page(worker.click(ghost))
    assert_not_found_page(worker.click(ghost))  # the cached negative answer too


def test_link_created_after_a_404_on_its_key_works(worker):
    p = worker.program()
    pn = worker.partner(p)
    assert_not_found_page(worker.click({"domain": p["domains"][0], "key": "later"}))
    link = worker.link(pn, p, key="later")
    click_id_of(worker.click(link))
    wait_clicks(worker, link, 1)


def test_branded_host_is_matched_case_insensitively(worker):
    p, pn, link = setup_link(worker)
    for host in (link["domain"].upper(), link["domain"] + ":443"):
        click_id_of(worker.click(dict(link, domain=host)))
    assert wait_clicks(worker, link, 2) == 2


def test_known_key_on_other_host_is_404(worker):
    a, pa, link = setup_link(worker, key="jane")
    b = worker.program()
    for host in (b["domains"][0], "unknown-" + tag() + ".test", a["allowed_hosts"][0], "127.0.0.1"):
        assert_not_found_page(worker.click(dict(link, domain=host)))
    assert clicks_of(worker, link) == 0


@pytest.mark.parametrize("path", ["//evil.com", "/%2F%2Fevil.com", "/jane/extra", "/https://evil.com",
                                  "/jane?next=https://evil.com/x".replace("?", "%3F"), "/", "/%5Cevil.com"])
def test_never_an_open_redirect(worker, path):
    p, pn, link = setup_link(worker, key="jane")
    assert_not_found_page(raw_path(worker, link["domain"], path))


def test_changed_key_old_404_new_redirects(worker):
    p, pn, link = setup_link(worker, key="before")
    worker.click_id(link)  # cached under the old key
    after = worker.ok("PATCH", f"/api/v1/links/{link['id']}", {"key": "after"})
    assert after["key"] == "after" and after["short_url"] == f"https://{link['domain']}/after"
    assert_not_found_page(worker.click(link))
    r = worker.click(after)
    cid = click_id_of(r)
    assert r.headers["Location"] == f"{link['url']}?refport_id={cid}"
    assert wait_clicks(worker, link, 2) == 2
    assert worker.count("SELECT COUNT(*) FROM clicks WHERE id = ?", cid) == 1


def test_banned_partner_link_redirects_without_attribution(worker):
    p = worker.program()
    banned, other = worker.partner(p), worker.partner(p)
    link, other_link = worker.link(banned, p), worker.link(other, p)
    worker.click_id(link)  # cached while the partner was active
    worker.ok("PATCH", f"/api/v1/partners/{banned['id']}", {"status": "banned"})
    assert_uncounted_redirect(worker.click(link), link["url"])
    worker.click_id(other_link)  # barrier
    assert wait_clicks(worker, other_link, 1) == 1
    assert clicks_of(worker, link) == 1


def test_unbanned_partner_link_is_attributed_again(worker):
    p, pn, link = setup_link(worker)
    worker.ok("PATCH", f"/api/v1/partners/{pn['id']}", {"status": "banned"})
    assert_uncounted_redirect(worker.click(link), link["url"])
    worker.ok("PATCH", f"/api/v1/partners/{pn['id']}", {"status": "active"})
    click_id_of(worker.click(link))
    assert wait_clicks(worker, link, 1) == 1


# ----------------------------------------------------------------------------------------------
# Redirect cache refresh at scale: programs and partners with more than 1000 live links
# ----------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def big_program(worker):
    """A program whose partner `many` holds 1001 live links and whose partner `late` holds one link
    created after all of them: each is past the first 1000 rows of its program / partner."""
    p = worker.program()
    many, late = worker.partner(p), worker.partner(p)
    url = f"https://{p['allowed_hosts'][0]}/landing"

    def create(i):
        r = worker.post(f"/api/v1/partners/{many['id']}/links", {"url": url, "key": f"bulk{i}"})
        assert r.status_code == 201, r.text

    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(create, range(1000)))
    many_last = worker.link(many, p, key="many-last")
    late_link = worker.link(late, p, key="late")
    assert worker.count("SELECT COUNT(*) FROM links WHERE partner_id = ?", many["id"]) == 1001
    return p, many, many_last, late, late_link


def drain_cache_jobs(worker, max_runs=20):
    """Runs the cron until no link-cache refresh job is left (each run rewrites a page of links)."""
    for _ in range(max_runs):
        if worker.count("SELECT COUNT(*) FROM cache_refresh_jobs") == 0:
            return
        assert worker.scheduled().status_code == 200
    assert worker.count("SELECT COUNT(*) FROM cache_refresh_jobs") == 0, "cache refresh did not finish"


def test_window_change_reaches_every_link_of_a_big_program(worker, big_program):
    p, many, many_last, late, late_link = big_program
    worker.click_id(late_link)
    worker.ok("PATCH", f"/api/v1/programs/{p['id']}", {"attribution_window_days": 7})
    # the request rewrote the first page of links; the rest is a job the cron finishes
    assert worker.count("SELECT COUNT(*) FROM cache_refresh_jobs WHERE program_id = ?", p["id"]) == 1
    drain_cache_jobs(worker)
    r = worker.click(late_link)
    cid = click_id_of(r)
    wait_clicks(worker, late_link, 2)
    assert r.headers["Set-Cookie"] == f"refport_id={cid}; Max-Age=604800; Domain={p['cookie_domain']}; Path=/; Secure; SameSite=Lax"


def test_ban_reaches_every_link_of_a_partner_with_many_links(worker, big_program):
    p, many, many_last, late, late_link = big_program
    worker.click_id(many_last)
    assert wait_clicks(worker, many_last, 1) == 1
    worker.ok("PATCH", f"/api/v1/partners/{many['id']}", {"status": "banned"})
    drain_cache_jobs(worker)
    r = worker.click(many_last)
    if r.status_code == 302 and "refport_id=" in r.headers["Location"]:
        wait_clicks(worker, many_last, 2)  # let the wrongly counted click land before the next test
    assert_uncounted_redirect(r, many_last["url"])
