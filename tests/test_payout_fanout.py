"""The payout fan-out (issue "Clicks and payouts at Cloudflare scale"): the cron claims what is
due and enqueues one PAYOUTS message per payout; the queue's consumers pay within a
per-invocation subrequest budget, pacing their Stripe requests.

1. more partners than the old per-run cap are all paid after one cron run, each exactly once,
   within the free plan's 50 subrequests per invocation;
2. a payout enqueued twice (the cron's sweep re-enqueues claims whose message is still pending)
   and a second cron run while messages are pending pay nobody twice;
3. a rate limit (429) in the middle of the fan-out pauses payouts, and after the pause nobody
   is paid twice and everybody is paid;
4. a deployment without the PAYOUTS queue still pays, from the cron itself.
"""

import collections
import os
import time

import pytest
from conftest import Worker, dev_vars, free_port, quick_clicks, start_wrangler, stop_process, variant_config

from test_payouts import (  # noqa: F401  (`stripe` is a fixture)
    RECONCILE_WAIT, attributed_customer, enable_payouts, fake_requests, fake_state, fault, ok, program, stripe,
    transfers_to,
)

OLD_PER_RUN_CAP = 10


def payable_partners(worker, stripe, n, min_payout=100):
    """A daily program (hold 0) with `n` onboarded partners, each owed one lead reward (500)."""
    p = program(worker, min_payout=min_payout)
    out = []
    for _ in range(n):
        pn = worker.partner(p)
        attributed_customer(worker, worker.link(pn, p))
        out.append({"partner": pn, "account": enable_payouts(worker, stripe, pn)})
    return p, out


def payouts_of_program(worker, program_id):
    return worker.rows("SELECT * FROM payouts WHERE program_id = ? ORDER BY id", program_id)


def delta(before, after, name):
    return after[name] - before[name]


def assert_each_paid_once(worker, stripe, p, partners, amount=500):
    pos = payouts_of_program(worker, p["id"])
    by_partner = collections.defaultdict(list)
    for po in pos:
        by_partner[po["partner_id"]].append(po)
    for s in partners:
        mine = by_partner[s["partner"]["id"]]
        assert [(po["status"], po["amount"]) for po in mine] == [("paid", amount)], mine
        ts = transfers_to(stripe, s["account"])
        assert len(ts) == 1, (s, ts)
        assert ts[0]["amount"] == amount and ts[0]["transfer_group"] == mine[0]["id"], ts
        assert mine[0]["stripe_transfer_id"] == ts[0]["id"]
    assert not [po for po in pos if po["status"] != "paid"], pos


def transfer_posts(stripe, payout_ids):
    ids = set(payout_ids)
    return [r for r in fake_requests(stripe)
            if r["method"] == "POST" and r["path"] == "/v1/transfers"
            and (r.get("idempotency_key") or "").split("-a")[0] in ids]


# ----------------------------------------------------------------------------------------------
# 1. one cron run, many partners, the free plan's budget
# ----------------------------------------------------------------------------------------------

def test_one_cron_run_pays_every_partner_once_within_the_free_plan_budget(worker, stripe):
    n = 6 * OLD_PER_RUN_CAP + 5
    p, partners = payable_partners(worker, stripe, n)
    before = worker.metrics()
    r = worker.scheduled()  # approves (hold 0), claims all 65, enqueues; waits for the queue
    assert r.status_code == 200, r.text
    after = worker.metrics()

    assert_each_paid_once(worker, stripe, p, partners)
    pos = payouts_of_program(worker, p["id"])
    posts = transfer_posts(stripe, [po["id"] for po in pos])
    # one transfer request per payout, under its first key: nothing was resent
    assert sorted(r["idempotency_key"] for r in posts) == sorted(po["id"] for po in pos)

    assert delta(before, after, "cron_runs") == 1
    assert delta(before, after, "payouts_enqueued") >= n
    assert delta(before, after, "payout_batches") >= n // 10  # consumer invocations (batches of at most 10)
    assert delta(before, after, "payout_messages") >= n
    assert delta(before, after, "transfers_sent") >= n
    # WORKERS_PLAN is unset: the free plan's 50 subrequests per invocation, cron and consumers.
    assert 0 < after["max_invocation_subrequests"] <= 50, after


# ----------------------------------------------------------------------------------------------
# 2. the same payout enqueued twice, a second cron run while messages are pending
# ----------------------------------------------------------------------------------------------

def test_duplicate_messages_and_a_second_cron_run_pay_nobody_twice(worker, stripe):
    n = 8
    p, partners = payable_partners(worker, stripe, n)
    # Every transfer takes a second in the fake: the consumer is still busy with the batch when
    # the reconciliation delay has passed, so the second run's sweep finds claims whose message
    # is still pending and enqueues each of them again.
    fault(stripe, "delay_next", path_prefix="/v1/transfers", method="POST", seconds=1, count=n)
    before = worker.metrics()
    assert worker.scheduled(settle=False).status_code == 200
    first = worker.metrics()
    assert delta(before, first, "payouts_enqueued") >= n
    time.sleep(RECONCILE_WAIT)
    assert worker.scheduled(settle=False).status_code == 200  # while messages are pending
    second = worker.metrics()
    duplicates = delta(first, second, "payouts_enqueued")
    assert duplicates > 0, "the sweep re-enqueued nothing: the test did not exercise duplicates"
    settled = worker.payouts_settled()
    assert worker.scheduled().status_code == 200  # and once more, after everything settled

    assert_each_paid_once(worker, stripe, p, partners)
    pos = payouts_of_program(worker, p["id"])
    posts = transfer_posts(stripe, [po["id"] for po in pos])
    assert sorted(r["idempotency_key"] for r in posts) == sorted(po["id"] for po in pos), posts
    # every duplicate was delivered and found stale (or taken first, its twin then stale)
    assert delta(before, settled, "payout_messages_acked") >= n + duplicates


