"""End-to-end harness: one `wrangler dev` (local D1 + KV, fresh state) and one Stripe-compatible
server per test session, both on 127.0.0.1, always stopped. Helpers create a program, partner
and link in one line; `db` reads the local D1 file to assert on stored rows."""

import glob
import itertools
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))

from stripe_fake.server import start as start_stripe, stop as stop_stripe  # noqa: E402

BROWSER_UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0 Safari/537.36"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def dev_vars():
    out = {}
    path = os.path.join(ROOT, ".dev.vars")
    if not os.path.exists(path):
        path = os.path.join(ROOT, ".dev.vars.example")
    for line in open(path):
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            k, v = line.split("=", 1)
            out[k] = v
    return out


def wrangler_env():
    env = dict(os.environ)
    env["PATH"] = os.path.join(ROOT, "node_modules", ".bin") + os.pathsep + env["PATH"]
    env["REFPORT_SKIP_BUILD"] = "1"
    env["WRANGLER_SEND_METRICS"] = "false"
    # request.cf from miniflare's built-in stand-in (country "US", botManagement.verifiedBot
    # false), not the cf.json it would otherwise fetch from workers.cloudflare.com: the same on
    # every machine, online or not.
    env["CLOUDFLARE_CF_FETCH_ENABLED"] = "false"
    return env


class EmailSink:
    """The local stand-in for the HTTP email API (EMAIL_API_URL): records every JSON message."""

    def __init__(self):
        self.messages = []
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                try:
                    msg = json.loads(body)
                except ValueError:
                    msg = {"raw": body.decode("utf-8", "replace")}
                msg["_authorization"] = self.headers.get("authorization")
                sink.messages.append(msg)
                self.send_response(202)
                self.send_header("content-type", "application/json")
                self.end_headers()
                self.wfile.write(b'{"id":"msg_local"}')

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/send"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def to(self, address):
        return [m for m in self.messages if m.get("to") == address]

    def stop(self):
        self.server.shutdown()


