#!/usr/bin/env python3
"""A Stripe-compatible test server for Refport (standard library only, Python 3.11).

Models the slice of the Stripe v1 API that Refport uses (Connect Express accounts, account links,
balance, transfers, transfer reversals, events and signed webhooks to separate platform and Connect
endpoints; and, for zero-code tracking, customers, Checkout Sessions, PaymentIntents, charges,
balance transactions, subscriptions, invoices, invoice payments and refunds, shaped from Stripe's
published fixtures in fixtures_payments.json), Stripe's idempotency rules (including saved 500s and the 24 h pruning of keys) and error
shapes, plus `/_control/*` endpoints for tests (fault injection, a fake clock, held / reordered /
duplicated webhook deliveries, state inspection).

    python3 tests/stripe_fake/server.py --port 12111 [--api-key sk_test_x]
        [--webhook-url URL --webhook-secret whsec_x]
        [--connect-webhook-url URL --connect-webhook-secret whsec_y]

In-process:  server, thread, base_url = start(port=0); ...; stop(server)
See README.md beside this file for what is and is not modelled.
"""
from __future__ import annotations

import argparse
import base64
import binascii
import calendar
import copy
import datetime
import hashlib
import hmac
import ipaddress
import json
import os
import queue
import random
import re
import secrets
import string
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from decimal import ROUND_HALF_UP, Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

API_VERSION = "2026-10-28.endive"
HOST = "127.0.0.1"
_ALNUM = string.ascii_letters + string.digits
LINK_TTL = 300  # Stripe account links expire after a few minutes
IDEMPOTENCY_TTL = 24 * 3600  # keys may be pruned once they are at least 24 hours old
MAX_IDEMPOTENCY_KEY = 255  # "Idempotency keys are up to 255 characters long"
MAX_AMOUNT = 99_999_999  # "The amount value supports up to eight digits" (docs.stripe.com/currencies)
# Countries of the European Economic Area: one "region" for Connect transfers.
EEA = {"AT", "BE", "BG", "HR", "CY", "CZ", "DK", "EE", "FI", "FR", "DE", "GR", "HU", "IE", "IT",
       "LV", "LT", "LU", "MT", "NL", "PL", "PT", "RO", "SK", "SI", "ES", "SE", "IS", "LI", "NO"}
# Regions between which self-serve cross-border payouts work (recipient agreement only).
CROSS_BORDER_REGIONS = {"US", "GB", "EEA", "CA", "CH"}
CURRENCY_OF = {"US": "usd", "GB": "gbp", "CA": "cad", "CH": "chf", "AU": "aud", "JP": "jpy"}


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
    """Real Unix seconds (webhook signatures use the real clock; objects use FakeStripe.now())."""
    return int(time.time())


def region(country: str) -> str:
    return "EEA" if country in EEA else country


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


def filter_created(items: list, query: dict) -> list:
    """`created=<int>` or `created[gt|gte|lt|lte]=<int>` (Unix seconds), as on Stripe's lists."""
    raw = query.get("created")
    if raw is None or raw == "":
        return items
    ops = raw if isinstance(raw, dict) else {"eq": raw}
    tests = {"eq": lambda a, b: a == b, "gt": lambda a, b: a > b, "gte": lambda a, b: a >= b,
             "lt": lambda a, b: a < b, "lte": lambda a, b: a <= b}
    bounds = []
    for op, val in ops.items():
        if op not in tests:
            raise invalid(f"Received unknown parameter: created[{op}]", f"created[{op}]",
                          "parameter_unknown")
        name = "created" if op == "eq" else f"created[{op}]"
        bounds.append((tests[op], parse_int({name: val}, name)))
    return [o for o in items if all(t(o["created"], v) for t, v in bounds)]


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

REQUIREMENTS = ["business_profile.mcc", "business_profile.url", "external_account",
                "individual.dob.day", "tos_acceptance.date", "tos_acceptance.ip"]


def account_object(acct_id, email, type_, country, metadata, capabilities, business_type,
                   created, service_agreement="full"):
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
        "country": country, "created": created,
        "default_currency": CURRENCY_OF.get(country, "eur" if country in EEA else "usd"),
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
                         "currently_due": list(REQUIREMENTS),
                         "disabled_reason": "requirements.past_due", "errors": [],
                         "eventually_due": list(REQUIREMENTS), "past_due": list(REQUIREMENTS),
                         "pending_verification": []},
        "settings": {"dashboard": {"display_name": None, "timezone": "Etc/UTC"},
                     "payouts": {"debit_negative_balances": True,
                                 "schedule": {"delay_days": 2, "interval": "daily"},
                                 "statement_descriptor": None}},
        "tos_acceptance": {"date": None, "ip": None, "service_agreement": service_agreement,
                           "user_agent": None},
        "type": type_,
    }


def capability_object(acct, name, requested_at):
    status = acct["capabilities"][name]
    due = [] if status == "active" else list(acct["requirements"]["currently_due"])
    return {"id": name, "object": "capability", "account": acct["id"],
            "future_requirements": {"alternatives": [], "current_deadline": None,
                                    "currently_due": [], "disabled_reason": None, "errors": [],
                                    "eventually_due": [], "past_due": [],
                                    "pending_verification": []},
            "requested": True, "requested_at": requested_at,
            "requirements": {"alternatives": [], "current_deadline": None, "currently_due": due,
                             "disabled_reason": None if status == "active"
                             else "requirements.past_due",
                             "errors": [], "eventually_due": due, "past_due": due,
                             "pending_verification": []},
            "status": status}


DEFAULT_CONFIG = {"platform_country": "US", "transfer_amount_limit": MAX_AMOUNT,
                  "require_card_payments_with_transfers": False}


# --------------------------------------------------------------------------- payments

# Object templates: Stripe's own fixtures (github.com/stripe/openapi, openapi/fixtures3.json),
# vendored in fixtures_payments.json. Every object is a deep copy of its template with ids,
# amounts and links overwritten, so it has every field Stripe's fixture has.
FIXTURES_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures_payments.json")
with open(FIXTURES_FILE, encoding="utf-8") as _fh:
    PAYMENT_FIXTURES: dict = json.load(_fh)["resources"]

# Fields not included unless expanded ("includable"): the Charge's `refunds` since API version
# 2022-11-15 (https://docs.stripe.com/changelog/2022-11-15/deprecates-charges-auto-expand).
NOT_INCLUDED_BY_DEFAULT = {"charge": {"refunds"}}
# Fields `expand[]` can turn from an id into the object (when the fake holds that object).
EXPANDABLE = {"balance_transaction", "latest_charge", "customer", "payment_intent", "charge",
              "invoice", "subscription", "latest_invoice", "refunds",
              "failure_balance_transaction", "source", "promotion_code"}
STRIPE_FEE_PERCENT = Decimal("0.029")  # *chosen*: US card pricing, 2.9% + 30 cents
STRIPE_FEE_FIXED = 30
LABELS = {"customer": "customer", "checkout.session": "checkout.session",
          "payment_intent": "payment_intent", "charge": "charge",
          "balance_transaction": "balance transaction", "invoice": "invoice",
          "invoice_payment": "invoice payment", "refund": "refund",
          "subscription": "subscription", "promotion_code": "promotion code", "coupon": "coupon"}
REFUND_REASONS = ("duplicate", "fraudulent", "requested_by_customer")


def template(kind: str, /, **fields) -> dict:
    obj = copy.deepcopy(PAYMENT_FIXTURES[kind])
    for k in NOT_INCLUDED_BY_DEFAULT.get(kind, ()):
        obj.pop(k, None)
    obj.update(fields)
    return obj


def half_up(value: Decimal) -> int:
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def convert(amount: int, rate) -> int:
    """amount (presentment minor units) in the settlement currency: round(amount * rate)."""
    return amount if rate is None else half_up(Decimal(amount) * Decimal(str(rate)))


def add_month(ts: int) -> int:
    """The same day and time one calendar month later (clamped to the month's last day)."""
    d = datetime.datetime.fromtimestamp(ts, datetime.timezone.utc)
    y, m = (d.year + 1, 1) if d.month == 12 else (d.year, d.month + 1)
    day = min(d.day, calendar.monthrange(y, m)[1])
    return int(d.replace(year=y, month=m, day=day).timestamp())


def expand_list(params) -> list[str]:
    raw = params.get("expand")
    if raw is None or raw == "":
        return []
    items = raw if isinstance(raw, list) else [raw]
    for i in items:
        if not isinstance(i, str):
            raise invalid("Invalid array", "expand")
    return items


def cannot_expand(path):
    return invalid(f"This property cannot be expanded ({path}).", "expand")


