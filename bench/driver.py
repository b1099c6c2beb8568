"""Refport benchmark driver (standard-library Python; started by bench/run.sh).

Starts Refport and the baselines with `wrangler dev` on 127.0.0.1 (own ports, own --persist-to
dirs under the run's work dir), sets up the benchmark data through Refport's own API, drives
load with wrk from this separate process, interleaving the targets in rounds, and prints (and
writes to bench/results/latest.md) the table of medians across rounds, the wasm sizes, the
startup times and the D1 write numbers the scale note in bench/README.md rests on.

Every process it starts gets its own process group, recorded in WORK/pgids, and is stopped in a
`finally` (also on SIGINT/SIGTERM/SIGHUP); run.sh's trap stops anything still recorded there.
"""

import argparse
import datetime
import glob
import http.client
import json
import os
import platform
import re
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import time
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "bench")
LUA = os.path.join(BENCH, "wrk", "bench.lua")
BROWSER_UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0 Safari/537.36"
DOMAIN = "go.bench.test"
LINK_KEY = "bench"
CUSTOMER = "bench_cust"
REPLAY_INVOICE = "inv_bench_replay"

# target name -> (label, what it measures)
LABELS = {
    "L": "baseline L: constant 302",
    "W": "baseline W: constant 302 from Rust/wasm",
    "W+assets": "W behind Refport's [assets] routing",
    "J": "baseline J: JS KV + cookie + 302",
    "J+click": "J + D1 click via waitUntil",
    "redirect": "Refport redirect GET /{key}",
    "sale": "track/sale, unique invoice",
    "sale-replay": "track/sale, replayed invoice",
}
ORDER = ["L", "W", "W+assets", "J", "J+click", "redirect", "sale", "sale-replay"]


def log(msg):
    print(msg, file=sys.stderr, flush=True)


# -- processes ------------------------------------------------------------------------------------

class Procs:
    """Every long-running process started here: own process group, recorded for run.sh's trap."""

    def __init__(self, work):
        self.work = work
        self.procs = []

    def spawn(self, name, args, env, cwd=ROOT):
        logf = open(os.path.join(self.work, f"{name}.log"), "w")
        p = subprocess.Popen(args, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=logf,
                             stderr=subprocess.STDOUT, start_new_session=True)
        p.bench_name, p.bench_log = name, logf.name
        self.procs.append(p)
        with open(os.path.join(self.work, "pgids"), "a") as f:
            f.write(f"{p.pid}\n")
        return p

    def stop(self, procs):
        """Stops these processes (their groups) now; the rest keep running."""
        for p in reversed(procs):
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.time() + 10
        for p in reversed(procs):
            try:
                p.wait(timeout=max(0.1, deadline - time.time()))
            except subprocess.TimeoutExpired:
                pass
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.procs = [p for p in self.procs if p not in procs]

    def stop_all(self):
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):  # finish stopping, whatever comes
            signal.signal(sig, signal.SIG_IGN)
        for p in reversed(self.procs):
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.time() + 10
        for p in reversed(self.procs):
            try:
                p.wait(timeout=max(0.1, deadline - time.time()))
            except subprocess.TimeoutExpired:
                pass
            try:  # the group may outlive its leader (workerd under wrangler): make sure
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.procs = []


CLK_TCK = os.sysconf("SC_CLK_TCK")


def group_cpu_s(pgid):
    """CPU seconds (user + system) used so far by the live processes of a process group: one
    `wrangler dev` (node, its proxy workerd and the Worker's workerd, which also runs the local
    queue broker, KV and D1)."""
    total = 0
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        if int(fields[2]) == pgid:  # fields after the name: state, ppid, pgrp, ... utime (12), stime (13)
            total += int(fields[11]) + int(fields[12])
    return total / CLK_TCK


def wrangler_env():
    env = dict(os.environ)
    env["PATH"] = os.path.join(ROOT, "node_modules", ".bin") + os.pathsep + env.get("PATH", "")
    env["REFPORT_SKIP_BUILD"] = "1"
    env["WRANGLER_SEND_METRICS"] = "false"
    env["NO_COLOR"] = "1"
    return env


def wrangler(args, env, cwd=ROOT, capture=False):
    r = subprocess.run(["wrangler", *args], cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"wrangler {' '.join(args)} failed:\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}")
    return r.stdout if capture else None


def port_free(port):
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


class Ports:
    def __init__(self, lo, hi):
        self.next, self.hi = lo, hi

    def take(self):
        while self.next <= self.hi:
            p = self.next
            self.next += 1
            if port_free(p):
                return p
        raise RuntimeError("no free port left in the benchmark range")


# -- HTTP (stdlib) --------------------------------------------------------------------------------

def request(port, method, path, body=None, headers=None, timeout=30):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        h = dict(headers or {})
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            h.setdefault("Content-Type", "application/json")
        c.request(method, path, body=data, headers=h)
        r = c.getresponse()
        return r.status, dict((k.lower(), v) for k, v in r.getheaders()), r.read()
    finally:
        c.close()


def api(port, key, method, path, body=None, expect=(200, 201)):
    status, _, raw = request(port, method, path, body, {"Authorization": f"Bearer {key}"})
    if status not in expect:
        raise RuntimeError(f"{method} {path} -> {status}: {raw[:500]!r}")
    return json.loads(raw)


def wait_ready(proc, port, path, ok_status, timeout=120):
    """Polls until `path` answers one of ok_status; returns seconds since the process started."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.bench_name} exited:\n" + open(proc.bench_log).read()[-3000:])
        try:
            status, _, _ = request(port, "GET", path, timeout=2)
            if status in ok_status:
                return time.monotonic() - proc.bench_t0
        except OSError:
            pass
        time.sleep(0.02)
    raise RuntimeError(f"{proc.bench_name} not ready in {timeout}s:\n" + open(proc.bench_log).read()[-3000:])


def pin_cpus():
    """BENCH_PIN=server:client as (server CPUs, client CPUs), or None when unset."""
    spec = os.environ.get("BENCH_PIN", "")
    return tuple(spec.split(":", 1)) if ":" in spec else None


def pin(role):
    """`taskset -c CPUS` for the server or the load generator under BENCH_PIN."""
    cpus = pin_cpus()
    return ["taskset", "-c", cpus[0] if role == "server" else cpus[1]] if cpus else []


def start_dev(procs, name, port, inspector, persist, env, config=None, extra=()):
    args = pin("server") + ["wrangler", "dev", "--ip", "127.0.0.1", "--port", str(port), "--inspector-port", str(inspector),
            "--persist-to", persist, "--log-level", "warn", "--show-interactive-dev-session=false"]
    if config:
        args += ["--config", config]
    args += list(extra)
    t0 = time.monotonic()
    p = procs.spawn(name, args, env)
    p.bench_t0 = t0
    return p


def refport_config(work):
    """Refport's wrangler.toml for the bench: absolute paths, no `[build]` (run.sh has built it)
    and no `[assets]`. On Cloudflare the static-assets routing runs before the Worker is invoked,
    outside its isolate; under `wrangler dev` miniflare runs it as two more JavaScript Workers in
    the same workerd process as everything else. Refport is measured without that local layer,
    as baselines L and J are; target W+assets measures what the layer costs (README)."""
    toml = open(os.path.join(ROOT, "wrangler.toml")).read()
    blocks = [b for b in re.split(r"\n(?=\[)", toml) if not b.startswith(("[build]", "[assets]"))]
    toml = "\n".join(blocks)
    for old, new in (('main = "build/index.js"', f'main = "{ROOT}/build/index.js"'),
                     ('migrations_dir = "migrations"', f'migrations_dir = "{ROOT}/migrations"')):
        if old not in toml:
            raise RuntimeError(f"wrangler.toml: expected {old}")
        toml = toml.replace(old, new)
    d = os.path.join(work, "refport-config")
    os.makedirs(d)
    with open(os.path.join(d, "wrangler.toml"), "w") as f:
        f.write(toml)
    shutil.copyfile(os.path.join(ROOT, ".dev.vars"), os.path.join(d, ".dev.vars"))  # secrets, read beside the config
    return os.path.join(d, "wrangler.toml")


def assets_variant(w_config, out):
    """Baseline W's wrangler.toml with Refport's `[assets]` section (wrangler.toml), paths made
    absolute: the same Worker, reached through the static-assets routing Refport's requests take."""
    root_toml = open(os.path.join(ROOT, "wrangler.toml")).read()
    m = re.search(r"^\[assets\]\n(?:[^\[\n].*\n|\n)*", root_toml, re.M)
    if not m:
        raise RuntimeError("wrangler.toml has no [assets] section")
    assets = re.sub(r'^directory = "\./?([^"]*)"', lambda d: f'directory = "{os.path.join(ROOT, d.group(1))}"', m.group(0),
                    flags=re.M)
    text = open(w_config).read().replace('main = "build/index.js"',
                                         f'main = "{os.path.join(os.path.dirname(w_config), "build", "index.js")}"')
    with open(out, "w") as f:
        f.write(text + "\n" + assets)
    return out


