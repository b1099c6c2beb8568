"""Faithfulness tests for tests/stripe_fake: driven by the official `stripe` Python package.

    python3 -m venv /tmp/stripe-venv && /tmp/stripe-venv/bin/pip install -r tests/requirements.txt
    /tmp/stripe-venv/bin/python -m pytest tests/test_stripe_fake.py -q
"""
from __future__ import annotations

import base64
import json
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import stripe

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from stripe_fake import server as fake  # noqa: E402

KEY = "sk_test_refport_0123456789"
WHSEC = "whsec_test_secret_abc123"
CONNECT_WHSEC = "whsec_connect_secret_xyz789"
FIXTURES = HERE.parent.parent / "shared" / "stripe" / "fixtures.json"


# --------------------------------------------------------------------------- fixtures / helpers

@pytest.fixture(scope="module")
def base_url():
    server, _thread, url = fake.start(port=0)
    yield url
    fake.stop(server)


@pytest.fixture(autouse=True)
def _reset(base_url):
    control(base_url, "reset")


@pytest.fixture
def client(base_url):
    return make_client(base_url)


def make_client(base_url, retries=0, key=KEY):
    return stripe.StripeClient(key, base_addresses={"api": base_url},
                               max_network_retries=retries)


def control(base_url, path, data=None, method=None):
    body = None if data is None else json.dumps(data).encode()
    method = method or ("GET" if path in ("requests", "state", "deliveries") else "POST")
    req = urllib.request.Request(f"{base_url}/_control/{path}", data=body, method=method,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


def raw(base_url, method, path, form=None, headers=None):
    """Plain HTTP call -> (status, headers, json body)."""
    data = urllib.parse.urlencode(form).encode() if form is not None else None
    req = urllib.request.Request(base_url + path, data=data, method=method,
                                 headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.headers, json.loads(resp.read())
    except urllib.error.HTTPError as e:
        return e.code, e.headers, json.loads(e.read())


def onboarded_account(client, base_url, email="partner@example.com"):
    acct = client.v1.accounts.create(params={
        "type": "express", "email": email,
        "capabilities": {"transfers": {"requested": True}},
        "metadata": {"partner_id": "p_1"}})
    control(base_url, f"accounts/{acct.id}/complete_onboarding")
    return acct


def new_transfer(client, dest, amount=1500, key=None, **extra):
    params = {"amount": amount, "currency": "usd", "destination": dest, **extra}
    return client.v1.transfers.create(params=params,
                                      options={"idempotency_key": key} if key else None)


def transfers_in_state(base_url):
    return control(base_url, "state")["transfers"]


def available(base_url, currency="usd"):
    bal = control(base_url, "state")["balance"]["available"]
    return next(b["amount"] for b in bal if b["currency"] == currency)


class Receiver:
    """A tiny webhook endpoint that records raw bodies and Stripe-Signature headers."""

    def __init__(self, status=200):
        self.received: list[tuple[str, str]] = []
        self.cond = threading.Condition()
        outer = self

        class H(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"])).decode()
                with outer.cond:
                    outer.received.append((body, self.headers.get("Stripe-Signature")))
                    outer.cond.notify_all()
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *a):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/webhooks/stripe"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait_for(self, n, timeout=5.0):
        with self.cond:
            assert self.cond.wait_for(lambda: len(self.received) >= n, timeout), self.received
            return list(self.received)

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver(base_url):
    """The platform (account) webhook endpoint."""
    r = Receiver()
    control(base_url, "webhook", {"url": r.url, "secret": WHSEC})
    yield r
    r.close()


@pytest.fixture
def connect_receiver(base_url):
    """The Connect webhook endpoint (events that happen on connected accounts)."""
    r = Receiver()
    control(base_url, "webhook", {"url": r.url, "secret": CONNECT_WHSEC, "connect": True})
    yield r
    r.close()


def events_of(receiver, n, secret, timeout=5.0):
    return [stripe.Webhook.construct_event(body, sig, secret)
            for body, sig in receiver.wait_for(n, timeout)]


def wait_deliveries(base_url, n, timeout=5.0):
    deadline = time.time() + timeout
    while len(control(base_url, "deliveries")["data"]) < n and time.time() < deadline:
        time.sleep(0.05)
    return control(base_url, "deliveries")["data"]


# --------------------------------------------------------------------------- auth and errors

def test_missing_and_bad_api_key(base_url):
    status, headers, body = raw(base_url, "GET", "/v1/balance")
    assert status == 401
    assert body["error"]["type"] == "invalid_request_error"
    assert "did not provide an API key" in body["error"]["message"]
    assert headers["Request-Id"].startswith("req_")

    status, _, body = raw(base_url, "GET", "/v1/balance",
                          headers={"Authorization": "Bearer sk_live_nope1234"})
    assert status == 401
    assert body["error"]["message"].startswith("Invalid API Key provided: sk_live_")
    assert "nope" not in body["error"]["message"]  # key is masked

    with pytest.raises(stripe.AuthenticationError):
        make_client(base_url, key="rk_test_wrongkind").v1.balance.retrieve()

    basic = "Basic " + base64.b64encode(f"{KEY}:".encode()).decode()  # curl -u sk_test_...:
    assert raw(base_url, "GET", "/v1/balance", headers={"Authorization": basic})[0] == 200


def test_unknown_url_and_unknown_object(client, base_url):
    status, headers, body = raw(base_url, "GET", "/v1/nope",
                                headers={"Authorization": f"Bearer {KEY}",
                                         "Stripe-Version": "2024-06-20"})
    assert status == 404 and "Unrecognized request URL (GET: /v1/nope)" in body["error"]["message"]
    assert headers["Stripe-Version"] == "2024-06-20"
    with pytest.raises(stripe.InvalidRequestError) as ei:
        client.v1.transfers.retrieve("tr_doesnotexist")
    assert ei.value.http_status == 404
    assert ei.value.code == "resource_missing" and ei.value.param == "id"
    assert "No such transfer: 'tr_doesnotexist'" in ei.value.user_message


# --------------------------------------------------------------------------- accounts

def test_express_account_onboarding(client, base_url):
    acct = client.v1.accounts.create(params={
        "type": "express", "email": "partner@example.com",
        "capabilities": {"transfers": {"requested": True}},
        "metadata": {"partner_id": "p_42"}})
    assert isinstance(acct, stripe.Account)
    assert acct.id.startswith("acct_1") and acct.object == "account"
    assert acct.type == "express" and acct.email == "partner@example.com"
    assert acct.metadata["partner_id"] == "p_42"
    assert acct.charges_enabled is False and acct.payouts_enabled is False
    assert acct.details_submitted is False
    assert acct.capabilities.transfers == "inactive"
    assert acct.requirements.currently_due

    link = client.v1.account_links.create(params={
        "account": acct.id, "type": "account_onboarding",
        "refresh_url": "https://refport.example/refresh",
        "return_url": "https://refport.example/return"})
    assert isinstance(link, stripe.AccountLink) and link.object == "account_link"
    assert link.url.startswith(f"{base_url}/connect/onboarding/")
    assert link.expires_at > link.created

    control(base_url, f"accounts/{acct.id}/complete_onboarding")
    again = client.v1.accounts.retrieve(acct.id)
    assert again.payouts_enabled is True and again.charges_enabled is True
    assert again.details_submitted is True
    assert again.capabilities.transfers == "active"
    assert again.requirements.currently_due == []

    events = client.v1.events.list(params={"type": "account.updated"})
    assert len(events.data) == 1
    evt = events.data[0]
    assert evt.account == acct.id and evt.data.object.id == acct.id
    assert evt.data.previous_attributes.payouts_enabled is False

    login = client.v1.accounts.login_links.create(acct.id)
    assert login.object == "login_link" and login.url.startswith(base_url)


def test_account_link_validation(client, base_url):
    acct = client.v1.accounts.create(params={"type": "express"})
    with pytest.raises(stripe.InvalidRequestError) as ei:
        client.v1.account_links.create(params={
            "account": acct.id, "type": "account_onboarding",
            "return_url": "https://refport.example/return"})
    assert ei.value.code == "parameter_missing" and ei.value.param == "refresh_url"
    with pytest.raises(stripe.InvalidRequestError) as ei:
        client.v1.account_links.create(params={
            "account": "acct_missing", "type": "account_onboarding",
            "refresh_url": "https://r.example/a", "return_url": "https://r.example/b"})
    assert ei.value.http_status == 400 and ei.value.code == "resource_missing"
    assert ei.value.param == "account" and "No such account: 'acct_missing'" in str(ei.value)
    with pytest.raises(stripe.InvalidRequestError) as ei:
        client.v1.accounts.retrieve("acct_missing")
    assert ei.value.code == "resource_missing"


def test_hosted_onboarding_link_redirects(client, base_url):
    acct = client.v1.accounts.create(params={"type": "express",
                                             "capabilities": {"transfers": {"requested": True}}})
    link = client.v1.account_links.create(params={
        "account": acct.id, "type": "account_onboarding",
        "refresh_url": "https://refport.example/refresh",
        "return_url": "https://refport.example/return"})

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *a, **k):
            return None

    opener = urllib.request.build_opener(NoRedirect)
    with opener.open(link.url, timeout=5) as resp:
        assert resp.status == 200 and b"Complete" in resp.read()
    for expected in ("https://refport.example/return", "https://refport.example/refresh"):
        with pytest.raises(urllib.error.HTTPError) as ei:  # 302 surfaces as HTTPError
            opener.open(urllib.request.Request(link.url, data=b"action=complete"), timeout=5)
        assert ei.value.code == 302 and ei.value.headers["Location"] == expected
    assert client.v1.accounts.retrieve(acct.id).payouts_enabled is True


# --------------------------------------------------------------------------- balance and transfers

def test_balance_set_by_control(client, base_url):
    control(base_url, "balance", {"currency": "usd", "amount": 10_000})
    control(base_url, "balance", {"currency": "eur", "amount": 500})
    bal = client.v1.balance.retrieve()
    assert isinstance(bal, stripe.Balance) and bal.object == "balance"
    got = {b.currency: b.amount for b in bal.available}
    assert got == {"eur": 500, "usd": 10_000}


def test_transfer_create_and_idempotent_replay(client, base_url):
    acct = onboarded_account(client, base_url)
    control(base_url, "balance", {"currency": "usd", "amount": 10_000})
    params = {"amount": 2500, "currency": "usd", "destination": acct.id,
              "transfer_group": "payout_run_7", "description": "June commissions",
              "metadata": {"payout_id": "po_1", "partner_id": "p_1"}}
    tr = client.v1.transfers.create(params=params, options={"idempotency_key": "payout-po_1"})
    assert isinstance(tr, stripe.Transfer)
    assert tr.id.startswith("tr_1") and len(tr.id) == len("tr_") + 24
    assert (tr.object, tr.amount, tr.currency, tr.destination) == \
        ("transfer", 2500, "usd", acct.id)
    assert tr.transfer_group == "payout_run_7" and tr.description == "June commissions"
    assert tr.metadata.to_dict() == {"payout_id": "po_1", "partner_id": "p_1"}
    assert tr.reversed is False and tr.amount_reversed == 0 and tr.livemode is False
    assert tr.reversals.data == [] and abs(tr.created - time.time()) < 60
    assert tr.last_response.headers["idempotency-key"] == "payout-po_1"
    assert "idempotent-replayed" not in tr.last_response.headers

    again = client.v1.transfers.create(params=params,
                                       options={"idempotency_key": "payout-po_1"})
    assert again.id == tr.id and again.created == tr.created
    assert again.last_response.headers["idempotent-replayed"] == "true"
    assert len(transfers_in_state(base_url)) == 1
    assert available(base_url) == 7500
    assert client.v1.transfers.retrieve(tr.id).amount == 2500

    # same key, different parameters -> idempotency_error
    with pytest.raises(stripe.IdempotencyError) as ei:
        client.v1.transfers.create(params={**params, "amount": 2600},
                                   options={"idempotency_key": "payout-po_1"})
    assert ei.value.http_status == 400
    assert ei.value.json_body["error"]["type"] == "idempotency_error"
    # same key, other endpoint -> idempotency_error too
    with pytest.raises(stripe.IdempotencyError):
        client.v1.accounts.create(params={"type": "express"},
                                  options={"idempotency_key": "payout-po_1"})
    # keys are scoped per API key
    other = make_client(base_url, key="sk_test_another_platform")
    tr2 = other.v1.transfers.create(params=params, options={"idempotency_key": "payout-po_1"})
    assert tr2.id != tr.id and len(transfers_in_state(base_url)) == 2


def test_idempotency_key_in_flight_gets_409(client, base_url):
    acct = onboarded_account(client, base_url)
    control(base_url, "balance", {"currency": "usd", "amount": 10_000})
    control(base_url, "delay_next", {"path_prefix": "/v1/transfers", "seconds": 1.0})
    result = {}
    t = threading.Thread(target=lambda: result.setdefault(
        "tr", new_transfer(client, acct.id, key="slow-key")))
    t.start()
    time.sleep(0.3)
    with pytest.raises(stripe.APIError) as ei:
        new_transfer(client, acct.id, key="slow-key")
    t.join()
    assert ei.value.http_status == 409
    err = ei.value.json_body["error"]
    assert err["type"] == "idempotency_error" and err["code"] == "idempotency_key_in_use"
    assert new_transfer(client, acct.id, key="slow-key").id == result["tr"].id
    assert len(transfers_in_state(base_url)) == 1


def test_insufficient_balance(client, base_url):
    acct = onboarded_account(client, base_url)
    control(base_url, "balance", {"currency": "usd", "amount": 1000})
    with pytest.raises(stripe.InvalidRequestError) as ei:
        new_transfer(client, acct.id, amount=1001, key="k-insufficient")
    assert ei.value.http_status == 400 and ei.value.code == "balance_insufficient"
    assert "insufficient available funds" in ei.value.user_message
    with pytest.raises(stripe.InvalidRequestError) as ei:  # no balance at all in eur
        client.v1.transfers.create(params={"amount": 1, "currency": "eur",
                                           "destination": acct.id})
    assert ei.value.code == "balance_insufficient"
    assert available(base_url) == 1000 and transfers_in_state(base_url) == {}
    # the endpoint executed, so Stripe saved the error under the key: a retry replays it
    control(base_url, "balance", {"currency": "usd", "amount": 5000})
    with pytest.raises(stripe.InvalidRequestError) as ei:
        new_transfer(client, acct.id, amount=1001, key="k-insufficient")
    assert ei.value.code == "balance_insufficient"
    assert ei.value.headers["idempotent-replayed"] == "true"
    assert new_transfer(client, acct.id, amount=1001, key="k-fresh").amount == 1001


def test_destination_checks(client, base_url):
    control(base_url, "balance", {"currency": "usd", "amount": 10_000})
    pending = client.v1.accounts.create(params={
        "type": "express", "capabilities": {"transfers": {"requested": True}}})
    with pytest.raises(stripe.InvalidRequestError) as ei:
        new_transfer(client, pending.id)
    assert ei.value.code == "insufficient_capabilities_for_transfer"
    assert ei.value.param == "destination"
    assert "capabilities enabled: transfers" in ei.value.user_message

    with pytest.raises(stripe.InvalidRequestError) as ei:
        new_transfer(client, "acct_1NoSuchAccount")
    assert ei.value.code == "resource_missing" and ei.value.param == "destination"
    assert ei.value.http_status == 400

    ok = onboarded_account(client, base_url)
    assert new_transfer(client, ok.id).destination == ok.id
    control(base_url, f"accounts/{ok.id}/disable_transfers")
    assert client.v1.accounts.retrieve(ok.id).capabilities.transfers == "inactive"
    with pytest.raises(stripe.InvalidRequestError) as ei:
        new_transfer(client, ok.id)
    assert ei.value.code == "insufficient_capabilities_for_transfer"
    assert available(base_url) == 10_000 - 1500


def test_parameter_validation_is_not_saved_under_the_key(client, base_url):
    acct = onboarded_account(client, base_url)
    control(base_url, "balance", {"currency": "usd", "amount": 10_000})
    with pytest.raises(stripe.InvalidRequestError) as ei:
        client.v1.transfers.create(params={"currency": "usd", "destination": acct.id},
                                   options={"idempotency_key": "k-val"})
    assert ei.value.code == "parameter_missing" and ei.value.param == "amount"
    with pytest.raises(stripe.InvalidRequestError) as ei:
        new_transfer(client, acct.id, amount=0)
    assert ei.value.code == "parameter_invalid_integer"
    with pytest.raises(stripe.InvalidRequestError) as ei:
        new_transfer(client, acct.id, destinaton="typo")
    assert ei.value.code == "parameter_unknown" and ei.value.param == "destinaton"
    # validation failures are not stored: the same key can be used with corrected params
    assert new_transfer(client, acct.id, key="k-val").amount == 1500


def test_reversals(client, base_url):
    acct = onboarded_account(client, base_url)
    control(base_url, "balance", {"currency": "usd", "amount": 10_000})
    tr = new_transfer(client, acct.id, amount=3000)
    part = client.v1.transfers.reversals.create(tr.id, params={"amount": 1000},
                                                options={"idempotency_key": "rev-1"})
    assert isinstance(part, stripe.TransferReversal) and part.object == "transfer_reversal"
    assert part.id.startswith("trr_1") and part.amount == 1000 and part.transfer == tr.id
    after = client.v1.transfers.retrieve(tr.id)
    assert after.amount_reversed == 1000 and after.reversed is False
    assert [r.id for r in after.reversals.data] == [part.id]
    assert available(base_url) == 8000

    with pytest.raises(stripe.InvalidRequestError) as ei:
        client.v1.transfers.reversals.create(tr.id, params={"amount": 2001})
    assert ei.value.param == "amount"
    rest = client.v1.transfers.reversals.create(tr.id)  # no amount: reverses the remainder
    assert rest.amount == 2000
    final = client.v1.transfers.retrieve(tr.id)
    assert final.reversed is True and final.amount_reversed == 3000
    assert available(base_url) == 10_000
    listed = client.v1.transfers.reversals.list(tr.id)
    assert [r.id for r in listed.data] == [rest.id, part.id]
    assert client.v1.transfers.reversals.retrieve(tr.id, part.id).amount == 1000
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.transfers.reversals.create(tr.id, params={"amount": 1})
    types = [e.type for e in client.v1.events.list().data]
    assert types.count("transfer.reversed") == 2


def test_list_transfers(client, base_url):
    a, b = onboarded_account(client, base_url), onboarded_account(client, base_url)
    control(base_url, "balance", {"currency": "usd", "amount": 100_000})
    made = [new_transfer(client, a.id, amount=100 + i, transfer_group="g1") for i in range(3)]
    made.append(new_transfer(client, b.id, amount=999, transfer_group="g2"))
    page = client.v1.transfers.list(params={"transfer_group": "g1"})
    assert isinstance(page, stripe.ListObject)
    assert page.object == "list" and page.url == "/v1/transfers" and page.has_more is False
    assert {t.id for t in page.data} == {t.id for t in made[:3]}
    assert [t.id for t in client.v1.transfers.list(params={"destination": b.id}).data] == \
        [made[3].id]
    first = client.v1.transfers.list(params={"limit": 2})
    assert len(first.data) == 2 and first.has_more is True
    assert len(list(first.auto_paging_iter())) == 4


def test_connected_account_balance_via_stripe_account_header(client, base_url):
    acct = onboarded_account(client, base_url)
    control(base_url, "balance", {"currency": "usd", "amount": 10_000})
    new_transfer(client, acct.id, amount=1234)
    bal = client.v1.balance.retrieve(options={"stripe_account": acct.id})
    assert [(b.currency, b.amount) for b in bal.available] == [("usd", 1234)]


def test_module_level_api(base_url):
    saved = (stripe.api_key, stripe.api_base, stripe.max_network_retries)
    try:
        stripe.api_key, stripe.api_base, stripe.max_network_retries = KEY, base_url, 0
        acct = stripe.Account.create(type="express",
                                     capabilities={"transfers": {"requested": True}})
        control(base_url, f"accounts/{acct.id}/complete_onboarding")
        control(base_url, "balance", {"currency": "usd", "amount": 500})
        tr = stripe.Transfer.create(amount=500, currency="usd", destination=acct.id,
                                    metadata={"payout_id": "po_9"}, idempotency_key="mod-1")
        assert stripe.Transfer.retrieve(tr.id).metadata["payout_id"] == "po_9"
        assert stripe.Balance.retrieve().available[0].amount == 0
    finally:
        stripe.api_key, stripe.api_base, stripe.max_network_retries = saved


# --------------------------------------------------------------------------- webhooks

def test_webhook_delivery_and_signature(client, base_url, receiver, connect_receiver):
    acct = onboarded_account(client, base_url)  # connected-account events: Connect endpoint
    control(base_url, "balance", {"currency": "usd", "amount": 10_000})
    tr = new_transfer(client, acct.id, key="wh-1", metadata={"payout_id": "po_7"})
    received = receiver.wait_for(1)
    events = []
    for payload, sig in received:
        assert sig.startswith("t=") and ",v1=" in sig
        events.append(stripe.Webhook.construct_event(payload, sig, WHSEC))
    assert [e.type for e in events] == ["transfer.created"]
    evt = events[0]
    assert isinstance(evt, stripe.Event) and evt.id.startswith("evt_1")
    assert "account" not in evt  # a platform event
    assert evt.data.object.id == tr.id and evt.data.object.metadata["payout_id"] == "po_7"
    assert evt.request.idempotency_key == "wh-1" and evt.livemode is False
    assert client.v1.events.retrieve(evt.id).type == "transfer.created"

    connect = events_of(connect_receiver, 2, CONNECT_WHSEC)
    assert [e.type for e in connect] == ["capability.updated", "account.updated"]
    assert all(e.account == acct.id for e in connect)
    body, sig = connect_receiver.received[1]
    with pytest.raises(stripe.SignatureVerificationError):  # each endpoint has its own secret
        stripe.Webhook.construct_event(body, sig, WHSEC)

    payload, sig = received[0]
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(payload.replace("po_7", "po_8"), sig, WHSEC)
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(payload, sig, "whsec_other")
    with pytest.raises(stripe.SignatureVerificationError):  # outside the 300 s tolerance
        stripe.Webhook.construct_event(payload, sig, WHSEC, tolerance=-1)

    deliveries = wait_deliveries(base_url, 3)
    assert sorted((d["endpoint"], d["type"], d["status"]) for d in deliveries) == [
        ("connect", "account.updated", 200), ("connect", "capability.updated", 200),
        ("platform", "transfer.created", 200)]
    assert next(d for d in deliveries if d["endpoint"] == "platform")["event_id"] == evt.id

    control(base_url, f"events/{evt.id}/redeliver")
    again = receiver.wait_for(2)[1]
    assert stripe.Webhook.construct_event(again[0], again[1], WHSEC).id == evt.id


def test_control_sign_and_custom_event(client, base_url, receiver, connect_receiver):
    payload = json.dumps({"id": "evt_custom", "object": "event", "type": "payout.failed",
                          "data": {"object": {"id": "po_1", "object": "payout"}}})
    header = control(base_url, "sign", {"payload": payload, "secret": WHSEC,
                                        "timestamp": int(time.time())})["header"]
    assert stripe.Webhook.construct_event(payload, header, WHSEC).type == "payout.failed"
    old = control(base_url, "sign", {"payload": payload, "secret": WHSEC,
                                     "timestamp": int(time.time()) - 3600})["header"]
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(payload, old, WHSEC)
    # without a secret: the configured endpoint's (platform by default, or the Connect one)
    default = control(base_url, "sign", {"payload": payload})["header"]
    assert stripe.Webhook.construct_event(payload, default, WHSEC).id == "evt_custom"
    conn = control(base_url, "sign", {"payload": payload, "connect": True})["header"]
    assert stripe.Webhook.construct_event(payload, conn, CONNECT_WHSEC).id == "evt_custom"

    evt = control(base_url, "events", {"type": "payout.paid", "account": "acct_1Xyz",
                                       "data_object": {"id": "po_2", "object": "payout",
                                                       "amount": 100}})
    got = events_of(connect_receiver, 1, CONNECT_WHSEC)[0]
    assert got.id == evt["id"] and got.account == "acct_1Xyz"
    assert got.data.object.amount == 100
    plat = control(base_url, "events", {"type": "balance.available",
                                        "data_object": {"object": "balance"}})
    assert events_of(receiver, 1, WHSEC)[0].id == plat["id"]
    assert len(connect_receiver.received) == 1 and len(receiver.received) == 1


# --------------------------------------------------------------------------- fault injection

def test_fail_next_then_retry_with_same_key(client, base_url):
    acct = onboarded_account(client, base_url)
    control(base_url, "balance", {"currency": "usd", "amount": 10_000})
    control(base_url, "fail_next", {"path_prefix": "/v1/transfers", "status": 500, "count": 1})
    with pytest.raises(stripe.APIError) as ei:
        new_transfer(client, acct.id, key="f-1")
    assert ei.value.http_status == 500
    assert ei.value.json_body["error"]["type"] == "api_error"
    assert transfers_in_state(base_url) == {}
    tr = new_transfer(client, acct.id, key="f-1")
    assert list(transfers_in_state(base_url)) == [tr.id] and available(base_url) == 8500

    # stripe-python's own retries (auto-generated idempotency key) ride over 500s
    control(base_url, "fail_next", {"path_prefix": "/v1/transfers", "status": 503, "count": 2})
    make_client(base_url, retries=2).v1.transfers.create(
        params={"amount": 100, "currency": "usd", "destination": acct.id})
    assert len(transfers_in_state(base_url)) == 2
    log = [r for r in control(base_url, "requests")["data"] if r["path"] == "/v1/transfers"]
    assert [r["status"] for r in log] == [500, 200, 503, 503, 200]
    assert log[0]["idempotency_key"] == "f-1" and log[0]["injected"] == "fail"
    assert log[-1]["params"]["amount"] == "100"
    assert len({r["idempotency_key"] for r in log[2:]}) == 1


def test_drop_next_executes_but_loses_the_answer(client, base_url):
    acct = onboarded_account(client, base_url)
    control(base_url, "balance", {"currency": "usd", "amount": 10_000})
    control(base_url, "drop_next", {"path_prefix": "/v1/transfers", "count": 1})
    with pytest.raises(stripe.APIConnectionError):
        new_transfer(client, acct.id, key="d-1")
    executed = transfers_in_state(base_url)
    assert len(executed) == 1 and available(base_url) == 8500
    tr = new_transfer(client, acct.id, key="d-1")
    assert list(executed) == [tr.id]
    assert tr.last_response.headers["idempotent-replayed"] == "true"
    assert len(transfers_in_state(base_url)) == 1 and available(base_url) == 8500

    control(base_url, "drop_next", {"path_prefix": "/v1/transfers", "count": 1})
    make_client(base_url, retries=1).v1.transfers.create(
        params={"amount": 100, "currency": "usd", "destination": acct.id})
    assert len(transfers_in_state(base_url)) == 2 and available(base_url) == 8400


# --------------------------------------------------------------------------- shapes, CLI

@pytest.mark.skipif(not FIXTURES.exists(), reason="shared/stripe/fixtures.json not present")
def test_objects_have_the_fixture_fields(client, base_url, receiver):
    fixtures = json.loads(FIXTURES.read_text())
    acct = onboarded_account(client, base_url)
    control(base_url, "balance", {"currency": "usd", "amount": 10_000})
    tr = new_transfer(client, acct.id)
    rev = client.v1.transfers.reversals.create(tr.id, params={"amount": 1})
    link = client.v1.account_links.create(params={
        "account": acct.id, "type": "account_onboarding",
        "refresh_url": "https://r.example/a", "return_url": "https://r.example/b"})
    status, _, evt = raw(base_url, "GET", "/v1/events?limit=1",
                         headers={"Authorization": f"Bearer {KEY}"})
    got = {"transfer": tr, "transfer_reversal": rev, "account_link": link,
           "balance": client.v1.balance.retrieve(), "event": evt["data"][0],
           "login_link": client.v1.accounts.login_links.create(acct.id)}
    for name, obj in got.items():
        keys = obj.to_dict() if isinstance(obj, stripe.StripeObject) else obj
        missing = set(fixtures[name]) - set(keys)
        assert not missing, f"{name} lacks {missing}"
    # account: every top-level field Refport may read
    for field in ("id", "object", "type", "email", "capabilities", "charges_enabled",
                  "payouts_enabled", "details_submitted", "requirements", "metadata",
                  "country", "created", "default_currency", "controller"):
        assert field in acct.to_dict(), field


def test_cli_prints_ready_and_enforces_api_key(tmp_path):
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "stripe_fake" / "server.py"), "--port", "0",
         "--api-key", "sk_test_only_this_one"],
        stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline().split()
        assert line[0] == "READY"
        url = f"http://127.0.0.1:{line[1]}"
        status, _, _ = raw(url, "GET", "/v1/balance",
                           headers={"Authorization": "Bearer sk_test_only_this_one"})
        assert status == 200
        status, _, body = raw(url, "GET", "/v1/balance",
                              headers={"Authorization": "Bearer sk_test_another"})
        assert status == 401 and "Invalid API Key" in body["error"]["message"]
    finally:
        proc.terminate()
        proc.wait(timeout=5)


