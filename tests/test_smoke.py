def test_health_and_demo_flow(worker):
    assert worker.get("/api/v1/health", key=None).json() == {"ok": True}
    p = worker.program()
    pn = worker.partner(p)
    link = worker.link(pn, p)
    cid = worker.click_id(link)
    assert worker.wait_count("SELECT COUNT(*) FROM clicks WHERE id = ?", cid, expect=1) == 1
