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
    "J": "baseline J: JS KV + cookie + 302",
    "J+click": "J + D1 click via waitUntil",
    "redirect": "Refport redirect GET /{key}",
    "sale": "track/sale, unique invoice",
    "sale-replay": "track/sale, replayed invoice",
}
ORDER = ["L", "J", "J+click", "redirect", "sale", "sale-replay"]


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


def start_dev(procs, name, port, inspector, persist, env, config=None, extra=()):
    args = ["wrangler", "dev", "--ip", "127.0.0.1", "--port", str(port), "--inspector-port", str(inspector),
            "--persist-to", persist, "--log-level", "warn", "--show-interactive-dev-session=false"]
    if config:
        args += ["--config", config]
    args += list(extra)
    t0 = time.monotonic()
    p = procs.spawn(name, args, env)
    p.bench_t0 = t0
    return p


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


def d1_click_bytes(path):
    """Bytes the clicks table and its indexes occupy (dbstat when SQLite has it, else None)."""
    try:
        row = d1_query(path, "SELECT SUM(pgsize) FROM dbstat WHERE name IN "
                             "('clicks','clicks_link','clicks_partner','clicks_program') "
                             "OR name LIKE 'sqlite_autoindex_clicks%'")
        return row[0]
    except sqlite3.Error:
        return None


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


# -- wrk -------------------------------------------------------------------------------------------

def run_wrk(port, path, seconds, mode, headers, threads, conns, extra_env=None):
    env = dict(os.environ)
    env.update({"BENCH_MODE": mode, "BENCH_RUN_ID": uuid.uuid4().hex[:12], "BENCH_CUSTOMER": CUSTOMER})
    env.update(extra_env or {})
    args = ["wrk", f"-t{threads}", f"-c{conns}", f"-d{seconds}s", "--timeout", "10s", "-s", LUA]
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
        d["bad_statuses"], d["bad_sample"] = st["statuses"], st["sample"]
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
    wrangler(["d1", "migrations", "apply", "DB", "--local", "--persist-to", rp_dir], env)  # no stdin: no prompt
    # Startup, timed one at a time with nothing else of ours starting: baseline L first (its
    # first response), then Refport (/api/v1/health 200). The wrangler CLI call above has already
    # warmed node's and wrangler's files, so neither pays for a cold page cache.
    baselines = {}  # target -> port
    startup = {}
    l_dir = os.path.join(a.work, "baseline-l")
    os.makedirs(l_dir)
    l_port, l_insp = ports.take(), ports.take()
    lp = start_dev(procs, "baseline-l", l_port, l_insp, l_dir, env, config=os.path.join(BENCH, "baseline-l", "wrangler.toml"))
    startup["baseline L"] = wait_ready(lp, l_port, "/", (302,))
    baselines["L"] = l_port
    log(f"baseline L: ready on :{l_port} after {startup['baseline L']:.2f}s")
    rp_port, rp_insp = ports.take(), ports.take()
    rp = start_dev(procs, "refport", rp_port, rp_insp, rp_dir, env)
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
    record = wrangler(["kv", "key", "get", "--local", "--persist-to", rp_dir, "--binding", "LINKS", "--text", kv_key],
                      env, capture=True).strip().splitlines()[-1]
    json.loads(record)  # must be the JSON record, not a message

    j_config = os.path.join(BENCH, "baseline-j", "wrangler.toml")
    # J, J+click and the D1 probe: state prepared one by one, then started together (their
    # startup is not reported, so they need not be timed alone).
    pending = []  # (name, proc, port, ready path, ready statuses)
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
        if name == "d1-probe":
            status, _, body = request(port, "GET", "/batch?n=3")
            status2, _, body2 = request(port, "GET", "/single?n=1")
            if status != 200 or status2 != 200 or d1_count(probe_db, "clicks") != 4:
                raise RuntimeError(f"d1 probe check failed: {status} {body[:300]!r} {status2} {body2[:300]!r}")
            info["rows_written_per_click"] = json.loads(body2).get("rows_written")
        else:
            status, h, _ = request(port, "GET", f"/{LINK_KEY}", headers=click_headers)
            if status != 302 or "refport_id=clk_" not in h.get("location", "") or "set-cookie" not in h:
                raise RuntimeError(f"baseline {name} check failed: {status} {h}")
            baselines[name] = port
        log(f"{name}: ready on :{port}")

    auth = {"Authorization": f"Bearer {track_key}", "Content-Type": "application/json"}
    specs = {
        "L": (baselines.get("L"), f"/{LINK_KEY}", "get", click_headers, {}),
        "J": (baselines.get("J"), f"/{LINK_KEY}", "get", click_headers, {}),
        "J+click": (baselines.get("J+click"), f"/{LINK_KEY}", "get", click_headers, {}),
        "redirect": (rp_port, f"/{LINK_KEY}", "get", click_headers, {}),
        "sale": (rp_port, "/api/v1/track/sale", "sale_unique", auth, {}),
        "sale-replay": (rp_port, "/api/v1/track/sale", "sale_replay", auth, {"BENCH_BODY": json.dumps(sale_body)}),
    }
    click_db = {"redirect": rp_db, "J+click": baselines.get("J+click:db")}

    def one(t, secs):
        port, path, mode, headers, extra = specs[t]
        db = click_db.get(t)
        before = d1_count(db, "clicks") if db else None
        ev_before = d1_count(rp_db, "events") if t == "sale" else None
        r = run_wrk(port, path, secs, mode, headers, threads, conns, extra)
        if db:
            at_end = d1_count(db, "clicks")
            drained, drain_s = wait_drained(db, "clicks")
            r.update(clicks_during=at_end - before, clicks_total=drained - before, drain_s=drain_s)
        if ev_before is not None:
            r["events_written"] = d1_count(rp_db, "events") - ev_before
        return r

    if warmup:
        log(f"warm-up: {warmup}s per target")
        for t in targets:
            one(t, warmup)

    runs = {t: [] for t in targets}
    for rnd in range(rounds):
        order = targets[rnd % len(targets):] + targets[:rnd % len(targets)]  # rotate: no fixed slot
        for t in order:
            r = one(t, seconds)
            runs[t].append(r)
            log(f"round {rnd + 1}/{rounds} {t:12s} {r['rps']:9.0f} req/s  p50 {r['p50_us'] / 1000:7.2f} ms  "
                f"p99 {r['p99_us'] / 1000:7.2f} ms  errors {r['errors']}")

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
    info["loadavg_end"] = os.getloadavg()
    return {"info": info, "startup": startup, "runs": runs, "targets": targets,
            "d1": {"clicks": d1_count(rp_db, "clicks"), "click_bytes": d1_click_bytes(rp_db)},
            "probes": probes}


