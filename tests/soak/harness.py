"""Starting the soak's `wrangler dev`: conftest's `start_wrangler` (schema.sql into a fresh local
D1, then `wrangler dev` with extra `--var`s), with one fallback: when schema.sql does not apply
(main at 4e274f2 lists the 0002 columns after the partners table's UNIQUE constraint, which
SQLite refuses), apply a copy with each table's constraints moved after its columns, and say so."""

import os
import re
import subprocess
import tempfile
import time

import requests

import conftest

_CONSTRAINT = re.compile(r"^(UNIQUE|CHECK|PRIMARY\s+KEY|FOREIGN\s+KEY|CONSTRAINT)\b", re.I)


def _split_top_level(body):
    items, depth, cur, quote = [], 0, [], None
    for ch in body:
        if quote:
            cur.append(ch)
            if ch == quote:
                quote = None
            continue
        if ch in "'\"":
            quote = ch
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "," and depth == 0:
            items.append("".join(cur).strip())
            cur = []
            continue
        cur.append(ch)
    if "".join(cur).strip():
        items.append("".join(cur).strip())
    return items


def repaired_schema(sql):
    """schema.sql with every CREATE TABLE's table constraints after its column definitions."""
    no_comments = re.sub(r"--[^\n]*", "", sql)

    def fix(m):
        head, body = m.group(1), m.group(2)
        items = _split_top_level(body)
        cols = [i for i in items if not _CONSTRAINT.match(i)]
        cons = [i for i in items if _CONSTRAINT.match(i)]
        return head + "(\n  " + ",\n  ".join(cols + cons) + "\n);"

    return re.sub(r"(CREATE TABLE[^(]*)\((.*?)\n\);", fix, no_comments, flags=re.S)


def start_wrangler(persist, port, inspector, extra_vars):
    """(process, base URL, note): note is None, or what the fallback did."""
    try:
        proc, base = conftest.start_wrangler(persist, port, inspector, extra_vars)
        return proc, base, None
    except subprocess.CalledProcessError as e:
        err = (e.stderr or b"").decode("utf-8", "replace")
        if "schema.sql" not in " ".join(map(str, e.cmd)):
            raise
    fixed = repaired_schema(open(os.path.join(conftest.ROOT, "schema.sql")).read())
    with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False, dir=persist) as f:
        f.write(fixed)
    env = conftest.wrangler_env()
    subprocess.run(["wrangler", "d1", "execute", "DB", "--local", "--persist-to", persist, "--file", f.name],
                   cwd=conftest.ROOT, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    proc, base = _serve(persist, port, inspector, extra_vars, env)
    note = ("schema.sql does not apply to a fresh local D1 (" + _last_error(err) +
            "); the soak applied a copy with table constraints after the columns")
    return proc, base, note


def _serve(persist, port, inspector, extra_vars, env):
    """conftest.start_wrangler without its schema step (the same `wrangler dev` command line)."""
    args = ["wrangler", "dev", "--ip", "127.0.0.1", "--port", str(port), "--inspector-port", str(inspector),
            "--persist-to", persist, "--log-level", "warn"]
    for k, v in extra_vars.items():
        args += ["--var", f"{k}:{v}"]
    log = open(os.path.join(persist, "wrangler.log"), "w")
    proc = subprocess.Popen(args, cwd=conftest.ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
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
    conftest.stop_process(proc)
    raise RuntimeError("wrangler dev did not become ready: " + open(log.name).read()[-3000:])


def _last_error(text):
    for line in reversed(text.splitlines()):
        if "ERROR" in line or "error" in line:
            return re.sub(r"\x1b\[[0-9;]*m", "", line).strip()
    return "wrangler d1 execute failed"
