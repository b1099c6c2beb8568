import collections, time
from test_conversions import setup, attributed_customer, uid, concurrently, raw_post, SALE, REFUND, ok, sold

def test_probe(worker):
    for n in (10, 20):
        hits = 0; t = time.time()
        for _ in range(12):
            p, pn, ln = setup(worker, rewards={"sale": {"type": "percentage", "amount": 2000, "duration_months": 0}})
            ext, _ = attributed_customer(worker, ln)
            rs = concurrently(n, lambda i: raw_post(worker, SALE, {"customer_external_id": ext, "amount": 10000, "currency": "usd", "invoice_id": f"inv-{i}-{uid()}"}))
            hits += worker.count("SELECT COUNT(*) FROM commissions WHERE program_id=? AND kind='sale'", p["id"]) > 1
        print("first-sale", n, hits, "/12", round((time.time()-t)/12, 2), "s/round")
    for n in (10, 20):
        hits = 0; t = time.time()
        for r in range(12):
            p, pn, inv, cm = sold(worker)
            k = uid("idem")
            body = {"invoice_id": inv} if r % 2 else {"invoice_id": inv, "amount": 6000}
            rs = concurrently(n, lambda _: raw_post(worker, REFUND, body, headers={"Idempotency-Key": k}))
            hits += any(x.status_code != 200 for x in rs)
        print("idem", n, hits, "/12", round((time.time()-t)/12, 2), "s/round")