# --------------------------------------------------------------------------- idempotency (24 h, saved 500s)

def test_saved_500_is_replayed_under_its_key(client, base_url):
    """Stripe saves the result once the endpoint began executing, 500s included."""
    acct = onboarded_account(client, base_url)
    control(base_url, "balance", {"currency": "usd", "amount": 10_000})
    rule = control(base_url, "fail_next", {"path_prefix": "/v1/transfers", "method": "POST",
                                           "saved": True})
    assert rule["status"] == 500 and rule["saved"] is True
    with pytest.raises(stripe.APIError) as ei:
        new_transfer(client, acct.id, key="s-1")
    assert ei.value.http_status == 500
    assert ei.value.json_body["error"]["type"] == "api_error"
    assert ei.value.headers["stripe-should-retry"] == "false"
    assert "idempotent-replayed" not in ei.value.headers
    # the same key replays the 500: the payout is stuck behind this key
    with pytest.raises(stripe.APIError) as ei:
        new_transfer(client, acct.id, key="s-1")
    assert ei.value.http_status == 500 and ei.value.headers["idempotent-replayed"] == "true"
    assert transfers_in_state(base_url) == {} and available(base_url) == 10_000
    log = [r for r in control(base_url, "requests")["data"] if r["path"] == "/v1/transfers"]
    assert [(r["status"], r["injected"], r["replayed"]) for r in log] == \
        [(500, "fail_saved", False), (500, None, True)]
    # stripe-python honours Stripe-Should-Retry: false and does not retry a saved 500
    control(base_url, "fail_next", {"path_prefix": "/v1/transfers", "saved": True})
    with pytest.raises(stripe.APIError):
        make_client(base_url, retries=2).v1.transfers.create(
            params={"amount": 100, "currency": "usd", "destination": acct.id})
    assert len([r for r in control(base_url, "requests")["data"]
                if r["path"] == "/v1/transfers"]) == 3
    assert new_transfer(client, acct.id, key="s-2").amount == 1500  # a new key executes


