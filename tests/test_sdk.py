"""The merchant integration kit, end to end against the session's `wrangler dev`:

- the TypeScript SDK (`sdk/`): its own pinned toolchain (`npm ci` in sdk/), built with its tsc,
  its types in sync with `openapi/openapi.json`, and its node:test suite (`sdk/test/*.test.mjs`)
  run with REFPORT_BASE_URL / REFPORT_ADMIN_KEY pointing at this session's Worker;
- the first-party click script `GET /refport.js` (`web-script/refport.js`): served as the
  file, and run in headless Chromium (Debian's `chromium` driven by `playwright-core` from the
  root node_modules; never a browser download) on a landing page served here on 127.0.0.1."""

import json
import os
import re
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import pytest
import requests

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SDK = os.path.join(ROOT, "sdk")
SCRIPT = os.path.join(ROOT, "web-script", "refport.js")
CHROMIUM = "/usr/bin/chromium"
NODE_BIN = os.path.join(ROOT, "node_modules", ".bin")


def node_env(**extra):
    env = dict(os.environ)
    env["PATH"] = NODE_BIN + os.pathsep + env["PATH"]  # node 22 from the root's pinned `node`
    env.pop("NODE_OPTIONS", None)
    env.update(extra)
    return env


def run(cmd, cwd, env, timeout=600):
    p = subprocess.run(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout)
    return p.returncode, p.stdout


def sdk_installed():
    """npm ci is needed when node_modules is missing or older than the lockfile."""
    marker = os.path.join(SDK, "node_modules", ".package-lock.json")
    lock = os.path.join(SDK, "package-lock.json")
    return os.path.exists(marker) and os.path.getmtime(marker) >= os.path.getmtime(lock) \
        and os.path.exists(os.path.join(SDK, "node_modules", "typescript", "package.json"))


@pytest.fixture(scope="module")
def sdk_built():
    env = node_env()
    if not sdk_installed():
        rc, out = run(["npm", "ci", "--no-audit", "--no-fund"], SDK, env)
        assert rc == 0, out
    rc, out = run(["npm", "run", "--silent", "build"], SDK, env)
    assert rc == 0, out
    assert os.path.exists(os.path.join(SDK, "dist", "index.js"))
    return env


# ----------------------------------------------------------------------------------------------
# the SDK
# ----------------------------------------------------------------------------------------------

def test_sdk_toolchain_is_pinned():
    pkg = json.load(open(os.path.join(SDK, "package.json")))
    for name, version in pkg["devDependencies"].items():
        assert re.fullmatch(r"\d+\.\d+\.\d+", version), (name, version)
    assert {"typescript", "openapi-typescript"} <= set(pkg["devDependencies"])
    lock = json.load(open(os.path.join(SDK, "package-lock.json")))
    for name, version in pkg["devDependencies"].items():
        assert lock["packages"][f"node_modules/{name}"]["version"] == version
    assert not pkg.get("dependencies"), "the SDK has no runtime dependencies"


def test_sdk_types_are_generated_from_the_openapi_document(sdk_built, tmp_path):
    out = tmp_path / "openapi.ts"
    rc, log = run([os.path.join(SDK, "node_modules", ".bin", "openapi-typescript"), "../openapi/openapi.json",
                   "--output", str(out)], SDK, sdk_built)
    assert rc == 0, log
    committed = open(os.path.join(SDK, "src", "generated", "openapi.ts")).read()
    assert out.read_text() == committed, "sdk/src/generated/openapi.ts is stale: run `npm run generate` in sdk/"


def test_sdk_readme_examples_typecheck(sdk_built):
    """sdk/examples/ (the Node and Next.js code shown in sdk/README.md) compiles against the SDK."""
    rc, out = run(["npm", "run", "--silent", "typecheck:examples"], SDK, sdk_built)
    assert rc == 0, out
    readme = open(os.path.join(SDK, "README.md")).read()
    for rel in ("examples/node/track.ts", "examples/node/webhook-server.ts", "examples/nextjs/app/api/signup/route.ts",
                "examples/nextjs/app/api/refport/webhook/route.ts"):
        code = open(os.path.join(SDK, rel)).read().strip()
        assert code in readme, f"README.md does not show {rel} as it is"