class Worker:
    def __init__(self, base, persist, stripe_base, secrets, emails=None):
        self.emails = emails
        self.base = base
        self.persist = persist
        self.stripe_base = stripe_base
        self.secrets = secrets
        self.admin_key = secrets["REFPORT_ADMIN_KEY"]
        self.session = requests.Session()

    # -- HTTP ---------------------------------------------------------------------------------
    def request(self, method, path, json_body=None, key="admin", data=None, headers=None, **kw):
        h = dict(headers or {})
        if key == "admin":
            h["Authorization"] = f"Bearer {self.admin_key}"
        elif key:
            h["Authorization"] = f"Bearer {key}"
        if json_body is not None:
            data = json.dumps(json_body)
            h.setdefault("Content-Type", "application/json")
        return self.session.request(method, self.base + path, data=data, headers=h, timeout=30, **kw)

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, body=None, **kw):
        return self.request("POST", path, body, **kw)

    def patch(self, path, body=None, **kw):
        return self.request("PATCH", path, body, **kw)

    def delete(self, path, **kw):
        return self.request("DELETE", path, **kw)

    def ok(self, method, path, body=None, status=(200, 201), **kw):
        r = self.request(method, path, body, **kw)
        assert r.status_code in (status if isinstance(status, tuple) else (status,)), (r.status_code, r.text)
        return r.json()

    # -- one-line fixtures ----------------------------------------------------------------------
    def program(self, **overrides):
        tag = uuid.uuid4().hex[:10]
        body = {
            "name": f"Program {tag}",
            "domains": [f"go.{tag}.test"],
            "allowed_hosts": [f"{tag}.test", f"www.{tag}.test"],
            "cookie_domain": f"{tag}.test",
            "payout_currency": "usd",
            "min_payout": 5000,
            "rewards": {
                "lead": {"type": "flat", "amount": 500},
                "sale": {"type": "percentage", "amount": 2000, "duration_months": 12},
            },
        }
        body.update(overrides)
        return self.ok("POST", "/api/v1/programs", body, status=201)

    def partner(self, program, **overrides):
        tag = uuid.uuid4().hex[:8]
        body = {"email": f"partner-{tag}@partners.test", "name": f"Partner {tag}"}
        body.update(overrides)
        return self.ok("POST", f"/api/v1/programs/{program['id']}/partners", body, status=201)

    def link(self, partner, program, path="/landing", **overrides):
        body = {"url": f"https://{program['allowed_hosts'][0]}{path}"}
        body.update(overrides)
        return self.ok("POST", f"/api/v1/partners/{partner['id']}/links", body, status=201)

    # Clicks: the same visitor (IP and user agent) on the same link within an hour is one click,
    # and every test request comes from 127.0.0.1 with the same user agent. So each click is a
    # new visitor unless told otherwise: a fresh CF-Connecting-IP (wrangler dev passes the
    # client's header through, as a proxy in front of the Worker would not), from 198.18.0.0/15
    # (RFC 2544, never a real client). Pass `visitor=worker.visitor()` to several clicks to repeat
    # one visitor, or `visitor=False` to send no CF-Connecting-IP (wrangler dev sets 127.0.0.1).
    _visitors = itertools.count(1)

    def visitor(self):
        """A new visitor's IP (unique for the first 131,071 of a session)."""
        a = (18 << 16) + next(Worker._visitors) % (1 << 17)
        return f"198.{a >> 16}.{(a >> 8) & 255}.{a & 255}"

    def click(self, link, ua=BROWSER_UA, method="GET", headers=None, visitor=None, query=""):
        h = {"Host": link["domain"]}
        if ua is not None:
            h["User-Agent"] = ua
        if visitor is None:
            visitor = self.visitor()
        if visitor:
            h["CF-Connecting-IP"] = visitor
        h.update(headers or {})
        return requests.request(method, f"{self.base}/{link['key']}{query}", headers=h, allow_redirects=False, timeout=30)

    def click_id(self, link, **kw):
        r = self.click(link, **kw)
        assert r.status_code == 302, r.text
        m = re.search(r"refport_id=(clk_[0-9A-Za-z]+)", r.headers["Location"])
        assert m, r.headers["Location"]
        return m.group(1)

    # -- stored state ---------------------------------------------------------------------------
    def d1_file(self):
        files = [f for f in glob.glob(os.path.join(self.persist, "v3", "d1", "*", "*.sqlite")) if not f.endswith("metadata.sqlite")]
        assert len(files) == 1, files
        return files[0]

    def db(self):
        conn = sqlite3.connect(f"file:{self.d1_file()}?mode=ro", uri=True, timeout=10)
        conn.row_factory = sqlite3.Row
        return conn

    def writable(self):
        """A read-write connection to the running Worker's local D1, for the few tests that seed
        or age rows directly. It never checkpoints the WAL: workerd does. This Python's SQLite
        (3.40) has the WAL-reset bug (<https://www.sqlite.org/wal.html#walresetbug>, fixed in
        3.51.3; workerd bundles 3.54): a checkpoint racing another process's commit can leave
        the WAL index wrong, and readers then see "database disk image is malformed" until the
        WAL restarts. A connection that only appends frames is not one of the two checkpointers
        the bug needs."""
        conn = sqlite3.connect(self.d1_file(), timeout=30)
        conn.execute("PRAGMA wal_autocheckpoint = 0")
        return conn

    def read(self, fn):
        """`fn(connection)` on a read-only connection to the local D1. A read that finds the file
        "malformed" (the WAL index another process left wrong, see `writable`) is retried on
        fresh connections for 2 s, then made once on a private copy of the database and its WAL,
        whose index SQLite rebuilds from the WAL's checksummed frames. A database that is really
        corrupt fails there too."""
        deadline = time.time() + 2.0
        while True:
            conn = self.db()
            try:
                return fn(conn)
            except sqlite3.DatabaseError as e:
                if "malformed" not in str(e):
                    raise
                if time.time() >= deadline:
                    break
                time.sleep(0.1)
            finally:
                conn.close()
        with tempfile.TemporaryDirectory() as d:
            src, dst = self.d1_file(), os.path.join(d, "d1.sqlite")
            shutil.copyfile(src, dst)
            if os.path.exists(src + "-wal"):
                shutil.copyfile(src + "-wal", dst + "-wal")
            conn = sqlite3.connect(dst)
            conn.row_factory = sqlite3.Row
            try:
                return fn(conn)
            finally:
                conn.close()

    def rows(self, sql, *args):
        return self.read(lambda c: [dict(r) for r in c.execute(sql, args).fetchall()])

    def count(self, sql, *args):
        return self.read(lambda c: c.execute(sql, args).fetchone()[0])

    def wait_count(self, sql, *args, expect, timeout=20.0):
        """Polls until the count equals `expect` (clicks are written after the response)."""
        deadline = time.time() + timeout
        n = self.count(sql, *args)
        while n != expect and time.time() < deadline:
            time.sleep(0.1)
            n = self.count(sql, *args)
        return n

    def table_counts(self):
        # Not `clicks`: the clicks queue writes them a few seconds after their redirects, so a
        # click of an earlier test may land at any time (the track API never writes one).
        tables = ["programs", "program_domains", "partners", "links", "customers", "events",
                  "commissions", "payouts", "api_keys", "refunds", "commission_changes"]
        return {t: self.count(f"SELECT COUNT(*) FROM {t}") for t in tables}

    def scheduled(self, cron="*/15 * * * *", settle=True):
        """Runs the cron once. The cron claims what is due and enqueues one PAYOUTS message per
        payout; the queue's consumer pays shortly after. Unless told not to, waits until every
        message enqueued so far has been acknowledged (paid, failed, released or found stale)."""
        r = requests.get(f"{self.base}/cdn-cgi/handler/scheduled", params={"cron": cron}, timeout=120)
        if settle and r.status_code == 200:
            self.payouts_settled()
        return r

    def metrics(self):
        r = requests.get(f"{self.base}/api/v1/metrics", headers={"Authorization": f"Bearer {self.admin_key}"},
                         timeout=30)
        assert r.status_code == 200, (r.status_code, r.text)
        return r.json()["counters"]

    def payouts_settled(self, timeout=60.0):
        """Polls the isolate counters until the payouts queue has drained: every message the
        cron enqueued has been acknowledged by a consumer (a retried one comes back after its
        delay). Answers the counters."""
        deadline = time.time() + timeout
        while True:
            c = self.metrics()
            if c["payout_messages_acked"] >= c["payouts_enqueued"]:
                return c
            if time.time() > deadline:
                raise AssertionError(f"payouts queue not drained after {timeout}s: {c}")
            time.sleep(0.1)


