#!/usr/bin/env python3
"""A Stripe-compatible test server for Refport (standard library only, Python 3.11).

Models the slice of the Stripe v1 API that Refport uses (Connect Express accounts, account links,
balance, transfers, transfer reversals, events and signed webhooks), Stripe's idempotency rules and
error shapes, plus `/_control/*` endpoints for tests (fault injection, state inspection).

    python3 tests/stripe_fake/server.py --port 12111 [--api-key sk_test_x]
                                        [--webhook-url URL --webhook-secret whsec_x]

In-process:  server, thread, base_url = start(port=0); ...; stop(server)
See README.md beside this file for what is and is not modelled.
"""
from __future__ import annotations

import argparse
import base64
import binascii
import copy
import hashlib
import hmac
import ipaddress
import json
import os
import queue
import re
import secrets
import string
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

API_VERSION = "2026-10-28.endive"
HOST = "127.0.0.1"
_ALNUM = string.ascii_letters + string.digits
LINK_TTL = 300  # Stripe account links expire after a few minutes


def new_id(prefix: str, n: int = 24) -> str:
    """Stripe-like id: prefix + '1' + random alphanumerics, n characters after the prefix."""
    return prefix + "1" + "".join(secrets.choice(_ALNUM) for _ in range(n - 1))


def new_request_id() -> str:
    return "req_" + "".join(secrets.choice(_ALNUM) for _ in range(14))


def api_key_from(auth: str) -> str:
    """Stripe takes the key as a Bearer token or as the Basic auth user name (`-u sk_...:`)."""
    scheme, _, value = auth.strip().partition(" ")
    if scheme.lower() == "bearer":
        return value.strip()
    if scheme.lower() == "basic":
        try:
            return base64.b64decode(value.strip()).decode("utf-8").partition(":")[0]
        except (binascii.Error, UnicodeDecodeError):
            return ""
    return ""


