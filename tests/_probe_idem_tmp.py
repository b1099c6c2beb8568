import sys, json, collections
sys.path.insert(0, "/work/main/tests")
from test_conversions import *

def test_probe(worker):
    stats = collections.Counter()
    for amount in (None, 6000, None, 6000, None, 6000, None, 6000):
        for n in (5, 10):
            p, pn, inv, cm = sold(worker)
            k = uid("idem")
            body = {"invoice_id": inv} if amount is None else {"invoice_id": inv, "amount": amount}
            rs = concurrently(n, lambda _: raw_post(worker, REFUND, body, headers={"Idempotency-Key": k}))
            codes = tuple(sorted((r.status_code, r.json().get("error", {}).get("code")) for r in rs))
            stats[(amount, n, all(r.status_code == 200 for r in rs))] += 1
            print(amount, n, collections.Counter(codes))
    print(stats)
