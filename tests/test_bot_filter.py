"""The bot filter in front of every click (issue 14), measured through real redirects on public
lists: a request counts as a click exactly when its 302 carries a click id (and a cookie).

- `crawler-user-agents` (npm, the monperrus list): every listed instance should be recognised;
- `top-user-agents` (npm, microlink's most common browser user agents): none may be flagged;
- in-app browsers of social and messaging apps are people; their preview fetchers are not
  (`tests/fixtures/social_user_agents.json`).

The figures are printed (run with -s) and asserted: >= 99% recognised, 0 false positives."""

import json
import os

import pytest
import requests

from apihelpers import setup_link, wait_clicks
from conftest import BROWSER_UA, ROOT, Worker, dev_vars, free_port, start_wrangler, stop_process

NODE_MODULES = os.path.join(ROOT, "node_modules")
FIXTURE = os.path.join(ROOT, "tests", "fixtures", "social_user_agents.json")


def load(*parts):
    with open(os.path.join(NODE_MODULES, *parts)) as f:
        return json.load(f)


def crawler_instances():
    return [ua for entry in load("crawler-user-agents", "crawler-user-agents.json") for ua in entry.get("instances", [])]


def top_browsers():
    seen = []
    for name in ("index.json", "desktop.json", "mobile.json"):
        for ua in load("top-user-agents", "src", name):
            if ua not in seen:
                seen.append(ua)
    return seen


@pytest.fixture(scope="module")
def counted(worker):
    """A function: user agent -> whether the redirect counted the visit as a click."""
    _p, _pn, link = setup_link(worker)
    host, key = link["domain"], link["key"]
    session = requests.Session()

    def is_click(ua):
        r = session.get(f"{worker.base}/{key}", headers={"Host": host, "User-Agent": ua}, allow_redirects=False,
                        timeout=30)
        assert r.status_code == 302, (ua, r.status_code)
        clicked = "refport_id=" in r.headers["Location"]
        assert clicked == ("refport_id=" in r.headers.get("Set-Cookie", "")), ua
        return clicked
    return is_click


def test_crawler_user_agents_are_recognised(counted):
    uas = crawler_instances()
    assert len(uas) > 2000, len(uas)
    missed = [ua for ua in uas if counted(ua)]
    recognised = len(uas) - len(missed)
    print(f"\ncrawler-user-agents: {recognised}/{len(uas)} recognised ({100 * recognised / len(uas):.2f}%)")
    assert recognised >= 0.99 * len(uas), missed[:40]


def test_top_browsers_are_never_flagged(counted):
    uas = top_browsers()
    assert len(uas) >= 100, len(uas)
    flagged = [ua for ua in uas if not counted(ua)]
    print(f"\ntop-user-agents: {len(flagged)}/{len(uas)} flagged")
    assert flagged == []


def test_in_app_browsers_are_people_and_their_preview_fetchers_are_not(counted):
    with open(FIXTURE) as f:
        fx = json.load(f)
    not_counted = {app: ua for app, ua in fx["in_app_browsers"].items() if not counted(ua)}
    assert not_counted == {}, "in-app browsers flagged as bots"
    counted_fetchers = {name: ua for name, ua in fx["preview_fetchers"].items() if counted(ua)}
    assert counted_fetchers == {}, "preview fetchers counted as clicks"


def test_scripts_and_head_requests_are_not_clicks(worker, counted):
    _p, _pn, link = setup_link(worker)
    for ua in ("curl/8.5.0", "python-requests/2.32.3", "Go-http-client/2.0", "node-fetch/1.0", "axios/1.7.2"):
        assert not counted(ua), ua
    url = f"{worker.base}/{link['key']}"
    chrome = top_browsers()[0]
    r = requests.head(url, headers={"Host": link["domain"], "User-Agent": chrome}, allow_redirects=False, timeout=30)
    assert r.status_code == 302 and "refport_id=" not in r.headers["Location"]
    for no_ua in (None, ""):  # None: no header at all
        r = requests.get(url, headers={"Host": link["domain"], "User-Agent": no_ua}, allow_redirects=False, timeout=30)
        assert r.status_code == 302 and "refport_id=" not in r.headers["Location"], repr(no_ua)


@pytest.fixture(scope="module")
def worker_behind_bot_management(stripe_server, email_sink, tmp_path_factory):
    """A Worker whose requests carry the `cf` object of a zone with Bot Management, where
    Cloudflare has verified the client as a bot (miniflare reads `request.cf` from
    CLOUDFLARE_CF_FETCH_PATH)."""
    persist = str(tmp_path_factory.mktemp("wrangler-verified-bot"))
    cf = os.path.join(persist, "cf.json")
    with open(cf, "w") as f:
        json.dump({"country": "NZ", "colo": "AKL", "botManagement": {"verifiedBot": True, "score": 1}}, f)
    proc, base = start_wrangler(persist, free_port(), free_port(),
                                {"STRIPE_API_BASE": stripe_server, "EMAIL_API_URL": email_sink.url},
                                extra_env={"CLOUDFLARE_CF_FETCH_ENABLED": "true", "CLOUDFLARE_CF_FETCH_PATH": cf})
    try:
        yield Worker(base, persist, stripe_server, dev_vars(), email_sink)
    finally:
        stop_process(proc)


def test_a_bot_verified_by_cloudflare_is_redirected_uncounted_even_with_a_browser_user_agent(
        worker_behind_bot_management, worker):
    w = worker_behind_bot_management
    for target in (w, worker):  # the same visit, without Bot Management's verdict, is a click
        _p, _pn, link = setup_link(target)
        r = requests.get(f"{target.base}/{link['key']}", headers={"Host": link["domain"], "User-Agent": BROWSER_UA},
                         allow_redirects=False, timeout=30)
        assert r.status_code == 302
        verified = target is w
        assert ("refport_id=" in r.headers["Location"]) is not verified, r.headers["Location"]
        assert ("Set-Cookie" in r.headers) is not verified
        assert wait_clicks(target, link, 0 if verified else 1) == (0 if verified else 1)