def test_sdk_node_suite_against_wrangler_dev(worker, sdk_built):
    env = dict(sdk_built, REFPORT_BASE_URL=worker.base, REFPORT_ADMIN_KEY=worker.admin_key)
    t0 = time.time()
    rc, out = run(["node", "--test", "--test-reporter=spec", "--test-concurrency=4"]
                  + sorted(f"test/{f}" for f in os.listdir(os.path.join(SDK, "test")) if f.endswith(".test.mjs")),
                  SDK, env, timeout=900)
    print(out)
    print(f"SDK node suite: {time.time() - t0:.1f} s")
    assert rc == 0, out[-6000:]
    counts = dict(re.findall(r"^ℹ (tests|pass|fail|todo|skipped|cancelled) (\d+)$", out, re.M))
    assert int(counts["fail"]) == 0 and int(counts["cancelled"]) == 0, counts
    assert int(counts["pass"]) >= 35, counts


# ----------------------------------------------------------------------------------------------
# /refport.js
# ----------------------------------------------------------------------------------------------

def test_refport_js_is_served_from_web_script(worker):
    r = requests.get(worker.base + "/refport.js", timeout=10)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/javascript")
    assert r.headers["cache-control"] == "public, max-age=3600"
    assert r.headers["access-control-allow-origin"] == "*"
    source = open(SCRIPT, "rb").read()
    assert r.content == source, "GET /refport.js must serve web-script/refport.js"
    assert len(source) < 2560, len(source)  # ~2 KB with the Stripe tagging; keep it small


VM_JS = r"""
const vm = require("node:vm");
const src = require("node:fs").readFileSync(process.env.SCRIPT, "utf8");
const out = [];
for (const c of JSON.parse(process.env.CASES)) {
  let cookie = null, replaced = null;
  const attrs = c.attrs || {};
  const window = {
    location: { search: c.search, protocol: c.protocol || "http:", pathname: "/p", hash: "" },
    history: { state: null, replaceState: (s, t, u) => { replaced = u; } },
  };
  const document = {
    currentScript: c.noScript ? null : { getAttribute: (k) => (k in attrs ? attrs[k] : null) },
    set cookie(v) { cookie = v; },
  };
  vm.runInNewContext(src, { window, document, URLSearchParams });
  out.push({ cookie, replaced });
}
process.stdout.write(JSON.stringify(out));
"""

VM_CASES = [
    ({"search": "?refport_id=clk_A1", "protocol": "https:"},
     "refport_id=clk_A1; Max-Age=7776000; Path=/; SameSite=Lax; Secure"),
    ({"search": "?refport_id=clk_A1", "attrs": {"data-window-days": "30", "data-domain": "acme.io"}},
     "refport_id=clk_A1; Max-Age=2592000; Path=/; SameSite=Lax; Domain=acme.io"),
    ({"search": "?refport_id=clk_A1", "attrs": {"data-domain": "acme.io; Domain=evil.test"}},
     "refport_id=clk_A1; Max-Age=7776000; Path=/; SameSite=Lax"),
    ({"search": "?refport_id=clk_A1", "attrs": {"data-domain": "localhost"}},
     "refport_id=clk_A1; Max-Age=7776000; Path=/; SameSite=Lax"),
    ({"search": "?refport_id=clk_A1", "attrs": {"data-window-days": "0"}}, "refport_id=clk_A1; Max-Age=7776000; Path=/; SameSite=Lax"),
    ({"search": "?refport_id=clk_A1", "attrs": {"data-window-days": "-5"}}, "refport_id=clk_A1; Max-Age=7776000; Path=/; SameSite=Lax"),
    ({"search": "?refport_id=clk_A1", "attrs": {"data-window-days": "99999"}}, "refport_id=clk_A1; Max-Age=7776000; Path=/; SameSite=Lax"),
    ({"search": "?refport_id=clk_A1", "attrs": {"data-window-days": "abc"}}, "refport_id=clk_A1; Max-Age=7776000; Path=/; SameSite=Lax"),
    ({"search": "?refport_id=clk_A1", "attrs": {"data-window-days": "7.9"}}, "refport_id=clk_A1; Max-Age=604800; Path=/; SameSite=Lax"),
    ({"search": "?refport_id=clk_A1", "noScript": True}, "refport_id=clk_A1; Max-Age=7776000; Path=/; SameSite=Lax"),
    ({"search": "?refport_id=clk_A1&refport_id=clk_B2"}, "refport_id=clk_A1; Max-Age=7776000; Path=/; SameSite=Lax"),
    ({"search": "?refport_id=clk_A1%0D%0ASet-Cookie:x=1"}, None),
    ({"search": "?refport_id="}, None),
    ({"search": ""}, None),
]