def test_saved_500_after_the_transfer_was_made(client, base_url):
    """`execute`: the transfer exists, but the saved answer under the key is a 500."""
    acct = onboarded_account(client, base_url)
    control(base_url, "balance", {"currency": "usd", "amount": 10_000})
    control(base_url, "fail_next", {"path_prefix": "/v1/transfers", "saved": True,
                                    "execute": True})
    for replay in (False, True):
        with pytest.raises(stripe.APIError) as ei:
            new_transfer(client, acct.id, key="x-1", transfer_group="po_x")
        assert ei.value.http_status == 500
        assert ("idempotent-replayed" in ei.value.headers) is replay
    made = transfers_in_state(base_url)
    assert len(made) == 1 and available(base_url) == 8500
    # the only way to learn the outcome: look the transfer up (by transfer_group)
    found = client.v1.transfers.list(params={"transfer_group": "po_x"}).data
    assert [t.id for t in found] == list(made)
    assert [e.type for e in client.v1.events.list().data].count("transfer.created") == 1


def test_expired_idempotency_key_executes_again(client, base_url):
    """Keys are pruned after 24 hours: a retry with the same key then makes a second transfer."""
    acct = onboarded_account(client, base_url)
    control(base_url, "balance", {"currency": "usd", "amount": 10_000})
    first = new_transfer(client, acct.id, key="late-retry")
    assert control(base_url, "expire_idempotency_keys", {"older_than_seconds": 3600}) == \
        {"expired": 0}
    assert new_transfer(client, acct.id, key="late-retry").id == first.id
    assert "late-retry" in control(base_url, "state")["idempotency_keys"]
    assert control(base_url, "expire_idempotency_keys", {})["expired"] >= 1
    assert control(base_url, "state")["idempotency_keys"] == []
    second = new_transfer(client, acct.id, key="late-retry")
    assert second.id != first.id
    assert "idempotent-replayed" not in second.last_response.headers
    assert len(transfers_in_state(base_url)) == 2 and available(base_url) == 7000