class PaymentsMixin:
    """Customers, Checkout, PaymentIntents, Charges, BalanceTransactions, Subscriptions,
    Invoices, InvoicePayments and Refunds. Callers hold self.lock."""

    # ---- store, lookup, expansion
    def put(self, obj):
        self.objects[obj["id"]] = obj
        return obj

    def get_obj(self, obj_id, kind, param="id", status=404):
        obj = self.objects.get(obj_id) if isinstance(obj_id, str) else None
        if obj is None or obj["object"] != kind:
            raise no_such(LABELS[kind], obj_id, param, status)
        return obj

    def of_kind(self, kind) -> list[dict]:
        """Objects of one kind, newest first (as Stripe lists them)."""
        return [o for o in reversed(self.objects.values()) if o["object"] == kind]

    def refunds_list(self, charge_id):
        data = [copy.deepcopy(r) for r in self.of_kind("refund") if r["charge"] == charge_id]
        return {"object": "list", "data": data, "has_more": False, "total_count": len(data),
                "url": f"/v1/charges/{charge_id}/refunds"}

    def expanded(self, obj, paths) -> dict:
        out = copy.deepcopy(obj)
        for path in paths:
            self._expand(out, path.split("."), path)
        return out

    def _expand(self, node, parts, path):
        if not isinstance(node, dict) or not parts:
            raise cannot_expand(path)
        key, rest = parts[0], parts[1:]
        if key == "data" and node.get("object") == "list":
            if not rest:
                raise cannot_expand(path)
            for item in node["data"]:
                self._expand(item, rest, path)
            return
        if key == "refunds" and node.get("object") == "charge":
            if not isinstance(node.get("refunds"), dict):
                node["refunds"] = self.refunds_list(node["id"])
        elif key not in node:
            raise cannot_expand(path)
        else:
            val = node[key]
            if isinstance(val, str):
                if key not in EXPANDABLE:
                    raise cannot_expand(path)
                target = self.objects.get(val)
                if target is not None:
                    node[key] = copy.deepcopy(target)
            elif val is not None and not isinstance(val, dict):
                raise cannot_expand(path)
            elif not rest and key not in EXPANDABLE:
                raise cannot_expand(path)
        if rest and node.get(key) is not None:
            self._expand(node[key], rest, path)

    def _emit_into(self, events, type_, obj, previous=None, request_id=None, idem_key=None):
        events.append(self.emit(type_, obj, previous=previous, request_id=request_id,
                                idem_key=idem_key)["id"])

    # ---- builders (from Stripe's fixtures)
    def new_customer(self, email=None, name=None, metadata=None):
        cus = template("customer", id=new_id("cus_", 14), created=self.now(), email=email,
                       name=name, metadata=dict(metadata or {}), address=None, balance=0,
                       currency=None, default_source=None, delinquent=False, description=None,
                       discount=None, invoice_prefix=secrets.token_hex(4).upper(),
                       livemode=False, next_invoice_sequence=1, phone=None,
                       preferred_locales=[], shipping=None, tax_exempt="none", test_clock=None,
                       customer_account=None)
        cus["invoice_settings"].update(custom_fields=None, default_payment_method=None,
                                       footer=None)
        return self.put(cus)

    def new_balance_transaction(self, amount, currency, settlement, rate, source, type_,
                                description=None):
        """A balance transaction in the settlement currency: amount = round(amount * rate)."""
        settled = convert(abs(amount), rate) * (1 if amount >= 0 else -1)
        fee = 0
        fee_details = []
        if type_ == "charge":
            fee = min(settled, half_up(Decimal(settled) * STRIPE_FEE_PERCENT) + STRIPE_FEE_FIXED)
            fee_details = [{"amount": fee, "application": None, "currency": settlement,
                            "description": "Stripe processing fees", "type": "stripe_fee"}]
        created = self.now()
        return self.put(template(
            "balance_transaction", id=new_id("txn_"), amount=settled,
            available_on=created + (2 * 86400 if type_ == "charge" else 0), created=created,
            currency=settlement, description=description,
            exchange_rate=None if rate is None else float(rate), fee=fee,
            fee_details=fee_details, net=settled - fee, reporting_category=type_,
            source=source, status="pending" if type_ == "charge" else "available",
            type=type_, balance_type="payments"))

    def new_payment_intent(self, amount, currency, customer, status, description=None,
                           setup_future_usage=None):
        pi_id = new_id("pi_")
        return self.put(template(
            "payment_intent", id=pi_id, amount=amount, amount_capturable=0,
            amount_details={"tip": {}}, amount_received=amount if status == "succeeded" else 0,
            application=None, application_fee_amount=None,
            automatic_payment_methods={"enabled": True}, canceled_at=None,
            cancellation_reason=None, capture_method="automatic",
            client_secret=f"{pi_id}_secret_{secrets.token_urlsafe(18)}",
            confirmation_method="automatic", created=self.now(), currency=currency,
            customer=customer, description=description, last_payment_error=None,
            latest_charge=None, livemode=False, metadata={}, next_action=None,
            on_behalf_of=None, payment_method=new_id("pm_"),
            payment_method_configuration_details=None, payment_method_options={},
            payment_method_types=["card"], processing=None, receipt_email=None, review=None,
            setup_future_usage=setup_future_usage, shipping=None, statement_descriptor=None,
            statement_descriptor_suffix=None, status=status, transfer_data=None,
            transfer_group=None, source=None, excluded_payment_method_types=None,
            customer_account=None, managed_payments={"enabled": False}))

    def new_charge(self, pi, email, settlement, rate):
        """A succeeded charge for a payment intent, with its balance transaction."""
        ch_id = new_id("ch_")
        bt = self.new_balance_transaction(pi["amount"], pi["currency"], settlement, rate, ch_id,
                                          "charge", pi["description"])
        ch = template(
            "charge", id=ch_id, amount=pi["amount"], amount_captured=pi["amount"],
            amount_refunded=0, application=None, application_fee=None,
            application_fee_amount=None, balance_transaction=bt["id"],
            calculated_statement_descriptor="REFPORT FAKE", captured=True,
            created=self.now(), currency=pi["currency"], customer=pi["customer"],
            description=pi["description"], disputed=False, failure_balance_transaction=None,
            failure_code=None, failure_message=None, fraud_details={}, livemode=False,
            metadata={}, on_behalf_of=None, paid=True, payment_intent=pi["id"],
            payment_method=pi["payment_method"], receipt_email=email, receipt_number=None,
            receipt_url=f"https://pay.stripe.com/receipts/payment/{secrets.token_urlsafe(24)}",
            refunded=False, review=None, shipping=None, source_transfer=None,
            statement_descriptor=None, statement_descriptor_suffix=None, status="succeeded",
            transfer_data=None, transfer_group=None, source=None)
        ch["billing_details"].update(email=email, name=None, phone=None, tax_id=None)
        ch["outcome"].update(network_status="approved_by_network", reason=None,
                             risk_level="normal", risk_score=20,
                             seller_message="Payment complete.", type="authorized")
        card = ch["payment_method_details"]["card"]
        card.update(amount_authorized=pi["amount"], installments=None, mandate=None,
                    three_d_secure=None, wallet=None, authorization_code="123456",
                    regulated_status="unregulated", network_transaction_id=None,
                    transaction_link_id=None)
        card["overcapture"]["maximum_amount_capturable"] = pi["amount"]
        self.put(ch)
        self.fx[ch_id] = (settlement, rate)
        pi.update(status="succeeded", amount_received=pi["amount"], latest_charge=ch_id)
        return ch, bt

    def new_subscription(self, customer, amount, currency, trial):
        now = self.now()
        sub_id, price_id, prod_id = new_id("sub_"), new_id("price_"), new_id("prod_")
        end = add_month(now)
        sub = template(
            "subscription", id=sub_id, application=None, application_fee_percent=None,
            automatic_tax={"enabled": False, "liability": None, "disabled_reason": None},
            billing_cycle_anchor=end if trial else now, billing_cycle_anchor_config=None,
            cancel_at=None, canceled_at=None, cancel_at_period_end=False,
            cancellation_details={"comment": None, "feedback": None, "reason": None},
            collection_method="charge_automatically", created=now, currency=currency,
            customer=customer, days_until_due=None, default_payment_method=new_id("pm_"),
            default_source=None, default_tax_rates=[], description=None, discounts=[],
            ended_at=None, latest_invoice=None, livemode=False, metadata={},
            next_pending_invoice_item_invoice=None, on_behalf_of=None, pause_collection=None,
            pending_invoice_item_interval=None, pending_setup_intent=None, pending_update=None,
            schedule=None, start_date=now, status="trialing" if trial else "active",
            test_clock=None, transfer_data=None, trial_end=end if trial else None,
            trial_start=now if trial else None, billing_thresholds=None,
            billing_mode={"type": "classic", "flexible": None}, customer_account=None,
            managed_payments={"enabled": False}, billing_schedules=[])
        sub["invoice_settings"].update(account_tax_ids=None, custom_fields=None,
                                       description=None, footer=None)
        item = sub["items"]["data"][0]
        price = item["price"]
        price.update(id=price_id, created=now, currency=currency, product=prod_id,
                     custom_unit_amount=None, transform_quantity=None, unit_amount=amount,
                     unit_amount_decimal=str(amount), lookup_key=None, livemode=False)
        price["recurring"].update(interval="month", interval_count=1, meter=None,
                                  trial_period_days=None)
        item["plan"].update(id=price_id, active=True, amount=amount, amount_decimal=str(amount),
                            billing_scheme="per_unit", created=now, currency=currency,
                            interval="month", interval_count=1, livemode=False, metadata={},
                            product=prod_id, transform_usage=None)
        item.update(id=new_id("si_", 14), created=now, subscription=sub_id, metadata={},
                    current_period_start=now, current_period_end=end, billing_thresholds=None)
        sub["items"]["url"] = f"/v1/subscription_items?subscription={sub_id}"
        return self.put(sub)

    def new_invoice(self, sub, cus, amount, billing_reason, period_start, period_end):
        """A draft subscription invoice (status `draft`, nothing paid yet)."""
        in_id = new_id("in_")
        item = sub["items"]["data"][0]
        inv = template(
            "invoice", id=in_id, account_country=self.config["platform_country"],
            account_name="Refport fake merchant", account_tax_ids=None, amount_due=amount,
            amount_overpaid=0, amount_paid=0, amount_remaining=amount, amount_shipping=0,
            application=None, attempt_count=0, attempted=False, auto_advance=True,
            billing_reason=billing_reason, collection_method="charge_automatically",
            created=self.now(), currency=sub["currency"], custom_fields=None,
            customer=cus["id"], customer_address=None, customer_email=cus["email"],
            customer_name=cus["name"], customer_phone=None, customer_shipping=None,
            customer_tax_exempt="none", customer_tax_ids=[], default_payment_method=None,
            default_source=None, default_tax_rates=[], description=None, discounts=[],
            due_date=None, effective_at=None, ending_balance=None, footer=None,
            from_invoice=None, hosted_invoice_url=None, invoice_pdf=None,
            issuer={"type": "self"}, last_finalization_error=None, latest_revision=None,
            livemode=False, metadata={}, next_payment_attempt=None, number=None,
            on_behalf_of=None, period_end=period_end, period_start=period_start,
            post_payment_credit_notes_amount=0, pre_payment_credit_notes_amount=0,
            receipt_number=None, shipping_cost=None, shipping_details=None,
            starting_balance=0, statement_descriptor=None, status="draft",
            status_transitions={"finalized_at": None, "marked_uncollectible_at": None,
                                "paid_at": None, "voided_at": None},
            subscription=None,  # removed from the current API: see parent.subscription_details
            subtotal=amount, subtotal_excluding_tax=amount, test_clock=None, total=amount,
            total_discount_amounts=[], total_excluding_tax=amount, webhooks_delivered_at=None,
            automatically_finalizes_at=None, total_pretax_credit_amounts=[], total_taxes=[],
            parent={"quote_details": None,
                    "subscription_details": {"metadata": dict(sub["metadata"]),
                                             "subscription": sub["id"]},
                    "type": "subscription_details"},
            customer_account=None)
        inv["automatic_tax"].update(enabled=False, liability=None, status=None,
                                    disabled_reason=None, provider=None)
        inv["payment_settings"].update(default_mandate=None, payment_method_types=None)
        line = inv["lines"]["data"][0]
        line.update(id=new_id("il_"), amount=amount, currency=sub["currency"],
                    description=f"1 × Refport fake plan (at {amount} {sub['currency']} / month)",
                    discount_amounts=[], discountable=True, discounts=[], invoice=in_id,
                    livemode=False, metadata={}, period={"start": period_start,
                                                         "end": period_end},
                    quantity=1, subscription=sub["id"], pretax_credit_amounts=[], taxes=[],
                    parent={"invoice_item_details": None,
                            "subscription_item_details": {
                                "invoice_item": None, "proration": False,
                                "proration_details": {"credited_items": None},
                                "subscription": sub["id"], "subscription_item": item["id"]},
                            "type": "subscription_item_details"},
                    pricing={"price_details": {"price": item["price"]["id"],
                                               "product": item["price"]["product"]},
                             "type": "price_details", "unit_amount_decimal": str(amount)},
                    subtotal=amount, quantity_decimal="1")
        inv["lines"].update(total_count=1, url=f"/v1/invoices/{in_id}/lines")
        return self.put(inv)

    def finalize_invoice(self, inv, cus):
        now = self.now()
        cus["next_invoice_sequence"] += 1
        inv.update(status="open", effective_at=now,
                   number=f"{cus['invoice_prefix']}-{cus['next_invoice_sequence'] - 1:04d}",
                   hosted_invoice_url=f"https://invoice.stripe.com/i/fake/{inv['id']}",
                   invoice_pdf=f"https://pay.stripe.com/invoice/fake/{inv['id']}/pdf")
        inv["status_transitions"]["finalized_at"] = now

    def pay_invoice(self, inv, pi):
        """Mark the invoice paid; with a payment intent, link it by an InvoicePayment."""
        now = self.now()
        inv.update(status="paid", amount_paid=inv["amount_due"], amount_remaining=0,
                   attempted=True, attempt_count=1 if pi else 0, auto_advance=False,
                   ending_balance=0, webhooks_delivered_at=now)
        inv["status_transitions"]["paid_at"] = now
        if pi is not None:
            return self.put(template(
                "invoice_payment", id=new_id("inpay_"), amount_paid=pi["amount"],
                amount_requested=inv["amount_due"], created=now, currency=inv["currency"],
                invoice=inv["id"], is_default=True, livemode=False,
                payment={"type": "payment_intent", "payment_intent": pi["id"]},
                status="paid", status_transitions={"canceled_at": None, "paid_at": now}))

    def bill_subscription(self, events, sub, cus, amount, billing_reason, period_start,
                          period_end, settlement, rate):
        """A subscription invoice from draft to paid, paid by a card charge unless the amount
        is 0. Events: invoice.created, invoice.finalized, [payment_intent.succeeded,
        charge.succeeded, invoice_payment.paid], invoice.paid, invoice.payment_succeeded."""
        inv = self.new_invoice(sub, cus, amount, billing_reason, period_start, period_end)
        sub["latest_invoice"] = inv["id"]
        self._emit_into(events, "invoice.created", inv)
        self.finalize_invoice(inv, cus)
        self._emit_into(events, "invoice.finalized", inv)
        pi = ch = bt = None
        if amount > 0:
            desc = ("Subscription creation" if billing_reason == "subscription_create"
                    else "Subscription update")
            pi = self.new_payment_intent(amount, sub["currency"], cus["id"], "processing",
                                         desc, "off_session")
            pi["payment_method"] = sub["default_payment_method"]
            ch, bt = self.new_charge(pi, cus["email"], settlement, rate)
            self._emit_into(events, "payment_intent.succeeded", pi)
            self._emit_into(events, "charge.succeeded", ch)
        inv_payment = self.pay_invoice(inv, pi)
        if inv_payment is not None:
            self._emit_into(events, "invoice_payment.paid", inv_payment)
        self._emit_into(events, "invoice.paid", inv)
        self._emit_into(events, "invoice.payment_succeeded", inv)
        return inv, pi, ch, bt

    # ---- control: checkout, async payment, renewal
    def control_checkout(self, d):
        mode = d.get("mode", "payment")
        if mode not in ("payment", "subscription"):
            raise ValueError("mode must be payment or subscription")
        amount = int(d["amount"])
        if amount < (0 if mode == "subscription" else 1):
            raise ValueError("amount must be a positive integer (minor units)")
        currency = str(d["currency"]).lower()
        settlement, rate = self._settlement(d, currency)
        status = d.get("payment_status", "paid")
        if status not in ("paid", "unpaid"):
            raise ValueError("payment_status must be paid or unpaid")
        trial = _as_bool(d.get("trial", False), "trial")
        if mode == "payment" and trial:
            raise ValueError("trial is for subscription mode")
        if mode == "subscription" and status == "unpaid":
            raise ValueError("payment_status unpaid is modelled for payment mode only")
        metadata = {str(k): str(v) for k, v in (d.get("metadata") or {}).items()}
        create_customer = _as_bool(d.get("create_customer", False), "create_customer")
        promo = self.promotion_code(str(d["promotion_code"])) if d.get("promotion_code") else None
        events: list[str] = []
        cus = None
        if d.get("customer"):
            cus = self.get_obj(d["customer"], "customer", "customer", 400)
        email = d.get("customer_email") or (cus or {}).get("email") or "buyer@example.com"
        if cus is None and (mode == "subscription" or create_customer):
            cus = self.new_customer(email, d.get("customer_name"))
            self._emit_into(events, "customer.created", cus)
        now = self.now()
        cs = template(
            "checkout.session", id="cs_test_" + "".join(secrets.choice(_ALNUM) for _ in range(58)),
            after_expiration=None, allow_promotion_codes=None, amount_subtotal=amount,
            amount_total=0 if trial else amount,
            automatic_tax={"enabled": False, "liability": None, "status": None,
                           "provider": None},
            billing_address_collection=None, cancel_url="https://merchant.example/cancel",
            client_reference_id=d.get("client_reference_id"), client_secret=None,
            consent=None, consent_collection=None, created=now, currency=currency,
            custom_fields=[], custom_text={"after_submit": None, "shipping_address": None,
                                           "submit": None,
                                           "terms_of_service_acceptance": None},
            customer=cus["id"] if cus else None,
            customer_creation=None if mode == "subscription" else (
                "always" if create_customer else "if_required"),
            customer_email=d.get("customer_email"), expires_at=now + 86400, invoice=None,
            invoice_creation=None if mode == "subscription" else {
                "enabled": False,
                "invoice_data": {"account_tax_ids": None, "custom_fields": None,
                                 "description": None, "footer": None, "issuer": None,
                                 "metadata": {}, "rendering_options": None}},
            livemode=False, locale=None, metadata=metadata, mode=mode, payment_intent=None,
            payment_link=None,
            payment_method_collection="always" if mode == "subscription" else None,
            payment_method_configuration_details=None, payment_method_options={},
            payment_method_types=["card"],
            payment_status="no_payment_required" if trial else status,
            phone_number_collection={"enabled": False}, recovered_from=None,
            saved_payment_method_options=None, setup_intent=None,
            shipping_address_collection=None, shipping_cost=None, shipping_options=[],
            status="complete", submit_type=None, subscription=None,
            success_url="https://merchant.example/success",
            total_details={"amount_discount": 0, "amount_shipping": 0, "amount_tax": 0},
            ui_mode="hosted", url=None, adaptive_pricing={"enabled": False},
            discounts=[{"coupon": None, "promotion_code": promo["id"]}] if promo else [],
            collected_information={"shipping_details": None, "business_name": None,
                                   "individual_name": None},
            permissions=None, wallet_options=None, origin_context=None,
            currency_conversion=None, customer_account=None, integration_identifier=None,
            managed_payments={"enabled": False})
        cs["customer_details"].update(email=email, name=(cus or {}).get("name"), phone=None,
                                      tax_exempt="none", tax_ids=[], business_name=None,
                                      individual_name=None)
        cs["customer_details"]["address"] = {"city": None, "country": "US", "line1": None,
                                             "line2": None, "postal_code": "94103",
                                             "state": None}
        pi = ch = bt = inv = sub = None
        if mode == "payment":
            pi = self.new_payment_intent(amount, currency, cus["id"] if cus else None,
                                         "processing")
            cs["payment_intent"] = pi["id"]
            if status == "paid":
                ch, bt = self.new_charge(pi, email, settlement, rate)
                self._emit_into(events, "payment_intent.succeeded", pi)
                self._emit_into(events, "charge.succeeded", ch)
            else:
                self.fx[pi["id"]] = (settlement, rate)  # kept for /_control/async_payment
                self._emit_into(events, "payment_intent.processing", pi)
        else:
            sub = self.new_subscription(cus["id"], amount, currency, trial)
            self.sub_terms[sub["id"]] = {"settlement": settlement, "rate": rate}
            cus["currency"] = currency
            self._emit_into(events, "customer.subscription.created", sub)
            item = sub["items"]["data"][0]
            inv, pi, ch, bt = self.bill_subscription(
                events, sub, cus, 0 if trial else amount, "subscription_create",
                item["current_period_start"], item["current_period_start"] if trial
                else item["current_period_end"], settlement, rate)
            cs.update(subscription=sub["id"], invoice=inv["id"])
        self.put(cs)
        self._emit_into(events, "checkout.session.completed", cs)
        return {"session": copy.deepcopy(cs), "customer": cus["id"] if cus else None,
                "payment_intent": pi and pi["id"], "charge": ch and ch["id"],
                "balance_transaction": bt and bt["id"], "invoice": inv and inv["id"],
                "subscription": sub and sub["id"], "events": events}

    def promotion_code(self, code):
        """The active promotion code with this customer-facing code (codes are unique among
        active ones, case-insensitively), else a new one on a new 10 %-off coupon, redeemed once
        more. Shapes: https://docs.stripe.com/api/promotion_codes/object (API 2025-09-30 and
        later name the coupon under `promotion`), https://docs.stripe.com/api/coupons/object."""
        if not (1 <= len(code) <= 500):
            raise ValueError("promotion_code must be 1 to 500 characters")
        found = [o for o in self.of_kind("promotion_code") if o["active"] and o["code"].lower() == code.lower()]
        if found:
            promo = found[0]
        else:
            now = self.now()
            coupon = self.put({"id": "".join(secrets.choice(_ALNUM) for _ in range(8)), "object": "coupon",
                               "amount_off": None, "created": now, "currency": None, "duration": "once",
                               "duration_in_months": None, "livemode": False, "max_redemptions": None,
                               "metadata": {}, "name": None, "percent_off": 10.0, "redeem_by": None,
                               "times_redeemed": 0, "valid": True})
            promo = self.put({"id": new_id("promo_"), "object": "promotion_code", "active": True, "code": code,
                              "created": now, "customer": None, "expires_at": None, "livemode": False,
                              "max_redemptions": None, "metadata": {},
                              "promotion": {"type": "coupon", "coupon": coupon["id"]},
                              "restrictions": {"first_time_transaction": False, "minimum_amount": None,
                                               "minimum_amount_currency": None},
                              "times_redeemed": 0})
        promo["times_redeemed"] += 1
        self.objects[promo["promotion"]["coupon"]]["times_redeemed"] += 1
        return promo

    def _settlement(self, d, currency, default=None):
        default = default or {}
        settlement = str(d.get("settlement_currency") or default.get("settlement")
                         or "usd").lower()
        rate = d.get("exchange_rate")
        if rate is None and settlement == default.get("settlement"):
            rate = default.get("rate")
        if settlement == currency:
            return settlement, None
        if rate is None:
            raise ValueError(f"exchange_rate is required when currency ({currency}) differs "
                             f"from settlement_currency ({settlement})")
        rate = float(rate)
        if rate <= 0:
            raise ValueError("exchange_rate must be positive")
        return settlement, rate

    def control_async_payment(self, d):
        cs = self.get_obj(str(d["session"]), "checkout.session", "session")
        succeeded = _as_bool(d["succeeded"], "succeeded")
        pi = self.objects.get(cs["payment_intent"] or "")
        if cs["mode"] != "payment" or cs["payment_status"] != "unpaid" or pi is None \
                or pi["status"] != "processing":
            raise ValueError("the session has no payment in progress (payment mode with "
                             "payment_status unpaid)")
        events: list[str] = []
        ch = bt = None
        if succeeded:
            settlement, rate = self.fx.pop(pi["id"])
            ch, bt = self.new_charge(pi, cs["customer_details"]["email"], settlement, rate)
            cs["payment_status"] = "paid"
            self._emit_into(events, "payment_intent.succeeded", pi)
            self._emit_into(events, "charge.succeeded", ch)
            self._emit_into(events, "checkout.session.async_payment_succeeded", cs)
        else:
            pi.update(status="requires_payment_method", last_payment_error={
                "code": "payment_intent_payment_attempt_failed", "decline_code": None,
                "doc_url": "https://stripe.com/docs/error-codes/"
                           "payment-intent-payment-attempt-failed",
                "message": "The payment failed.", "param": None, "payment_method": None,
                "type": "card_error"})
            self._emit_into(events, "payment_intent.payment_failed", pi)
            self._emit_into(events, "checkout.session.async_payment_failed", cs)
        return {"session": copy.deepcopy(cs), "payment_intent": pi["id"],
                "charge": ch and ch["id"], "balance_transaction": bt and bt["id"],
                "events": events}

    def control_renew(self, d):
        sub = self.get_obj(str(d["subscription"]), "subscription", "subscription")
        if sub["status"] not in ("active", "trialing"):
            raise ValueError(f"subscription is {sub['status']}")
        cus = self.get_obj(sub["customer"], "customer")
        item = sub["items"]["data"][0]
        amount = int(d["amount"]) if d.get("amount") is not None else item["price"]["unit_amount"]
        if amount < 0:
            raise ValueError("amount must be >= 0")
        terms = self.sub_terms[sub["id"]]
        settlement, rate = self._settlement(d, sub["currency"], terms)
        events: list[str] = []
        prev = {"items": copy.deepcopy(sub["items"]), "latest_invoice": sub["latest_invoice"]}
        start = (sub["trial_end"] if sub["status"] == "trialing" and sub["trial_end"]
                 else item["current_period_end"])
        item.update(current_period_start=start, current_period_end=add_month(start))
        if sub["status"] == "trialing":
            prev["status"] = "trialing"
            sub["status"] = "active"
        self._emit_into(events, "customer.subscription.updated", sub, prev)
        inv, pi, ch, bt = self.bill_subscription(
            events, sub, cus, amount, "subscription_cycle", item["current_period_start"],
            item["current_period_end"], settlement, rate)
        return {"invoice": inv["id"], "payment_intent": pi and pi["id"],
                "charge": ch and ch["id"], "balance_transaction": bt and bt["id"],
                "events": events}

    # ---- refunds
    def create_refund(self, ch, amount, reason, metadata, request_id=None, idem_key=None):
        remaining = ch["amount"] - ch["amount_refunded"]
        if remaining <= 0:
            raise invalid(f"Charge {ch['id']} has already been refunded.", None,
                          "charge_already_refunded", stored=True)
        if amount is None:
            amount = remaining
        if amount > remaining:
            raise invalid(f"Refund amount ({amount}) is greater than unrefunded amount on "
                          f"charge ({remaining})", "amount", stored=True)
        status = self.refund_next.pop(0) if self.refund_next else "succeeded"
        re_id = new_id("re_")
        settlement, rate = self.fx.get(ch["id"], (ch["currency"], None))
        bt = self.new_balance_transaction(-amount, ch["currency"], settlement, rate, re_id,
                                          "refund", "REFUND FOR CHARGE")
        re = self.put(template(
            "refund", id=re_id, amount=amount, balance_transaction=bt["id"], charge=ch["id"],
            created=self.now(), currency=ch["currency"],
            destination_details={"card": {"reference": None, "reference_status": "pending",
                                          "reference_type": "acquirer_reference_number",
                                          "type": "refund"}, "type": "card"},
            metadata=metadata, payment_intent=ch["payment_intent"], reason=reason,
            receipt_number=None, source_transfer_reversal=None, status=status,
            transfer_reversal=None, customer=ch["customer"], customer_account=None,
            payment_method=ch["payment_method"]))
        prev = {"amount_refunded": ch["amount_refunded"], "refunded": ch["refunded"]}
        ch["amount_refunded"] += amount
        ch["refunded"] = ch["amount_refunded"] >= ch["amount"]
        if not ch["refunded"]:
            prev.pop("refunded")
        events: list[str] = []
        self._emit_into(events, "refund.created", re, None, request_id, idem_key)
        self._emit_into(events, "charge.refunded", ch, prev, request_id, idem_key)
        return re, events

    def control_refund_status(self, d):
        re = self.get_obj(str(d["refund"]), "refund", "refund")
        status = d["status"]
        allowed = {"pending": ("succeeded", "failed", "canceled"), "succeeded": ("failed",)}
        if status not in allowed.get(re["status"], ()):
            raise ValueError(f"a {re['status']} refund can't become {status}")
        prev = {"status": re["status"]}
        re["status"] = status
        events: list[str] = []
        if status in ("failed", "canceled"):
            ch = self.get_obj(re["charge"], "charge")
            settlement, rate = self.fx.get(ch["id"], (ch["currency"], None))
            fbt = self.new_balance_transaction(re["amount"], ch["currency"], settlement, rate,
                                               re["id"], "refund_failure",
                                               "REFUND FAILURE FOR CHARGE")
            prev.update(failure_balance_transaction=None, failure_reason=None)
            re["failure_balance_transaction"] = fbt["id"]
            re["failure_reason"] = "unknown" if status == "failed" else "merchant_request"
            ch["amount_refunded"] -= re["amount"]
            ch["refunded"] = ch["amount_refunded"] >= ch["amount"]
        self._emit_into(events, "refund.updated", re, prev)
        self._emit_into(events, "charge.refund.updated", re, prev)
        if status == "failed":
            self._emit_into(events, "refund.failed", re)
        return {"refund": copy.deepcopy(re), "events": events}