def test_click_script_logic_in_node_vm(tmp_path):
    """Cases a browser page on http://127.0.0.1 cannot show: Secure on https, Domain validation,
    window bounds, no currentScript."""
    js = tmp_path / "vm.cjs"
    js.write_text(VM_JS)
    cases = [c for c, _ in VM_CASES]
    rc, out = run(["node", str(js)], ROOT, node_env(SCRIPT=SCRIPT, CASES=json.dumps(cases)))
    assert rc == 0, out
    got = json.loads(out)
    for (case, want), g in zip(VM_CASES, got):
        assert g["cookie"] == want, (case, g)
        assert g["replaced"] is None


# The Stripe landing page: links and Stripe's embeds (plain custom elements here: Stripe's own
# script is never loaded) as the HTML has them -> whether the click script tags them.
STRIPE_LINKS = {
    "pl": ("https://buy.stripe.com/test_abc?prefilled_email=jenny%40example.com&locale=fr#plan", True),
    "plain": ("https://buy.stripe.com/test_plain", True),
    "custom": ("https://pay.merchant.test/b/xyz?x=1", True),  # data-stripe-hosts opts custom domains in
    "custom2": ("https://PAY2.merchant.test/b/q", True),  # hosts compare case-insensitively
    "stale": ("https://buy.stripe.com/test_s?client_reference_id=clk_OLD1&x=2", True),  # an older click id
    "empty": ("https://buy.stripe.com/test_e?client_reference_id=", True),
    "merchant": ("https://buy.stripe.com/test_m?client_reference_id=order-42", False),  # the merchant's own
    "other": ("https://example.com/pricing?x=1#top", False),
    "relative": ("/signup?plan=pro", False),
    "lookalike": ("https://buy.stripe.com.evil.test/x", False),
    "checkout": ("https://checkout.stripe.com/c/pay/cs_test_a1#fid", False),  # a Session's URL: fixed server-side
}
STRIPE_ELEMENTS = {  # id: (tag, client-reference-id in the HTML, tagged?)
    "pt": ("stripe-pricing-table", None, True),
    "bb": ("stripe-buy-button", None, True),
    "pt_stale": ("stripe-pricing-table", "clk_OLD2", True),
    "bb_merchant": ("stripe-buy-button", "user_7", False),
}
# Added by the page 100 ms after load (a lazy section), and a link whose href turns into a Payment Link then.
STRIPE_LATE = {
    "late": ("a", "https://buy.stripe.com/test_late?x=1#l"),
    "late_pt": ("stripe-pricing-table", None),
    "swap": ("a", "https://buy.stripe.com/test_swap"),
}
STRIPE_BODY = (
    "<h1>Pricing</h1>"
    + "".join(f'<a id="{k}" href="{href}">{k}</a>' for k, (href, _) in STRIPE_LINKS.items())
    + '<a id="swap" href="https://example.com/not-yet">swap</a>'
    + "".join(f'<{tag} id="{k}" pricing-table-id="prctbl_1" buy-button-id="buy_btn_1" publishable-key="pk_test_1"'
              + (f' client-reference-id="{ref}"' if ref else "") + f"></{tag}>"
              for k, (tag, ref, _) in STRIPE_ELEMENTS.items())
    + "<script>setTimeout(function () {"
    "var s = document.createElement('section');"
    "s.innerHTML = '<a id=\"late\" href=\"https://buy.stripe.com/test_late?x=1#l\">late</a>'"
    " + '<stripe-pricing-table id=\"late_pt\" pricing-table-id=\"prctbl_2\"></stripe-pricing-table>';"
    "document.body.appendChild(s);"
    "document.getElementById('swap').setAttribute('href', 'https://buy.stripe.com/test_swap');"
    "window.__late = true;"
    "}, 100)</script>"
)
STRIPE_HOSTS = 'data-stripe-hosts="pay.merchant.test, Pay2.Merchant.Test"'


