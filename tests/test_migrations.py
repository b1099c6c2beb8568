"""D1 schema migrations (`migrations/`, applied with `wrangler d1 migrations apply`).

- Upgrade: a local D1 built from the schema.sql of OLD_SCHEMA_COMMIT (before migrations existed,
  so without a d1_migrations table) and filled with realistic rows in every table takes every
  migration without error; every pre-existing row keeps every pre-existing value; the upgraded
  schema equals a fresh database's; and a `wrangler dev` on the upgraded state serves the data.
  The rows are frozen SQL (tests/fixtures/d1_c269411.sql), so every future migration keeps being
  checked against the same old database.
- Parity: all migrations applied to an empty D1 give the schema that schema.sql gives. A migration
  without the matching schema.sql change (or the reverse) fails here.

Each test uses its own --persist-to directories: the session's `worker` is not involved."""

import contextlib
import os
import re
import sqlite3
import subprocess
import time

import pytest
import requests

from conftest import (BROWSER_UA, ROOT, d1, dev_vars, free_port, migrate, start_wrangler, stop_process,
                      variant_config)

# main's head before migrations/ existed: its schema.sql is what every database created until
# then was built from (`wrangler d1 execute DB --file schema.sql`), and what the fixture rows fit.
OLD_SCHEMA_COMMIT = "c269411"
OLD_ROWS = os.path.join(ROOT, "tests", "fixtures", "d1_c269411.sql")
MIGRATIONS = os.path.join(ROOT, "migrations")

# Known rows of the fixture, served after the upgrade.
OLD_PROGRAM_NAMES = {"Acme Partners", "Kaisha Partners"}
OLD_LINK_HOST, OLD_LINK_KEY = "go.acme-old.test", "spring"
OLD_LINK_URL = "https://acme-old.test/spring-sale"
OLD_TRACK_KEY = "rp_live_l7y2CXc5gigKUtypFLlC4KHKyQStQcru"  # the fixture's program-bound `track` key


# ----------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------

def d1_file(persist):
    here = os.path.join(persist, "v3", "d1")
    files = [os.path.join(dp, f) for dp, _, fs in os.walk(here) for f in fs
             if f.endswith(".sqlite") and f != "metadata.sqlite"]
    assert len(files) == 1, files
    return files[0]


@contextlib.contextmanager
def connect(persist):
    conn = sqlite3.connect(f"file:{d1_file(persist)}?mode=ro", uri=True, timeout=10)
    try:
        yield conn
    finally:
        conn.close()


def internal(name):
    """Tables and indexes that are not the application's: SQLite's, D1's and wrangler's."""
    return name.startswith("sqlite_") or name.startswith("_cf_") or name == "d1_migrations"


def app_tables(conn):
    return [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
            if not internal(r[0])]


def stored_columns(conn, table):
    """Columns that hold data (PRAGMA table_info leaves generated columns out)."""
    return [r[1] for r in conn.execute(f'PRAGMA table_info("{table}")')]


def snapshot(persist):
    """Every application table: its columns and all its rows (sorted), for before/after checks."""
    with connect(persist) as c:
        out = {}
        for t in app_tables(c):
            cols = stored_columns(c, t)
            quoted = ", ".join(f'"{x}"' for x in cols)
            rows = c.execute(f'SELECT {quoted} FROM "{t}"').fetchall()
            out[t] = (cols, sorted(rows, key=repr))
        return out


def applied(persist):
    with connect(persist) as c:
        return [r[0] for r in c.execute("SELECT name FROM d1_migrations ORDER BY id")]


def migration_files():
    return sorted(f for f in os.listdir(MIGRATIONS) if f.endswith(".sql"))