# --------------------------------------------------------------------------- state

class FakeStripe(PaymentsMixin):
    """All API state, guarded by one lock. HTTP concerns live in Handler."""

    def __init__(self, api_key=None, webhook_url=None, webhook_secret=None,
                 connect_webhook_url=None, connect_webhook_secret=None, legacy_single=False):
        self.api_key = api_key
        for url in (webhook_url, connect_webhook_url):
            if url:
                check_loopback(url)
        self.default_endpoints = {
            "platform": {"url": webhook_url, "secret": webhook_secret} if webhook_url else None,
            "connect": ({"url": connect_webhook_url, "secret": connect_webhook_secret}
                        if connect_webhook_url else None)}
        self.default_legacy_single = legacy_single
        self.base_url = ""
        self.platform_id = new_id("acct_", 16)
        self.application_id = new_id("ca_", 24)
        self.lock = threading.RLock()
        self.deliveries_q: "queue.Queue" = queue.Queue()
        threading.Thread(target=self._delivery_worker, daemon=True).start()
        self.reset()

    def reset(self):
        with self.lock:
            self.clock_offset = 0
            self.config = dict(DEFAULT_CONFIG)
            self.platform_created = self.now()
            self.accounts: dict[str, dict] = {}
            self.capability_meta: dict[str, dict[str, int]] = {}
            self.deauthorized: set[str] = set()
            self.transfers: dict[str, dict] = {}  # insertion order = creation order
            self.events: list[dict] = []  # oldest first
            self.balance: dict[str, int] = {}
            self.connected_balance: dict[str, dict[str, int]] = {}
            self.links: dict[str, dict] = {}
            self.idem: dict[tuple, dict] = {}
            self.faults: list[dict] = []
            self.requests: list[dict] = []
            self.deliveries: list[dict] = []
            self.revoked: dict[str, str] = {}
            self.endpoints = copy.deepcopy(self.default_endpoints)
            self.legacy_single = self.default_legacy_single
            self.hold = False
            self.duplicate = False
            self.held: list[tuple] = []
            # payments: every object by id (customers, checkout sessions, payment intents,
            # charges, balance transactions, subscriptions, invoices, invoice payments, refunds)
            self.objects: dict[str, dict] = {}
            self.fx: dict[str, tuple] = {}  # charge id -> (settlement currency, exchange rate)
            self.sub_terms: dict[str, dict] = {}  # subscription id -> amount, settlement, rate
            self.refund_next: list[str] = []  # statuses the next refunds start in

    # ---- clock
    def now(self) -> int:
        """The fake clock: real Unix seconds plus whatever /_control/clock advanced it by."""
        return int(time.time()) + self.clock_offset

    # ---- events and webhooks
    def emit(self, type_, obj, account=None, previous=None, request_id=None, idem_key=None):
        """Record an event (a snapshot of obj now) and queue its deliveries. Events with an
        `account` happened on a connected account and go to Connect endpoints only."""
        with self.lock:
            data = {"object": copy.deepcopy(obj)}
            if previous is not None:
                data["previous_attributes"] = copy.deepcopy(previous)
            evt = {"id": new_id("evt_"), "object": "event", "api_version": API_VERSION,
                   "created": self.now(), "data": data, "livemode": False,
                   "pending_webhooks": 0,
                   "request": {"id": request_id, "idempotency_key": idem_key}, "type": type_}
            if account:
                evt["account"] = account
            evt["pending_webhooks"] = len(self.targets(evt))
            self.events.append(evt)
            self.deliver(evt)
            return evt

    def targets(self, evt) -> list[tuple[str, dict]]:
        """The endpoints an event goes to: platform events to the platform (account) endpoint,
        connected-account events (with `account`) to the Connect endpoint."""
        plat, conn = self.endpoints["platform"], self.endpoints["connect"]
        if "account" in evt:
            if conn:
                return [("connect", conn)]
            if self.legacy_single and plat:
                return [("platform", plat)]
            return []
        return [("platform", plat)] if plat else []

    def deliver(self, evt) -> int:
        """Queue one delivery of evt (a snapshot of its JSON now) to each of its endpoints;
        held back while hold mode is on. Answers the number of deliveries queued or held."""
        with self.lock:
            payload = json.dumps(evt, indent=2)
            items = [(evt, payload, name, ep["url"], ep["secret"])
                     for name, ep in self.targets(evt)]
            for item in items:
                if self.hold:
                    self.held.append(item)
                else:
                    for _ in range(2 if self.duplicate else 1):
                        self.deliveries_q.put(item)
            return len(items)

    def release(self, order="created", duplicate=False, seed=None) -> list[str]:
        with self.lock:
            items, self.held = self.held, []
            if order == "reverse":
                items.reverse()
            elif order == "shuffle":
                random.Random(seed).shuffle(items)
            elif order != "created":
                self.held = items
                raise ValueError("order must be created, reverse or shuffle")
            if duplicate:
                items = items + items
            for item in items:
                self.deliveries_q.put(item)
            return [i[0]["id"] for i in items]

    def _delivery_worker(self):
        while True:
            evt, payload, endpoint, url, secret = self.deliveries_q.get()
            header = sign_payload(payload, secret or "")
            rec = {"event_id": evt["id"], "type": evt["type"], "endpoint": endpoint, "url": url,
                   "signature": header, "attempted_at": time.time(), "status": None,
                   "error": None}
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
        """A connected account as the control endpoints see it (deauthorized or not)."""
        acct = self.accounts.get(acct_id)
        if acct is None:
            raise no_such("account", acct_id, param, status)
        return acct

    def platform_access_error(self, key, acct_id):
        return StripeError(
            403, "invalid_request_error",
            f"The provided key '{mask_key(key)}' does not have access to account '{acct_id}' "
            "(or that account does not exist). Application access may have been revoked.",
            "account_invalid", stored=False)

    def api_account(self, key, acct_id, param="id", status=404):
        """A connected account as the platform's API key sees it."""
        acct = self.get_account(acct_id, param, status)
        if acct_id in self.deauthorized:
            raise self.platform_access_error(key, acct_id)
        return acct

    def set_capabilities(self, acct, changes: dict, extra: dict | None = None,
                         prev_extra: dict | None = None):
        """Apply capability status changes (and other account fields) and emit one
        capability.updated per changed capability, then one account.updated."""
        prev_caps = dict(acct["capabilities"])
        for name, status in changes.items():
            acct["capabilities"][name] = status
            self.capability_meta.setdefault(acct["id"], {}).setdefault(name, self.now())
        acct.update(extra or {})
        for name in changes:
            if prev_caps.get(name) != acct["capabilities"][name]:
                self.emit("capability.updated",
                          capability_object(acct, name, self.capability_meta[acct["id"]][name]),
                          account=acct["id"], previous={"status": prev_caps.get(name)})
        prev = {"capabilities": prev_caps, **(prev_extra or {})}
        self.emit("account.updated", acct, account=acct["id"], previous=prev)

    def bank_account(self, acct, account_number=None, routing_number="110000000"):
        """The bank account onboarding collects (`external_account`), as a bank_account object:
        its `fingerprint` identifies the account number across every connected account of the
        platform (https://docs.stripe.com/api/external_account_bank_accounts/object)."""
        number = str(account_number or "".join(random.choice(string.digits) for _ in range(12)))
        digest = hashlib.sha256(f"{routing_number}:{number}".encode()).hexdigest()
        return {"id": "ba_" + secrets.token_hex(12), "object": "bank_account", "account": acct["id"],
                "account_holder_name": None, "account_holder_type": None, "account_type": None,
                "available_payout_methods": ["standard"], "bank_name": "STRIPE TEST BANK",
                "country": acct["country"], "currency": acct["default_currency"], "customer": None,
                "default_for_currency": True, "fingerprint": digest[:16], "last4": number[-4:],
                "metadata": {}, "routing_number": routing_number, "status": "new"}

    def complete_onboarding(self, acct_id, account_number=None):
        with self.lock:
            acct = self.get_account(acct_id)
            if not acct["external_accounts"]["data"] or account_number is not None:
                ext = acct["external_accounts"]
                ext["data"] = [self.bank_account(acct, account_number)]
                ext["total_count"] = 1
            prev = {"charges_enabled": acct["charges_enabled"],
                    "details_submitted": acct["details_submitted"],
                    "payouts_enabled": acct["payouts_enabled"],
                    "requirements": copy.deepcopy(acct["requirements"]),
                    "tos_acceptance": dict(acct["tos_acceptance"])}
            changes = {k: "active" for k in acct["capabilities"]}
            changes["transfers"] = "active"
            acct["requirements"].update(currently_due=[], eventually_due=[], past_due=[],
                                        disabled_reason=None)
            tos = {**acct["tos_acceptance"], "date": self.now(), "ip": "127.0.0.1"}
            self.set_capabilities(acct, changes, dict(
                charges_enabled="card_payments" in acct["capabilities"]
                or acct["tos_acceptance"]["service_agreement"] == "full",
                details_submitted=True, payouts_enabled=True, tos_acceptance=tos), prev)
            return acct

    def disable_transfers(self, acct_id):
        with self.lock:
            acct = self.get_account(acct_id)
            prev = {"payouts_enabled": acct["payouts_enabled"],
                    "requirements": copy.deepcopy(acct["requirements"])}
            acct["requirements"].update(currently_due=["external_account"],
                                        past_due=["external_account"],
                                        disabled_reason="requirements.past_due")
            self.set_capabilities(acct, {"transfers": "inactive"},
                                  {"payouts_enabled": False}, prev)
            return acct

    def set_capability(self, acct_id, name, status):
        if status not in ("active", "inactive", "pending"):
            raise ValueError("status must be active, inactive or pending")
        with self.lock:
            acct = self.get_account(acct_id)
            self.set_capabilities(acct, {str(name): status})
            return acct

    def deauthorize(self, acct_id):
        with self.lock:
            self.get_account(acct_id)
            self.deauthorized.add(acct_id)
            return self.emit("account.application.deauthorized",
                             {"id": self.application_id, "object": "application",
                              "name": "Refport (stripe-fake)"}, account=acct_id)

    def platform_account(self):
        country = self.config["platform_country"]
        acct = account_object(self.platform_id, "platform@refport.example", "standard", country,
                              {}, {"card_payments": "active", "transfers": "active"}, "company",
                              self.platform_created)
        acct.update(charges_enabled=True, payouts_enabled=True, details_submitted=True,
                    controller={"type": "account"})
        acct["requirements"].update(currently_due=[], eventually_due=[], past_due=[],
                                    disabled_reason=None)
        acct["tos_acceptance"].update(date=self.platform_created, ip="127.0.0.1")
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

    # ---- idempotency
    def prune_idempotency(self, older_than=IDEMPOTENCY_TTL) -> int:
        """Forget finished idempotency results at least `older_than` seconds old (fake clock)."""
        with self.lock:
            cutoff = self.now() - older_than
            old = [k for k, slot in self.idem.items()
                   if slot["response"] is not None and slot["created"] <= cutoff]
            for k in old:
                del self.idem[k]
            return len(old)


