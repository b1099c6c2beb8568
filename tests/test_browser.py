"""Browser tests: `tests/browser/*.test.mjs` (node's test runner, playwright-core driving Debian's
Chromium at /usr/bin/chromium; no browser download) against this session's Worker, Stripe fake and
email sink. The dashboard, the embedded portal and the invite page are exercised as a merchant, a
partner and a visitor would; screenshots go to tests/artifacts/browser/."""

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = os.path.join(ROOT, "tests", "artifacts", "browser")


@pytest.fixture
def email_feed(email_sink):
    """`GET /` answers the email sink's messages as JSON, for the node tests to poll."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            body = json.dumps([{k: m.get(k) for k in ("to", "subject", "text", "html")} for m in list(email_sink.messages)]).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def test_browser(worker, stripe_server, email_feed):
    assert os.path.exists(CHROMIUM), f"{CHROMIUM} is missing: apt-get install -y chromium"
    page = os.path.join(ROOT, "public", "embed", "referrals.html")
    assert os.path.exists(os.path.join(ROOT, "public", "dashboard", "index.html")) and "/assets/" in open(page).read(), \
        "the web pages are not built: run `bash scripts/build-web.sh` before starting the Worker"
    env = dict(os.environ)
    env["PATH"] = os.path.join(ROOT, "node_modules", ".bin") + os.pathsep + env["PATH"]  # node 22
    env.update(
        BASE_URL=worker.base,
        ADMIN_KEY=worker.admin_key,
        STRIPE_BASE=stripe_server,
        WEBHOOK_SECRET=worker.secrets["STRIPE_WEBHOOK_SECRET"],
        EMAILS_URL=email_feed,
        ARTIFACTS_DIR=ARTIFACTS,
        CHROMIUM=CHROMIUM,
    )
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    started = time.time()
    proc = subprocess.run(
        # BROWSER_TESTS narrows the run to some files (a glob), e.g. tests/browser/rewards.test.mjs.
        ["node", "--test", "--test-reporter=spec", "--test-concurrency=1", os.environ.get("BROWSER_TESTS", "tests/browser/*.test.mjs")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )
    print(proc.stdout)
    print(proc.stderr, file=sys.stderr)
    print(f"browser tests: {time.time() - started:.1f}s, screenshots in {ARTIFACTS}")
    assert proc.returncode == 0, f"node --test exited {proc.returncode}:\n{proc.stdout[-6000:]}\n{proc.stderr[-2000:]}"