def old_schema_sql():
    r = subprocess.run(["git", "show", f"{OLD_SCHEMA_COMMIT}:schema.sql"], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, f"git show {OLD_SCHEMA_COMMIT}:schema.sql (a clone with history is needed): {r.stderr}"
    return r.stdout


# -- schema comparison -------------------------------------------------------------------------

TOKEN = re.compile(r"""
    (?P<skip>\s+|--[^\n]*|/\*.*?\*/)
  | (?P<string>'(?:[^']|'')*')
  | (?P<quoted>"(?:[^"]|"")*"|`[^`]*`|\[[^\]]*\])
  | (?P<word>[A-Za-z_][A-Za-z0-9_$]*|\d+(?:\.\d*)?)
  | (?P<op><=|>=|!=|<>|==|\|\||\S)
""", re.S | re.X)


def tokens(sql):
    """SQL as tokens: no comments or layout, identifiers unquoted, keywords and names lowercased,
    string literals kept as written."""
    out = []
    for m in TOKEN.finditer(sql):
        kind = m.lastgroup
        if kind == "skip":
            continue
        text = m.group()
        if kind == "quoted":
            text = text[1:-1]
        out.append(text if kind == "string" else text.lower())
    return out


def table_definitions(toks):
    """The items between a CREATE TABLE's outer parentheses (columns and table constraints) as a
    sorted list, and what follows them (WITHOUT ROWID, STRICT). ALTER TABLE ADD COLUMN inserts
    its column among the items, so only the set of items can be compared with schema.sql."""
    start = toks.index("(")
    items, current, depth = [], [], 0
    for i in range(start + 1, len(toks)):
        t = toks[i]
        if t == "(":
            depth += 1
        elif t == ")":
            if depth == 0:
                items.append(" ".join(current))
                return sorted(items), " ".join(toks[i + 1:])
            depth -= 1
        if t == "," and depth == 0:
            items.append(" ".join(current))
            current = []
        else:
            current.append(t)
    raise AssertionError("unbalanced CREATE TABLE")


def schema(conn):
    """The application's schema: every table, index, view and trigger with its normalised SQL, and
    every table's columns in order."""
    objects, columns = {}, {}
    for type_, name, tbl, sql in conn.execute("SELECT type, name, tbl_name, sql FROM sqlite_master"):
        if internal(name):
            continue
        toks = tokens(sql or "")
        body = table_definitions(toks) if type_ == "table" else " ".join(toks)
        objects[name] = (type_, tbl, body)
        if type_ == "table":
            columns[name] = [r[1] for r in conn.execute(f'PRAGMA table_xinfo("{name}")')]
    return objects, columns


def schema_differences(a, b, a_name="a", b_name="b"):
    """Human-readable differences between two `schema()` results; empty when they are the same."""
    (ao, ac), (bo, bc) = a, b
    out = []
    for n in sorted(set(ao) - set(bo)):
        out.append(f"{ao[n][0]} {n} only in {a_name}")
    for n in sorted(set(bo) - set(ao)):
        out.append(f"{bo[n][0]} {n} only in {b_name}")
    for n in sorted(set(ao) & set(bo)):
        if ao[n] != bo[n]:
            if ao[n][0] == "table" and bo[n][0] == "table":
                (ai, at), (bi, bt) = ao[n][2], bo[n][2]
                out += [f"table {n}: only in {a_name}: {x}" for x in ai if x not in bi]
                out += [f"table {n}: only in {b_name}: {x}" for x in bi if x not in ai]
                if at != bt:
                    out.append(f"table {n}: options {at!r} in {a_name}, {bt!r} in {b_name}")
            else:
                out.append(f"{n}: {ao[n]} in {a_name}, {bo[n]} in {b_name}")
        elif ac.get(n) != bc.get(n):
            out.append(f"table {n}: column order {ac[n]} in {a_name}, {bc[n]} in {b_name} "
                       "(ALTER TABLE ADD COLUMN appends: list new columns last in schema.sql)")
    return out


def schema_of_file(persist):
    with connect(persist) as c:
        return schema(c)


def memory_schema(*scripts):
    """The schema that SQLite (Python's, not D1) builds from the scripts, for the comparison's own tests."""
    c = sqlite3.connect(":memory:")
    for s in scripts:
        c.executescript(s)
    return schema(c)


# ----------------------------------------------------------------------------------------------
# fixtures
# ----------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def fresh(tmp_path_factory):
    """An empty local D1 with every migration applied."""
    persist = str(tmp_path_factory.mktemp("d1-fresh"))
    migrate(persist)
    return persist


@pytest.fixture(scope="module")
def old_db(tmp_path_factory):
    """A local D1 as a deployment made before migrations existed: OLD_SCHEMA_COMMIT's schema.sql,
    then the fixture rows, both through `wrangler d1 execute`. Answers (persist, snapshot)."""
    persist = str(tmp_path_factory.mktemp("d1-old"))
    path = os.path.join(persist, "old-schema.sql")
    with open(path, "w") as f:
        f.write(old_schema_sql())
    d1(persist, "execute", "--file", path)
    d1(persist, "execute", "--file", OLD_ROWS)
    with connect(persist) as c:
        names = {r[0] for r in c.execute("SELECT name FROM sqlite_master")}
    assert "d1_migrations" not in names
    return persist, snapshot(persist)


@pytest.fixture(scope="module")
def upgraded(old_db):
    """The old database after `wrangler d1 migrations apply`: answers wrangler's output."""
    persist, _ = old_db
    return migrate(persist)


# ----------------------------------------------------------------------------------------------
# migration files
# ----------------------------------------------------------------------------------------------

def test_migration_files_are_numbered_in_order():
    files = migration_files()
    assert files and files[0] == "0001_initial.sql", files
    assert all(re.fullmatch(r"\d{4}_[A-Za-z0-9_-]+\.sql", f) for f in files), files
    assert [int(f[:4]) for f in files] == list(range(1, len(files) + 1)), "numbers must be 0001, 0002, ... without gaps"
    assert set(os.listdir(MIGRATIONS)) == set(files), "only .sql files in migrations/"
    with open(os.path.join(ROOT, "wrangler.toml")) as f:
        assert re.search(r'^migrations_dir = "migrations"$', f.read(), re.M)


def test_first_migration_is_the_old_schema():
    """0001 is what OLD_SCHEMA_COMMIT's schema.sql created, IF NOT EXISTS everywhere, so that it is
    a no-op on a database created from that schema.sql (and must never be edited)."""
    old = old_schema_sql()
    with open(os.path.join(MIGRATIONS, "0001_initial.sql")) as f:
        first = f.read()
    assert tokens(first) == tokens(old)
    creates = re.findall(r"^CREATE\b.*$", first, re.M)
    assert creates and all(re.match(r"CREATE (TABLE|(UNIQUE )?INDEX) IF NOT EXISTS ", c) for c in creates), creates


# ----------------------------------------------------------------------------------------------
# parity: migrations == schema.sql
# ----------------------------------------------------------------------------------------------

def test_migrations_give_the_schema_of_schema_sql(fresh, tmp_path_factory):
    readable = str(tmp_path_factory.mktemp("d1-schema-sql"))
    d1(readable, "execute", "--file", os.path.join(ROOT, "schema.sql"))
    assert applied(fresh) == migration_files()
    diff = schema_differences(schema_of_file(fresh), schema_of_file(readable), "migrations/", "schema.sql")
    assert not diff, "schema.sql and migrations/ disagree (update both):\n" + "\n".join(diff)


def test_schema_comparison_sees_drift_and_ignores_layout():
    """The comparison used above: a migration that schema.sql does not reflect (or the reverse)
    is a difference; ALTER TABLE ADD COLUMN against the column written in schema.sql is not."""
    with open(os.path.join(ROOT, "schema.sql")) as f:
        base = f.read()
    same = memory_schema(base)
    assert schema_differences(memory_schema(base), same) == []

    added = "ALTER TABLE partners ADD COLUMN tier TEXT CHECK (tier IS NULL OR tier IN ('gold', 'silver'));"
    migrated = memory_schema(base, added)
    diff = schema_differences(migrated, same, "migrations/", "schema.sql")
    assert diff == ["table partners: only in migrations/: tier text check ( tier is null or tier in ( 'gold' , 'silver' ) )"], diff

    # schema.sql written by hand, differently laid out, with the column last among the columns
    anchor = "  UNIQUE (program_id, email)\n);"
    assert base.count(anchor) == 1
    by_hand = base.replace(anchor, "  -- partner tier\n"
                                   "  tier TEXT CHECK (tier IS NULL OR tier IN ('gold','silver')),\n  UNIQUE (program_id, email)\n);")
    assert schema_differences(migrated, memory_schema(by_hand)) == []
    # ... but not first: a fresh database from the migrations would not have that column order
    first = base.replace("  email             TEXT NOT NULL,\n  name", "  tier TEXT CHECK (tier IS NULL OR tier IN ('gold','silver')),\n"
                                                                     "  email             TEXT NOT NULL,\n  name", 1)
    assert any("column order" in d for d in schema_differences(migrated, memory_schema(first)))

    # a CHECK changed, an index added or dropped: differences
    assert schema_differences(memory_schema(base.replace("amount > 0)", "amount >= 0)")), same)
    assert schema_differences(memory_schema(base, "CREATE INDEX clicks_created ON clicks(created_at);"), same)
    assert schema_differences(memory_schema(base, "DROP INDEX links_partner;"), same)
    # a literal's case is data, not layout
    assert schema_differences(memory_schema(base.replace("'invited', 'active', 'banned'", "'Invited', 'active', 'banned'")), same)


# ----------------------------------------------------------------------------------------------
# upgrade of a database created before migrations
# ----------------------------------------------------------------------------------------------

def test_old_database_has_rows_in_every_table(old_db):
    persist, before = old_db
    empty = [t for t, (_, rows) in before.items() if not rows]
    assert not empty, f"the fixture leaves tables empty: {empty}"
    with connect(persist) as c:
        money = dict(c.execute("SELECT kind || ':' || status, COUNT(*) FROM commissions GROUP BY 1").fetchall())
        payouts = dict(c.execute("SELECT status, COUNT(*) FROM payouts GROUP BY 1").fetchall())
    for k in ("lead:paid", "sale:paid", "clawback:approved", "sale:pending", "sale:rejected", "sale:approved"):
        assert money.get(k), (k, money)
    assert payouts.get("paid") and payouts.get("failed"), payouts


def test_old_database_upgrades_and_keeps_every_row(old_db, upgraded, fresh):
    persist, before = old_db
    assert "0001_initial.sql" in upgraded
    assert applied(persist) == migration_files()
    after = snapshot(persist)
    # every pre-existing table is still there with as many rows, and every pre-existing column of
    # every row keeps its value (a migration that rewrites data needs its own backfill test)
    assert set(before) <= set(after), set(before) - set(after)
    counts = {t: (len(before[t][1]), len(after[t][1])) for t in before}
    assert all(b == a for b, a in counts.values()), counts
    for t, (cols, rows) in before.items():
        acols, arows = after[t]
        missing = [c for c in cols if c not in acols]
        assert not missing, (t, missing)
        keep = [acols.index(c) for c in cols]
        assert sorted((tuple(r[i] for i in keep) for r in arows), key=repr) == rows, \
            f"{t}: a migration changed stored values (rewriting data needs its own backfill test)"
    # the upgraded schema is a fresh one: no migration was edited after it was applied
    diff = schema_differences(schema_of_file(persist), schema_of_file(fresh), "upgraded", "fresh")
    assert not diff, "\n".join(diff)
    # applying again is a no-op
    assert "No migrations to apply" in migrate(persist)
    assert snapshot(persist) == after


def test_upgraded_database_is_served(old_db, upgraded):
    persist, _ = old_db
    with connect(persist) as c:
        program_id = c.execute("SELECT program_id FROM program_domains WHERE domain = ?", (OLD_LINK_HOST,)).fetchone()[0]
        commission_ids = {r[0] for r in c.execute("SELECT id FROM commissions WHERE program_id = ?", (program_id,))}
        payout_ids = {r[0] for r in c.execute("SELECT id FROM payouts WHERE program_id = ?", (program_id,))}
        clicks_before = c.execute("SELECT COUNT(*) FROM clicks").fetchone()[0]
    admin = {"Authorization": f"Bearer {dev_vars()['REFPORT_ADMIN_KEY']}"}
    proc, base = start_wrangler(persist, free_port(), free_port(),
                                {"STRIPE_API_BASE": "http://127.0.0.1:9", "EMAIL_API_URL": ""}, apply_migrations=False)
    try:
        def get(path):
            r = requests.get(base + path, headers=admin, timeout=30)
            assert r.status_code == 200, (path, r.status_code, r.text)
            return r.json()

        programs = get("/api/v1/programs?limit=100")["data"]
        assert {p["name"] for p in programs} == OLD_PROGRAM_NAMES
        acme = next(p for p in programs if p["id"] == program_id)
        assert get(f"/api/v1/programs/{program_id}") == acme
        listed = get(f"/api/v1/commissions?program_id={program_id}&limit=100")["data"]
        assert {c["id"] for c in listed} == commission_ids
        assert {c["kind"] for c in listed} == {"lead", "sale", "clawback"}
        assert sum(1 for c in listed if c["status"] == "paid") >= 2
        assert {p["id"] for p in get(f"/api/v1/payouts?program_id={program_id}&limit=100")["data"]} == payout_ids
        partners = get(f"/api/v1/programs/{program_id}/partners?limit=100")["data"]
        assert {p["status"] for p in partners} == {"active", "banned", "invited"}

        assert [e["url"] for e in get("/api/v1/webhooks")["data"]] == ["http://127.0.0.1:9/refport"]

        # the branded link still redirects and counts the click; the old track key attributes a lead
        r = requests.get(f"{base}/{OLD_LINK_KEY}", headers={"Host": OLD_LINK_HOST, "User-Agent": BROWSER_UA},
                         allow_redirects=False, timeout=30)
        assert r.status_code == 302, (r.status_code, r.text)
        location = r.headers["Location"]
        assert location.startswith(OLD_LINK_URL + "?refport_id=clk_"), location
        for _ in range(100):  # the click is written after the response
            with connect(persist) as c:
                if c.execute("SELECT COUNT(*) FROM clicks").fetchone()[0] == clicks_before + 1:
                    break
            time.sleep(0.1)
        else:
            raise AssertionError("the click was not recorded")
        lead = requests.post(f"{base}/api/v1/track/lead", headers={"Authorization": f"Bearer {OLD_TRACK_KEY}"}, timeout=30,
                             json={"click_id": location.split("refport_id=")[1], "customer_external_id": "user_after_upgrade"})
        assert lead.status_code == 200 and lead.json()["attributed"] is True, lead.text
        assert requests.get(f"{base}/api/v1/programs", headers={"Authorization": f"Bearer {OLD_TRACK_KEY}"},
                            timeout=30).status_code == 403
    finally:
        stop_process(proc)


# ----------------------------------------------------------------------------------------------
# 0005: one click per visitor (a `hits` column on clicks)
# ----------------------------------------------------------------------------------------------

def test_0005_old_clicks_keep_every_row_and_count_one_visit(old_db, upgraded):
    persist, before = old_db
    cols, rows = before["clicks"]
    assert rows, "the fixture has clicks"
    with connect(persist) as c:
        after = {r[0]: r[1] for r in c.execute("SELECT id, hits FROM clicks")}
    old_ids = {r[cols.index("id")] for r in rows}
    assert old_ids <= set(after)  # (the test above adds a click after the upgrade)
    assert {after[i] for i in old_ids} == {1}


def test_0005_applies_to_a_database_with_clicks_from_the_queue(tmp_path_factory):
    """A database at the migration before 0005 with clicks and rollups written the way the
    consumer wrote them then: 0005 keeps every row and value, and every click counts one visit."""
    persist = str(tmp_path_factory.mktemp("d1-before-0005"))
    older = str(tmp_path_factory.mktemp("migrations-before-0005"))
    for f in migration_files():
        if f < "0005":
            with open(os.path.join(MIGRATIONS, f)) as src, open(os.path.join(older, f), "w") as dst:
                dst.write(src.read())
    config = variant_config(os.path.join(persist, "wrangler.toml"))
    with open(config) as f:
        toml = f.read()
    with open(config, "w") as f:
        f.write(toml.replace(f'migrations_dir = "{ROOT}/migrations"', f'migrations_dir = "{older}"'))
    migrate(persist, config=config)
    assert "0005_one_click_per_visitor.sql" not in applied(persist)
    path = os.path.join(persist, "rows.sql")
    with open(path, "w") as f:
        for i in range(30):
            at = 1_764_036_000_000 + i * 3_600_000
            f.write("INSERT INTO clicks (id, program_id, partner_id, link_id, created_at, country, referrer_host, "
                    f"ip_hash, ua_hash) VALUES ('clk_old{i:03d}', 'prog_a', 'pn_a', 'link_a', {at}, "
                    f"{'NULL' if i % 3 else repr('DE')}, 'news.example.test', 'ip{i}', 'ua{i}');\n")
        f.write("INSERT INTO daily_stats (program_id, partner_id, link_id, day, currency, clicks) "
                "SELECT program_id, partner_id, link_id, created_at / 86400000, '', COUNT(*) FROM clicks WHERE 1 "
                "GROUP BY 1, 2, 3, 4;\n")
    d1(persist, "execute", "--file", path, config=config)
    before = snapshot(persist)
    assert len(before["clicks"][1]) == 30

    migrate(persist)  # the real migrations/: 0005 and anything after it
    assert applied(persist) == migration_files()
    after = snapshot(persist)
    for t, (cols, rows_before) in before.items():
        acols, arows = after[t]
        keep = [acols.index(c) for c in cols]
        assert sorted((tuple(r[i] for i in keep) for r in arows), key=repr) == rows_before, t
    cols, rows_after = after["clicks"]
    # (later migrations add columns after it: 0008's sub-IDs, NULL on these rows)
    hits = cols.index("hits")
    assert cols[len(before["clicks"][0])] == "hits" and {r[hits] for r in rows_after} == {1}
    assert {tuple(r[cols.index(s)] for s in ("sub1", "sub2", "sub3")) for r in rows_after} == {(None, None, None)}


# ----------------------------------------------------------------------------------------------
# 0010: payout review (the payouts table rebuilt: its status CHECK gains two statuses)
# ----------------------------------------------------------------------------------------------

def test_0010_rebuilds_payouts_keeping_every_row_in_every_status(tmp_path_factory):
    """A database at the migration before 0010 with payouts in every status it allowed
    (processing at attempts 0, 1 and 2, paid with and without a reversal, failed) and the
    commissions they claimed or paid: 0010 keeps every row and value (counts and sums per status
    equal), foreign keys still hold, and the new statuses are accepted afterwards, under the
    one-in-flight index."""
    persist = str(tmp_path_factory.mktemp("d1-before-0010"))
    older = str(tmp_path_factory.mktemp("migrations-before-0010"))
    for f in migration_files():
        if f < "0010":
            with open(os.path.join(MIGRATIONS, f)) as src, open(os.path.join(older, f), "w") as dst:
                dst.write(src.read())
    config = variant_config(os.path.join(persist, "wrangler.toml"))
    with open(config) as f:
        toml = f.read()
    with open(config, "w") as f:
        f.write(toml.replace(f'migrations_dir = "{ROOT}/migrations"', f'migrations_dir = "{older}"'))
    migrate(persist, config=config)
    assert "0010_payout_review.sql" not in applied(persist)

    t0 = 1_796_000_000_000
    settings = ('{"name":"Acme","description":"","logo_url":null,"brand_color":"#4f46e5","domains":["go.acme.test"],'
                '"allowed_hosts":["acme.test"],"cookie_domain":null,"payout_currency":"usd","min_payout":1000,'
                '"payout_schedule":{"every":"day"},"attribution_window_days":90,"attribution_model":"last_click",'
                '"hold_days":0,"rewards":{}}')
    lines = [f"INSERT INTO programs (id, settings, created_at, updated_at) VALUES ('prog_a', '{settings}', {t0}, {t0});"]
    # (status, amount, transfer id, failure, attempts, transfer_attempt, reversed, paid?)
    payouts = [
        ("processing", 1500, None, None, 0, 0, 0, False),
        ("processing", 2500, None, "Stripe timed out", 1, 1, 0, False),
        ("processing", 3500, None, "Stripe answered 500", 2, 2, 0, False),
        ("paid", 4000, "tr_paid1", None, 0, 1, 0, True),
        ("paid", 6000, "tr_paid2", "transfer reversed: 1000 usd", 0, 1, 1000, True),
        ("paid", 700, "tr_paid3", None, 1, 2, 0, True),
        ("failed", 900, None, "No such destination", 1, 1, 0, False),
        ("failed", 1200, None, "Transfers are disabled", 1, 1, 0, False),
    ]
    for i, (status, amount, tr, failure, attempts, ta, rev, paid) in enumerate(payouts):
        pn = f"pn_{i}"
        lines.append("INSERT INTO partners (id, program_id, email, name, status, stripe_account_id, payouts_enabled, "
                     f"created_at, updated_at) VALUES ('{pn}', 'prog_a', 'p{i}@x.test', 'P {i}', 'active', "
                     f"'acct_{i}', 1, {t0}, {t0});")
        q = lambda v: "NULL" if v is None else (f"'{v}'" if isinstance(v, str) else str(v))  # noqa: E731
        at = t0 + i * 60_000
        lines.append("INSERT INTO payouts (id, program_id, partner_id, amount, currency, status, stripe_transfer_id, "
                     "failure_message, commission_count, attempts, created_at, updated_at, paid_at, transfer_attempt, "
                     f"reversed_amount) VALUES ('po_{i}', 'prog_a', '{pn}', {amount}, 'usd', '{status}', {q(tr)}, "
                     f"{q(failure)}, 2, {attempts}, {at}, {at + 1000}, {q(at + 2000 if paid else None)}, {ta}, {rev});")
        # two commissions each: claimed (approved) or paid with the payout; a failed payout's are released
        for j, part in enumerate((amount - amount // 3, amount // 3)):
            cstatus = "paid" if paid else "approved"
            payout_ref = "NULL" if status == "failed" else f"'po_{i}'"
            lines.append("INSERT INTO commissions (id, program_id, partner_id, kind, sale_amount, original_amount, "
                         "amount, currency, status, payout_id, created_at, updated_at, approved_at, paid_at, invoice_id) "
                         f"VALUES ('cm_{i}_{j}', 'prog_a', '{pn}', 'sale', {part * 5}, {part}, {part}, 'usd', "
                         f"'{cstatus}', {payout_ref}, {at}, {at}, {at}, {q(at + 2000 if paid else None)}, 'inv_{i}_{j}');")
    path = os.path.join(persist, "rows.sql")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    d1(persist, "execute", "--file", path, config=config)
    before = snapshot(persist)
    assert len(before["payouts"][1]) == len(payouts)

    def totals(p):
        with connect(p) as c:
            return (c.execute("SELECT status, COUNT(*), SUM(amount), SUM(reversed_amount), SUM(commission_count) "
                              "FROM payouts GROUP BY status ORDER BY status").fetchall(),
                    c.execute("SELECT COALESCE(payout_id, ''), status, COUNT(*), SUM(amount) FROM commissions "
                              "GROUP BY 1, 2 ORDER BY 1, 2").fetchall())
    sums_before = totals(persist)
    assert {r[0] for r in sums_before[0]} == {"processing", "paid", "failed"}

    migrate(persist)  # the real migrations/: 0010 and anything after it
    assert applied(persist) == migration_files()
    after = snapshot(persist)
    for t, (cols, rows_before) in before.items():
        acols, arows = after[t]
        keep = [acols.index(c) for c in cols]
        assert sorted((tuple(r[i] for i in keep) for r in arows), key=repr) == rows_before, t
    assert totals(persist) == sums_before
    with connect(persist) as c:
        assert c.execute("PRAGMA foreign_key_check").fetchall() == []
        sql = c.execute("SELECT sql FROM sqlite_master WHERE name = 'payouts'").fetchone()[0]
        assert "'awaiting_approval'" in sql and "'canceled'" in sql, sql
        indexes = {r[0] for r in c.execute("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'payouts'")}
        assert {"payouts_one_processing", "payouts_partner", "payouts_status"} <= indexes, indexes

    # the new statuses are stored; a partner has one payout prepared or in flight at most
    new_rows = os.path.join(persist, "new.sql")
    with open(new_rows, "w") as f:
        f.write(f"INSERT INTO payouts (id, program_id, partner_id, amount, currency, status, created_at, updated_at, "
                f"transfer_attempt) VALUES ('po_new1', 'prog_a', 'pn_6', 100, 'usd', 'awaiting_approval', {t0}, {t0}, 0);\n"
                f"INSERT INTO payouts (id, program_id, partner_id, amount, currency, status, created_at, updated_at, "
                f"transfer_attempt) VALUES ('po_new2', 'prog_a', 'pn_6', 100, 'usd', 'canceled', {t0}, {t0}, 0);\n")
    d1(persist, "execute", "--file", new_rows)
    clash = os.path.join(persist, "clash.sql")
    with open(clash, "w") as f:  # pn_0 has a payout processing
        f.write(f"INSERT INTO payouts (id, program_id, partner_id, amount, currency, status, created_at, updated_at, "
                f"transfer_attempt) VALUES ('po_new3', 'prog_a', 'pn_0', 100, 'usd', 'awaiting_approval', {t0}, {t0}, 0);\n")
    with pytest.raises(RuntimeError, match="UNIQUE"):
        d1(persist, "execute", "--file", clash)
    with connect(persist) as c:
        assert c.execute("SELECT COUNT(*) FROM payouts").fetchone()[0] == len(payouts) + 2