# --------------------------------------------------------------------------- API endpoints

class Ctx:
    def __init__(self, fake, method, path, params, api_key, request_id, idem_key, account):
        self.fake, self.method, self.path, self.params = fake, method, path, params
        self.api_key, self.request_id, self.idem_key = api_key, request_id, idem_key
        self.stripe_account = account


EXPAND = {"expand"}


def parse_bool(raw, param):
    if raw in ("true", True):
        return True
    if raw in ("false", False):
        return False
    raise invalid(f"Invalid boolean: {raw}", param)


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
        if parse_bool(spec["requested"], f"capabilities[{name}][requested]"):
            caps[name] = "inactive"
    tos = p.get("tos_acceptance") or {}
    if not isinstance(tos, dict):
        raise invalid("Invalid object", "tos_acceptance")
    check_known({f"tos_acceptance[{k}]": v for k, v in tos.items()},
                {f"tos_acceptance[{k}]" for k in ("date", "ip", "service_agreement",
                                                   "user_agent")})
    agreement = parse_str(tos, "service_agreement") or "full"
    if agreement not in ("full", "recipient"):
        raise invalid("Invalid tos_acceptance[service_agreement]: must be one of full or "
                      "recipient", "tos_acceptance[service_agreement]")
    email = parse_str(p, "email")
    if email is not None and "@" not in email:
        raise invalid(f"Invalid email address: {email}", "email", "email_invalid")
    metadata = parse_metadata(p)
    with f.lock:
        platform_country = f.config["platform_country"]
        country = (parse_str(p, "country") or platform_country).upper()
        if not re.fullmatch(r"[A-Z]{2}", country):
            raise invalid(f"Country '{country}' is unknown. Try using a 2-character "
                          "alphanumeric country code instead, such as 'US', 'EG', or 'GB'.",
                          "country", "country_code_invalid")
        if agreement == "recipient" and "card_payments" in caps:
            raise invalid("Accounts under the `recipient` service agreement can't request the "
                          "`card_payments` capability. See "
                          "https://stripe.com/docs/connect/service-agreement-types.",
                          "tos_acceptance[service_agreement]")
        if (f.config["require_card_payments_with_transfers"] and type_ != "standard"
                and agreement == "full" and country == platform_country == "US"
                and "transfers" in caps and "card_payments" not in caps):
            raise invalid("Your platform needs approval for accounts to have requested the "
                          "`transfers` capability without the `card_payments` capability. "
                          "Request `card_payments` too, or create the account under the "
                          "`recipient` service agreement.", "capabilities")
        acct = account_object(new_id("acct_", 16), email, type_, country, metadata, caps,
                              parse_str(p, "business_type"), f.now(), agreement)
        f.accounts[acct["id"]] = acct
        f.capability_meta[acct["id"]] = {name: acct["created"] for name in caps}
        return 200, copy.deepcopy(acct)