class Landing:
    """The merchant's site: pages including the click script with various attributes
    (path: script attributes, or (script attributes, body, script at the end of the body?))."""

    PAGES = {
        "/landing": 'data-window-days="7"',
        "/default": "",
        "/clean": 'data-window-days="30" data-clean-url',
        "/domain": 'data-window-days="7" data-domain="merchant.test"',
        "/async": 'data-window-days="14" async',
        "/stripe": (f'data-window-days="7" {STRIPE_HOSTS}', STRIPE_BODY, False),
        "/stripe-async": (f'data-window-days="7" {STRIPE_HOSTS} async', STRIPE_BODY, False),
        "/stripe-end": (f'data-window-days="7" {STRIPE_HOSTS}', STRIPE_BODY, True),
    }

    def __init__(self, script_src):
        landing = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                path = urlparse(self.path).path
                page = landing.PAGES.get(path)
                if page is None:
                    self.send_response(404)
                    self.end_headers()
                    return
                attrs, body, at_end = (page, "<h1>Pricing</h1>", False) if isinstance(page, str) else page
                tag = f'<script src="{script_src}" {attrs}></script>'
                html = (f"<!doctype html><html><head><title>Merchant</title>{'' if at_end else tag}</head>"
                        f"<body>{body}{tag if at_end else ''}</body></html>").encode()
                self.send_response(200)
                self.send_header("content-type", "text/html; charset=utf-8")
                self.send_header("content-length", str(len(html)))
                self.end_headers()
                self.wfile.write(html)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


BROWSER_JS = r"""
const { chromium } = require(process.env.PLAYWRIGHT_CORE);
const cases = JSON.parse(process.env.CASES);
(async () => {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM,
    headless: true,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           "--host-resolver-rules=MAP *.merchant.test 127.0.0.1"],
  });
  const out = {};
  try {
    for (const c of cases) {
      const context = await browser.newContext();
      if (c.cookies) await context.addCookies(c.cookies);
      // counts the MutationObservers /refport.js creates (one only with a click id; Playwright's own are not counted)
      await context.addInitScript(() => {
        const M = window.MutationObserver;
        window.__observers = 0;
        window.MutationObserver = class extends M {
          constructor(cb) { super(cb); if (/\/refport\.js/.test(new Error().stack)) window.__observers++; }
        };
      });
      const page = await context.newPage();
      const errors = [];
      page.on("pageerror", (e) => errors.push(String(e)));
      const before = Date.now() / 1000;
      const visits = [];
      for (const url of c.urls) {
        const res = await page.goto(url, { waitUntil: "load" });
        visits.push(res.status());
      }
      let stripe = null, observers = null;
      if (c.stripe) {
        await page.waitForFunction(() => window.__late === true, null, { timeout: 10000 });
        await page.evaluate(() => new Promise((r) => setTimeout(r, 50)));
        stripe = await page.evaluate(() => Object.fromEntries(
          Array.from(document.querySelectorAll("a[id], stripe-pricing-table, stripe-buy-button"))
            .map((e) => [e.id, { tag: e.localName, href: e.getAttribute("href"), ref: e.getAttribute("client-reference-id") }])));
        observers = await page.evaluate(() => window.__observers);
      }
      out[c.name] = {
        before,
        after: Date.now() / 1000,
        visits,
        errors,
        location: page.url(),
        documentCookie: await page.evaluate(() => document.cookie),
        cookies: await context.cookies(),
        stripe,
        observers,
      };
      await context.close();
    }
  } finally {
    await browser.close();
  }
  process.stdout.write(JSON.stringify(out));
})().catch((e) => { console.error(e); process.exit(1); });
"""


@pytest.fixture(scope="module")
def chromium():
    if not os.path.exists(CHROMIUM):
        rc, out = run(["bash", "-c", "apt-get update -qq && apt-get install -y -qq chromium"], ROOT, dict(os.environ), timeout=900)
        assert rc == 0 and os.path.exists(CHROMIUM), out[-3000:]
    pw = os.path.join(ROOT, "node_modules", "playwright-core")
    assert os.path.exists(os.path.join(pw, "package.json")), "playwright-core is a root devDependency: run `npm ci`"
    return pw