# ----------------------------------------------------------------------------------------------
# 3. a rate limit in the middle of the fan-out
# ----------------------------------------------------------------------------------------------

def wait_for(fn, timeout=30.0, what="condition"):
    deadline = time.time() + timeout
    while not fn():
        assert time.time() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def test_rate_limit_mid_run_pauses_and_nobody_is_paid_twice_after_resume(worker, stripe):
    n = 20
    p, partners = payable_partners(worker, stripe, n)
    accounts = [s["account"] for s in partners]

    def posts():
        return sum(1 for r in fake_requests(stripe) if r["method"] == "POST" and r["path"] == "/v1/transfers")

    baseline = posts()
    seen_before = len(fake_requests(stripe))  # other tests share this fake: look only at what follows
    assert worker.scheduled(settle=False).status_code == 200
    # Some are paid (5 transfers a second per consumer), then Stripe answers 429 once.
    wait_for(lambda: posts() >= baseline + 2, what="first transfers")
    fault(stripe, "fail_next", path_prefix="/v1/transfers", method="POST", status=429, retry_after=1, count=1)
    worker.payouts_settled()
    refused = [r for r in fake_requests(stripe)[seen_before:] if r.get("injected") == "fail" and r["status"] == 429
               and r["path"] == "/v1/transfers"]
    assert len(refused) == 1, refused
    assert worker.rows("SELECT cause FROM payout_pause")[0]["cause"] == "rate_limited"
    # nobody failed: the refused payout's claim was released, nothing was sent twice
    assert not [po for po in payouts_of_program(worker, p["id"]) if po["status"] == "failed"]
    paid_so_far = {a: len(transfers_to(stripe, a)) for a in accounts}
    assert max(paid_so_far.values()) == 1, paid_so_far
    assert min(paid_so_far.values()) == 0, paid_so_far  # the refused one at least waits

    # The pause (at most a second here) ends; the next run claims what is still owed.
    wait_for(lambda: worker.count("SELECT COUNT(*) FROM payout_pause WHERE until_ms > ?",
                                  int(time.time() * 1000)) == 0, what="the pause to end")
    assert worker.scheduled().status_code == 200
    assert_each_paid_once(worker, stripe, p, partners)
    assert worker.scheduled().status_code == 200  # a later run changes nothing
    assert_each_paid_once(worker, stripe, p, partners)


# ----------------------------------------------------------------------------------------------
# 4. no PAYOUTS binding: the cron pays itself, as before the fan-out
# ----------------------------------------------------------------------------------------------

def config_without_payouts_queue(path):
    """wrangler.toml without the PAYOUTS producer and consumer (an older deployment)."""
    path = variant_config(path, drop=lambda b: 'queue = "refport-payouts"' in b, edit=quick_clicks)
    toml = open(path).read()
    assert 'binding = "PAYOUTS"' not in toml and 'binding = "LINKS"' in toml and "refport-clicks" in toml
    return path


@pytest.fixture(scope="module")
def worker_without_queue(stripe_server, email_sink, tmp_path_factory):
    persist = str(tmp_path_factory.mktemp("wrangler-no-payouts-queue"))
    config = config_without_payouts_queue(os.path.join(persist, "wrangler.toml"))
    extra = {"STRIPE_API_BASE": stripe_server, "EMAIL_API_URL": email_sink.url,
             "PAYOUT_RECONCILE_AFTER_SECONDS": "0", "PAYOUT_PAUSE_MAX_SECONDS": "1", "STRIPE_TIMEOUT_SECONDS": "2"}
    proc, base = start_wrangler(persist, free_port(), free_port(), extra, config=config)
    try:
        yield Worker(base, persist, stripe_server, dev_vars(), email_sink)
    finally:
        stop_process(proc)


def test_without_the_payouts_queue_the_cron_pays_itself(worker_without_queue, stripe):
    w = worker_without_queue
    n = 4
    p, partners = payable_partners(w, stripe, n)
    before = w.metrics()
    assert w.scheduled().status_code == 200
    after = w.metrics()
    assert_each_paid_once(w, stripe, p, partners)
    assert delta(before, after, "payouts_enqueued") == 0 and delta(before, after, "payout_batches") == 0
    assert delta(before, after, "transfers_sent") == n
    assert 0 < after["max_invocation_subrequests"] <= 50, after
    assert w.scheduled().status_code == 200  # a later run changes nothing
    assert_each_paid_once(w, stripe, p, partners)