def test_fake_clock_prunes_keys_after_24_hours(client, base_url):
    acct = onboarded_account(client, base_url)
    control(base_url, "balance", {"currency": "usd", "amount": 10_000})
    first = new_transfer(client, acct.id, key="clock-key")
    control(base_url, "clock", {"advance_seconds": 24 * 3600 - 5})
    again = new_transfer(client, acct.id, key="clock-key")
    assert again.id == first.id and again.last_response.headers["idempotent-replayed"] == "true"
    clock = control(base_url, "clock", {"advance_seconds": 10})
    assert clock["offset"] == 24 * 3600 + 5
    later = new_transfer(client, acct.id, key="clock-key")
    assert later.id != first.id
    assert abs(later.created - (first.created + 24 * 3600 + 5)) <= 2  # created follows the clock
    evt = client.v1.events.list(params={"type": "transfer.created", "limit": 1}).data[0]
    assert evt.data.object.id == later.id and abs(evt.created - later.created) <= 1


def test_idempotency_key_longer_than_255_characters(client, base_url):
    acct = onboarded_account(client, base_url)
    control(base_url, "balance", {"currency": "usd", "amount": 10_000})
    with pytest.raises(stripe.InvalidRequestError) as ei:
        new_transfer(client, acct.id, key="k" * 256)
    assert ei.value.http_status == 400
    assert new_transfer(client, acct.id, key="k" * 255).amount == 1500


# --------------------------------------------------------------------------- lists

def test_list_transfers_by_transfer_group_is_exact(client, base_url):
    acct = onboarded_account(client, base_url)
    control(base_url, "balance", {"currency": "usd", "amount": 100_000})
    g1 = [new_transfer(client, acct.id, amount=100 + i, transfer_group="po_1") for i in range(3)]
    new_transfer(client, acct.id, transfer_group="po_10")
    new_transfer(client, acct.id, transfer_group="PO_1")
    new_transfer(client, acct.id)
    page = client.v1.transfers.list(params={"transfer_group": "po_1"})
    assert [t.id for t in page.data] == [t.id for t in reversed(g1)]  # newest first
    page = client.v1.transfers.list(params={"transfer_group": "po_1", "limit": 2})
    assert [t.id for t in page.data] == [g1[2].id, g1[1].id] and page.has_more is True
    nxt = client.v1.transfers.list(params={"transfer_group": "po_1", "limit": 2,
                                           "starting_after": g1[1].id})
    assert [t.id for t in nxt.data] == [g1[0].id] and nxt.has_more is False
    assert client.v1.transfers.list(params={"transfer_group": "po_2"}).data == []
    t = page.data[0]
    assert isinstance(t.created, int) and abs(t.created - time.time()) < 60  # Unix seconds
    control(base_url, "clock", {"advance_seconds": 3600})
    late = new_transfer(client, acct.id, transfer_group="po_1")
    recent = client.v1.transfers.list(params={"transfer_group": "po_1",
                                              "created": {"gte": late.created}})
    assert [x.id for x in recent.data] == [late.id]
    with pytest.raises(stripe.InvalidRequestError) as ei:
        client.v1.transfers.list(params={"limit": 101})
    assert ei.value.param == "limit"