@pytest.fixture(scope="module")
def browser_runs(worker, chromium, tmp_path_factory):
    """Runs every page visit in one Chromium; answers {case: result} plus the click ids used."""
    served = requests.get(worker.base + "/refport.js", timeout=10)
    if served.status_code != 200 or served.content != open(SCRIPT, "rb").read():
        pytest.xfail("GET /refport.js does not serve web-script/refport.js yet (the Worker build must include it)")
    landing = Landing(worker.base + "/refport.js")
    try:
        origin = f"http://127.0.0.1:{landing.port}"
        merchant = f"http://www.merchant.test:{landing.port}"
        ids = {k: "clk_" + os.urandom(12).hex().upper() for k in "abcdefghijklmn"}
        cases = [
            {"name": "window7", "urls": [f"{origin}/landing?utm_source=x&refport_id={ids['a']}"]},
            {"name": "default90", "urls": [f"{origin}/default?refport_id={ids['b']}"]},
            {"name": "clean", "urls": [f"{origin}/clean?utm_source=x&refport_id={ids['c']}&plan=pro#pricing"]},
            {"name": "domain", "urls": [f"{merchant}/domain?refport_id={ids['d']}"]},
            {"name": "async", "urls": [f"{origin}/async?refport_id={ids['g']}"]},
            {"name": "none", "urls": [f"{origin}/landing", f"{origin}/landing?ref=abc"]},
            {"name": "invalid", "urls": [
                f"{origin}/landing?refport_id=abc",
                f"{origin}/landing?refport_id=clk_",
                f"{origin}/landing?refport_id=clk_bad%3B%20Domain%3Devil.test",
                f"{origin}/landing?refport_id=clk_{'A' * 107}",
                f"{origin}/landing?refport_id=CLK_ABC",
                f"{origin}/landing?refport_id=clk_%E2%9C%93",
            ]},
            {"name": "last_click", "urls": [f"{origin}/landing?refport_id={ids['e']}", f"{origin}/landing",
                                            f"{origin}/landing?refport_id={ids['f']}"]},
            # Stripe: the click id from the URL, from the cookie on a later visit, or none at all
            {"name": "stripe", "stripe": True, "urls": [f"{origin}/stripe?utm_source=x&refport_id={ids['h']}"]},
            {"name": "stripe_async", "stripe": True, "urls": [f"{origin}/stripe-async?refport_id={ids['i']}"]},
            {"name": "stripe_end", "stripe": True, "urls": [f"{origin}/stripe-end?refport_id={ids['j']}"]},
            {"name": "stripe_cookie", "stripe": True,
             "urls": [f"{origin}/landing?refport_id={ids['k']}", f"{origin}/stripe?utm_source=y"]},
            {"name": "stripe_cookie_invalid_url", "stripe": True,
             "urls": [f"{origin}/landing?refport_id={ids['l']}", f"{origin}/stripe?refport_id=clk_bad%3Bx"]},
            {"name": "stripe_newer_click", "stripe": True,
             "urls": [f"{origin}/landing?refport_id={ids['m']}", f"{origin}/stripe?refport_id={ids['n']}"]},
            {"name": "stripe_none", "stripe": True, "urls": [f"{origin}/stripe", f"{origin}/stripe?refport_id=abc"]},
            {"name": "stripe_bad_cookie", "stripe": True, "urls": [f"{origin}/stripe"],
             "cookies": [{"name": "refport_id", "value": "clk_A-B", "url": origin}]},
        ]
        js = tmp_path_factory.mktemp("browser") / "run.cjs"
        js.write_text(BROWSER_JS)
        env = node_env(PLAYWRIGHT_CORE=chromium, CHROMIUM=CHROMIUM, CASES=json.dumps(cases))
        t0 = time.time()
        rc, out = run(["node", str(js)], ROOT, env, timeout=300)
        print(f"Chromium runs: {time.time() - t0:.1f} s")
        assert rc == 0, out[-4000:]
        results = json.loads(out[out.index("{"):])
        results["_ids"] = ids
        return results
    finally:
        landing.stop()


def refport_cookies(result):
    return [c for c in result["cookies"] if c["name"] == "refport_id"]


def assert_cookie(result, value, days, domain="127.0.0.1"):
    assert result["errors"] == [], result["errors"]
    assert all(s == 200 for s in result["visits"]), result["visits"]
    cs = refport_cookies(result)
    assert len(cs) == 1, result["cookies"]
    c = cs[0]
    assert c["value"] == value
    assert c["domain"] == domain, c
    assert c["path"] == "/"
    assert c["sameSite"] == "Lax"
    assert c["secure"] is False  # the landing page is http; the script adds Secure on https
    assert c["httpOnly"] is False  # set by the page's own script: first-party, readable
    lo, hi = result["before"] + days * 86400 - 5, result["after"] + days * 86400 + 5
    assert lo <= c["expires"] <= hi, (c["expires"] - result["before"]) / 86400
    assert f"refport_id={value}" in result["documentCookie"]
    return c