def check_loopback(url: str) -> str:
    """Webhook targets must be on this machine (the fake never sends traffic elsewhere)."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if parts.scheme not in ("http", "https") or not (
            host == "localhost" or ipaddress.ip_address(host).is_loopback):
        raise ValueError(f"webhook url must be http(s) on the loopback interface: {url}")
    return url


def now() -> int:
    return int(time.time())


def mask_key(key: str) -> str:
    if len(key) <= 12:
        return key[:3] + "*" * max(0, len(key) - 3)
    prefix = key[: key.index("_", 3) + 1] if key.count("_") >= 2 else key[:3]
    return prefix + "*" * (len(key) - len(prefix) - 4) + key[-4:]


def sign_payload(payload: str, secret: str, timestamp: int | None = None) -> str:
    """Stripe-Signature header value: t=..,v1=hex(HMAC-SHA256(secret, f"{t}.{payload}"))."""
    t = now() if timestamp is None else int(timestamp)
    mac = hmac.new(secret.encode("utf-8"), f"{t}.{payload}".encode("utf-8"), hashlib.sha256)
    return f"t={t},v1={mac.hexdigest()}"


# --------------------------------------------------------------------------- errors and params

class StripeError(Exception):
    """An API error. `stored` = whether the idempotency layer saves it (Stripe saves the result
    once an endpoint began executing; parameter validation failures are not saved)."""

    def __init__(self, status, type_, message, code=None, param=None, stored=True, headers=None):
        super().__init__(message)
        self.status, self.type, self.message = status, type_, message
        self.code, self.param, self.stored = code, param, stored
        self.headers = headers or {}

    def body(self) -> dict:
        err = {"type": self.type, "message": self.message}
        if self.code is not None:
            err["code"] = self.code
        if self.param is not None:
            err["param"] = self.param
        if self.code:
            err["doc_url"] = f"https://stripe.com/docs/error-codes/{self.code.replace('_', '-')}"
        return {"error": err}


def invalid(message, param=None, code=None, stored=False, status=400):
    return StripeError(status, "invalid_request_error", message, code, param, stored)


def missing(param):
    return invalid(f"Missing required param: {param}.", param, "parameter_missing")


def no_such(kind, obj_id, param="id", status=404):
    return StripeError(status, "invalid_request_error", f"No such {kind}: '{obj_id}'",
                       "resource_missing", param)


def parse_form(body: str) -> dict:
    """Parse x-www-form-urlencoded with bracketed keys into nested dicts/lists."""
    root: dict = {}
    for key, value in urllib.parse.parse_qsl(body, keep_blank_values=True):
        m = re.match(r"^([^\[]+)((?:\[[^\]]*\])*)$", key)
        parts = [key] if not m else [m.group(1)] + re.findall(r"\[([^\]]*)\]", m.group(2))
        node = root
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            if part == "":  # a[]=x -> append
                part = str(sum(1 for k in node if k.isdigit())) if isinstance(node, dict) else "0"
            if last:
                node[part] = value
            else:
                nxt = node.get(part)
                if not isinstance(nxt, dict):
                    nxt = node[part] = {}
                node = nxt
    return _listify(root)


def _listify(node):
    if isinstance(node, dict):
        node = {k: _listify(v) for k, v in node.items()}
        if node and all(k.isdigit() for k in node):
            return [node[k] for k in sorted(node, key=int)]
    return node


def check_known(params: dict, allowed: set[str]):
    for k in params:
        if k not in allowed:
            raise invalid(f"Received unknown parameter: {k}", k, "parameter_unknown")


def parse_int(params, name, required=False, minimum=None, maximum=None, default=None):
    raw = params.get(name)
    if raw is None or raw == "":
        if required:
            raise missing(name)
        return default
    if not isinstance(raw, str) or not re.fullmatch(r"-?\d+", raw):
        raise invalid(f"Invalid integer: {raw}", name, "parameter_invalid_integer")
    val = int(raw)
    if minimum is not None and val < minimum:
        raise invalid(f"This value must be greater than or equal to {minimum}.", name,
                      "parameter_invalid_integer")
    if maximum is not None and val > maximum:
        raise invalid(f"This value must be less than or equal to {maximum}.", name,
                      "parameter_invalid_integer")
    return val


def parse_str(params, name, required=False):
    raw = params.get(name)
    if raw is None or raw == "":
        if required:
            raise missing(name)
        return None
    if not isinstance(raw, str):
        raise invalid(f"Invalid string: {json.dumps(raw)}", name, "parameter_invalid_string")
    return raw


def parse_currency(params):
    cur = parse_str(params, "currency", required=True).lower()
    if not re.fullmatch(r"[a-z]{3}", cur):
        raise invalid(f"Invalid currency: {cur}. Stripe currently supports these currencies: "
                      "usd, eur, gbp, ...", "currency")
    return cur


def parse_metadata(params, existing=None) -> dict:
    md = dict(existing or {})
    raw = params.get("metadata")
    if raw is None or raw == "":
        return md
    if not isinstance(raw, dict):
        raise invalid("Invalid object", "metadata")
    for k, v in raw.items():
        if not isinstance(v, str):
            raise invalid(f"Invalid value for metadata[{k}]: must be a string", f"metadata[{k}]")
        if len(k) > 40:
            raise invalid("Metadata keys can have a maximum length of 40 characters.",
                          f"metadata[{k}]")
        if len(v) > 500:
            raise invalid("Metadata values can have a maximum length of 500 characters.",
                          f"metadata[{k}]")
        if v == "":
            md.pop(k, None)  # Stripe: empty value unsets the key
        else:
            md[k] = v
    if len(md) > 50:
        raise invalid("You can have at most 50 metadata keys.", "metadata")
    return md


def check_url(params, name):
    url = parse_str(params, name, required=True)
    p = urllib.parse.urlparse(url)
    if p.scheme not in ("http", "https") or not p.netloc:
        raise invalid("Not a valid URL", name, "url_invalid")
    return url


def paginate(items: list, query: dict, url: str) -> dict:
    """items newest-first; Stripe cursor pagination (limit, starting_after, ending_before)."""
    limit = parse_int(query, "limit", minimum=1, maximum=100, default=10)
    after, before = query.get("starting_after"), query.get("ending_before")
    ids = [o["id"] for o in items]
    if after:
        if after not in ids:
            raise no_such("object", after, "starting_after", 400)
        page = items[ids.index(after) + 1:]
        data, has_more = page[:limit], len(page) > limit
    elif before:
        if before not in ids:
            raise no_such("object", before, "ending_before", 400)
        page = items[: ids.index(before)]
        data, has_more = page[-limit:], len(page) > limit
    else:
        data, has_more = items[:limit], len(items) > limit
    return {"object": "list", "data": data, "has_more": has_more, "url": url}


# --------------------------------------------------------------------------- object builders

def account_object(acct_id, email, type_, country, metadata, capabilities, business_type):
    requirements = ["business_profile.mcc", "business_profile.url", "external_account",
                    "individual.dob.day", "tos_acceptance.date", "tos_acceptance.ip"]
    return {
        "id": acct_id, "object": "account",
        "business_profile": {"annual_revenue": None, "estimated_worker_count": None, "mcc": None,
                             "name": None, "product_description": None, "support_address": None,
                             "support_email": None, "support_phone": None, "support_url": None,
                             "url": None},
        "business_type": business_type,
        "capabilities": capabilities,
        "charges_enabled": False,
        "controller": ({"fees": {"payer": "application"}, "is_controller": True,
                        "losses": {"payments": "application"},
                        "requirement_collection": "stripe",
                        "stripe_dashboard": {"type": "express"}, "type": "application"}
                       if type_ == "express" else {"type": "account"}),
        "country": country, "created": now(), "default_currency": "usd",
        "details_submitted": False, "email": email,
        "external_accounts": {"object": "list", "data": [], "has_more": False, "total_count": 0,
                              "url": f"/v1/accounts/{acct_id}/external_accounts"},
        "future_requirements": {"alternatives": [], "current_deadline": None,
                                "currently_due": [], "disabled_reason": None, "errors": [],
                                "eventually_due": [], "past_due": [],
                                "pending_verification": []},
        "metadata": metadata,
        "payouts_enabled": False,
        "requirements": {"alternatives": [], "current_deadline": None,
                         "currently_due": list(requirements),
                         "disabled_reason": "requirements.past_due", "errors": [],
                         "eventually_due": list(requirements), "past_due": list(requirements),
                         "pending_verification": []},
        "settings": {"dashboard": {"display_name": None, "timezone": "Etc/UTC"},
                     "payouts": {"debit_negative_balances": True,
                                 "schedule": {"delay_days": 2, "interval": "daily"},
                                 "statement_descriptor": None}},
        "tos_acceptance": {"date": None, "ip": None, "user_agent": None},
        "type": type_,
    }


# --------------------------------------------------------------------------- state

class FakeStripe:
    """All API state, guarded by one lock. HTTP concerns live in Handler."""

    def __init__(self, api_key=None, webhook_url=None, webhook_secret=None):
        self.api_key = api_key
        if webhook_url:
            check_loopback(webhook_url)
        self.default_webhook = (webhook_url, webhook_secret)
        self.base_url = ""
        self.lock = threading.RLock()
        self.deliveries_q: "queue.Queue" = queue.Queue()
        threading.Thread(target=self._delivery_worker, daemon=True).start()
        self.reset()

    def reset(self):
        with self.lock:
            self.accounts: dict[str, dict] = {}
            self.transfers: dict[str, dict] = {}
            self.events: list[dict] = []  # oldest first
            self.balance: dict[str, int] = {}
            self.connected_balance: dict[str, dict[str, int]] = {}
            self.links: dict[str, dict] = {}
            self.idem: dict[tuple, dict] = {}
            self.faults: list[dict] = []
            self.requests: list[dict] = []
            self.deliveries: list[dict] = []
            self.webhook_url, self.webhook_secret = self.default_webhook

    # ---- events and webhooks
    def emit(self, type_, obj, account=None, previous=None, request_id=None, idem_key=None):
        with self.lock:
            data = {"object": copy.deepcopy(obj)}
            if previous is not None:
                data["previous_attributes"] = previous
            evt = {"id": new_id("evt_"), "object": "event", "api_version": API_VERSION,
                   "created": now(), "data": data, "livemode": False,
                   "pending_webhooks": 1 if self.webhook_url else 0,
                   "request": {"id": request_id, "idempotency_key": idem_key}, "type": type_}
            if account:
                evt["account"] = account
            self.events.append(evt)
            self.deliver(evt)
            return evt

    def deliver(self, evt):
        """Queue one delivery of evt (a snapshot of its JSON) to the current webhook target."""
        with self.lock:
            if self.webhook_url:
                self.deliveries_q.put((evt, json.dumps(evt, indent=2), self.webhook_url,
                                       self.webhook_secret))

    def _delivery_worker(self):
        while True:
            evt, payload, url, secret = self.deliveries_q.get()
            header = sign_payload(payload, secret or "")
            rec = {"event_id": evt["id"], "type": evt["type"], "url": url, "signature": header,
                   "attempted_at": time.time(), "status": None, "error": None}
            try:
                req = urllib.request.Request(url, data=payload.encode(), method="POST", headers={
                    "Content-Type": "application/json; charset=utf-8",
                    "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
                    "Stripe-Signature": header})
                with urllib.request.urlopen(req, timeout=10) as resp:
                    rec["status"] = resp.status
            except urllib.error.HTTPError as e:
                rec["status"] = e.code
            except Exception as e:  # noqa: BLE001 - recorded for inspection
                rec["error"] = f"{type(e).__name__}: {e}"
            with self.lock:
                self.deliveries.append(rec)
                if rec["status"] and 200 <= rec["status"] < 300:
                    evt["pending_webhooks"] = max(0, evt["pending_webhooks"] - 1)

    # ---- accounts
    def get_account(self, acct_id, param="id", status=404):
        acct = self.accounts.get(acct_id)
        if acct is None:
            raise no_such("account", acct_id, param, status)
        return acct

    def complete_onboarding(self, acct_id):
        with self.lock:
            acct = self.get_account(acct_id)
            prev = {"capabilities": dict(acct["capabilities"]),
                    "charges_enabled": acct["charges_enabled"],
                    "details_submitted": acct["details_submitted"],
                    "payouts_enabled": acct["payouts_enabled"],
                    "requirements": copy.deepcopy(acct["requirements"])}
            caps = {k: "active" for k in acct["capabilities"]}
            caps["transfers"] = "active"
            acct.update(capabilities=caps, charges_enabled=True, details_submitted=True,
                        payouts_enabled=True,
                        tos_acceptance={"date": now(), "ip": "127.0.0.1", "user_agent": None})
            acct["requirements"].update(currently_due=[], eventually_due=[], past_due=[],
                                        disabled_reason=None)
            self.emit("account.updated", acct, account=acct_id, previous=prev)
            return acct

    def disable_transfers(self, acct_id):
        with self.lock:
            acct = self.get_account(acct_id)
            prev = {"capabilities": dict(acct["capabilities"]),
                    "payouts_enabled": acct["payouts_enabled"]}
            acct["capabilities"]["transfers"] = "inactive"
            acct["payouts_enabled"] = False
            acct["requirements"].update(currently_due=["external_account"],
                                        past_due=["external_account"],
                                        disabled_reason="requirements.past_due")
            self.emit("account.updated", acct, account=acct_id, previous=prev)
            return acct

    # ---- balance
    def balance_object(self, account=None):
        bal = self.connected_balance.get(account, {}) if account else self.balance
        bal = bal or {"usd": 0}
        return {"object": "balance", "livemode": False,
                "available": [{"amount": a, "currency": c, "source_types": {"card": a}}
                              for c, a in sorted(bal.items())],
                "connect_reserved": [{"amount": 0, "currency": c} for c in sorted(bal)],
                "pending": [{"amount": 0, "currency": c, "source_types": {"card": 0}}
                            for c in sorted(bal)]}


# --------------------------------------------------------------------------- API endpoints

class Ctx:
    def __init__(self, fake, method, path, params, api_key, request_id, idem_key, account):
        self.fake, self.method, self.path, self.params = fake, method, path, params
        self.api_key, self.request_id, self.idem_key = api_key, request_id, idem_key
        self.stripe_account = account


EXPAND = {"expand"}


def create_account(ctx, m):
    p, f = ctx.params, ctx.fake
    check_known(p, EXPAND | {"type", "email", "country", "capabilities", "metadata",
                             "business_type", "business_profile", "controller",
                             "default_currency", "settings", "tos_acceptance", "individual",
                             "company"})
    type_ = parse_str(p, "type") or "standard"
    if type_ not in ("custom", "express", "standard"):
        raise invalid("Invalid type: must be one of custom, express, or standard", "type")
    caps = {}
    raw_caps = p.get("capabilities") or {}
    if not isinstance(raw_caps, dict):
        raise invalid("Invalid object", "capabilities")
    for name, spec in raw_caps.items():
        if not isinstance(spec, dict) or "requested" not in spec:
            raise missing(f"capabilities[{name}][requested]")
        if spec["requested"] not in ("true", "false"):
            raise invalid(f"Invalid boolean: {spec['requested']}",
                          f"capabilities[{name}][requested]")
        if spec["requested"] == "true":
            caps[name] = "inactive"
    email = parse_str(p, "email")
    if email is not None and "@" not in email:
        raise invalid(f"Invalid email address: {email}", "email", "email_invalid")
    metadata = parse_metadata(p)
    with f.lock:
        acct = account_object(new_id("acct_", 16), email, type_,
                              (parse_str(p, "country") or "US").upper(), metadata, caps,
                              parse_str(p, "business_type"))
        f.accounts[acct["id"]] = acct
        return 200, copy.deepcopy(acct)


def retrieve_account(ctx, m):
    check_known(ctx.params, EXPAND)
    with ctx.fake.lock:
        return 200, copy.deepcopy(ctx.fake.get_account(m["id"]))


def create_account_link(ctx, m):
    p, f = ctx.params, ctx.fake
    check_known(p, EXPAND | {"account", "refresh_url", "return_url", "type", "collect",
                             "collection_options"})
    acct_id = parse_str(p, "account", required=True)
    type_ = parse_str(p, "type", required=True)
    if type_ not in ("account_onboarding", "account_update"):
        raise invalid("Invalid type: must be one of account_onboarding or account_update",
                      "type")
    refresh_url, return_url = check_url(p, "refresh_url"), check_url(p, "return_url")
    with f.lock:
        f.get_account(acct_id, "account", 400)
        token = "".join(secrets.choice(_ALNUM) for _ in range(12))
        created = now()
        f.links[token] = {"account": acct_id, "refresh_url": refresh_url,
                          "return_url": return_url, "expires_at": created + LINK_TTL,
                          "used": False, "type": type_}
        return 200, {"object": "account_link", "created": created,
                     "expires_at": created + LINK_TTL,
                     "url": f"{f.base_url}/connect/onboarding/{token}"}


def create_login_link(ctx, m):
    check_known(ctx.params, EXPAND)
    with ctx.fake.lock:
        acct = ctx.fake.get_account(m["id"], "account")
        if acct["type"] != "express" or not acct["details_submitted"]:
            raise invalid("Cannot create a login link for an account that has not completed "
                          "onboarding.", "account", stored=True)
        token = "".join(secrets.choice(_ALNUM) for _ in range(12))
        return 200, {"object": "login_link", "created": now(),
                     "url": f"{ctx.fake.base_url}/express/{acct['id']}/{token}"}


def retrieve_balance(ctx, m):
    check_known(ctx.params, EXPAND)
    with ctx.fake.lock:
        return 200, ctx.fake.balance_object(ctx.stripe_account)


def create_transfer(ctx, m):
    p, f = ctx.params, ctx.fake
    check_known(p, EXPAND | {"amount", "currency", "destination", "transfer_group", "metadata",
                             "description", "source_transaction", "source_type"})
    amount = parse_int(p, "amount", required=True, minimum=1)
    currency = parse_currency(p)
    dest = parse_str(p, "destination", required=True)
    metadata = parse_metadata(p)
    group, desc = parse_str(p, "transfer_group"), parse_str(p, "description")
    with f.lock:
        acct = f.accounts.get(dest)
        if acct is None:
            raise no_such("destination", dest, "destination", 400)
        if acct["capabilities"].get("transfers") != "active":
            raise invalid("Your destination account needs to have at least one of the following "
                          "capabilities enabled: transfers, crypto_transfers, legacy_payments",
                          "destination", "insufficient_capabilities_for_transfer", stored=True)
        if f.balance.get(currency, 0) < amount:
            raise invalid("You have insufficient available funds in your Stripe account. Try "
                          "adding funds directly to your available balance by creating Charges "
                          "using the 4000000000000077 test card. See: "
                          "https://stripe.com/docs/testing#available-balance",
                          None, "balance_insufficient", stored=True)
        f.balance[currency] -= amount
        cb = f.connected_balance.setdefault(dest, {})
        cb[currency] = cb.get(currency, 0) + amount
        tr_id = new_id("tr_")
        tr = {"id": tr_id, "object": "transfer", "amount": amount, "amount_reversed": 0,
              "balance_transaction": new_id("txn_"), "created": now(), "currency": currency,
              "description": desc, "destination": dest, "destination_payment": new_id("py_"),
              "livemode": False, "metadata": metadata,
              "reversals": {"object": "list", "data": [], "has_more": False, "total_count": 0,
                            "url": f"/v1/transfers/{tr_id}/reversals"},
              "reversed": False, "source_transaction": parse_str(p, "source_transaction"),
              "source_type": parse_str(p, "source_type") or "card", "transfer_group": group}
        f.transfers[tr_id] = tr
        f.emit("transfer.created", tr, request_id=ctx.request_id, idem_key=ctx.idem_key)
        return 200, copy.deepcopy(tr)


def get_transfer(f, tr_id, param="id"):
    tr = f.transfers.get(tr_id)
    if tr is None:
        raise no_such("transfer", tr_id, param)
    return tr


def retrieve_transfer(ctx, m):
    check_known(ctx.params, EXPAND)
    with ctx.fake.lock:
        return 200, copy.deepcopy(get_transfer(ctx.fake, m["id"]))


def list_transfers(ctx, m):
    q = ctx.params
    check_known(q, EXPAND | {"destination", "transfer_group", "limit", "starting_after",
                             "ending_before", "created"})
    with ctx.fake.lock:
        items = sorted(ctx.fake.transfers.values(), key=lambda t: t["created"], reverse=True)
        items = [t for t in items
                 if (not q.get("destination") or t["destination"] == q["destination"])
                 and (not q.get("transfer_group") or t["transfer_group"] == q["transfer_group"])]
        return 200, copy.deepcopy(paginate(items, q, "/v1/transfers"))


def create_reversal(ctx, m):
    p, f = ctx.params, ctx.fake
    check_known(p, EXPAND | {"amount", "description", "metadata", "refund_application_fee"})
    amount = parse_int(p, "amount", minimum=1)
    metadata = parse_metadata(p)
    with f.lock:
        tr = get_transfer(f, m["id"])
        remaining = tr["amount"] - tr["amount_reversed"]
        if remaining <= 0:
            raise invalid(f"Transfer {tr['id']} has already been fully reversed.", "amount",
                          stored=True)
        if amount is None:
            amount = remaining
        if amount > remaining:
            raise invalid(f"Amount ({amount}) is greater than the unreversed amount remaining "
                          f"on the transfer ({remaining}).", "amount", stored=True)
        prev = {"amount_reversed": tr["amount_reversed"], "reversed": tr["reversed"]}
        rev = {"id": new_id("trr_"), "object": "transfer_reversal", "amount": amount,
               "balance_transaction": new_id("txn_"), "created": now(),
               "currency": tr["currency"], "destination_payment_refund": new_id("pyr_"),
               "metadata": metadata, "source_refund": None, "transfer": tr["id"]}
        tr["amount_reversed"] += amount
        tr["reversed"] = tr["amount_reversed"] >= tr["amount"]
        tr["reversals"]["data"].insert(0, rev)
        tr["reversals"]["total_count"] += 1
        f.balance[tr["currency"]] = f.balance.get(tr["currency"], 0) + amount
        cb = f.connected_balance.setdefault(tr["destination"], {})
        cb[tr["currency"]] = cb.get(tr["currency"], 0) - amount
        f.emit("transfer.reversed", tr, previous=prev, request_id=ctx.request_id,
               idem_key=ctx.idem_key)
        return 200, copy.deepcopy(rev)


def list_reversals(ctx, m):
    check_known(ctx.params, EXPAND | {"limit", "starting_after", "ending_before"})
    with ctx.fake.lock:
        tr = get_transfer(ctx.fake, m["id"])
        return 200, copy.deepcopy(paginate(tr["reversals"]["data"], ctx.params,
                                           f"/v1/transfers/{tr['id']}/reversals"))


def retrieve_reversal(ctx, m):
    check_known(ctx.params, EXPAND)
    with ctx.fake.lock:
        tr = get_transfer(ctx.fake, m["id"])
        for rev in tr["reversals"]["data"]:
            if rev["id"] == m["rid"]:
                return 200, copy.deepcopy(rev)
        raise no_such("transfer_reversal", m["rid"])


def list_events(ctx, m):
    q = ctx.params
    check_known(q, EXPAND | {"type", "types", "limit", "starting_after", "ending_before",
                             "created", "delivery_success"})
    types = set(q.get("types") or []) | ({q["type"]} if q.get("type") else set())
    with ctx.fake.lock:
        items = [e for e in reversed(ctx.fake.events)
                 if not types or e["type"] in types
                 or any(t.endswith(".*") and e["type"].startswith(t[:-1]) for t in types)]
        return 200, copy.deepcopy(paginate(items, q, "/v1/events"))


def retrieve_event(ctx, m):
    check_known(ctx.params, EXPAND)
    with ctx.fake.lock:
        for e in ctx.fake.events:
            if e["id"] == m["id"]:
                return 200, copy.deepcopy(e)
        raise no_such("event", m["id"])


ID = r"(?P<id>[A-Za-z0-9_]+)"
API_ROUTES = [(meth, re.compile(f"^{pat}$"), fn) for meth, pat, fn in [
    ("POST", r"/v1/accounts", create_account),
    ("GET", rf"/v1/accounts/{ID}", retrieve_account),
    ("POST", rf"/v1/accounts/{ID}/login_links", create_login_link),
    ("POST", r"/v1/account_links", create_account_link),
    ("GET", r"/v1/balance", retrieve_balance),
    ("POST", r"/v1/transfers", create_transfer),
    ("GET", r"/v1/transfers", list_transfers),
    ("GET", rf"/v1/transfers/{ID}", retrieve_transfer),
    ("POST", rf"/v1/transfers/{ID}/reversals", create_reversal),
    ("GET", rf"/v1/transfers/{ID}/reversals", list_reversals),
    ("GET", rf"/v1/transfers/{ID}/reversals/(?P<rid>[A-Za-z0-9_]+)", retrieve_reversal),
    ("GET", r"/v1/events", list_events),
    ("GET", rf"/v1/events/{ID}", retrieve_event),
]]


# --------------------------------------------------------------------------- HTTP layer

class Dropped(Exception):
    """Raised to close the connection without any response (drop_next)."""


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "stripe-fake/1.0"
    sys_version = ""

    @property
    def fake(self) -> FakeStripe:
        return self.server.fake  # type: ignore[attr-defined]

    def log_message(self, fmt, *args):
        if getattr(self.server, "verbose", False):
            super().log_message(fmt, *args)

    def do_GET(self):
        self._dispatch("GET")

    def do_POST(self):
        self._dispatch("POST")

    def do_DELETE(self):
        self._dispatch("DELETE")

    # ---- plumbing
    def _read_body(self) -> str:
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n).decode("utf-8") if n else ""

    def _send(self, status, body, headers=None, content_type="application/json"):
        raw = body if isinstance(body, bytes) else json.dumps(body, indent=2).encode()
        headers = {"Request-Id": new_request_id(), **(headers or {})}
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(raw)))
        self.send_header("Cache-Control", "no-cache, no-store")
        for k, v in headers.items():
            if v is not None:
                self.send_header(k, str(v))
        self.end_headers()
        self.wfile.write(raw)

    def _dispatch(self, method):
        url = urllib.parse.urlsplit(self.path)
        try:
            body = self._read_body()
            if url.path.startswith("/_control/"):
                return self._control(method, url.path, body)
            if url.path.startswith("/connect/onboarding/"):
                return self._onboarding(method, url, body)
            self._api(method, url, body)
        except Dropped:
            self.close_connection = True
        except Exception as e:  # noqa: BLE001 - never leave a client hanging
            import traceback
            traceback.print_exc()
            self._send(500, {"error": {"type": "api_error", "message": f"fake bug: {e}"}})

    # ---- /v1
    def _api(self, method, url, body):
        f = self.fake
        request_id = new_request_id()
        idem_key = self.headers.get("Idempotency-Key") if method == "POST" else None
        version = self.headers.get("Stripe-Version") or API_VERSION
        headers = {"Request-Id": request_id, "Stripe-Version": version,
                   "Idempotency-Key": idem_key}
        params = parse_form(body if method == "POST" else url.query)
        entry = {"request_id": request_id, "time": time.time(), "method": method,
                 "path": url.path, "query": url.query, "idempotency_key": idem_key,
                 "params": params, "stripe_account": self.headers.get("Stripe-Account"),
                 "status": None, "replayed": False, "injected": None}
        with f.lock:
            f.requests.append(entry)

        def reply(status, payload, extra=None):
            entry["status"] = status
            self._send(status, payload, {**headers, **(extra or {})})

        def reply_error(err: StripeError):
            reply(err.status, err.body(), err.headers)

        # 1. authentication
        key = api_key_from(self.headers.get("Authorization", ""))
        if not key:
            return reply_error(StripeError(
                401, "invalid_request_error",
                "You did not provide an API key. You need to provide your API key in the "
                "Authorization header, using Bearer auth (e.g. 'Authorization: Bearer "
                "YOUR_SECRET_KEY'). See https://stripe.com/docs/api#authentication for details, "
                "or we can help at https://support.stripe.com/."))
        if not key.startswith("sk_test_") or (f.api_key and key != f.api_key):
            return reply_error(StripeError(401, "invalid_request_error",
                                           f"Invalid API Key provided: {mask_key(key)}"))
        # 2. routing
        route = next(((fn, m) for meth, rx, fn in API_ROUTES
                      if meth == method and (m := rx.match(url.path))), None)
        if route is None:
            return reply_error(invalid(
                f"Unrecognized request URL ({method}: {url.path}). Please see "
                "https://stripe.com/docs or we can help at https://support.stripe.com/.",
                status=404))
        fn, match = route
        # 3. injected failure: answered without executing, nothing stored
        fault = self._take_fault("fail", method, url.path)
        if fault:
            entry["injected"] = "fail"
            status = int(fault.get("status", 500))
            err = (StripeError(status, "rate_limit_error", "Request rate limit exceeded. Learn "
                               "more about rate limits here https://stripe.com/docs/rate-limits.",
                               "rate_limit") if status == 429 else
                   StripeError(status, "api_error", "An unknown error occurred"))
            return reply_error(err)
        # 4. idempotency
        slot = None
        if idem_key:
            fingerprint = json.dumps([method, url.path, params], sort_keys=True)
            ik = (key, idem_key)
            with f.lock:
                slot = f.idem.get(ik)
                if slot is not None:
                    if slot["endpoint"] != f"{method} {url.path}":
                        return reply_error(StripeError(
                            400, "idempotency_error",
                            "Keys for idempotent requests can only be used for the same endpoint "
                            f"they were first used for ('{slot['endpoint']}' vs "
                            f"'{method} {url.path}'). Try using a key other than '{idem_key}' "
                            "if you meant to execute a different request."))
                    if slot["fingerprint"] != fingerprint:
                        return reply_error(StripeError(
                            400, "idempotency_error",
                            "Keys for idempotent requests can only be used with the same "
                            "parameters they were first used with. Try using a key other than "
                            f"'{idem_key}' if you meant to execute a different request."))
                    if slot["response"] is None:
                        return reply_error(StripeError(
                            409, "idempotency_error",
                            "There is currently another in-progress request using this "
                            "Idempotent Key (that probably means you submitted twice, and the "
                            "other request is still going through): "
                            f"{idem_key}. Please try again later.",
                            "idempotency_key_in_use"))
                    status, payload, orig_id = slot["response"]
                    entry["replayed"] = True
                    return reply(status, payload,
                                 {"Idempotent-Replayed": "true", "Original-Request": orig_id})
                slot = f.idem[ik] = {"endpoint": f"{method} {url.path}",
                                     "fingerprint": fingerprint, "response": None}
        # 5. execute (optionally delayed, while the key is held in flight)
        delay = self._take_fault("delay", method, url.path)
        if delay:
            entry["injected"] = "delay"
            time.sleep(float(delay.get("seconds", 1)))
        ctx = Ctx(f, method, url.path, params, key, request_id, idem_key,
                  self.headers.get("Stripe-Account"))
        try:
            if ctx.stripe_account and fn is not retrieve_balance:
                raise invalid("stripe-fake: the Stripe-Account header is only modelled for "
                              "GET /v1/balance", stored=False)
            if ctx.stripe_account:
                with f.lock:
                    if ctx.stripe_account not in f.accounts:
                        raise StripeError(
                            403, "invalid_request_error",
                            f"The provided key '{mask_key(key)}' does not have access to account "
                            f"'{ctx.stripe_account}' (or that account does not exist). "
                            "Application access may have been revoked.", "account_invalid",
                            stored=False)
            status, payload = fn(ctx, match.groupdict())
            stored = True
        except StripeError as err:
            status, payload, stored = err.status, err.body(), err.stored
        if slot is not None:
            with f.lock:
                if stored:
                    slot["response"] = (status, payload, request_id)
                else:
                    f.idem.pop((key, idem_key), None)
        # 6. lost answer: executed and stored, but the client never hears back
        if self._take_fault("drop", method, url.path):
            entry["injected"] = "drop"
            entry["status"] = status
            raise Dropped()
        reply(status, payload)

    def _take_fault(self, kind, method, path):
        with self.fake.lock:
            for rule in self.fake.faults:
                if (rule["kind"] == kind and rule["count"] > 0
                        and path.startswith(rule["path_prefix"])
                        and rule.get("method") in (None, method)):
                    rule["count"] -= 1
                    return rule
        return None

    # ---- hosted onboarding page (what an account link's url points at)
    def _onboarding(self, method, url, body):
        f = self.fake
        token = url.path.rsplit("/", 1)[-1]
        form = {**parse_form(url.query), **parse_form(body)}
        with f.lock:
            link = f.links.get(token)
            if link is None:
                return self._send(404, b"<h1>Unknown or invalid link</h1>",
                                  content_type="text/html")
            if link["used"] or link["expires_at"] < now():
                return self._send(302, b"", {"Location": link["refresh_url"]}, "text/html")
            action = form.get("action")
            if action in ("complete", "refresh"):
                link["used"] = True
                if action == "complete":
                    f.complete_onboarding(link["account"])
                target = link["return_url"] if action == "complete" else link["refresh_url"]
                return self._send(302, b"", {"Location": target}, "text/html")
        html = (f"<html><body><h1>Fake Stripe onboarding for {link['account']}</h1>"
                f"<form method='post'><button name='action' value='complete'>Complete</button>"
                f"<button name='action' value='refresh'>Expire link</button></form>"
                f"</body></html>").encode()
        self._send(200, html, content_type="text/html")

    # ---- /_control
    def _control(self, method, path, body):
        try:
            data = json.loads(body) if body.strip() else {}
        except json.JSONDecodeError:
            return self._send(400, {"error": {"type": "invalid_request_error",
                                              "message": "control endpoints take JSON bodies"}})
        parts = path.strip("/").split("/")[1:]
        try:
            status, out = self._control_route(method, parts, data)
        except StripeError as err:
            status, out = err.status, err.body()
        except (KeyError, ValueError, TypeError) as e:
            status, out = 400, {"error": {"type": "invalid_request_error",
                                          "message": f"bad control request: {e!r}"}}
        self._send(status, out)

    def _control_route(self, method, parts, data):
        f = self.fake
        route = (method, *parts)
        if route == ("GET", "health"):
            return 200, {"ok": True}
        if route == ("POST", "reset"):
            f.reset()
            return 200, {"ok": True}
        if route == ("POST", "balance"):
            cur, amount = str(data["currency"]).lower(), int(data["amount"])
            with f.lock:
                f.balance[cur] = amount
                return 200, f.balance_object()
        if method == "POST" and len(parts) == 3 and parts[0] == "accounts":
            action = {"complete_onboarding": f.complete_onboarding,
                      "disable_transfers": f.disable_transfers}.get(parts[2])
            if action:
                return 200, copy.deepcopy(action(parts[1]))
        if method == "POST" and len(parts) == 1 and parts[0] in ("fail_next", "drop_next",
                                                                 "delay_next"):
            rule = {"kind": parts[0][:-5], "path_prefix": str(data["path_prefix"]),
                    "method": data.get("method"), "count": int(data.get("count", 1))}
            if rule["kind"] == "fail":
                rule["status"] = int(data.get("status", 500))
            if rule["kind"] == "delay":
                rule["seconds"] = float(data["seconds"])
            with f.lock:
                f.faults.append(rule)
            return 200, rule
        if route == ("GET", "requests"):
            with f.lock:
                return 200, {"data": copy.deepcopy(f.requests)}
        if route == ("GET", "deliveries"):
            with f.lock:
                return 200, {"data": copy.deepcopy(f.deliveries)}
        if route == ("GET", "state"):
            with f.lock:
                return 200, copy.deepcopy({
                    "accounts": f.accounts, "transfers": f.transfers,
                    "balance": f.balance_object(), "connected_balances": f.connected_balance,
                    "events": f.events, "webhook": {"url": f.webhook_url},
                    "faults": [r for r in f.faults if r["count"] > 0]})
        if route == ("POST", "webhook"):
            url = data.get("url")
            if url:
                check_loopback(url)
            with f.lock:
                f.webhook_url, f.webhook_secret = url, data.get("secret")
            return 200, {"url": url}
        if route == ("POST", "sign"):
            secret = data.get("secret") or f.webhook_secret
            payload = data["payload"]
            if not isinstance(payload, str):
                payload = json.dumps(payload)
            header = sign_payload(payload, secret, data.get("timestamp"))
            return 200, {"header": header, "payload": payload}
        if route == ("POST", "events"):
            return 200, f.emit(str(data["type"]), data.get("data_object") or {},
                               account=data.get("account"))
        if method == "POST" and len(parts) == 3 and parts[0] == "events" \
                and parts[2] == "redeliver":
            with f.lock:
                evt = next((e for e in f.events if e["id"] == parts[1]), None)
                if evt is None:
                    raise no_such("event", parts[1])
                if not f.webhook_url:
                    raise ValueError("no webhook target configured")
                evt["pending_webhooks"] += 1
                f.deliver(evt)
            return 200, {"queued": evt["id"]}
        raise StripeError(404, "invalid_request_error",
                          f"Unknown control endpoint ({method} /_control/{'/'.join(parts)})")


# --------------------------------------------------------------------------- entry points

class FakeServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def start(port=0, api_key=None, webhook_url=None, webhook_secret=None, verbose=False):
    """Start in a background thread. Returns (server, thread, base_url); server.fake is the state."""
    api_key = api_key or os.environ.get("STRIPE_FAKE_API_KEY") or None
    server = FakeServer((HOST, port), Handler)
    server.verbose = verbose
    server.fake = FakeStripe(api_key, webhook_url, webhook_secret)
    base_url = f"http://{HOST}:{server.server_address[1]}"
    server.fake.base_url = base_url
    thread = threading.Thread(target=server.serve_forever, daemon=True, name="stripe-fake")
    thread.start()
    return server, thread, base_url


def stop(server):
    server.shutdown()
    server.server_close()


def main(argv=None):
    ap = argparse.ArgumentParser(description="Stripe-compatible test server")
    ap.add_argument("--port", type=int, default=12111)
    ap.add_argument("--api-key", default=None,
                    help="only accept this key (default: any sk_test_ key; env STRIPE_FAKE_API_KEY)")
    ap.add_argument("--webhook-url", default=None)
    ap.add_argument("--webhook-secret", default=None)
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args(argv)
    if args.webhook_url and not args.webhook_secret:
        ap.error("--webhook-url needs --webhook-secret")
    try:
        server, thread, _ = start(args.port, args.api_key, args.webhook_url,
                                  args.webhook_secret, args.verbose)
    except ValueError as e:
        ap.error(str(e))
    print(f"READY {server.server_address[1]}", flush=True)
    try:
        thread.join()
    except KeyboardInterrupt:
        stop(server)


if __name__ == "__main__":
    main()
