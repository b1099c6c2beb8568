"""The release build: within the size budget, and its layout step (scripts/wasm-order.mjs):
every function named once, in a deterministic order, and no names shipped. The whole suite runs
on the reordered wasm, so its behaviour is checked there; this checks the tool itself."""

import os
import subprocess

from conftest import ROOT, wrangler_env

WASM = os.path.join(ROOT, "build", "index_bg.wasm")


def leb(b, i):
    out = shift = 0
    while True:
        x = b[i]
        i += 1
        out |= (x & 0x7F) << shift
        shift += 7
        if x < 0x80:
            return out, i


def sections(b):
    assert b[:4] == b"\0asm"
    i = 8
    while i < len(b):
        sid = b[i]
        size, i = leb(b, i + 1)
        body = b[i : i + size]
        name = None
        if sid == 0:
            n, j = leb(body, 0)
            name = body[j : j + n].decode()
            body = body[j + n :]
        yield sid, name, body
        i += size


def count(b, sid):
    for s, _, body in sections(b):
        if s == sid:
            return leb(body, 0)[0]
    return 0


def imported_functions(b):
    for sid, _, body in sections(b):
        if sid != 2:
            continue
        n, i = leb(body, 0)
        funcs = 0
        for _ in range(n):
            for _ in range(2):
                ln, i = leb(body, i)
                i += ln
            kind = body[i]
            i += 1
            if kind == 0:
                _, i = leb(body, i)
                funcs += 1
            elif kind in (1, 2):
                i += kind == 1  # a table's reference type
                flags = body[i]
                _, i = leb(body, i + 1)
                if flags & 1:
                    _, i = leb(body, i)
            elif kind == 3:
                i += 2
            else:
                _, i = leb(body, i + 1)
        return funcs
    return 0


def function_names(b):
    for sid, name, body in sections(b):
        if sid == 0 and name == "name":
            i = 0
            while i < len(body):
                sub = body[i]
                size, i = leb(body, i + 1)
                if sub == 1:
                    n, j = leb(body, i)
                    out = {}
                    for _ in range(n):
                        idx, j = leb(body, j)
                        ln, j = leb(body, j)
                        out[idx] = body[j : j + ln].decode()
                        j += ln
                    return out
                i += size
    return None


def order(tmp_path, src, name):
    out = tmp_path / name
    subprocess.run(["node", os.path.join(ROOT, "scripts", "wasm-order.mjs"), src, str(out)], check=True,
                   env=wrangler_env(), timeout=300)
    return out.read_bytes()


# Issue 13's budget for the release wasm, gzip -9 (what `make bench` reports).
WASM_BUDGET_GZIP = 400 * 1024


def test_release_wasm_within_its_budget():
    size = len(subprocess.run(["gzip", "-9", "-c", WASM], capture_output=True, check=True).stdout)
    assert size <= WASM_BUDGET_GZIP, f"release wasm {size:,} B gzip, budget {WASM_BUDGET_GZIP:,} B"


def test_release_wasm_ships_no_names():
    b = open(WASM, "rb").read()
    assert "name" not in [name for sid, name, _ in sections(b) if sid == 0]
    assert count(b, 10) > 1000  # functions, still all there


def test_every_function_gets_one_rank_and_the_order_is_deterministic(tmp_path):
    src = open(WASM, "rb").read()
    first = order(tmp_path, WASM, "a.wasm")
    assert order(tmp_path, WASM, "b.wasm") == first
    defined = count(src, 10)
    imports = imported_functions(src)
    names = function_names(first)
    assert sorted(names) == list(range(imports, imports + defined))
    ranks = sorted(int(n[1:]) for n in names.values())
    assert ranks == list(range(defined))
    assert len({len(n) for n in names.values()}) == 1  # fixed width: name order is rank order
    # Only the name section is added: every other section is byte for byte the input's.
    assert [s for s in sections(first) if s[1] != "name"] == list(sections(src))