def test_click_script_sets_a_first_party_cookie_for_the_window(browser_runs):
    assert_cookie(browser_runs["window7"], browser_runs["_ids"]["a"], 7)
    # the URL is left alone unless data-clean-url is set
    assert browser_runs["window7"]["location"].endswith(f"refport_id={browser_runs['_ids']['a']}")


def test_click_script_default_window_is_90_days(browser_runs):
    assert_cookie(browser_runs["default90"], browser_runs["_ids"]["b"], 90)


def test_click_script_with_async_attribute(browser_runs):
    assert_cookie(browser_runs["async"], browser_runs["_ids"]["g"], 14)


def test_click_script_data_domain_sets_the_parent_domain(browser_runs):
    c = assert_cookie(browser_runs["domain"], browser_runs["_ids"]["d"], 7, domain=".merchant.test")
    assert c["domain"] == ".merchant.test"


def test_click_script_data_clean_url_removes_only_refport_id(browser_runs):
    r = browser_runs["clean"]
    assert_cookie(r, browser_runs["_ids"]["c"], 30)
    u = urlparse(r["location"])
    assert u.path == "/clean" and u.fragment == "pricing"
    assert parse_qs(u.query) == {"utm_source": ["x"], "plan": ["pro"]}


def test_click_script_without_or_with_invalid_refport_id_sets_nothing(browser_runs):
    for name in ("none", "invalid"):
        r = browser_runs[name]
        assert r["errors"] == [], r["errors"]
        assert refport_cookies(r) == [], (name, r["cookies"])
        assert r["cookies"] == [], "no cookie of any name is injected"


def test_click_script_newer_click_replaces_the_cookie(browser_runs):
    assert_cookie(browser_runs["last_click"], browser_runs["_ids"]["f"], 7)


def test_click_script_cookie_value_tracks_a_lead(worker, chromium, browser_runs, tmp_path):
    """A real click's id, carried by the cookie the script set, attributes a lead."""
    p = worker.program()
    pn = worker.partner(p)
    ln = worker.link(pn, p)
    cid = worker.click_id(ln)
    assert worker.wait_count("SELECT COUNT(*) FROM clicks WHERE id=?", cid, expect=1) == 1
    landing = Landing(worker.base + "/refport.js")
    try:
        cases = [{"name": "real", "urls": [f"http://127.0.0.1:{landing.port}/landing?refport_id={cid}"]}]
        js = tmp_path / "run.cjs"
        js.write_text(BROWSER_JS)
        rc, out = run(["node", str(js)], ROOT, node_env(PLAYWRIGHT_CORE=chromium, CHROMIUM=CHROMIUM, CASES=json.dumps(cases)))
        assert rc == 0, out[-4000:]
        r = json.loads(out[out.index("{"):])["real"]
    finally:
        landing.stop()
    c = assert_cookie(r, cid, 7)
    lead = worker.post("/api/v1/track/lead", {"click_id": c["value"], "customer_external_id": f"cookie-{cid[-8:]}"})
    assert lead.status_code == 200, lead.text
    body = lead.json()
    assert body["attributed"] is True and body["event"]["partner_id"] == pn["id"], body


# ----------------------------------------------------------------------------------------------
# /refport.js: zero-code Stripe (Payment Links, pricing table, buy button carry the click id)
# ----------------------------------------------------------------------------------------------

def assert_link_tagged(name, original, got, cid):
    """`got` is `original` with client_reference_id=<cid> set: the rest of the query and the hash kept."""
    o, g = urlparse(original), urlparse(got)
    assert (g.scheme, g.netloc.lower(), g.path, g.fragment) == (o.scheme, o.netloc.lower(), o.path, o.fragment), (name, got)
    want = parse_qs(o.query, keep_blank_values=True)
    want["client_reference_id"] = [cid]
    assert parse_qs(g.query, keep_blank_values=True) == want, (name, got)