# -- local D1 file ---------------------------------------------------------------------------------

def d1_file(persist):
    files = [f for f in glob.glob(os.path.join(persist, "v3", "d1", "*", "*.sqlite")) if not f.endswith("metadata.sqlite")]
    if len(files) != 1:
        raise RuntimeError(f"expected one local D1 file under {persist}, found {files}")
    return files[0]


def d1_query(path, sql):
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        return conn.execute(sql).fetchone()
    finally:
        conn.close()


def d1_count(path, table):
    return d1_query(path, f"SELECT COUNT(*) FROM {table}")[0]


def d1_visits(path):
    """The visits the clicks table accounts for: Refport folds the visits of one visitor to one
    link within an hour into one row and counts them in `hits` (a table without the column, a
    baseline's: one visit per row)."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        cols = [r[1] for r in conn.execute("PRAGMA table_info(clicks)")]
        sql = "SELECT COALESCE(SUM(hits), 0) FROM clicks" if "hits" in cols else "SELECT COUNT(*) FROM clicks"
        return conn.execute(sql).fetchone()[0]
    finally:
        conn.close()


def d1_table_bytes(path, table):
    """Bytes a table and all its indexes (primary key included) occupy, from SQLite's dbstat
    (None when the table is missing or this SQLite has no dbstat)."""
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
        try:
            names = [r[0] for r in conn.execute(
                "SELECT name FROM sqlite_master WHERE tbl_name = ? AND type IN ('table', 'index')", (table,))]
            if not names:
                return None
            row = conn.execute(f"SELECT SUM(pgsize) FROM dbstat WHERE name IN ({','.join('?' * len(names))})",
                               names).fetchone()
            return {"bytes": row[0], "objects": names}
        finally:
            conn.close()
    except sqlite3.Error:
        return None


def d1_click_bytes(path):
    """Bytes the clicks table and its indexes occupy (dbstat when SQLite has it, else None)."""
    b = d1_table_bytes(path, "clicks")
    return b and b["bytes"]


def d1_has_table(path, table):
    return bool(d1_query(path, f"SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = '{table}'")[0])


def clone_d1(src_path, persist, config, env):
    """Creates the local D1 file of `config` under `persist`, then fills it with a consistent
    copy of `src_path` (SQLite's backup API), minus its clicks."""
    wrangler(["d1", "execute", "DB", "--local", "--persist-to", persist, "--config", config, "--command", "SELECT 1"], env)
    dst_path = d1_file(persist)
    src = sqlite3.connect(f"file:{src_path}?mode=ro", uri=True, timeout=10)
    dst = sqlite3.connect(dst_path)
    try:
        src.backup(dst)
        dst.execute("DELETE FROM clicks")
        dst.commit()
    finally:
        src.close()
        dst.close()
    return dst_path


def wait_drained(path, table, timeout=60.0, quiet=1.0):
    """Waits until the row count stops moving for `quiet` seconds (the waitUntil backlog is
    written); returns (count, seconds waited)."""
    t0 = time.monotonic()
    last, since = d1_count(path, table), time.monotonic()
    while time.monotonic() - t0 < timeout:
        time.sleep(0.2)
        n = d1_count(path, table)
        if n != last:
            last, since = n, time.monotonic()
        elif time.monotonic() - since >= quiet:
            break
    return last, max(0.0, since - t0)


# -- Refport's isolate counters (GET /api/v1/metrics) ----------------------------------------------

# Maxima, not sums: a run's value is the value after it, not a difference.
MAX_COUNTERS = {"max_invocation_subrequests"}


def get_metrics(port, admin):
    """The counters of Refport's one isolate under `wrangler dev` ({} if this build has none)."""
    try:
        status, _, raw = request(port, "GET", "/api/v1/metrics", headers={"Authorization": f"Bearer {admin}"}, timeout=30)
    except OSError:
        return {}
    if status != 200:
        return {}
    return json.loads(raw).get("counters", {})


def metrics_delta(after, before):
    return {k: (v if k in MAX_COUNTERS else v - before.get(k, 0)) for k, v in after.items()}


def settle_queue(db, metrics, timeout=30.0):
    """Waits until every click the Worker has queued so far is written (the queue writes a
    batch up to 5 s late), so that a round's counts hold only that round's clicks."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and d1_visits(db) < metrics().get("clicks_queued", 0):
        time.sleep(0.2)


def wait_clicks(db, visits_before, answered, metrics, m_before, timeout=120.0):
    """Waits for the visits of a redirect run to be written (`d1_visits`: rows, and the repeated
    visits folded into them): until there are as many as the clicks the Worker queued (its
    `clicks_queued` counter; without it, the 302s wrk counted) and none has arrived for 0.5 s, or
    until nothing has moved for 8 s (longer than the queue's 5 s batch timeout: what is missing
    then is lost), or `timeout`. Returns (visits, seconds from the call to the last new one)."""
    t0 = time.monotonic()
    last, since = d1_visits(db) - visits_before, t0
    while time.monotonic() - t0 < timeout:
        m = metrics_delta(metrics(), m_before) if metrics else {}
        n = d1_visits(db) - visits_before
        if n != last:
            last, since = n, time.monotonic()
        goal = max(m.get("clicks_queued", 0), answered)
        quiet = time.monotonic() - since
        if (n >= goal and quiet >= 0.5) or quiet >= 8.0:
            break
        time.sleep(0.2)
    return last, max(0.0, since - t0)


# -- wrk -------------------------------------------------------------------------------------------

VISITORS = {
    "top": "its own address, one of the 100 most common browser user agents of `top-user-agents` in turn",
    "unique": "one address, a browser user agent of its own, BENCH_UA=unique",
}
TOP_USER_AGENTS = os.path.join(ROOT, "node_modules", "top-user-agents", "src", "index.json")


def visitor_agents(work):
    """The click targets' visitors (bench.lua): BENCH_UA=top (the default) gives each request
    its own address and one of the most common real browser user agents in turn (the npm
    `top-user-agents` list, a devDependency), as real visitors share a few browser strings;
    BENCH_UA=unique gives every request a user agent never seen before from one address (the
    worst case for anything kept per user agent). The file for bench.lua, or None."""
    how = os.environ.get("BENCH_UA", "top")
    if how == "unique":
        return None
    if how != "top":
        raise SystemExit(f"BENCH_UA={how}: choose top or unique")
    agents = [ua for ua in json.load(open(TOP_USER_AGENTS)) if isinstance(ua, str) and ua.strip() and "\n" not in ua]
    if not agents:
        raise SystemExit(f"no user agent in {TOP_USER_AGENTS}")
    path = os.path.join(work, "user-agents.txt")
    with open(path, "w") as f:
        f.write("\n".join(agents) + "\n")
    return path


def rounds_order(targets, rnd):
    """Round `rnd`'s order: the targets rotated (no fixed slot), with the redirect moved next to
    baseline L, after it in even rounds and before it in odd ones. The machine's speed drifts by
    tens of percent over a minute here (baseline L alone spans 0.7-1.3x its median across rounds
    of one run), so the goal's ratio compares two runs seconds apart, in both orders."""
    order = targets[rnd % len(targets):] + targets[:rnd % len(targets)]
    if "L" in order and "redirect" in order:
        order.remove("redirect")
        at = order.index("L")
        order.insert(at + 1 if rnd % 2 == 0 else at, "redirect")
    return order


def run_wrk(port, path, seconds, mode, headers, threads, conns, extra_env=None):
    env = dict(os.environ)
    env.update({"BENCH_MODE": mode, "BENCH_RUN_ID": uuid.uuid4().hex[:12], "BENCH_CUSTOMER": CUSTOMER})
    env.update(extra_env or {})
    args = pin("client") + ["wrk", f"-t{threads}", f"-c{conns}", f"-d{seconds}s", "--timeout", "10s", "-s", LUA]
    for k, v in headers.items():
        args += ["-H", f"{k}: {v}"]
    args.append(f"http://127.0.0.1:{port}{path}")
    r = subprocess.run(args, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=seconds + 60)
    m = re.search(r"^BENCH_JSON (\{.*\})$", r.stdout, re.M)
    if r.returncode != 0 or not m:
        raise RuntimeError(f"wrk failed ({r.returncode}):\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}")
    d = json.loads(m.group(1))
    ms = re.search(r"^BENCH_STATUS (\{.*\})$", r.stdout, re.M)
    if ms:
        st = json.loads(ms.group(1))
        d["statuses"], d["sent"] = st["statuses"], st["sent"]
        d["bad_statuses"] = {k: v for k, v in st["statuses"].items() if not 200 <= int(k) < 400}
        d["bad_sample"] = st["sample"]
    d["rps"] = d["requests"] / (d["duration_us"] / 1e6)
    d["errors"] = d["connect_errors"] + d["read_errors"] + d["write_errors"] + d["status_errors"] + d["timeouts"]
    return d


# -- the run ---------------------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", required=True)
    ap.add_argument("--smoke", action="store_true")
    a = ap.parse_args()

    seconds = int(os.environ.get("BENCH_SECONDS", "10"))
    rounds = int(os.environ.get("BENCH_ROUNDS", "3"))
    warmup = int(os.environ.get("BENCH_WARMUP", "2"))
    threads = int(os.environ.get("BENCH_THREADS", "2"))
    conns = int(os.environ.get("BENCH_CONNECTIONS", "16"))
    if a.smoke:
        seconds, rounds, warmup = 2, 1, 0
    targets = [t for t in os.environ.get("BENCH_TARGETS", ",".join(ORDER)).split(",") if t]
    unknown = set(targets) - set(ORDER)
    if unknown:
        raise SystemExit(f"unknown BENCH_TARGETS {sorted(unknown)}; choose from {ORDER}")
    port_lo, port_hi = (int(x) for x in os.environ.get("BENCH_PORTS", "8900-8999").split("-"))

    procs = Procs(a.work)

    def on_signal(signum, _frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    try:
        results = bench(a, procs, targets, seconds, rounds, warmup, threads, conns, Ports(port_lo, port_hi))
    finally:
        procs.stop_all()
    report(results)


def bench(a, procs, targets, seconds, rounds, warmup, threads, conns, ports):
    env = wrangler_env()
    secrets = {}
    for line in open(os.path.join(ROOT, ".dev.vars")):
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            k, v = line.split("=", 1)
            secrets[k] = v
    admin = secrets["REFPORT_ADMIN_KEY"]
    wasm = os.path.join(ROOT, "build", "index_bg.wasm")
    wasm_raw = os.path.getsize(wasm)
    wasm_gz = len(subprocess.run(["gzip", "-9", "-c", wasm], capture_output=True, check=True).stdout)
    info = {
        "when": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": os.cpu_count(),
        "loadavg_start": os.getloadavg(),
        "cpu": platform.processor() or platform.machine(),
        "wrangler": wrangler(["--version"], env, capture=True).strip().splitlines()[-1],
        "wrk": subprocess.run(["wrk", "--version"], capture_output=True, text=True).stdout.split(" [")[0].strip(),
        "seconds": seconds, "rounds": rounds, "warmup": warmup, "threads": threads, "connections": conns,
        "smoke": a.smoke, "wasm_raw": wasm_raw, "wasm_gz": wasm_gz, "targets": targets,
    }
    # Refport: fresh local D1 + KV, migrations applied, then startup timed until /api/v1/health is 200.
    rp_dir = os.path.join(a.work, "refport")
    os.makedirs(rp_dir)
    log("refport: applying the D1 migrations to a fresh local D1")
    rp_config = refport_config(a.work)
    wrangler(["d1", "migrations", "apply", "DB", "--local", "--persist-to", rp_dir, "--config", rp_config], env)  # no stdin: no prompt
    # Startup, timed one at a time with nothing else of ours starting: baseline L first (its
    # first response), then Refport (/api/v1/health 200). The wrangler CLI call above has already
    # warmed node's and wrangler's files, so neither pays for a cold page cache.
    baselines = {}  # target -> port
    startup = {}
    l_dir = os.path.join(a.work, "baseline-l")
    os.makedirs(l_dir)
    l_port, l_insp = ports.take(), ports.take()
    lp = start_dev(procs, "baseline-l", l_port, l_insp, l_dir, env, config=os.path.join(BENCH, "baseline-l", "wrangler.toml"))
    groups = {l_port: lp.pid}  # port -> the process group serving it (CPU per request)
    startup["baseline L"] = wait_ready(lp, l_port, "/", (302,))
    baselines["L"] = l_port
    log(f"baseline L: ready on :{l_port} after {startup['baseline L']:.2f}s")
    rp_port, rp_insp = ports.take(), ports.take()
    rp = start_dev(procs, "refport", rp_port, rp_insp, rp_dir, env, config=rp_config)
    groups[rp_port] = rp.pid
    startup["Refport"] = wait_ready(rp, rp_port, "/api/v1/health", (200,))
    log(f"refport: ready on :{rp_port} after {startup['Refport']:.2f}s")

    # Program, partner, link, a track key, a real click, a lead, and the invoice to replay.
    prog = api(rp_port, admin, "POST", "/api/v1/programs", {
        "name": "Bench", "domains": [DOMAIN], "allowed_hosts": ["bench.test"], "cookie_domain": "bench.test",
        "payout_currency": "usd", "min_payout": 5000,
        "rewards": {"lead": {"type": "flat", "amount": 500}, "sale": {"type": "percentage", "amount": 2000}},
    })
    partner = api(rp_port, admin, "POST", f"/api/v1/programs/{prog['id']}/partners",
                  {"email": "partner@partners.bench.test", "name": "Bench Partner"})
    link = api(rp_port, admin, "POST", f"/api/v1/partners/{partner['id']}/links",
               {"url": "https://bench.test/landing", "key": LINK_KEY})
    track_key = api(rp_port, admin, "POST", "/api/v1/api-keys",
                    {"name": "bench merchant", "program_id": prog["id"], "permissions": ["track"]})["key"]
    click_headers = {"Host": DOMAIN, "User-Agent": BROWSER_UA}
    status, h, _ = request(rp_port, "GET", f"/{LINK_KEY}", headers=click_headers)
    m = re.search(r"refport_id=(clk_[0-9A-Za-z]+)", h.get("location", ""))
    if status != 302 or not m or "set-cookie" not in h:
        raise RuntimeError(f"redirect check failed: {status} {h}")
    lead = api(rp_port, track_key, "POST", "/api/v1/track/lead", {"click_id": m.group(1), "customer_external_id": CUSTOMER})
    sale_body = {"customer_external_id": CUSTOMER, "amount": 1000, "currency": "usd", "invoice_id": REPLAY_INVOICE}
    first = api(rp_port, track_key, "POST", "/api/v1/track/sale", sale_body)
    again = api(rp_port, track_key, "POST", "/api/v1/track/sale", sale_body)
    if first != again:
        raise RuntimeError(f"sale replay answered differently:\n{first}\n{again}")
    if not (lead.get("attributed") and first.get("attributed") and first.get("commission")):
        raise RuntimeError(f"the bench customer is not attributed: lead {lead}, sale {first}")
    log(f"refport: program {prog['id']}, link {link['id']}; lead and sale attributed to {partner['id']}, "
        f"sale commission {first['commission'].get('amount')}")
    rp_db = d1_file(rp_dir)

    # The KV record Refport cached for the link: baseline J serves exactly this value.
    kv_key = f"link:{DOMAIN}/{LINK_KEY}"
    record = wrangler(["kv", "key", "get", "--local", "--persist-to", rp_dir, "--config", rp_config, "--binding", "LINKS",
                       "--text", kv_key],
                      env, capture=True).strip().splitlines()[-1]
    json.loads(record)  # must be the JSON record, not a message

    j_config = os.path.join(BENCH, "baseline-j", "wrangler.toml")
    # J, J+click and the D1 probe: state prepared one by one, then started together (their
    # startup is not reported, so they need not be timed alone).
    pending = []  # (name, proc, port, ready path, ready statuses)
    for tgt in ("W", "W+assets"):
        if tgt not in targets:
            continue
        d = os.path.join(a.work, "baseline-" + tgt.lower().replace("+", "-"))
        os.makedirs(d)
        port, insp = ports.take(), ports.take()
        w_config = os.path.join(BENCH, "baseline-w", "wrangler.toml")
        if tgt == "W+assets":
            w_config = assets_variant(w_config, os.path.join(d, "wrangler.toml"))
        pending.append((tgt, start_dev(procs, "baseline-" + tgt, port, insp, d, env, config=w_config), port, "/", (302,)))
    for tgt, extra in (("J", []), ("J+click", ["--var", "RECORD_CLICKS:1"])):
        if tgt not in targets:
            continue
        d = os.path.join(a.work, "baseline-" + tgt.lower().replace("+", "-"))
        os.makedirs(d)
        wrangler(["kv", "key", "put", "--local", "--persist-to", d, "--config", j_config, "--binding", "LINKS", kv_key, record], env)
        if tgt == "J+click":
            # The same D1 as Refport's (schema, program, partner, link rows): the same INSERT,
            # the same foreign keys and indexes.
            baselines["J+click:db"] = clone_d1(rp_db, d, j_config, env)
        port, insp = ports.take(), ports.take()
        pending.append((tgt, start_dev(procs, "baseline-" + tgt, port, insp, d, env, config=j_config, extra=extra), port, "/", (404,)))
    probe = None
    if os.environ.get("BENCH_D1_PROBE", "1") != "0":
        d = os.path.join(a.work, "d1-probe")
        os.makedirs(d)
        cfg = os.path.join(BENCH, "d1-probe", "wrangler.toml")
        probe_db = clone_d1(rp_db, d, cfg, env)
        port, insp = ports.take(), ports.take()
        pending.append(("d1-probe", start_dev(procs, "d1-probe", port, insp, d, env, config=cfg), port, "/", (200,)))
        probe = (port, probe_db)
    for name, p, port, path, ok in pending:
        wait_ready(p, port, path, ok)
        groups[port] = p.pid
        if name == "d1-probe":
            status, _, body = request(port, "GET", "/batch?n=3")
            status2, _, body2 = request(port, "GET", "/single?n=1")
            if status != 200 or status2 != 200 or d1_count(probe_db, "clicks") != 4:
                raise RuntimeError(f"d1 probe check failed: {status} {body[:300]!r} {status2} {body2[:300]!r}")
            info["rows_written_per_click"] = json.loads(body2).get("rows_written")
        elif name in ("W", "W+assets"):
            status, h, _ = request(port, "GET", f"/{LINK_KEY}", headers=click_headers)
            if status != 302 or h.get("location") != "https://bench.test/landing":
                raise RuntimeError(f"baseline W check failed: {status} {h}")
            baselines[name] = port
        else:
            status, h, _ = request(port, "GET", f"/{LINK_KEY}", headers=click_headers)
            if status != 302 or "refport_id=clk_" not in h.get("location", "") or "set-cookie" not in h:
                raise RuntimeError(f"baseline {name} check failed: {status} {h}")
            baselines[name] = port
        log(f"{name}: ready on :{port}")

    auth = {"Authorization": f"Bearer {track_key}", "Content-Type": "application/json"}
    ua_file = visitor_agents(a.work)
    info["visitors"] = "top" if ua_file else "unique"
    info["pin"] = pin_cpus()
    visitors = {"BENCH_UA_FILE": ua_file} if ua_file else {}
    specs = {
        # Every redirect target gets a new visitor per request (the same Lua work on each).
        "L": (baselines.get("L"), f"/{LINK_KEY}", "click", click_headers, visitors),
        "W": (baselines.get("W"), f"/{LINK_KEY}", "click", click_headers, visitors),
        "W+assets": (baselines.get("W+assets"), f"/{LINK_KEY}", "click", click_headers, visitors),
        "J": (baselines.get("J"), f"/{LINK_KEY}", "click", click_headers, visitors),
        "J+click": (baselines.get("J+click"), f"/{LINK_KEY}", "click", click_headers, visitors),
        "redirect": (rp_port, f"/{LINK_KEY}", "click", click_headers, visitors),
        "sale": (rp_port, "/api/v1/track/sale", "sale_unique", auth, {}),
        "sale-replay": (rp_port, "/api/v1/track/sale", "sale_replay", auth, {"BENCH_BODY": json.dumps(sale_body)}),
    }
    click_db = {"redirect": rp_db, "J+click": baselines.get("J+click:db")}

    def rp_metrics():
        return get_metrics(rp_port, admin)

    profile_wanted = os.environ.get("BENCH_PROFILE") == "1" and "redirect" in targets

    def start_profile(secs):
        """bench/profile.mjs on Refport's inspector for the round (BENCH_PROFILE=1)."""
        bundles = sorted(glob.glob(os.path.join(os.path.dirname(rp_config), ".wrangler", "tmp", "dev-*", "index.js"))
                         + glob.glob(os.path.join(ROOT, ".wrangler", "tmp", "dev-*", "index.js")), key=os.path.getmtime)
        args = ["node", os.path.join(BENCH, "profile.mjs"), str(rp_insp), str(max(1, secs - 1)),
                os.path.join(a.work, "redirect.cpuprofile")] + bundles[-1:]
        return subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def one(t, secs, profile=False):
        port, path, mode, headers, extra = specs[t]
        db = click_db.get(t)
        on_refport = port == rp_port
        if t == "redirect":
            settle_queue(db, rp_metrics)  # rows of earlier clicks (the setup's, a warm-up's) land first
        elif db:
            wait_drained(db, "clicks")
        m_before = rp_metrics() if on_refport else None
        before = d1_visits(db) if db else None
        rows_before = d1_count(db, "clicks") if db else None
        ev_before = d1_count(rp_db, "events") if t == "sale" else None
        prof = start_profile(secs) if profile else None
        cpu_before = group_cpu_s(groups[port])
        r = run_wrk(port, path, secs, mode, headers, threads, conns, extra)
        if prof:
            stdout, stderr = prof.communicate(timeout=120)
            try:
                r["profile"] = json.loads(stdout.strip().splitlines()[-1])
            except (ValueError, IndexError):
                log(f"profile failed: {stderr[-500:]}")
        if db:
            at_end = d1_visits(db)
            answered = r.get("statuses", {}).get("302", r["requests"])
            drained, drain_s = wait_clicks(db, before, answered, rp_metrics if t == "redirect" else None, m_before)
            # clicks_total: visits written; click_rows: rows (one per visitor, link and hour)
            r.update(clicks_during=at_end - before, clicks_total=drained, drain_s=drain_s,
                     click_rows=d1_count(db, "clicks") - rows_before)
        if ev_before is not None:
            r["events_written"] = d1_count(rp_db, "events") - ev_before
        if on_refport:
            if not db:
                time.sleep(0.3)  # the requests wrk left in flight finish
            r["metrics"] = metrics_delta(rp_metrics(), m_before)
        # CPU of the target's processes from wrk's start until its work is done (a click target:
        # its clicks written), per request answered: every cost of a request on this machine,
        # whatever process or thread pays it, measured apart from the throughput.
        served = sum(v for k, v in r.get("statuses", {}).items() if 200 <= int(k) < 400) or r["requests"]
        r["cpu_s"] = group_cpu_s(groups[port]) - cpu_before
        r["cpu_ms_per_req"] = 1000 * r["cpu_s"] / served if served else None
        return r

    if warmup:
        log(f"warm-up: {warmup}s per target")
        for t in targets:
            one(t, warmup)

    runs = {t: [] for t in targets}
    for rnd in range(rounds):
        order = rounds_order(targets, rnd)
        for t in order:
            r = one(t, seconds)
            runs[t].append(r)
            log(f"round {rnd + 1}/{rounds} {t:12s} {r['rps']:9.0f} req/s  p50 {r['p50_us'] / 1000:7.2f} ms  "
                f"p99 {r['p99_us'] / 1000:7.2f} ms  cpu {r['cpu_ms_per_req'] or 0:.3f} ms/req  errors {r['errors']}"
                + (f"  clicks {r['clicks_total']} for {r.get('statuses', {}).get('302', 0)} 302s "
                   f"({r.get('sent', 0)} sent)" if "clicks_total" in r else ""))

    # The profile gets a redirect run of its own after the timed rounds: sampling slows the isolate.
    profile = one("redirect", seconds, profile=True).get("profile") if profile_wanted else None

    probes = {}
    if probe:
        port, db = probe
        for name, path in (("single", "/single?n=50"), ("batch", "/batch?n=100"), ("multi", "/multi?n=100")):
            before = d1_count(db, "clicks")
            # 4 connections: up to 200 queries in flight already saturate one (single-threaded) D1.
            r = run_wrk(port, path, seconds, "get", {}, 1, 4)
            r["rows"] = d1_count(db, "clicks") - before
            r["rows_per_s"] = r["rows"] / (r["duration_us"] / 1e6)
            probes[name] = r
            log(f"d1 probe {name:6s} {r['rows_per_s']:9.0f} rows/s  ({r['rps']:.0f} req/s, p50 {r['p50_us'] / 1000:.2f} ms, "
                f"errors {r['errors']})")
        probes["_storage"] = {"rows": d1_count(db, "clicks"), "bytes": d1_click_bytes(db)}
    # The whole Refport instance: every click row against every redirect and click its isolate
    # counted (setup click, warm-up and rounds), and the storage the clicks take.
    rp_final = rp_metrics()
    storage = {"clicks": d1_count(rp_db, "clicks"), "visits": d1_visits(rp_db),
               "clicks_bytes": d1_table_bytes(rp_db, "clicks")}
    if d1_has_table(rp_db, "daily_stats"):
        storage["daily_stats_rows"] = d1_count(rp_db, "daily_stats")
        storage["daily_stats_bytes"] = d1_table_bytes(rp_db, "daily_stats")
    info["loadavg_end"] = os.getloadavg()

    payout = None
    n_payout = int(os.environ.get("BENCH_PAYOUT_PARTNERS", "200" if a.smoke else "10000"))
    if os.environ.get("BENCH_PAYOUT", "1") != "0" and n_payout > 0:
        # The payout run gets the machine to itself: everything above is stopped first.
        procs.stop(list(procs.procs))
        payout = payout_run(a, procs, ports, env, secrets, admin, n_payout)
    return {"info": info, "startup": startup, "runs": runs, "targets": targets,
            "d1": {"clicks": storage["clicks"], "click_bytes": storage["clicks_bytes"] and storage["clicks_bytes"]["bytes"]},
            "storage": storage, "metrics_final": rp_final, "probes": probes, "payout": payout,
            "profile": profile}


def payout_run(a, procs, ports, env, secrets, admin, n):
    """Section (d): N partners due today paid through the Stripe fake (see bench/payouts.py)."""
    import payouts as P
    t_seed = time.monotonic()
    work = os.path.join(a.work, "payouts")
    os.makedirs(work)
    # The Stripe fake, its own process (started the way its README says; READY <port> when listening).
    fport = ports.take()
    fp = procs.spawn("stripe-fake", [sys.executable, os.path.join(ROOT, "tests", "stripe_fake", "server.py"),
                                     "--port", str(fport)], dict(os.environ))

    def fake_ready():
        if fp.poll() is not None:
            raise RuntimeError("the Stripe fake exited:\n" + open(fp.bench_log).read()[-3000:])
        return "READY" in open(fp.bench_log).read()

    P.wait_for("the Stripe fake", fake_ready, timeout=30)
    fake = P.Http(fport, keepalive=False)
    fake_base = f"http://127.0.0.1:{fport}"
    # The vars the e2e tests give the Worker (tests/conftest.py), plus knobs.
    dev_vars = {"STRIPE_API_BASE": fake_base, "PAYOUT_RECONCILE_AFTER_SECONDS": "0", "PAYOUT_PAUSE_MAX_SECONDS": "1",
                "STRIPE_TIMEOUT_SECONDS": os.environ.get("BENCH_STRIPE_TIMEOUT", "2")}
    if os.environ.get("BENCH_WORKERS_PLAN"):
        dev_vars["WORKERS_PLAN"] = os.environ["BENCH_WORKERS_PLAN"]
    extra = [x for k, v in dev_vars.items() for x in ("--var", f"{k}:{v}")]
    log("payouts: applying the D1 migrations to a fresh local D1")
    wrangler(["d1", "migrations", "apply", "DB", "--local", "--persist-to", work], env)
    port, insp = ports.take(), ports.take()
    p = start_dev(procs, "refport-payouts", port, insp, work, env, extra=extra)
    wait_ready(p, port, "/api/v1/health", (200,))
    db = d1_file(work)
    rp = P.Http(port)
    t = P.make_template(rp, admin, fake, secrets, db, BROWSER_UA)
    log(f"payouts: template partner {t['partner_id']} made through the API (account {t['account']}, "
        f"{t['amount']} owed); {n - 1:,} more accounts in the fake")
    now = int(time.time() * 1000)
    pids = [P.ulid_id("pn", now) for _ in range(n - 1)]
    emails = [f"p{k + 2}@payouts.bench.test" for k in range(n - 1)]
    t_acc = time.monotonic()
    accounts = P.make_accounts(fake, secrets["STRIPE_SECRET_KEY"], pids, emails)
    t_acc = time.monotonic() - t_acc
    # The copies go into the D1 file while no Worker has it open.
    procs.stop([p])
    counts = P.clone_template(db, t, n - 1, accounts, pids, emails, secrets.get("IP_HASH_SALT"))
    log(f"payouts: {n - 1:,} copies of the template's rows {counts} written to the local D1; restarting")
    port, insp = ports.take(), ports.take()
    rp = P.Http(port)
    p = start_dev(procs, "refport-payouts-2", port, insp, work, env, extra=extra)
    wait_ready(p, port, "/api/v1/health", (200,))
    state = P.d1_state(db, t["program_id"])
    if state.get("unclaimed") != n:
        raise RuntimeError(f"seeded {state.get('unclaimed')} partners with approved balances, expected {n}")
    fake.json("POST", "/_control/balance", {"currency": "usd", "amount": 100 * n * t["amount"]})
    seed_s = time.monotonic() - t_seed
    max_crons = int(os.environ.get("BENCH_PAYOUT_MAX_CRONS", "96"))
    log(f"payouts: {n:,} partners due today (seeding took {seed_s:.0f} s); triggering the cron (at most {max_crons} runs)")

    def metrics():
        return get_metrics(port, admin)

    res = P.run_crons(rp, db, t["program_id"], n, metrics, max_crons, log)
    time.sleep(0.5)
    m = metrics()
    transfers = P.fake_transfers(fake, secrets["STRIPE_SECRET_KEY"])
    check = P.verify(db, t["program_id"], transfers)
    res.update(check)
    for note in t["notes"]:
        log(f"payouts: note: {note}")
    # The payouts consumer's configured concurrency: wrangler dev's local queue (miniflare's
    # broker) dispatches one batch at a time per queue, whatever max_concurrency says.
    import tomllib
    with open(os.path.join(ROOT, "wrangler.toml"), "rb") as f:
        consumers = tomllib.load(f).get("queues", {}).get("consumers", [])
    conc = [c.get("max_concurrency") for c in consumers if "payout" in c.get("queue", "")]
    res.update(partners_due=n, seed_s=seed_s, accounts_s=t_acc, metrics=m, template_rows=counts, notes=t["notes"],
               max_concurrency=conc[0] if conc else None,
               final=P.d1_state(db, t["program_id"]))
    log(f"payouts: {check['payouts_paid']:,} of {n:,} paid in {res['wall_s']:.1f} s, {res['crons']} cron runs, "
        f"{check['transfers']:,} transfers, {check['duplicates']} duplicates")
    return res


# -- report ----------------------------------------------------------------------------------------

def med(xs):
    return statistics.median(xs) if xs else None


def fmt_ratio(num, den, digits=2):
    return f"{num / den:.{digits}f}" if den else "n/a"


def loud(out, msg):
    out("")
    out(f"**!! {msg} !!**")
    log(f"!! {msg} !!")


def clicks_section(res, out):
    """(b) clicks lost, per-redirect D1/KV work, (c) rows written and bytes per click."""
    runs, targets = res["runs"], res["targets"]
    final = res.get("metrics_final") or {}
    st = res.get("storage") or {}
    out("")
    out("## Clicks: lost, work per redirect, rows and bytes per click")
    out("")
    if "redirect" in targets:
        rs = runs["redirect"]
        sums = {}
        for r in rs:
            for k, v in (r.get("metrics") or {}).items():
                if k not in MAX_COUNTERS:
                    sums[k] = sums.get(k, 0) + v
        answered = sum(r.get("statuses", {}).get("302", 0) for r in rs)
        other = sum(v for r in rs for k, v in r.get("statuses", {}).items() if k != "302")
        sent = sum(r.get("sent", 0) for r in rs)
        # Every redirect is a visit; a visit is a new row, or a hit of a row (the same visitor on
        # the same link within an hour). The bench sends a new visitor per request, so the two agree.
        visits = sum(r["clicks_total"] for r in rs)
        rows = sum(r.get("click_rows", r["clicks_total"]) for r in rs)
        counted = sums.get("redirects", 0)
        if counted:
            lost = counted - visits
            basis = f"{counted:,} redirects the Worker counted (its `redirects` counter)"
        else:
            # Without the Worker's count: the 302s wrk received are a lower bound of the redirects
            # served (the up to -c requests in flight when wrk stops are served too, uncounted).
            lost = max(0, answered - visits)
            basis = (f"{answered:,} redirects answered 302 to wrk (the Worker's `redirects` counter is not fed by this "
                     f"build; the {visits - answered:+,} visits beyond them are requests wrk left in flight)")
        queued, inserted = sums.get("clicks_queued", 0), sums.get("clicks_inserted", 0)
        out(f"- **clicks lost: {lost:,}** (must be 0) = {basis} - {visits:,} visits written to Refport's D1 after "
            f"the queue drained ({rows:,} click rows, the rest repeated visits counted in their row's `hits`), over "
            f"the {len(rs)} timed round(s). wrk: {sent:,} GETs sent, every one from a new visitor "
            f"({VISITORS[res['info'].get('visitors', 'unique')]}), {answered:,} answered 302, {other:,} answered otherwise. The Worker queued {queued:,} "
            f"clicks ({sums.get('click_queue_failures', 0):,} sends failed); its consumer inserted {inserted:,} in "
            f"{sums.get('click_batches', 0):,} batches ({sums.get('click_batch_failures', 0):,} failed, "
            f"{sums.get('click_messages', 0):,} messages). Last row {max(r['drain_s'] for r in rs):.1f} s after "
            f"the load stopped (worst round).")
        if other:
            loud(out, f"{other} redirect answers were not 302: those requests were not counted clicks")
        if lost != 0 or visits < answered:
            loud(out, f"CLICKS LOST: {lost} (redirects counted {counted or 'n/a'}, 302s seen by wrk {answered}, "
                      f"visits written {visits})")
        if visits > sent:
            loud(out, f"more visits written ({visits}) than requests sent ({sent}): duplicates")
        if rows != visits:
            loud(out, f"{visits - rows} visits folded into rows of the same visitor: the bench's visitors are not "
                      f"distinct (each request should carry its own user agent)")
        if queued and queued != visits:
            loud(out, f"the Worker queued {queued} clicks but {visits} visits were written")
        if queued and inserted != rows:
            loud(out, f"the consumer's `clicks_inserted` counter says {inserted} for {rows} new rows "
                      f"({fmt_ratio(inserted, rows)} per row): the counter is off")
        tot_redirects = final.get("redirects", 0)
        if tot_redirects:
            tot_visits = st.get("visits", st.get("clicks", 0))
            out(f"- whole run (setup click, warm-up, rounds): {tot_redirects:,} redirects counted by the Worker, "
                f"{tot_visits:,} visits written in {st.get('clicks', 0):,} click rows, "
                f"{final.get('clicks_queued', 0):,} queued, {final.get('clicks_inserted', 0):,} inserted: "
                f"{tot_redirects - tot_visits:,} missing")
        # Work per redirect over the timed rounds (the cache is warm: setup and warm-up filled it).
        if counted:
            out(f"- per redirect over the timed rounds (warm cache): "
                f"**{fmt_ratio(sums.get('redirect_d1_queries', 0), counted, 3)} D1 queries** (must be 0), "
                f"{fmt_ratio(sums.get('redirect_kv_reads', 0), counted, 3)} KV reads, "
                f"{fmt_ratio(sums.get('redirect_isolate_cache_hits', 0), counted, 3)} isolate-cache hits "
                f"({sums.get('redirect_isolate_cache_hits', 0):,} of {counted:,})")
            if sums.get("redirect_d1_queries", 0):
                loud(out, f"{sums['redirect_d1_queries']} D1 queries on redirects with a warm cache")
            if "d1_calls" in sums or "kv_reads" in sums:
                out(f"  every D1 call and KV read of the Worker while the redirect ran, its queue consumer "
                    f"included: {fmt_ratio(sums.get('d1_calls', 0), counted, 3)} D1 calls and "
                    f"{fmt_ratio(sums.get('kv_reads', 0), counted, 3)} KV reads per redirect")
            if sums.get("click_sends"):
                out(f"  queue calls: {sums['click_sends']:,} `sendBatch` calls carried {sums.get('clicks_queued', 0):,} clicks "
                    f"({fmt_ratio(sums.get('clicks_queued', 0), sums['click_sends'], 1)} clicks per call; "
                    f"{fmt_ratio(sums['click_sends'], counted, 3)} per redirect)")
        else:
            out("- per redirect D1 queries / KV reads: n/a (this build does not feed the redirect counters)")
    # (c) rows written and bytes per click.
    if final.get("clicks_inserted"):
        written, stored = final.get("click_rows_written", 0), st.get("clicks", 0)
        out(f"- D1 rows written per click: **{fmt_ratio(written, final['clicks_inserted'])}** (sum of meta.rows_written "
            f"of the click batches / the `clicks_inserted` counter: {written:,} / {final['clicks_inserted']:,}, whole run); "
            f"per click row stored: **{fmt_ratio(written, stored)}** ({written:,} / {stored:,} rows in `clicks`)")
    else:
        out("- D1 rows written per click: n/a (no click batch counted by this build; the D1 probe's line below "
            "gives one INSERT's meta.rows_written)")
    per = None
    samples = []
    cb = st.get("clicks_bytes")
    if cb and cb.get("bytes"):
        samples.append((st["clicks"], cb["bytes"], "Refport's D1", cb["objects"]))
    pst = (res.get("probes") or {}).get("_storage")
    if pst and pst.get("bytes"):
        samples.append((pst["rows"], pst["bytes"], "the D1 probe's copy of it", None))
    samples = [x for x in samples if x[0] and x[0] >= 1000]  # fewer rows: page overhead dominates
    if samples:
        rows_, nbytes, where, objs = max(samples, key=lambda x: x[0])
        per = nbytes / rows_
        out(f"- storage: **{per:.0f} bytes per retained click** = {nbytes:,} bytes for {rows_:,} clicks in {where} "
            f"(SQLite dbstat over `clicks` and its indexes{': ' + ', '.join(objs) if objs else ''})")
        cap = 10e9 / per
        out(f"  => one 10 GB D1 database holds about **{cap / 1e6:,.0f} million clicks**: "
            f"{cap / 86400 / 100:,.1f} days at a sustained 100 clicks/s, {cap / 86400 / 1000:,.2f} days at 1,000 clicks/s")
    else:
        out(f"- storage per click: n/a (fewer than 1,000 click rows: {st.get('clicks', 0):,})")
    if "daily_stats_rows" in st:
        db_ = st.get("daily_stats_bytes") or {}
        rows_ = st["daily_stats_rows"]
        per_row = f", {fmt_ratio(db_.get('bytes') or 0, rows_, 0)} bytes per row" if rows_ >= 100 else \
            " (too few rows for a per-row figure: pages dominate)"
        out(f"- daily rollup `daily_stats` (its own line, not in the bytes per click): {rows_:,} rows, "
            f"{db_.get('bytes') or 0:,} bytes with its indexes{per_row}; one row per (link, day, currency) "
            f"whatever the clicks")


def d1_round_trips(res, out):
    runs, targets = res["runs"], res["targets"]
    lines = []
    for t in ("sale", "sale-replay"):
        if t not in targets:
            continue
        rs = runs[t]
        served = sum(r.get("sent", r["requests"]) for r in rs)
        calls = [r.get("metrics", {}).get("d1_calls") for r in rs]
        if any(c is None for c in calls):
            lines.append(f"- {LABELS[t]}: D1 round trips per request n/a (this build has no `d1_calls` counter)")
        else:
            lines.append(f"- {LABELS[t]}: **{fmt_ratio(sum(calls), served)} D1 round trips per request** "
                         f"({sum(calls):,} D1 calls for {served:,} requests sent, timed rounds)")
    if lines:
        out("")
        out("## D1 round trips per request")
        out("")
        for x in lines:
            out(x)


def profile_section(res, out):
    prof = res.get("profile")
    if not prof:
        return
    pct = lambda x: f"{100 * x['share']:.1f}%"
    out("")
    out("## Where the redirect's CPU goes (BENCH_PROFILE=1)")
    out("")
    out(f"V8's sampling profiler on Refport's isolate (wrangler's inspector) for {prof['seconds']} s of an "
        f"extra, untimed redirect run after the rounds, {prof['samples']:,} samples (`bench/profile.mjs`; the `.cpuprofile` is in the "
        f"work dir with BENCH_KEEP=1). Self time by category:")
    out("")
    for c in prof["categories"]:
        out(f"- {pct(c)} {c['name']}")
    out("")
    out("Top wasm functions (names only on a build that keeps them): "
        + "; ".join(f"{pct(w)} `{w['name'][:80]}`" for w in prof["wasm"]))
    out("")
    out("Top JavaScript glue (self time, function @ line of wrangler's bundle):")
    out("")
    for j in prof["js"]:
        out(f"- {pct(j)} `{j['name'][:120]}`")


def payout_section(res, out):
    p = res.get("payout")
    if not p:
        return
    m = p.get("metrics") or {}
    n = p["partners_due"]
    out("")
    out(f"## Payout run: {n:,} partners due today, test Stripe (tests/stripe_fake)")
    out("")
    ok = p["complete"] and p["transfers"] == n and p["duplicates"] == 0 and p["partners_without_transfer"] == 0
    until = "until every payout was paid" if p["complete"] else "until the last cron run settled"
    out(f"- wall time: **{p['wall_s']:.1f} s** from the first cron trigger {until} "
        f"({p['payouts_paid']:,} of {n:,} paid{'' if p['complete'] else ', NOT ALL'}); cron handler time "
        f"{p['cron_handler_s']:.1f} s of it")
    def fed(name):  # a counter that must be > 0 after this run: 0 means this build does not feed it
        v = m.get(name)
        return "n/a" if not v else f"{v:,}"

    if p["complete"]:
        day = f"{'within' if p['crons'] <= 96 else 'MORE than'} one due day of the 15-minute cron (96 runs)"
    else:
        day = f"stopped there with payouts left (BENCH_PAYOUT_MAX_CRONS; 96 runs are one due day of the 15-minute cron)"
    out(f"- cron invocations: **{p['crons']}** (the Worker counted {fed('cron_runs')}); {day}"
        + (f"; deployed, the last run would start {(p['crons'] - 1) * 15} minutes after the first" if p['crons'] > 1 else ""))
    out(f"- consumer invocations (`payout_batches`): **{m.get('payout_batches', 'n/a')}**, "
        f"{m.get('payout_messages', 'n/a')} messages, {m.get('payouts_enqueued', 'n/a')} enqueued by the cron")
    rate = p["payouts_paid"] / p["wall_s"] if p["wall_s"] else 0
    out(f"- throughput: {rate:,.1f} payouts/s over the wall time")
    if m.get("payout_batches") and p.get("max_concurrency"):
        c = p["max_concurrency"]
        out(f"  wrangler dev's local queue runs one consumer invocation at a time per queue (miniflare's broker "
            f"ignores `max_concurrency`), so these invocations ran one after the other; deployed with "
            f"`max_concurrency = {c}` (wrangler.toml) the same invocations would take about "
            f"{p['wall_s'] / c:,.0f} s (wall time / {c}, an estimate, not measured)")
    out(f"- transfers (the fake's, every page of GET /v1/transfers): **{p['transfers']:,}** for {n:,} partners; "
        f"**duplicates {p['duplicates']}**, partners without one {p['partners_without_transfer']}, "
        f"to other accounts {p['transfers_elsewhere']}, amount differing from the payout's {p['amount_mismatches']}; "
        f"the Worker counted {fed('transfers_sent')} sent; D1: partners paid twice {p['partners_paid_twice_in_d1']}")
    out(f"- max subrequests in one invocation (`max_invocation_subrequests`): **{fed('max_invocation_subrequests')}**")
    out(f"- seeding (template through the API, {n - 1:,} accounts in the fake in {p['accounts_s']:.0f} s, "
        f"rows copied in the local D1, restart): {p['seed_s']:.0f} s, not part of the wall time")
    for note in p.get("notes") or []:
        out(f"- note (seeding through the API): {note}; the change itself was made (read back)")
    if not ok:
        loud(out, f"PAYOUT RUN NOT CLEAN: paid {p['payouts_paid']}/{n}, transfers {p['transfers']}, "
                  f"duplicates {p['duplicates']}, missing {p['partners_without_transfer']}, "
                  f"complete {p['complete']} after {p['crons']} cron runs")


def report(res):
    info, runs, targets = res["info"], res["runs"], res["targets"]
    agg = {}
    for t in targets:
        rs = runs[t]
        agg[t] = {
            "rps": med([r["rps"] for r in rs]),
            "p50": med([r["p50_us"] / 1000 for r in rs]),
            "p99": med([r["p99_us"] / 1000 for r in rs]),
            "errors": sum(r["errors"] for r in rs),
            "requests": sum(r["requests"] for r in rs),
            "cpu": med([r["cpu_ms_per_req"] for r in rs if r.get("cpu_ms_per_req")]) if any(r.get("cpu_ms_per_req") for r in rs) else None,
        }
    ref_l = agg.get("L", {}).get("rps")
    ref_j = agg.get("J", {}).get("rps")

    def ratio(x, ref):
        return f"{x / ref:.2f}x" if x and ref else "-"

    lines = []
    out = lines.append
    out(f"# Refport benchmark{' (smoke)' if info['smoke'] else ''}")
    out("")
    out(f"{info['when']}; {info['nproc']} cores ({info['cpu']}); load average at start "
        f"{info['loadavg_start'][0]:.2f}, at end {info['loadavg_end'][0]:.2f}; {info['wrangler']}; {info['wrk']}.")
    out(f"wrk -t{info['threads']} -c{info['connections']} on 127.0.0.1, {info['seconds']} s per target per round, "
        f"{info['rounds']} round(s) interleaved (order rotated each round, the redirect next to L: after it, then before it), {info['warmup']} s warm-up per target; "
        f"medians across rounds. vs L / vs J = req/s divided by the baseline's req/s."
        + (f" Pinned (BENCH_PIN): the targets on CPU {info['pin'][0]}, wrk on CPU {info['pin'][1]}."
           if info.get("pin") else ""))
    out("")
    out("| target | req/s | p50 ms | p99 ms | vs L | vs J | CPU ms/req | CPU vs L |")
    out("|---|---:|---:|---:|---:|---:|---:|---:|")
    cpu_l = agg.get("L", {}).get("cpu")
    for t in targets:
        g = agg[t]
        cpu = f"{g['cpu']:.3f}" if g["cpu"] else "-"
        out(f"| {LABELS[t]} | {g['rps']:,.0f} | {g['p50']:.2f} | {g['p99']:.2f} | {ratio(g['rps'], ref_l)} | {ratio(g['rps'], ref_j)} "
            f"| {cpu} | {ratio(g['cpu'], cpu_l)} |")
    if "L" in agg and len(runs["L"]) > 1:
        # Each round measures every target within a minute or so: a round's ratio compares runs
        # that shared the machine's state, which medians taken apart do not.
        per = {t: [r["rps"] / l["rps"] for r, l in zip(runs[t], runs["L"]) if l["rps"]] for t in targets if t != "L"}
        out("")
        out("Per round, each target against the same round's L (then their median): "
            + "; ".join(f"{t} {' '.join(f'{x:.2f}' for x in xs)} (median {med(xs):.2f}x)" for t, xs in per.items() if xs)
            + ".")
        if per.get("redirect"):
            out("")
            out(f"Goal, redirect >= 0.9x L: {ratio(agg['redirect']['rps'], ref_l)} as the ratio of the medians above, "
                f"{med(per['redirect']):.2f}x as the median of the rounds' paired ratios (the redirect and L run one "
                f"after the other in each round).")
    if "W" in agg and "L" in agg:
        out("")
        out(f"Baseline W is the ceiling of any Rust/wasm Worker against L on this machine: "
            f"{ratio(agg['W']['rps'], ref_l)} (a constant 302 built in wasm, entered the way Refport's redirect is). "
            f"Refport redirect vs W: {ratio(agg.get('redirect', {}).get('rps'), agg['W']['rps'])}.")
    if "redirect" in agg and "J+click" in agg:
        out("")
        out(f"Refport redirect vs J+click (the same work, D1 click write included): "
            f"{ratio(agg['redirect']['rps'], agg['J+click']['rps'])} req/s.")
    errs = [t for t in targets if agg[t]["errors"]]
    if errs:
        out("")
        out("Errors (socket errors, timeouts or non-2xx/3xx answers): "
            + ", ".join(f"{t}: {agg[t]['errors']} of {agg[t]['requests']}" for t in errs))
        for t in errs:
            statuses, sample = {}, ""
            for r in runs[t]:
                for k, v in (r.get("bad_statuses") or {}).items():
                    statuses[k] = statuses.get(k, 0) + v
                sample = sample or r.get("bad_sample") or ""
            if statuses:
                out(f"  {t}: HTTP " + ", ".join(f"{k} x{v}" for k, v in sorted(statuses.items()))
                    + (f"; first body: `{sample[:200]}`" if sample else ""))
    out("")
    out(f"- release wasm (build/index_bg.wasm): {info['wasm_raw']:,} bytes raw, {info['wasm_gz']:,} bytes gzip -9")
    st = res["startup"]
    out("- startup (spawn of `wrangler dev` until the first good answer: Refport's /api/v1/health 200, "
        "the baselines' first response): " + ", ".join(f"{k} {v:.2f} s" for k, v in st.items()))
    if "Refport" in st and "baseline L" in st:
        out(f"  (Refport minus baseline L: {st['Refport'] - st['baseline L']:+.2f} s: bundling, loading and compiling its wasm, one sample each)")

    clicks_section(res, out)
    d1_round_trips(res, out)
    profile_section(res, out)
    payout_section(res, out)

    # D1 write numbers for the scale note.
    out("")
    out("## D1 writes (local D1 under wrangler dev: measured here)")
    out("")
    for t in ("redirect", "J+click"):
        if t not in targets:
            continue
        rs = runs[t]
        served = med([r["rps"] for r in rs])
        during = med([r["clicks_during"] / (r["duration_us"] / 1e6) for r in rs])
        total = sum(r["clicks_total"] for r in rs)
        reqs = sum(r["requests"] for r in rs)
        drain = max(r["drain_s"] for r in rs)
        out(f"- {LABELS[t]}: {served:,.0f} redirects/s served, {during:,.0f} click rows/s written during the run "
            f"(median); after draining, {total:,} click rows for {reqs:,} redirects wrk counted; the last click "
            f"row arrived {drain:.1f} s after the load stopped (worst round)")
    if "sale" in targets:
        rs = runs["sale"]
        ev = sum(r.get("events_written", 0) for r in rs)
        out(f"- track/sale, unique invoice: {agg['sale']['rps']:,.0f} sales/s, each one atomic D1 batch "
            f"(event + commission rows and their reads); {ev:,} sale events written for {agg['sale']['requests']:,} answers")
    pr = res.get("probes") or {}
    names = {"single": "one-row INSERT per query, 50 queries per request, 4 requests in flight",
             "batch": "db.batch() of 100 one-row INSERTs",
             "multi": "multi-row INSERT, 11 rows per statement, 100 rows per batch"}
    for k, r in pr.items():
        if k.startswith("_"):
            continue
        out(f"- D1 probe, {names[k]}: {r['rows_per_s']:,.0f} click rows/s "
            f"({r['rps']:,.0f} requests/s, p50 {r['p50_us'] / 1000:.2f} ms, errors {r['errors']})")
    if info.get("rows_written_per_click"):
        out(f"- D1 probe: one click INSERT into this schema's `clicks` is billed as {info['rows_written_per_click']} "
            f"rows written (meta.rows_written: the row, its index entries and what its triggers write)")
    text = "\n".join(lines) + "\n"
    print(text)
    os.makedirs(os.path.join(BENCH, "results"), exist_ok=True)
    name = "smoke" if info["smoke"] else "latest"  # a smoke run never overwrites a real run's results
    with open(os.path.join(BENCH, "results", f"{name}.md"), "w") as f:
        f.write(text)
    with open(os.path.join(BENCH, "results", f"{name}.json"), "w") as f:
        json.dump({**res, "medians": agg}, f, indent=1, default=str)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        log("interrupted")
        sys.exit(130)