def d1(persist, *args, config=None):
    """`wrangler d1 <args> DB --local --persist-to <persist>`; raises with wrangler's output on failure.
    Without stdin (and with output captured) wrangler never prompts: `migrations apply` goes ahead."""
    cmd = ["wrangler", "d1", *args, "DB", "--local", "--persist-to", persist]
    if config:
        cmd += ["--config", config]
    r = subprocess.run(cmd, cwd=ROOT, env=wrangler_env(), stdin=subprocess.DEVNULL, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {r.returncode}:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
    return r.stdout


def migrate(persist, config=None):
    """Applies every migration in migrations/ not yet applied to the local D1 in `persist`."""
    return d1(persist, "migrations", "apply", config=config)


CLICK_BATCH_TIMEOUT_TESTS = 1


def variant_config(path, drop=lambda block: False, edit=lambda block: block):
    """A copy of wrangler.toml at `path` (with absolute paths, so it works from any directory,
    and without the `[build]` step: the tests build once beforehand). `drop` removes whole
    top-level blocks, `edit` rewrites the ones kept. Writes the `.dev.vars` beside it."""
    toml = open(os.path.join(ROOT, "wrangler.toml")).read()
    blocks = [b for b in re.split(r"\n(?=\[)", toml) if not b.startswith("[build]") and not drop(b)]
    toml = "\n".join(edit(b) for b in blocks)
    for old, new in (('main = "build/index.js"', f'main = "{ROOT}/build/index.js"'),
                     ('directory = "./public"', f'directory = "{ROOT}/public"'),
                     ('migrations_dir = "migrations"', f'migrations_dir = "{ROOT}/migrations"')):
        assert old in toml, old
        toml = toml.replace(old, new)
    with open(path, "w") as f:
        f.write(toml)
    # wrangler reads the secrets from the .dev.vars beside the config
    with open(os.path.join(os.path.dirname(path), ".dev.vars"), "w") as f:
        f.writelines(f"{k}={v}\n" for k, v in dev_vars().items())
    return path


def quick_clicks(block):
    """The clicks consumer flushes a batch after 1 s instead of 5 s: the same code path, but a
    test waiting for its click's row waits a second (production batches at most 5 s late)."""
    if 'queue = "refport-clicks"' in block and block.startswith("[[queues.consumers]]"):
        assert "max_batch_timeout = 5" in block, block
        return block.replace("max_batch_timeout = 5", f"max_batch_timeout = {CLICK_BATCH_TIMEOUT_TESTS}")
    return block


def start_wrangler(persist, port, inspector, extra_vars, apply_migrations=True, config=None, extra_env=None):
    env = wrangler_env() | (extra_env or {})
    if apply_migrations:
        migrate(persist, config=config)
    args = ["wrangler", "dev", "--ip", "127.0.0.1", "--port", str(port), "--inspector-port", str(inspector),
            "--persist-to", persist, "--log-level", "warn"]
    if config:
        args += ["--config", config]
    for k, v in extra_vars.items():
        args += ["--var", f"{k}:{v}"]
    log = open(os.path.join(persist, "wrangler.log"), "w")
    proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + 90
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("wrangler dev exited: " + open(log.name).read()[-3000:])
        try:
            if requests.get(base + "/api/v1/health", timeout=2).status_code == 200:
                return proc, base
        except requests.RequestException:
            pass
        time.sleep(0.3)
    stop_process(proc)
    raise RuntimeError("wrangler dev did not become ready: " + open(log.name).read()[-3000:])


def stop_process(proc):
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@pytest.fixture(scope="session")
def stripe_server():
    server, _thread, base = start_stripe(port=0)
    yield base
    stop_stripe(server)


@pytest.fixture(scope="session")
def email_sink():
    sink = EmailSink()
    yield sink
    sink.stop()


@pytest.fixture(scope="session")
def worker(stripe_server, email_sink, tmp_path_factory):
    persist = str(tmp_path_factory.mktemp("wrangler-state"))
    secrets = dev_vars()
    # Payouts in flight are reconciled on the next cron run, and pauses after account-wide Stripe
    # refusals last at most a second (production: 5 minutes and up to a day).
    extra = {"STRIPE_API_BASE": stripe_server, "EMAIL_API_URL": email_sink.url,
             "PAYOUT_RECONCILE_AFTER_SECONDS": "0", "PAYOUT_PAUSE_MAX_SECONDS": "1",
             "STRIPE_TIMEOUT_SECONDS": "2", "REFPORT_TEST_HOOKS": "1"}
    config = variant_config(os.path.join(persist, "wrangler.toml"), edit=quick_clicks)
    proc, base = start_wrangler(persist, free_port(), free_port(), extra, config=config)
    try:
        yield Worker(base, persist, stripe_server, secrets, email_sink)
    finally:
        stop_process(proc)