def retrieve_account(ctx, m):
    check_known(ctx.params, EXPAND)
    with ctx.fake.lock:
        if m["id"] == ctx.fake.platform_id:
            return 200, ctx.fake.platform_account()
        return 200, copy.deepcopy(ctx.fake.api_account(ctx.api_key, m["id"]))


def retrieve_platform_account(ctx, m):
    check_known(ctx.params, EXPAND)
    with ctx.fake.lock:
        return 200, ctx.fake.platform_account()


def list_capabilities(ctx, m):
    check_known(ctx.params, EXPAND)
    f = ctx.fake
    with f.lock:
        acct = f.api_account(ctx.api_key, m["id"], "account")
        meta = f.capability_meta.get(acct["id"], {})
        data = [capability_object(acct, n, meta.get(n)) for n in sorted(acct["capabilities"])]
        return 200, {"object": "list", "data": data, "has_more": False,
                     "url": f"/v1/accounts/{acct['id']}/capabilities"}


def retrieve_capability(ctx, m):
    check_known(ctx.params, EXPAND)
    f = ctx.fake
    with f.lock:
        acct = f.api_account(ctx.api_key, m["id"], "account")
        if m["cap"] not in acct["capabilities"]:
            raise no_such("capability", m["cap"])
        return 200, capability_object(acct, m["cap"],
                                      f.capability_meta.get(acct["id"], {}).get(m["cap"]))


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
        f.api_account(ctx.api_key, acct_id, "account", 400)
        token = "".join(secrets.choice(_ALNUM) for _ in range(12))
        created = f.now()
        f.links[token] = {"account": acct_id, "refresh_url": refresh_url,
                          "return_url": return_url, "expires_at": created + LINK_TTL,
                          "used": False, "type": type_}
        return 200, {"object": "account_link", "created": created,
                     "expires_at": created + LINK_TTL,
                     "url": f"{f.base_url}/connect/onboarding/{token}"}