# --------------------------------------------------------------------------- webhook endpoints

def test_connect_events_never_reach_the_platform_endpoint(client, base_url, receiver):
    acct = onboarded_account(client, base_url)
    control(base_url, "balance", {"currency": "usd", "amount": 10_000})
    new_transfer(client, acct.id)
    assert [e.type for e in events_of(receiver, 1, WHSEC)] == ["transfer.created"]
    time.sleep(0.3)
    assert len(receiver.received) == 1
    state = control(base_url, "state")
    updated = [e for e in state["events"] if e["type"] == "account.updated"]
    assert updated and all(e["pending_webhooks"] == 0 and e["account"] == acct.id
                           for e in updated)
    assert state["webhook"]["connect"] is None and state["webhook"]["url"] == receiver.url


def test_legacy_single_endpoint_gets_everything(client, base_url):
    r = Receiver()
    try:
        view = control(base_url, "webhook", {"url": r.url, "secret": WHSEC,
                                             "legacy_single": True})
        assert view["legacy_single"] is True and view["platform"]["url"] == r.url
        onboarded_account(client, base_url)
        types = [e.type for e in events_of(r, 2, WHSEC)]
        assert types == ["capability.updated", "account.updated"]
    finally:
        r.close()


# --------------------------------------------------------------------------- delivery faults

def test_held_events_released_in_reverse_carry_stale_snapshots(client, base_url,
                                                                connect_receiver):
    acct = onboarded_account(client, base_url)
    events_of(connect_receiver, 2, CONNECT_WHSEC)  # onboarding's own events
    control(base_url, "webhook_mode", {"hold": True})
    control(base_url, "clock", {"advance_seconds": 60})
    control(base_url, f"accounts/{acct.id}/disable_transfers")
    control(base_url, "clock", {"advance_seconds": 60})
    control(base_url, f"accounts/{acct.id}/complete_onboarding")
    held = control(base_url, "state")["webhook"]["held"]
    assert [h["type"] for h in held] == ["capability.updated", "account.updated"] * 2
    time.sleep(0.2)
    assert len(connect_receiver.received) == 2  # nothing sent while held
    released = control(base_url, "release", {"order": "reverse"})["released"]
    assert len(released) == 4
    got = events_of(connect_receiver, 6, CONNECT_WHSEC)[2:]
    updates = [e for e in got if e.type == "account.updated"]
    # the newer event (transfers active again) arrives first, the stale one last
    assert [u.data.object.capabilities.transfers for u in updates] == ["active", "inactive"]
    assert updates[0].created > updates[1].created
    assert updates[1].data.object.payouts_enabled is False  # the snapshot at its time
    assert client.v1.accounts.retrieve(acct.id).payouts_enabled is True  # the truth


def test_duplicate_and_shuffled_deliveries(client, base_url, receiver):
    acct = onboarded_account(client, base_url)
    control(base_url, "balance", {"currency": "usd", "amount": 10_000})
    control(base_url, "webhook_mode", {"duplicate": True})
    tr = new_transfer(client, acct.id)
    got = events_of(receiver, 2, WHSEC)
    assert [e.id for e in got] == [got[0].id] * 2 and got[0].data.object.id == tr.id
    control(base_url, "webhook_mode", {"duplicate": False, "hold": True})
    made = [new_transfer(client, acct.id, amount=10 + i) for i in range(4)]
    released = control(base_url, "release", {"order": "shuffle", "seed": 7,
                                             "duplicate": True})["released"]
    assert len(released) == 8
    got = events_of(receiver, 10, WHSEC)[2:]
    ids = [e.data.object.id for e in got]
    assert sorted(ids) == sorted([t.id for t in made] * 2)
    assert control(base_url, "state")["webhook"]["held"] == []
    # hold mode stays on until turned off
    new_transfer(client, acct.id, amount=1)
    assert len(control(base_url, "state")["webhook"]["held"]) == 1
    control(base_url, "webhook_mode", {"hold": False})
    control(base_url, "release", {})
    assert events_of(receiver, 11, WHSEC)[-1].data.object.amount == 1


# --------------------------------------------------------------------------- error codes

def test_rate_limit_and_lock_timeout(client, base_url):
    acct = onboarded_account(client, base_url)
    control(base_url, "balance", {"currency": "usd", "amount": 10_000})
    control(base_url, "fail_next", {"path_prefix": "/v1/transfers", "code": "rate_limit"})
    with pytest.raises(stripe.RateLimitError) as ei:
        new_transfer(client, acct.id, key="rl-1")
    err = ei.value.json_body["error"]
    assert ei.value.http_status == 429 and err["code"] == "rate_limit"
    assert err["type"] == "invalid_request_error"
    assert "retry-after" not in ei.value.headers
    assert "stripe-should-retry" not in ei.value.headers
    # the rate limiter runs before the idempotency layer: the same key executes now
    assert new_transfer(client, acct.id, key="rl-1").amount == 1500

    control(base_url, "fail_next", {"path_prefix": "/v1/transfers", "code": "lock_timeout"})
    with pytest.raises(stripe.RateLimitError) as ei:
        new_transfer(client, acct.id, key="lt-1")
    assert ei.value.json_body["error"]["code"] == "lock_timeout"
    assert ei.value.headers["stripe-should-retry"] == "true"
    control(base_url, "fail_next", {"path_prefix": "/v1/transfers", "code": "lock_timeout"})
    tr = make_client(base_url, retries=1).v1.transfers.create(
        params={"amount": 5, "currency": "usd", "destination": acct.id})
    assert tr.amount == 5  # stripe-python retries a lock timeout

    # before API version 2015-09-08 rate limits were 400s with code rate_limit
    control(base_url, "fail_next", {"path_prefix": "/v1/transfers", "code": "rate_limit",
                                    "status": 400, "retry_after": 2})
    with pytest.raises(stripe.RateLimitError) as ei:
        new_transfer(client, acct.id)
    assert ei.value.http_status == 400 and ei.value.headers["retry-after"] == "2"

    control(base_url, "fail_next", {"path_prefix": "/v1/transfers", "status": 429})
    status, headers, body = raw(base_url, "POST", "/v1/transfers",
                                {"amount": 1, "currency": "usd", "destination": acct.id},
                                {"Authorization": f"Bearer {KEY}"})
    assert status == 429 and body["error"]["code"] == "rate_limit"


def test_amount_too_large(client, base_url):
    acct = onboarded_account(client, base_url)
    control(base_url, "balance", {"currency": "usd", "amount": 10**10})
    with pytest.raises(stripe.InvalidRequestError) as ei:
        new_transfer(client, acct.id, amount=100_000_000)
    assert ei.value.code == "amount_too_large" and ei.value.param == "amount"
    assert new_transfer(client, acct.id, amount=99_999_999).amount == 99_999_999
    assert control(base_url, "config", {"transfer_amount_limit": 5000})[
        "transfer_amount_limit"] == 5000
    with pytest.raises(stripe.InvalidRequestError) as ei:
        new_transfer(client, acct.id, amount=5001, key="big")
    assert ei.value.code == "amount_too_large"
    assert new_transfer(client, acct.id, amount=5000, key="big").amount == 5000  # not saved
    control(base_url, "config", {"transfer_amount_limit": None})
    assert new_transfer(client, acct.id, amount=10**9).amount == 10**9


def test_revoked_api_key(client, base_url):
    assert client.v1.balance.retrieve().object == "balance"
    control(base_url, "revoke_key", {"key": KEY})
    with pytest.raises(stripe.AuthenticationError) as ei:
        client.v1.balance.retrieve()
    assert ei.value.http_status == 401
    assert ei.value.json_body["error"]["code"] == "api_key_expired"
    assert ei.value.user_message.startswith("Expired API Key provided: sk_test_")
    assert "0123456789" not in ei.value.user_message
    other = "sk_test_deleted_key_0000"
    control(base_url, "revoke_key", {"key": other, "reason": "deleted"})
    with pytest.raises(stripe.AuthenticationError) as ei:
        make_client(base_url, key=other).v1.balance.retrieve()
    assert "Invalid API Key provided" in ei.value.user_message
    control(base_url, "reset")
    assert client.v1.balance.retrieve().object == "balance"


def test_injected_business_error_codes(client, base_url):
    acct = onboarded_account(client, base_url)
    control(base_url, "balance", {"currency": "usd", "amount": 10_000})
    control(base_url, "fail_next", {"path_prefix": "/v1/transfers", "saved": True,
                                    "code": "balance_insufficient"})
    with pytest.raises(stripe.InvalidRequestError) as ei:
        new_transfer(client, acct.id, key="inj")
    assert ei.value.http_status == 400 and ei.value.code == "balance_insufficient"
    with pytest.raises(stripe.InvalidRequestError) as ei:
        new_transfer(client, acct.id, key="inj")
    assert ei.value.headers["idempotent-replayed"] == "true"