# -- report ----------------------------------------------------------------------------------------

def med(xs):
    return statistics.median(xs) if xs else None


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
        f"{info['rounds']} round(s) interleaved (order rotated each round), {info['warmup']} s warm-up per target; "
        f"medians across rounds. vs L / vs J = req/s divided by the baseline's req/s.")
    out("")
    out("| target | req/s | p50 ms | p99 ms | vs L | vs J |")
    out("|---|---:|---:|---:|---:|---:|")
    for t in targets:
        g = agg[t]
        out(f"| {LABELS[t]} | {g['rps']:,.0f} | {g['p50']:.2f} | {g['p99']:.2f} | {ratio(g['rps'], ref_l)} | {ratio(g['rps'], ref_j)} |")
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
            f"(median); after draining, {total:,} click rows for {reqs:,} redirects wrk counted (wrk leaves out "
            f"the <= {res['info']['connections']} in flight when it stops); the waitUntil backlog drained "
            f"{drain:.1f} s after the load stopped (worst round)")
    if "sale" in targets:
        rs = runs["sale"]
        ev = sum(r.get("events_written", 0) for r in rs)
        out(f"- track/sale, unique invoice: {agg['sale']['rps']:,.0f} sales/s, each one atomic D1 batch "
            f"(event + commission rows and their reads); {ev:,} sale events written for {agg['sale']['requests']:,} answers")
    pr = res.get("probes") or {}
    names = {"single": "one-row INSERT per query, 50 queries per request, 4 requests in flight (the redirect's write)",
             "batch": "db.batch() of 100 one-row INSERTs",
             "multi": "multi-row INSERT, 11 rows per statement, 100 rows per batch"}
    for k, r in pr.items():
        if k.startswith("_"):
            continue
        out(f"- D1 probe, {names[k]}: {r['rows_per_s']:,.0f} click rows/s "
            f"({r['rps']:,.0f} requests/s, p50 {r['p50_us'] / 1000:.2f} ms, errors {r['errors']})")
    if info.get("rows_written_per_click"):
        out(f"- D1 bills one click INSERT as {info['rows_written_per_click']} rows written "
            f"(meta.rows_written: the row plus its index entries)")
    # Bytes per click from SQLite's dbstat (clicks table + primary key + 3 indexes), on whichever
    # of Refport's D1 and the probe's copy holds more clicks.
    per = None
    samples = [(res["d1"]["clicks"], res["d1"]["click_bytes"], "Refport's D1")]
    st_ = pr.get("_storage")
    if st_:
        samples.append((st_["rows"], st_["bytes"], "the D1 probe's copy"))
    samples = [x for x in samples if x[0] and x[0] >= 1000 and x[1]]  # fewer rows: page overhead dominates
    if samples:
        rows, nbytes, where = max(samples)
        per = nbytes / rows
        out(f"- storage: {nbytes:,} bytes for {rows:,} clicks in {where} = {per:.0f} bytes per click "
            f"(row + primary key + 3 indexes, SQLite dbstat)")
    if per:
        cap = 10e9 / per
        out(f"  => one 10 GB D1 database holds about {cap / 1e6:,.0f} million clicks: "
            f"{cap / 86400 / 100:,.1f} days at a sustained 100 clicks/s, {cap / 86400 / 1000:,.2f} days at 1,000 clicks/s")
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