def create_login_link(ctx, m):
    check_known(ctx.params, EXPAND)
    with ctx.fake.lock:
        acct = ctx.fake.api_account(ctx.api_key, m["id"], "account")
        if acct["type"] != "express" or not acct["details_submitted"]:
            raise invalid("Cannot create a login link for an account that has not completed "
                          "onboarding.", "account", stored=True)
        token = "".join(secrets.choice(_ALNUM) for _ in range(12))
        return 200, {"object": "login_link", "created": ctx.fake.now(),
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
        limit = f.config["transfer_amount_limit"]
        if limit is not None and amount > limit:
            raise invalid(f"Amount must be no more than {limit} (in the currency's smallest "
                          "unit).", "amount", "amount_too_large")
        acct = f.accounts.get(dest)
        if acct is None or dest in f.deauthorized:
            raise no_such("destination", dest, "destination", 400)
        platform_country = f.config["platform_country"]
        p_region, a_region = region(platform_country), region(acct["country"])
        if p_region != a_region and (
                acct["tos_acceptance"]["service_agreement"] != "recipient"
                or not {p_region, a_region} <= CROSS_BORDER_REGIONS):
            raise invalid(f"Funds can't be sent to accounts located in {acct['country']} because "
                          "it's restricted outside of your platform's region. Cross-border "
                          "transfers need the connected account under the `recipient` service "
                          "agreement; see https://stripe.com/docs/connect/cross-border-payouts.",
                          "destination", "transfers_not_allowed", stored=True)
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
              "balance_transaction": new_id("txn_"), "created": f.now(), "currency": currency,
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


def update_transfer(ctx, m):
    p, f = ctx.params, ctx.fake
    check_known(p, EXPAND | {"description", "metadata"})
    with f.lock:
        tr = get_transfer(f, m["id"])
        prev = {}
        if "description" in p:
            desc = parse_str(p, "description")
            if desc != tr["description"]:
                prev["description"], tr["description"] = tr["description"], desc
        if "metadata" in p:
            md = parse_metadata(p, tr["metadata"])
            if md != tr["metadata"]:
                prev["metadata"], tr["metadata"] = tr["metadata"], md
        if prev:
            f.emit("transfer.updated", tr, previous=prev, request_id=ctx.request_id,
                   idem_key=ctx.idem_key)
        return 200, copy.deepcopy(tr)


def list_transfers(ctx, m):
    q = ctx.params
    check_known(q, EXPAND | {"destination", "transfer_group", "limit", "starting_after",
                             "ending_before", "created"})
    with ctx.fake.lock:
        items = list(reversed(ctx.fake.transfers.values()))  # newest first
        items = [t for t in items
                 if (not q.get("destination") or t["destination"] == q["destination"])
                 and (not q.get("transfer_group") or t["transfer_group"] == q["transfer_group"])]
        items = filter_created(items, q)
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
        cb = f.connected_balance.setdefault(tr["destination"], {})
        if cb.get(tr["currency"], 0) < amount:
            raise invalid("Insufficient funds in the destination account to reverse this "
                          "transfer: a reversal debits the connected account's balance.",
                          "amount", "balance_insufficient", stored=True)
        prev = {"amount_reversed": tr["amount_reversed"], "reversed": tr["reversed"],
                "reversals": copy.deepcopy(tr["reversals"])}
        rev = {"id": new_id("trr_"), "object": "transfer_reversal", "amount": amount,
               "balance_transaction": new_id("txn_"), "created": f.now(),
               "currency": tr["currency"], "destination_payment_refund": new_id("pyr_"),
               "metadata": metadata, "source_refund": None, "transfer": tr["id"]}
        tr["amount_reversed"] += amount
        tr["reversed"] = tr["amount_reversed"] >= tr["amount"]
        tr["reversals"]["data"].insert(0, rev)
        tr["reversals"]["total_count"] += 1
        f.balance[tr["currency"]] = f.balance.get(tr["currency"], 0) + amount
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
        items = filter_created(items, q)
        return 200, copy.deepcopy(paginate(items, q, "/v1/events"))


def retrieve_event(ctx, m):
    check_known(ctx.params, EXPAND)
    with ctx.fake.lock:
        for e in ctx.fake.events:
            if e["id"] == m["id"]:
                return 200, copy.deepcopy(e)
        raise no_such("event", m["id"])


# ---- payments API

def _retriever(kind):
    def retrieve(ctx, m):
        check_known(ctx.params, EXPAND)
        paths = expand_list(ctx.params)
        with ctx.fake.lock:
            return 200, ctx.fake.expanded(ctx.fake.get_obj(m["id"], kind), paths)
    retrieve.__name__ = f"retrieve_{kind.replace('.', '_')}"
    return retrieve


def _email_param(p):
    email = parse_str(p, "email")
    if email is not None and not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", email):
        raise invalid(f"Invalid email address: {email}", "email", "email_invalid")
    return email


CUSTOMER_PARAMS = {"email", "name", "metadata", "description", "phone"}


def create_customer(ctx, m):
    p, f = ctx.params, ctx.fake
    check_known(p, EXPAND | CUSTOMER_PARAMS)
    email = _email_param(p)
    metadata = parse_metadata(p)
    with f.lock:
        cus = f.new_customer(email, parse_str(p, "name"), metadata)
        cus["description"], cus["phone"] = parse_str(p, "description"), parse_str(p, "phone")
        f.emit("customer.created", cus, request_id=ctx.request_id, idem_key=ctx.idem_key)
        return 200, f.expanded(cus, expand_list(p))


def update_customer(ctx, m):
    p, f = ctx.params, ctx.fake
    check_known(p, EXPAND | CUSTOMER_PARAMS)
    email = _email_param(p) if "email" in p else None
    with f.lock:
        cus = f.get_obj(m["id"], "customer")
        new = {}
        if "email" in p:
            new["email"] = email
        for k in ("name", "description", "phone"):
            if k in p:
                new[k] = parse_str(p, k)
        prev = {k: cus[k] for k, v in new.items() if cus[k] != v}
        if "metadata" in p:
            md = parse_metadata(p, cus["metadata"])
            if md != cus["metadata"]:
                # changed, added (previously null) and removed keys with their old values
                prev["metadata"] = {k: cus["metadata"].get(k)
                                    for k in set(md) | set(cus["metadata"])
                                    if md.get(k) != cus["metadata"].get(k)}
                new["metadata"] = md
        cus.update(new)
        if prev:
            f.emit("customer.updated", cus, previous=prev, request_id=ctx.request_id,
                   idem_key=ctx.idem_key)
        return 200, f.expanded(cus, expand_list(p))


LIST_PARAMS = EXPAND | {"limit", "starting_after", "ending_before", "created"}


def list_refunds(ctx, m):
    q, f = ctx.params, ctx.fake
    check_known(q, LIST_PARAMS | {"charge", "payment_intent"})
    paths = expand_list(q)
    with f.lock:
        items = [r for r in f.of_kind("refund")
                 if (not q.get("charge") or r["charge"] == q["charge"])
                 and (not q.get("payment_intent") or r["payment_intent"] == q["payment_intent"])]
        page = paginate(filter_created(items, q), q, "/v1/refunds")
        return 200, f.expanded(page, paths)


def create_refund(ctx, m):
    p, f = ctx.params, ctx.fake
    check_known(p, EXPAND | {"charge", "payment_intent", "amount", "reason", "metadata",
                             "instructions_email", "origin", "refund_application_fee",
                             "reverse_transfer", "customer", "currency"})
    ch_id, pi_id = parse_str(p, "charge"), parse_str(p, "payment_intent")
    if not ch_id and not pi_id:
        raise invalid("One of the following params should be provided for this request: "
                      "payment_intent or charge.", None, "parameter_missing")
    amount = parse_int(p, "amount", minimum=1)
    reason = parse_str(p, "reason")
    if reason is not None and reason not in REFUND_REASONS:
        raise invalid("Invalid reason: must be one of duplicate, fraudulent, or "
                      "requested_by_customer", "reason")
    metadata = parse_metadata(p)
    with f.lock:
        if pi_id:
            pi = f.get_obj(pi_id, "payment_intent", "payment_intent", 400)
            if pi["status"] != "succeeded" or not pi["latest_charge"]:
                raise invalid(f"This PaymentIntent ({pi_id}) does not have a successful charge "
                              "to refund.", "payment_intent", stored=True)
            if ch_id and ch_id != pi["latest_charge"]:
                raise invalid(f"Charge {ch_id} does not belong to PaymentIntent {pi_id}.",
                              "charge")
            ch_id = pi["latest_charge"]
        ch = f.get_obj(ch_id, "charge", "charge", 400)
        re_, _events = f.create_refund(ch, amount, reason, metadata, ctx.request_id,
                                       ctx.idem_key)
        return 200, f.expanded(re_, expand_list(p))


def list_invoice_payments(ctx, m):
    q, f = ctx.params, ctx.fake
    check_known(q, LIST_PARAMS | {"invoice", "payment", "status"})
    pay = q.get("payment") or {}
    if not isinstance(pay, dict):
        raise invalid("Invalid object", "payment")
    check_known({f"payment[{k}]": v for k, v in pay.items()},
                {"payment[type]", "payment[payment_intent]", "payment[payment_record]"})
    if pay and not pay.get("type"):
        raise missing("payment[type]")
    if pay and pay["type"] not in ("payment_intent", "payment_record"):
        raise invalid("Invalid payment[type]: must be one of payment_intent or payment_record",
                      "payment[type]")
    status = q.get("status")
    if status and status not in ("canceled", "open", "paid"):
        raise invalid("Invalid status: must be one of canceled, open, or paid", "status")
    paths = expand_list(q)
    with f.lock:
        items = [ip for ip in f.of_kind("invoice_payment")
                 if (not q.get("invoice") or ip["invoice"] == q["invoice"])
                 and (not status or ip["status"] == status)
                 and (not pay or (ip["payment"]["type"] == pay["type"]
                                  and all(ip["payment"].get(k) == v for k, v in pay.items()
                                          if k != "type")))]
        page = paginate(filter_created(items, q), q, "/v1/invoice_payments")
        return 200, f.expanded(page, paths)


ID = r"(?P<id>[A-Za-z0-9_]+)"
API_ROUTES = [(meth, re.compile(f"^{pat}$"), fn) for meth, pat, fn in [
    ("GET", r"/v1/account", retrieve_platform_account),
    ("POST", r"/v1/accounts", create_account),
    ("GET", rf"/v1/accounts/{ID}", retrieve_account),
    ("GET", rf"/v1/accounts/{ID}/capabilities", list_capabilities),
    ("GET", rf"/v1/accounts/{ID}/capabilities/(?P<cap>[a-z0-9_]+)", retrieve_capability),
    ("POST", rf"/v1/accounts/{ID}/login_links", create_login_link),
    ("POST", r"/v1/account_links", create_account_link),
    ("GET", r"/v1/balance", retrieve_balance),
    ("POST", r"/v1/transfers", create_transfer),
    ("GET", r"/v1/transfers", list_transfers),
    ("GET", rf"/v1/transfers/{ID}", retrieve_transfer),
    ("POST", rf"/v1/transfers/{ID}", update_transfer),
    ("POST", rf"/v1/transfers/{ID}/reversals", create_reversal),
    ("GET", rf"/v1/transfers/{ID}/reversals", list_reversals),
    ("GET", rf"/v1/transfers/{ID}/reversals/(?P<rid>[A-Za-z0-9_]+)", retrieve_reversal),
    ("GET", r"/v1/events", list_events),
    ("GET", rf"/v1/events/{ID}", retrieve_event),
    ("POST", r"/v1/customers", create_customer),
    ("GET", rf"/v1/customers/{ID}", _retriever("customer")),
    ("POST", rf"/v1/customers/{ID}", update_customer),
    ("GET", rf"/v1/checkout/sessions/{ID}", _retriever("checkout.session")),
    ("GET", rf"/v1/payment_intents/{ID}", _retriever("payment_intent")),
    ("GET", rf"/v1/charges/{ID}", _retriever("charge")),
    ("GET", rf"/v1/balance_transactions/{ID}", _retriever("balance_transaction")),
    ("GET", rf"/v1/subscriptions/{ID}", _retriever("subscription")),
    ("GET", rf"/v1/invoices/{ID}", _retriever("invoice")),
    ("GET", r"/v1/invoice_payments", list_invoice_payments),
    ("GET", rf"/v1/invoice_payments/{ID}", _retriever("invoice_payment")),
    ("POST", r"/v1/refunds", create_refund),
    ("GET", r"/v1/refunds", list_refunds),
    ("GET", rf"/v1/refunds/{ID}", _retriever("refund")),
    ("GET", rf"/v1/promotion_codes/{ID}", _retriever("promotion_code")),
    ("GET", rf"/v1/coupons/{ID}", _retriever("coupon")),
]]


# --------------------------------------------------------------------------- injected errors

# Defaults for `/_control/fail_next` by error `code` (status, type, message, Stripe-Should-Retry).
FAULT_CODES = {
    None: (500, "api_error", "An unknown error occurred", None),
    "rate_limit": (429, "invalid_request_error",
                   "Request rate limit exceeded. Learn more about rate limits here "
                   "https://stripe.com/docs/rate-limits.", None),
    "lock_timeout": (429, "invalid_request_error",
                     "This object cannot be accessed right now because another API request or "
                     "Stripe process is currently accessing it. If you see this error "
                     "intermittently, retry the request. If you see this error frequently and "
                     "are making multiple concurrent requests to a single object, make your "
                     "requests serially or at a lower rate. See "
                     "https://stripe.com/docs/rate-limits for more information.", "true"),
    "balance_insufficient": (400, "invalid_request_error",
                             "You have insufficient available funds in your Stripe account.",
                             None),
    "insufficient_capabilities_for_transfer": (
        400, "invalid_request_error",
        "Your destination account needs to have at least one of the following capabilities "
        "enabled: transfers, crypto_transfers, legacy_payments", None),
    "amount_too_large": (400, "invalid_request_error", "Amount must be no more than 99999999.",
                         None),
}


def fault_error(rule, keyed: bool) -> StripeError:
    """The error an injected fault answers with. A saved 5xx answered under an idempotency key
    carries `Stripe-Should-Retry: false` (a retry would only replay it)."""
    code = rule.get("code")
    if code is None and rule.get("status") == 429:
        code = "rate_limit"
    d_status, d_type, d_message, d_retry = FAULT_CODES.get(code) or (
        400, "invalid_request_error", f"Injected {code} error (stripe-fake).", None)
    status = int(rule.get("status") or d_status)
    type_ = rule.get("type") or ("api_error" if status >= 500 else
                                 "invalid_request_error" if d_type == "api_error" else d_type)
    headers = {str(k): str(v) for k, v in (rule.get("headers") or {}).items()}
    retry = rule.get("should_retry")
    if retry is None:
        retry = d_retry
        if retry is None and rule.get("saved") and keyed and status >= 500:
            retry = "false"
    if retry is not None:
        headers["Stripe-Should-Retry"] = retry if isinstance(retry, str) else \
            ("true" if retry else "false")
    if rule.get("retry_after") is not None:
        headers["Retry-After"] = str(rule["retry_after"])
    return StripeError(status, type_, rule.get("message") or d_message, code,
                       rule.get("param"), stored=bool(rule.get("saved")), headers=headers)


# --------------------------------------------------------------------------- HTTP layer

class Dropped(Exception):
    """Raised to close the connection without any response (drop_next)."""


def _as_bool(value, name) -> bool:
    if isinstance(value, bool):
        return value
    raise ValueError(f"{name} must be true or false")


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
        sent_version = self.headers.get("Stripe-Version")
        headers = {"Request-Id": request_id, "Stripe-Version": sent_version or API_VERSION,
                   "Idempotency-Key": idem_key}
        params = parse_form(body if method == "POST" else url.query)
        entry = {"request_id": request_id, "time": time.time(), "method": method,
                 "path": url.path, "query": url.query, "idempotency_key": idem_key,
                 "params": params, "stripe_account": self.headers.get("Stripe-Account"),
                 "stripe_version": sent_version, "status": None, "replayed": False,
                 "injected": None}
        with f.lock:
            f.requests.append(entry)

        def reply(status, payload, extra=None):
            entry["status"] = status
            self._send(status, payload, {**headers, **(extra or {})})

        def reply_error(err: StripeError):
            reply(err.status, err.body(), err.headers)

        # 1. authentication (runs before the idempotency layer: nothing is saved)
        key = api_key_from(self.headers.get("Authorization", ""))
        if not key:
            return reply_error(StripeError(
                401, "invalid_request_error",
                "You did not provide an API key. You need to provide your API key in the "
                "Authorization header, using Bearer auth (e.g. 'Authorization: Bearer "
                "YOUR_SECRET_KEY'). See https://stripe.com/docs/api#authentication for details, "
                "or we can help at https://support.stripe.com/."))
        with f.lock:
            revoked = f.revoked.get(key)
        if revoked == "expired":
            return reply_error(StripeError(401, "invalid_request_error",
                                           f"Expired API Key provided: {mask_key(key)}",
                                           "api_key_expired"))
        if revoked or not key.startswith("sk_test_") or (f.api_key and key != f.api_key):
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
        # 3. injected failure in front of the endpoint (load balancer, rate limiter): answered
        #    without executing, nothing saved under the idempotency key
        fault = self._take_fault("fail", method, url.path, saved=False)
        if fault:
            entry["injected"] = "fail"
            return reply_error(fault_error(fault, keyed=bool(idem_key)))
        # 4. idempotency
        slot = None
        if idem_key is not None:
            if len(idem_key) > MAX_IDEMPOTENCY_KEY or not idem_key:
                return reply_error(invalid(
                    f"Invalid Idempotency-Key: keys must be 1 to {MAX_IDEMPOTENCY_KEY} "
                    "characters long."))
            fingerprint = json.dumps([method, url.path, params], sort_keys=True)
            ik = (key, idem_key)
            with f.lock:
                f.prune_idempotency()  # keys at least 24 h old (fake clock) are forgotten
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
                    status, payload, orig_id, extra = slot["response"]
                    entry["replayed"] = True
                    return reply(status, payload, {**extra, "Idempotent-Replayed": "true",
                                                   "Original-Request": orig_id})
                slot = f.idem[ik] = {"endpoint": f"{method} {url.path}",
                                     "fingerprint": fingerprint, "response": None,
                                     "created": f.now()}
        # 5. execute (optionally delayed, while the key is held in flight)
        delay = self._take_fault("delay", method, url.path)
        if delay:
            entry["injected"] = "delay"
            time.sleep(float(delay.get("seconds", 1)))
        ctx = Ctx(f, method, url.path, params, key, request_id, idem_key,
                  self.headers.get("Stripe-Account"))
        # an injected failure inside the endpoint: saved under the key like any result once
        # the endpoint began executing; with `execute` the side effects happen first
        inside = self._take_fault("fail", method, url.path, saved=True)
        extra = {}
        try:
            if ctx.stripe_account and fn is not retrieve_balance:
                raise invalid("stripe-fake: the Stripe-Account header is only modelled for "
                              "GET /v1/balance", stored=False)
            if ctx.stripe_account:
                with f.lock:
                    if ctx.stripe_account not in f.accounts \
                            or ctx.stripe_account in f.deauthorized:
                        raise f.platform_access_error(key, ctx.stripe_account)
            if inside:
                entry["injected"] = "fail_saved"
                if inside.get("execute"):
                    try:
                        fn(ctx, match.groupdict())
                    except StripeError as err:
                        if not err.stored:  # invalid params: the endpoint never began
                            raise
                raise fault_error(inside, keyed=bool(idem_key))
            status, payload = fn(ctx, match.groupdict())
            stored = True
        except StripeError as err:
            status, payload, stored, extra = err.status, err.body(), err.stored, err.headers
        if slot is not None:
            with f.lock:
                if stored:
                    slot["response"] = (status, payload, request_id, extra)
                else:
                    f.idem.pop((key, idem_key), None)
        # 6. lost answer: executed and saved, but the client never hears back
        if self._take_fault("drop", method, url.path):
            entry["injected"] = "drop"
            entry["status"] = status
            raise Dropped()
        reply(status, payload, extra)

    def _take_fault(self, kind, method, path, saved=None):
        with self.fake.lock:
            for rule in self.fake.faults:
                if (rule["kind"] == kind and rule["count"] > 0
                        and path.startswith(rule["path_prefix"])
                        and rule.get("method") in (None, method)
                        and (saved is None or bool(rule.get("saved")) == saved)):
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
            if link["used"] or link["expires_at"] < f.now():
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

    def _webhook_view(self):
        f = self.fake
        ep = {name: ({"url": e["url"]} if e else None) for name, e in f.endpoints.items()}
        return {"url": (f.endpoints["platform"] or {}).get("url"), **ep,
                "legacy_single": f.legacy_single, "hold": f.hold, "duplicate": f.duplicate,
                "held": [{"event_id": i[0]["id"], "type": i[0]["type"], "endpoint": i[2]}
                         for i in f.held]}

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
                if data.get("account"):
                    f.get_account(data["account"])
                    f.connected_balance.setdefault(data["account"], {})[cur] = amount
                    return 200, f.balance_object(data["account"])
                f.balance[cur] = amount
                return 200, f.balance_object()
        if method == "POST" and len(parts) == 3 and parts[0] == "accounts":
            if parts[2] == "complete_onboarding":
                with f.lock:
                    return 200, copy.deepcopy(f.complete_onboarding(parts[1], (data or {}).get("account_number")))
            action = {"disable_transfers": f.disable_transfers}.get(parts[2])
            if action:
                with f.lock:
                    return 200, copy.deepcopy(action(parts[1]))
            if parts[2] == "set_capability":
                with f.lock:
                    return 200, copy.deepcopy(f.set_capability(parts[1], data["name"],
                                                               data["status"]))
            if parts[2] == "deauthorize":
                with f.lock:
                    return 200, copy.deepcopy(f.deauthorize(parts[1]))
        if method == "POST" and len(parts) == 1 and parts[0] in ("fail_next", "drop_next",
                                                                 "delay_next"):
            rule = {"kind": parts[0][:-5], "path_prefix": str(data["path_prefix"]),
                    "method": data.get("method"), "count": int(data.get("count", 1))}
            if rule["kind"] == "fail":
                rule["status"] = int(data["status"]) if data.get("status") is not None else None
                for k in ("code", "type", "message", "param"):
                    if data.get(k) is not None:
                        rule[k] = str(data[k])
                rule["saved"] = _as_bool(data.get("saved", False), "saved")
                rule["execute"] = _as_bool(data.get("execute", False), "execute")
                if rule["execute"] and not rule["saved"]:
                    raise ValueError("execute needs saved: an executed request's result is saved")
                for k in ("should_retry", "retry_after", "headers"):
                    if data.get(k) is not None:
                        rule[k] = data[k]
                if rule["status"] is None:
                    rule["status"] = fault_error(rule, True).status
            if rule["kind"] == "delay":
                rule["seconds"] = float(data["seconds"])
            with f.lock:
                f.faults.append(rule)
            return 200, rule
        if route == ("POST", "expire_idempotency_keys"):
            older = int(data.get("older_than_seconds", 0))
            return 200, {"expired": f.prune_idempotency(older)}
        if route == ("POST", "clock"):
            with f.lock:
                f.clock_offset += int(data.get("advance_seconds", 0))
                f.prune_idempotency()
                return 200, {"now": f.now(), "offset": f.clock_offset}
        if route == ("GET", "clock"):
            return 200, {"now": f.now(), "offset": f.clock_offset}
        if route in (("POST", "config"), ("GET", "config")):
            with f.lock:
                for k, v in data.items():
                    if k not in DEFAULT_CONFIG:
                        raise ValueError(f"unknown config key {k}")
                    if k == "platform_country":
                        v = str(v).upper()
                        if not re.fullmatch(r"[A-Z]{2}", v):
                            raise ValueError("platform_country must be a 2-letter code")
                    elif k == "transfer_amount_limit":
                        v = None if v is None else int(v)
                    else:
                        v = _as_bool(v, k)
                    f.config[k] = v
                return 200, dict(f.config)
        if route == ("POST", "revoke_key"):
            reason = data.get("reason", "expired")
            if reason not in ("expired", "deleted"):
                raise ValueError("reason must be expired or deleted")
            with f.lock:
                f.revoked[str(data["key"])] = reason
            return 200, {"key": mask_key(str(data["key"])), "reason": reason}
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
                    "events": f.events, "webhook": self._webhook_view(),
                    "faults": [r for r in f.faults if r["count"] > 0],
                    "deauthorized": sorted(f.deauthorized), "config": f.config,
                    "clock": {"now": f.now(), "offset": f.clock_offset},
                    "platform_account": f.platform_id,
                    "idempotency_keys": [k[1] for k in f.idem],
                    "payments": {kind: [o["id"] for o in reversed(f.of_kind(kind))]
                                 for kind in LABELS}})
        if route == ("POST", "webhook"):
            url = data.get("url")
            if url:
                check_loopback(url)
            which = "connect" if _as_bool(data.get("connect", False), "connect") else "platform"
            with f.lock:
                f.endpoints[which] = {"url": url, "secret": data.get("secret")} if url else None
                if "legacy_single" in data:
                    f.legacy_single = _as_bool(data["legacy_single"], "legacy_single")
                return 200, self._webhook_view()
        if route == ("POST", "webhook_mode"):
            with f.lock:
                if "hold" in data:
                    f.hold = _as_bool(data["hold"], "hold")
                if "duplicate" in data:
                    f.duplicate = _as_bool(data["duplicate"], "duplicate")
                return 200, self._webhook_view()
        if route == ("POST", "release"):
            ids = f.release(str(data.get("order", "created")),
                            _as_bool(data.get("duplicate", False), "duplicate"), data.get("seed"))
            return 200, {"released": ids}
        if route == ("POST", "sign"):
            with f.lock:
                ep = f.endpoints["connect" if data.get("connect") else "platform"] or {}
            secret = data.get("secret") or ep.get("secret")
            if not secret:
                raise ValueError("no secret given and no such webhook endpoint configured")
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
                if not f.targets(evt):
                    raise ValueError("no webhook endpoint receives this event")
                evt["pending_webhooks"] += f.deliver(evt)
            return 200, {"queued": evt["id"]}
        if route == ("POST", "checkout"):
            with f.lock:
                return 200, f.control_checkout(data)
        if route == ("POST", "async_payment"):
            with f.lock:
                return 200, f.control_async_payment(data)
        if route == ("POST", "renew"):
            with f.lock:
                return 200, f.control_renew(data)
        if route == ("POST", "refund_next"):
            status = data.get("status", "pending")
            if status not in ("pending", "succeeded"):
                raise ValueError("status must be pending or succeeded")
            with f.lock:
                f.refund_next = [status] * int(data.get("count", 1))
                return 200, {"next": list(f.refund_next)}
        if route == ("POST", "refund_status"):
            with f.lock:
                return 200, f.control_refund_status(data)
        if method == "GET" and len(parts) == 2 and parts[0] in ("events", "event"):
            with f.lock:
                for e in f.events:
                    if e["id"] == parts[1]:
                        return 200, copy.deepcopy(e)
            raise no_such("event", parts[1])
        raise StripeError(404, "invalid_request_error",
                          f"Unknown control endpoint ({method} /_control/{'/'.join(parts)})")