# --------------------------------------------------------------------------- service agreements

def test_service_agreements_and_cross_border_transfers(client, base_url):
    control(base_url, "balance", {"currency": "usd", "amount": 100_000})
    platform = client.v1.accounts.retrieve_current()
    assert platform.id.startswith("acct_") and platform.country == "US"
    with pytest.raises(stripe.InvalidRequestError) as ei:
        client.v1.accounts.create(params={
            "type": "express", "country": "GB",
            "capabilities": {"card_payments": {"requested": True},
                             "transfers": {"requested": True}},
            "tos_acceptance": {"service_agreement": "recipient"}})
    assert ei.value.param == "tos_acceptance[service_agreement]"

    recipient = client.v1.accounts.create(params={
        "type": "express", "country": "GB", "capabilities": {"transfers": {"requested": True}},
        "tos_acceptance": {"service_agreement": "recipient"}})
    assert recipient.tos_acceptance.service_agreement == "recipient"
    full_gb = client.v1.accounts.create(params={
        "type": "express", "country": "GB", "capabilities": {"transfers": {"requested": True}}})
    assert full_gb.tos_acceptance.service_agreement == "full"
    for a in (recipient, full_gb):
        control(base_url, f"accounts/{a.id}/complete_onboarding")
    assert new_transfer(client, recipient.id).destination == recipient.id
    with pytest.raises(stripe.InvalidRequestError) as ei:
        new_transfer(client, full_gb.id, key="xb")
    assert ei.value.code == "transfers_not_allowed" and ei.value.param == "destination"
    with pytest.raises(stripe.InvalidRequestError) as ei:  # saved under the key
        new_transfer(client, full_gb.id, key="xb")
    assert ei.value.headers["idempotent-replayed"] == "true"
    # accounts default to the platform's country
    us = client.v1.accounts.create(params={"type": "express"})
    assert us.country == "US"

    # a platform in Germany pays a `full` account in France: same region (EEA)
    control(base_url, "config", {"platform_country": "de"})
    assert client.v1.accounts.retrieve_current().country == "DE"
    fr = client.v1.accounts.create(params={
        "type": "express", "country": "FR", "capabilities": {"transfers": {"requested": True}}})
    control(base_url, f"accounts/{fr.id}/complete_onboarding")
    assert new_transfer(client, fr.id).destination == fr.id
    with pytest.raises(stripe.InvalidRequestError) as ei:
        new_transfer(client, full_gb.id)
    assert ei.value.code == "transfers_not_allowed"


def test_card_payments_with_transfers_rule_when_enabled(client, base_url):
    params = {"type": "express", "capabilities": {"transfers": {"requested": True}}}
    assert client.v1.accounts.create(params=params).country == "US"  # off by default
    control(base_url, "config", {"require_card_payments_with_transfers": True})
    with pytest.raises(stripe.InvalidRequestError) as ei:
        client.v1.accounts.create(params=params)
    assert ei.value.param == "capabilities"
    both = client.v1.accounts.create(params={
        "type": "express", "capabilities": {"transfers": {"requested": True},
                                            "card_payments": {"requested": True}}})
    assert both.capabilities.card_payments == "inactive"
    client.v1.accounts.create(params={**params,
                                      "tos_acceptance": {"service_agreement": "recipient"}})


# --------------------------------------------------------------------------- capabilities, deauthorization

def test_capability_changes_are_visible_and_emitted(client, base_url, connect_receiver):
    acct = onboarded_account(client, base_url)
    events_of(connect_receiver, 2, CONNECT_WHSEC)
    control(base_url, f"accounts/{acct.id}/set_capability",
            {"name": "transfers", "status": "pending"})
    assert client.v1.accounts.retrieve(acct.id).capabilities.transfers == "pending"
    cap, upd = events_of(connect_receiver, 4, CONNECT_WHSEC)[2:]
    assert (cap.type, cap.account, cap.data.object.id, cap.data.object.status) == \
        ("capability.updated", acct.id, "transfers", "pending")
    assert cap.data.object.account == acct.id
    assert cap.data.previous_attributes.status == "active"
    assert upd.type == "account.updated"
    assert upd.data.previous_attributes.capabilities.transfers == "active"
    caps = client.v1.accounts.capabilities.list(acct.id)
    assert [(c.id, c.status) for c in caps.data] == [("transfers", "pending")]
    assert client.v1.accounts.capabilities.retrieve(acct.id, "transfers").status == "pending"
    with pytest.raises(stripe.InvalidRequestError) as ei:
        new_transfer(client, acct.id)
    assert ei.value.code == "insufficient_capabilities_for_transfer"


def test_deauthorized_account(client, base_url, connect_receiver):
    acct = onboarded_account(client, base_url)
    control(base_url, "balance", {"currency": "usd", "amount": 10_000})
    events_of(connect_receiver, 2, CONNECT_WHSEC)
    evt = control(base_url, f"accounts/{acct.id}/deauthorize")
    got = events_of(connect_receiver, 3, CONNECT_WHSEC)[2]
    assert got.id == evt["id"] and got.type == "account.application.deauthorized"
    assert got.account == acct.id and got.data.object.object == "application"
    with pytest.raises(stripe.PermissionError) as ei:
        client.v1.accounts.retrieve(acct.id)
    assert ei.value.http_status == 403
    assert ei.value.json_body["error"]["code"] == "account_invalid"
    assert "Application access may have been revoked" in ei.value.user_message
    with pytest.raises(stripe.PermissionError):
        client.v1.balance.retrieve(options={"stripe_account": acct.id})
    with pytest.raises(stripe.InvalidRequestError) as ei:
        new_transfer(client, acct.id)
    assert ei.value.code == "resource_missing" and ei.value.param == "destination"
    assert control(base_url, "state")["deauthorized"] == [acct.id]


# --------------------------------------------------------------------------- transfer events

def test_reversal_and_update_events(client, base_url, receiver):
    acct = onboarded_account(client, base_url)
    control(base_url, "balance", {"currency": "usd", "amount": 10_000})
    tr = new_transfer(client, acct.id, amount=3000)
    client.v1.transfers.reversals.create(tr.id, params={"amount": 1000})
    client.v1.transfers.reversals.create(tr.id)
    updated = client.v1.transfers.update(tr.id, params={"metadata": {"note": "x"}})
    assert updated.metadata["note"] == "x"
    got = events_of(receiver, 4, WHSEC)
    assert [e.type for e in got] == ["transfer.created", "transfer.reversed",
                                     "transfer.reversed", "transfer.updated"]
    assert all("account" not in e for e in got)  # platform events
    partial, full, upd = got[1:]
    assert (partial.data.object.amount_reversed, partial.data.object.reversed) == (1000, False)
    assert partial.data.previous_attributes.amount_reversed == 0
    assert (full.data.object.amount_reversed, full.data.object.reversed) == (3000, True)
    assert upd.data.previous_attributes.metadata.to_dict() == {}
    # no event when nothing changes
    client.v1.transfers.update(tr.id, params={"metadata": {"note": "x"}})
    assert [e.type for e in client.v1.events.list().data].count("transfer.updated") == 1


def test_reversal_needs_the_connected_balance(client, base_url):
    acct = onboarded_account(client, base_url)
    control(base_url, "balance", {"currency": "usd", "amount": 10_000})
    tr = new_transfer(client, acct.id, amount=3000)
    control(base_url, "balance", {"account": acct.id, "currency": "usd", "amount": 500})
    with pytest.raises(stripe.InvalidRequestError) as ei:
        client.v1.transfers.reversals.create(tr.id, params={"amount": 501})
    assert ei.value.code == "balance_insufficient"
    assert client.v1.transfers.reversals.create(tr.id, params={"amount": 500}).amount == 500
    assert available(base_url) == 7500


# --------------------------------------------------------------------------- Stripe-Version

def test_requests_record_the_stripe_version_sent(client, base_url):
    client.v1.balance.retrieve()
    raw(base_url, "GET", "/v1/balance", headers={"Authorization": f"Bearer {KEY}"})
    raw(base_url, "GET", "/v1/balance", headers={"Authorization": f"Bearer {KEY}",
                                                 "Stripe-Version": "2024-06-20"})
    log = control(base_url, "requests")["data"]
    assert [r["stripe_version"] for r in log] == [stripe.api_version, None, "2024-06-20"]


# --------------------------------------------------------------------------- payments

PAYMENT_FIXTURES = json.loads(
    (HERE / "stripe_fake" / "fixtures_payments.json").read_text())["resources"]


def event_types(base_url, ids):
    return [control(base_url, f"events/{i}", method="GET")["type"] for i in ids]


def assert_fixture_keys(obj, kind):
    """The object has every top-level field of Stripe's fixture (the Charge's `refunds` only
    when expanded: not included by default since API 2022-11-15)."""
    data = obj.to_dict() if hasattr(obj, "to_dict") else obj
    expected = set(PAYMENT_FIXTURES[kind]) - set(fake.NOT_INCLUDED_BY_DEFAULT.get(kind, ()))
    missing = expected - set(data)
    assert not missing, f"{kind} lacks {sorted(missing)}"
    assert data["object"] == kind