def assert_stripe_tagged(result, cid):
    """Every Payment Link and Stripe embed on /stripe (also those added 100 ms after load) carries
    `cid`; everything else, and a merchant's own non-clk value, is exactly as the HTML has it."""
    assert result["errors"] == [], result["errors"]
    assert all(s == 200 for s in result["visits"]), result["visits"]
    got = result["stripe"]
    assert set(got) == set(STRIPE_LINKS) | set(STRIPE_ELEMENTS) | set(STRIPE_LATE), sorted(got)
    for k, (href, tagged) in STRIPE_LINKS.items():
        assert got[k]["ref"] is None, (k, got[k])
        if tagged:
            assert_link_tagged(k, href, got[k]["href"], cid)
        else:
            assert got[k]["href"] == href, (k, got[k])
    for k, (tag, ref, tagged) in STRIPE_ELEMENTS.items():
        assert got[k]["tag"] == tag, (k, got[k])
        assert got[k]["ref"] == (cid if tagged else ref), (k, got[k])
    for k in ("late", "swap"):
        assert_link_tagged(k, STRIPE_LATE[k][1], got[k]["href"], cid)
    assert got["late_pt"]["ref"] == cid, got["late_pt"]
    assert result["observers"] == 1, result["observers"]


def test_click_script_stripe_links_and_embeds_carry_the_click_id(browser_runs):
    r = browser_runs["stripe"]
    assert_cookie(r, browser_runs["_ids"]["h"], 7)
    assert_stripe_tagged(r, browser_runs["_ids"]["h"])


def test_click_script_stripe_keeps_the_merchants_own_client_reference_id(browser_runs):
    got = browser_runs["stripe"]["stripe"]
    assert got["merchant"]["href"] == STRIPE_LINKS["merchant"][0]
    assert got["bb_merchant"]["ref"] == "user_7"
    # an older click id (not the merchant's) is replaced by the current one
    cid = browser_runs["_ids"]["h"]
    assert parse_qs(urlparse(got["stale"]["href"]).query)["client_reference_id"] == [cid]
    assert got["pt_stale"]["ref"] == cid


def test_click_script_stripe_elements_added_after_load_are_tagged(browser_runs):
    got = browser_runs["stripe"]["stripe"]
    cid = browser_runs["_ids"]["h"]
    assert_link_tagged("late", STRIPE_LATE["late"][1], got["late"]["href"], cid)
    assert_link_tagged("swap", STRIPE_LATE["swap"][1], got["swap"]["href"], cid)
    assert got["late_pt"]["ref"] == cid


def test_click_script_stripe_with_async_script_or_at_the_end_of_the_body(browser_runs):
    assert_stripe_tagged(browser_runs["stripe_async"], browser_runs["_ids"]["i"])
    assert_stripe_tagged(browser_runs["stripe_end"], browser_runs["_ids"]["j"])


def test_click_script_stripe_uses_the_cookie_on_a_later_visit(browser_runs):
    r = browser_runs["stripe_cookie"]
    assert_cookie(r, browser_runs["_ids"]["k"], 7)
    assert_stripe_tagged(r, browser_runs["_ids"]["k"])
    # an invalid ?refport_id neither replaces the cookie nor the click id it carries
    r = browser_runs["stripe_cookie_invalid_url"]
    assert_cookie(r, browser_runs["_ids"]["l"], 7)
    assert_stripe_tagged(r, browser_runs["_ids"]["l"])


def test_click_script_stripe_newer_click_in_the_url_beats_the_cookie(browser_runs):
    r = browser_runs["stripe_newer_click"]
    assert_cookie(r, browser_runs["_ids"]["n"], 7)
    assert_stripe_tagged(r, browser_runs["_ids"]["n"])


def test_click_script_stripe_without_a_click_id_changes_nothing(browser_runs):
    for name in ("stripe_none", "stripe_bad_cookie"):
        r = browser_runs[name]
        assert r["errors"] == [], (name, r["errors"])
        got = r["stripe"]
        for k, (href, _) in STRIPE_LINKS.items():
            assert got[k] == {"tag": "a", "href": href, "ref": None}, (name, k, got[k])
        for k, (tag, ref, _) in STRIPE_ELEMENTS.items():
            assert got[k]["ref"] == ref, (name, k, got[k])
        for k, (tag, href) in STRIPE_LATE.items():
            assert got[k]["href"] == href and got[k]["ref"] is None, (name, k, got[k])
        assert r["observers"] == 0, (name, "no MutationObserver without a click id")
    assert browser_runs["stripe_none"]["cookies"] == []
    assert [c["value"] for c in browser_runs["stripe_bad_cookie"]["cookies"]] == ["clk_A-B"]