# --------------------------------------------------------------------------- entry points

class FakeServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def start(port=0, api_key=None, webhook_url=None, webhook_secret=None, verbose=False,
          connect_webhook_url=None, connect_webhook_secret=None, legacy_single=False):
    """Start in a background thread. Returns (server, thread, base_url); server.fake is the state.
    `webhook_url` is the platform (account) endpoint, `connect_webhook_url` the Connect one."""
    api_key = api_key or os.environ.get("STRIPE_FAKE_API_KEY") or None
    server = FakeServer((HOST, port), Handler)
    server.verbose = verbose
    server.fake = FakeStripe(api_key, webhook_url, webhook_secret, connect_webhook_url,
                             connect_webhook_secret, legacy_single)
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
    ap.add_argument("--webhook-url", default=None, help="platform (account) webhook endpoint")
    ap.add_argument("--webhook-secret", default=None)
    ap.add_argument("--connect-webhook-url", default=None, help="Connect webhook endpoint")
    ap.add_argument("--connect-webhook-secret", default=None)
    ap.add_argument("--webhook-legacy-single", action="store_true",
                    help="NOT like Stripe: send connected-account events to the platform "
                         "endpoint too when no Connect endpoint is set")
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args(argv)
    if args.webhook_url and not args.webhook_secret:
        ap.error("--webhook-url needs --webhook-secret")
    if args.connect_webhook_url and not args.connect_webhook_secret:
        ap.error("--connect-webhook-url needs --connect-webhook-secret")
    try:
        server, thread, _ = start(args.port, args.api_key, args.webhook_url,
                                  args.webhook_secret, args.verbose, args.connect_webhook_url,
                                  args.connect_webhook_secret, args.webhook_legacy_single)
    except ValueError as e:
        ap.error(str(e))
    print(f"READY {server.server_address[1]}", flush=True)
    try:
        thread.join()
    except KeyboardInterrupt:
        stop(server)


if __name__ == "__main__":
    main()