def is_subsequence(wanted, got):
    it = iter(got)
    return all(w in it for w in wanted)


def test_one_time_checkout_objects_retrieve_and_expand(client, base_url):
    out = control(base_url, "checkout", {"mode": "payment", "amount": 4900, "currency": "usd",
                                         "client_reference_id": "rp_click_1",
                                         "metadata": {"plan": "pro"},
                                         "customer_email": "guest@example.com"})
    assert out["customer"] is None and out["invoice"] is None and out["subscription"] is None
    cs = client.v1.checkout.sessions.retrieve(out["session"]["id"])
    assert cs.client_reference_id == "rp_click_1" and cs.customer is None
    assert cs.customer_details.email == "guest@example.com"
    assert (cs.mode, cs.payment_status, cs.status) == ("payment", "paid", "complete")
    assert cs.amount_total == 4900 and cs.currency == "usd" and cs.metadata["plan"] == "pro"
    assert cs.payment_intent == out["payment_intent"]
    assert_fixture_keys(cs, "checkout.session")

    pi = client.v1.payment_intents.retrieve(
        out["payment_intent"], params={"expand": ["latest_charge.balance_transaction"]})
    assert pi.status == "succeeded" and pi.amount_received == 4900
    assert pi.latest_charge.id == out["charge"]
    bt = pi.latest_charge.balance_transaction
    assert bt.id == out["balance_transaction"] and bt.source == out["charge"]
    assert (bt.amount, bt.currency, bt.type, bt.exchange_rate) == (4900, "usd", "charge", None)
    assert bt.net == bt.amount - bt.fee and bt.fee > 0
    assert_fixture_keys(pi, "payment_intent")
    assert_fixture_keys(bt, "balance_transaction")

    plain = client.v1.payment_intents.retrieve(out["payment_intent"])
    assert plain.latest_charge == out["charge"]
    ch = client.v1.charges.retrieve(out["charge"])
    assert ch.balance_transaction == out["balance_transaction"]
    assert "refunds" not in ch.to_dict() and "invoice" not in ch.to_dict()
    assert ch.payment_intent == out["payment_intent"] and ch.amount_refunded == 0
    assert ch.billing_details.email == "guest@example.com"
    assert_fixture_keys(ch, "charge")
    ch = client.v1.charges.retrieve(out["charge"],
                                    params={"expand": ["balance_transaction", "refunds"]})
    assert ch.balance_transaction.id == out["balance_transaction"]
    assert ch.refunds.object == "list" and ch.refunds.data == []
    assert client.v1.balance_transactions.retrieve(out["balance_transaction"]).amount == 4900

    assert event_types(base_url, out["events"]) == [
        "payment_intent.succeeded", "charge.succeeded", "checkout.session.completed"]
    completed = client.v1.events.retrieve(out["events"][-1])
    assert completed.data.object.id == cs.id and "account" not in completed.to_dict()
    assert_fixture_keys(completed, "event")
    assert_fixture_keys(completed.data.object, "checkout.session")


def test_unknown_payment_objects_and_bad_expand(client, base_url):
    for svc, oid in ((client.v1.customers, "cus_nope"), (client.v1.charges, "ch_nope"),
                     (client.v1.payment_intents, "pi_nope"), (client.v1.invoices, "in_nope"),
                     (client.v1.refunds, "re_nope"), (client.v1.balance_transactions, "txn_x"),
                     (client.v1.checkout.sessions, "cs_test_nope")):
        with pytest.raises(stripe.InvalidRequestError) as e:
            svc.retrieve(oid)
        assert e.value.http_status == 404 and e.value.code == "resource_missing"
    out = control(base_url, "checkout", {"mode": "payment", "amount": 100, "currency": "usd"})
    with pytest.raises(stripe.InvalidRequestError) as e:
        client.v1.charges.retrieve(out["charge"], params={"expand": ["outcome"]})
    assert e.value.param == "expand"


def test_subscription_checkout_and_renewal(client, base_url):
    out = control(base_url, "checkout", {"mode": "subscription", "amount": 2900,
                                         "currency": "usd", "client_reference_id": "rp_2"})
    assert out["customer"].startswith("cus_") and out["subscription"].startswith("sub_")
    assert event_types(base_url, out["events"]) == [
        "customer.created", "customer.subscription.created", "invoice.created",
        "invoice.finalized", "payment_intent.succeeded", "charge.succeeded",
        "invoice_payment.paid", "invoice.paid", "invoice.payment_succeeded",
        "checkout.session.completed"]
    cs = client.v1.checkout.sessions.retrieve(out["session"]["id"])
    assert (cs.subscription, cs.invoice, cs.customer) == (
        out["subscription"], out["invoice"], out["customer"])
    assert cs.payment_intent is None
    inv = client.v1.invoices.retrieve(out["invoice"])
    d = inv.to_dict()
    assert "charge" not in d and "payment_intent" not in d
    assert inv.billing_reason == "subscription_create" and inv.status == "paid"
    assert inv.amount_paid == 2900 and inv.customer == out["customer"]
    assert inv.parent.subscription_details.subscription == out["subscription"]
    assert_fixture_keys(inv, "invoice")
    sub = client.v1.subscriptions.retrieve(out["subscription"])
    assert sub.status == "active" and sub.latest_invoice == out["invoice"]
    assert_fixture_keys(sub, "subscription")
    cus = client.v1.customers.retrieve(out["customer"])
    assert_fixture_keys(cus, "customer")

    by_invoice = client.v1.invoice_payments.list(params={"invoice": out["invoice"]})
    assert [p.payment.payment_intent for p in by_invoice.data] == [out["payment_intent"]]
    assert by_invoice.data[0].status == "paid" and by_invoice.data[0].amount_paid == 2900
    assert_fixture_keys(by_invoice.data[0], "invoice_payment")

    ren = control(base_url, "renew", {"subscription": out["subscription"]})
    assert event_types(base_url, ren["events"]) == [
        "customer.subscription.updated", "invoice.created", "invoice.finalized",
        "payment_intent.succeeded", "charge.succeeded", "invoice_payment.paid",
        "invoice.paid", "invoice.payment_succeeded"]
    inv2 = client.v1.invoices.retrieve(ren["invoice"])
    assert inv2.billing_reason == "subscription_cycle" and inv2.amount_paid == 2900
    by_pi = client.v1.invoice_payments.list(params={
        "payment": {"type": "payment_intent", "payment_intent": ren["payment_intent"]}})
    assert [p.invoice for p in by_pi.data] == [ren["invoice"]]
    by_pi = client.v1.invoice_payments.list(params={
        "payment": {"type": "payment_intent", "payment_intent": ren["payment_intent"]},
        "expand": ["data.invoice"]})
    assert by_pi.data[0].invoice.id == ren["invoice"]
    assert len(client.v1.invoice_payments.list().data) == 2
    zero = control(base_url, "renew", {"subscription": out["subscription"], "amount": 0})
    assert zero["payment_intent"] is None and zero["charge"] is None
    inv3 = client.v1.invoices.retrieve(zero["invoice"])
    assert (inv3.status, inv3.amount_paid) == ("paid", 0)
    assert client.v1.invoice_payments.list(params={"invoice": zero["invoice"]}).data == []


def test_trial_subscription_has_no_first_payment(client, base_url):
    out = control(base_url, "checkout", {"mode": "subscription", "amount": 1500,
                                         "currency": "usd", "trial": True})
    assert out["payment_intent"] is None and out["charge"] is None
    assert out["session"]["payment_status"] == "no_payment_required"
    inv = client.v1.invoices.retrieve(out["invoice"])
    assert (inv.total, inv.amount_paid, inv.status) == (0, 0, "paid")
    assert client.v1.subscriptions.retrieve(out["subscription"]).status == "trialing"
    ren = control(base_url, "renew", {"subscription": out["subscription"]})
    assert client.v1.invoices.retrieve(ren["invoice"]).amount_paid == 1500
    assert client.v1.subscriptions.retrieve(out["subscription"]).status == "active"


def test_refunds_partial_then_full(client, base_url):
    out = control(base_url, "checkout", {"mode": "payment", "amount": 1000, "currency": "usd"})
    re1 = client.v1.refunds.create(params={"charge": out["charge"], "amount": 300,
                                           "reason": "requested_by_customer"})
    assert (re1.status, re1.amount, re1.payment_intent) == ("succeeded", 300,
                                                            out["payment_intent"])
    assert_fixture_keys(re1, "refund")
    ch = client.v1.charges.retrieve(out["charge"])
    assert (ch.amount_refunded, ch.refunded) == (300, False)
    rbt = client.v1.balance_transactions.retrieve(re1.balance_transaction)
    assert (rbt.amount, rbt.type, rbt.source) == (-300, "refund", re1.id)
    with pytest.raises(stripe.InvalidRequestError) as e:
        client.v1.refunds.create(params={"charge": out["charge"], "amount": 701})
    assert e.value.http_status == 400 and e.value.param == "amount"
    re2 = client.v1.refunds.create(params={"payment_intent": out["payment_intent"]})
    assert re2.amount == 700 and re2.charge == out["charge"]
    ch = client.v1.charges.retrieve(out["charge"], params={"expand": ["refunds"]})
    assert (ch.amount_refunded, ch.refunded) == (1000, True)
    assert [r.id for r in ch.refunds.data] == [re2.id, re1.id]
    with pytest.raises(stripe.InvalidRequestError) as e:
        client.v1.refunds.create(params={"charge": out["charge"], "amount": 1})
    assert e.value.code == "charge_already_refunded"
    listed = client.v1.refunds.list(params={"charge": out["charge"]})
    assert [r.id for r in listed.data] == [re2.id, re1.id]
    assert [r.id for r in client.v1.refunds.list(
        params={"payment_intent": out["payment_intent"], "limit": 1}).data] == [re2.id]
    assert client.v1.refunds.retrieve(re1.id).amount == 300
    types = [e.type for e in client.v1.events.list(params={"limit": 100}).data][::-1]
    assert types[-4:] == ["refund.created", "charge.refunded", "refund.created",
                          "charge.refunded"]
    refunded = client.v1.events.list(params={"type": "charge.refunded"}).data[0]
    assert refunded.data.object.amount_refunded == 1000
    assert "refunds" not in refunded.data.object.to_dict()
    assert refunded.data.previous_attributes.to_dict() == {"amount_refunded": 300,
                                                           "refunded": False}
    with pytest.raises(stripe.InvalidRequestError) as e:
        client.v1.refunds.create(params={"charge": "ch_nope"})
    assert e.value.code == "resource_missing" and e.value.param == "charge"
    with pytest.raises(stripe.InvalidRequestError) as e:
        client.v1.refunds.create(params={})
    assert e.value.code == "parameter_missing"


def test_pending_refund_moves_by_control(client, base_url):
    out = control(base_url, "checkout", {"mode": "payment", "amount": 800, "currency": "usd"})
    control(base_url, "refund_next", {"status": "pending"})
    re_ = client.v1.refunds.create(params={"charge": out["charge"]})
    assert re_.status == "pending"
    moved = control(base_url, "refund_status", {"refund": re_.id, "status": "succeeded"})
    assert event_types(base_url, moved["events"]) == ["refund.updated",
                                                      "charge.refund.updated"]
    assert client.v1.refunds.retrieve(re_.id).status == "succeeded"
    evt = client.v1.events.retrieve(moved["events"][0])
    assert evt.data.previous_attributes.status == "pending"

    out = control(base_url, "checkout", {"mode": "payment", "amount": 500, "currency": "usd"})
    control(base_url, "refund_next", {"status": "pending"})
    re_ = client.v1.refunds.create(params={"charge": out["charge"], "amount": 200})
    assert client.v1.charges.retrieve(out["charge"]).amount_refunded == 200
    failed = control(base_url, "refund_status", {"refund": re_.id, "status": "failed"})
    assert event_types(base_url, failed["events"]) == ["refund.updated",
                                                       "charge.refund.updated",
                                                       "refund.failed"]
    assert client.v1.charges.retrieve(out["charge"]).amount_refunded == 0
    re_ = client.v1.refunds.retrieve(re_.id)
    assert re_.status == "failed" and re_.failure_balance_transaction.startswith("txn_")


def test_foreign_currency_balance_transactions(client, base_url):
    out = control(base_url, "checkout", {"mode": "payment", "amount": 5000, "currency": "eur",
                                         "exchange_rate": 1.08})
    bt = client.v1.balance_transactions.retrieve(out["balance_transaction"])
    assert (bt.amount, bt.currency, bt.exchange_rate) == (5400, "usd", 1.08)
    assert bt.net == 5400 - bt.fee
    ch = client.v1.charges.retrieve(out["charge"])
    assert (ch.amount, ch.currency) == (5000, "eur")
    re_ = client.v1.refunds.create(params={"charge": out["charge"], "amount": 1000})
    rbt = client.v1.balance_transactions.retrieve(re_.balance_transaction)
    assert (rbt.amount, rbt.currency) == (-1080, "usd")
    gbp = control(base_url, "checkout", {"mode": "subscription", "amount": 999,
                                         "currency": "gbp", "settlement_currency": "gbp"})
    bt = client.v1.balance_transactions.retrieve(gbp["balance_transaction"])
    assert (bt.amount, bt.currency, bt.exchange_rate) == (999, "gbp", None)
    with pytest.raises(urllib.error.HTTPError) as e:
        control(base_url, "checkout", {"mode": "payment", "amount": 5, "currency": "eur"})
    assert e.value.code == 400
    sub = control(base_url, "checkout", {"mode": "subscription", "amount": 1000,
                                         "currency": "eur", "exchange_rate": 1.1})
    ren = control(base_url, "renew", {"subscription": sub["subscription"],
                                      "exchange_rate": 1.2})
    assert client.v1.balance_transactions.retrieve(ren["balance_transaction"]).amount == 1200


def test_customers_create_update_events(client, base_url):
    cus = client.v1.customers.create(params={"email": "a@example.com", "name": "Ann",
                                             "metadata": {"k": "v"}})
    assert_fixture_keys(cus, "customer")
    cus = client.v1.customers.update(cus.id, params={"email": "b@example.com",
                                                     "metadata": {"x": "1"}})
    assert cus.email == "b@example.com" and cus.metadata.to_dict() == {"k": "v", "x": "1"}
    events = client.v1.events.list(params={"types": ["customer.created",
                                                     "customer.updated"]}).data
    assert [e.type for e in events] == ["customer.updated", "customer.created"]
    assert events[0].data.previous_attributes.to_dict() == {"email": "a@example.com",
                                                            "metadata": {"x": None}}
    assert events[1].data.object.email == "a@example.com"
    client.v1.customers.update(cus.id, params={"name": "Ann"})  # no change: no event
    assert len(client.v1.events.list(params={"type": "customer.updated"}).data) == 1
    with pytest.raises(stripe.InvalidRequestError) as e:
        client.v1.customers.create(params={"email": "nope"})
    assert e.value.code == "email_invalid"
    out = control(base_url, "checkout", {"mode": "payment", "amount": 100, "currency": "usd",
                                         "customer": cus.id})
    assert out["session"]["customer"] == cus.id
    assert out["session"]["customer_details"]["email"] == "b@example.com"
    assert client.v1.charges.retrieve(out["charge"]).customer == cus.id


def test_async_payment_checkout(client, base_url):
    out = control(base_url, "checkout", {"mode": "payment", "amount": 2500, "currency": "usd",
                                         "payment_status": "unpaid", "create_customer": True})
    assert out["session"]["payment_status"] == "unpaid" and out["charge"] is None
    assert event_types(base_url, out["events"]) == [
        "customer.created", "payment_intent.processing", "checkout.session.completed"]
    assert client.v1.payment_intents.retrieve(out["payment_intent"]).status == "processing"
    done = control(base_url, "async_payment", {"session": out["session"]["id"],
                                               "succeeded": True})
    assert event_types(base_url, done["events"]) == [
        "payment_intent.succeeded", "charge.succeeded",
        "checkout.session.async_payment_succeeded"]
    assert client.v1.checkout.sessions.retrieve(out["session"]["id"]).payment_status == "paid"
    pi = client.v1.payment_intents.retrieve(out["payment_intent"],
                                            params={"expand": ["latest_charge"]})
    assert pi.latest_charge.id == done["charge"]
    other = control(base_url, "checkout", {"mode": "payment", "amount": 100, "currency": "usd",
                                           "payment_status": "unpaid"})
    failed = control(base_url, "async_payment", {"session": other["session"]["id"],
                                                 "succeeded": False})
    assert event_types(base_url, failed["events"]) == [
        "payment_intent.payment_failed", "checkout.session.async_payment_failed"]


def test_payment_events_are_delivered_as_platform_events(client, base_url, receiver):
    out = control(base_url, "checkout", {"mode": "payment", "amount": 100, "currency": "usd"})
    got = events_of(receiver, 3, WHSEC)
    assert [e["id"] for e in got] == out["events"]
    assert all("account" not in e for e in got)
    body = control(base_url, f"events/{out['events'][-1]}", method="GET")
    signed = control(base_url, "sign", {"payload": body})
    evt = stripe.Webhook.construct_event(signed["payload"], signed["header"], WHSEC)
    assert evt.type == "checkout.session.completed"


def test_refund_idempotent_replay(client, base_url):
    out = control(base_url, "checkout", {"mode": "payment", "amount": 600, "currency": "usd"})
    first = client.v1.refunds.create(params={"charge": out["charge"], "amount": 100},
                                     options={"idempotency_key": "refund-once"})
    again = client.v1.refunds.create(params={"charge": out["charge"], "amount": 100},
                                     options={"idempotency_key": "refund-once"})
    assert again.id == first.id
    assert client.v1.charges.retrieve(out["charge"]).amount_refunded == 100
    state = control(base_url, "state")
    assert state["payments"]["refund"] == [first.id]
    assert state["payments"]["charge"] == [out["charge"]]
