"""A pretend Stripe API behind stripe-python's HTTP client seam.

Everything above the wire (StripeClient, its form encoding, retries, idempotency headers, error
mapping, our gateway) runs for real; only the network is replaced. The fake keeps objects in
memory, honours Idempotency-Key like Stripe (same key, same answer), and records every request
so tests can assert parameters and headers. Events and their signatures are built here too,
without Django, so ``make prod-check`` sends the same ones.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import threading
import time
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlsplit

import stripe


@dataclass
class Call:
    method: str
    path: str
    params: dict
    headers: dict


def decode_form(pairs: list[tuple[str, str]]) -> dict:
    """Turn Stripe's ``a[b][0][c]=v`` form encoding back into nested dicts and lists."""
    root: dict = {}
    for key, value in pairs:
        parts = re.findall(r"[^\[\]]+", key)
        node = root
        for index, part in enumerate(parts):
            last = index == len(parts) - 1
            if last:
                node[part] = value
            else:
                node = node.setdefault(part, {})
    return _listify(root)


def _listify(node):
    if isinstance(node, dict):
        node = {k: _listify(v) for k, v in node.items()}
        if node and all(k.isdigit() for k in node):
            return [node[k] for k in sorted(node, key=int)]
    return node


WEBHOOK_SECRET = "whsec_test_" + "b" * 32


def stripe_signature(payload: bytes, secret: str = WEBHOOK_SECRET, timestamp=None) -> str:
    """Sign as Stripe does: t=<ts>,v1=<hex HMAC-SHA256 of "<ts>.<payload>" keyed by the secret>."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + payload, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def make_event(
    event_type: str, data_object: dict, *, livemode: bool = False, expanded: bool = False, **extra
) -> dict:
    """Return an event envelope in Stripe's shape (the session without expansions, unless
    ``expanded``)."""
    if not expanded:
        data_object = {k: v for k, v in data_object.items() if k != "line_items"}
    return {
        "id": extra.pop("event_id", "evt_" + secrets.token_hex(12)),
        "object": "event",
        "api_version": "2026-10-28.endive",
        "created": int(time.time()),
        "livemode": livemode,
        "pending_webhooks": 1,
        "type": event_type,
        "data": {"object": data_object},
        **extra,
    }


def encode(event: dict) -> bytes:
    return json.dumps(event).encode()


class FakeStripe(stripe.HTTPClient):
    name = "fake"

    def __init__(self) -> None:
        super().__init__()
        self.lock = threading.Lock()
        self.calls: list[Call] = []
        self.customers: dict[str, dict] = {}
        self.prices: dict[str, dict] = {}
        self.sessions: dict[str, dict] = {}
        self.line_items: dict[str, list[dict]] = {}
        self.idempotent: dict[str, tuple[dict, tuple[str, int, dict]]] = {}
        self.invoices: dict[str, dict] = {}
        self.invoice_payments: list[dict] = []
        self.subscriptions: dict[str, dict] = {}
        self.charges: dict[str, dict] = {}
        self.refunds: list[dict] = []
        self.disputes: dict[str, dict] = {}
        self.fail_with: int | None = None

    # -- test helpers ------------------------------------------------------------------------

    def add_price(
        self,
        price_id: str,
        *,
        unit_amount: int,
        currency: str = "usd",
        lookup_key: str = "",
        interval: str | None = None,
    ) -> dict:
        price = {
            "id": price_id,
            "object": "price",
            "active": True,
            "type": "recurring" if interval else "one_time",
            "recurring": {"interval": interval, "interval_count": 1} if interval else None,
            "currency": currency,
            "unit_amount": unit_amount,
            "lookup_key": lookup_key or None,
        }
        self.prices[price_id] = price
        return price

    def complete(self, session_id: str, *, payment_status: str = "paid", **changes) -> dict:
        """Do what Stripe does when the buyer pays: complete the session."""
        session = self.sessions[session_id]
        session.update(status="complete", payment_status=payment_status)
        if session["mode"] == "subscription":
            session["subscription"] = session.get("subscription") or "sub_" + secrets.token_hex(8)
        else:
            session["payment_intent"] = session["payment_intent"] or "pi_" + secrets.token_hex(8)
        session.update(changes)
        return self.session_with_items(session_id)

    def session_with_items(self, session_id: str) -> dict:
        session = json.loads(json.dumps(self.sessions[session_id]))
        session["line_items"] = {
            "object": "list",
            "data": json.loads(json.dumps(self.line_items[session_id])),
            "has_more": False,
            "url": f"/v1/checkout/sessions/{session_id}/line_items",
        }
        return session

    def add_subscription(self, subscription: dict) -> dict:
        self.subscriptions[subscription["id"]] = subscription
        return subscription

    def add_invoice(self, invoice: dict, *, created: int | None = None) -> dict:
        """Hold an invoice as Stripe would list it (``created`` defaults to now)."""
        stored = {**json.loads(json.dumps(invoice)), "created": created or int(time.time())}
        self.invoices[stored["id"]] = stored
        return stored

    def pay_invoice(self, invoice_id: str, payment_intent: str) -> dict:
        """Record that ``payment_intent`` paid the invoice, as an InvoicePayment."""
        payment = {
            "id": "inpay_" + secrets.token_hex(8),
            "object": "invoice_payment",
            "invoice": invoice_id,
            "is_default": True,
            "status": "paid",
            "payment": {"type": "payment_intent", "payment_intent": payment_intent},
        }
        self.invoice_payments.append(payment)
        return payment

    def refund(self, charge: dict, amount: int) -> dict:
        """Refund ``amount`` more of the charge, as Stripe records it: a Refund, and the charge's
        cumulative ``amount_refunded``."""
        stored = self.charges.setdefault(charge["id"], json.loads(json.dumps(charge)))
        stored["amount_refunded"] = stored.get("amount_refunded", 0) + amount
        stored["refunded"] = stored["amount_refunded"] >= stored["amount"]
        self.refunds.append(
            {
                "id": "re_" + secrets.token_hex(8),
                "object": "refund",
                "charge": charge["id"],
                "payment_intent": charge.get("payment_intent"),
                "amount": amount,
                "created": int(time.time()),
            }
        )
        return json.loads(json.dumps(stored))

    def add_dispute(self, dispute: dict) -> dict:
        """Hold a dispute in its current state, as Stripe lists it."""
        stored = {"created": int(time.time()), **json.loads(json.dumps(dispute))}
        self.disputes[stored["id"]] = stored
        return stored

    def calls_to(self, method: str, path: str) -> list[Call]:
        return [c for c in self.calls if c.method == method and c.path == path]

    # -- the HTTP client seam ----------------------------------------------------------------

    def request(self, method, url, headers, post_data=None, **kwargs):
        parts = urlsplit(url)
        params = decode_form(parse_qsl(parts.query) + parse_qsl(post_data or ""))
        headers = dict(headers or {})
        with self.lock:
            self.calls.append(Call(method.upper(), parts.path, params, headers))
            if self.fail_with:
                return self._error(self.fail_with, "api_error", "The fake is down.")
            key = headers.get("Idempotency-Key")
            if method.lower() == "post" and key:
                if key in self.idempotent:
                    first_params, answer = self.idempotent[key]
                    if first_params != params:
                        return self._error(400, "idempotency_error", "Keys for idempotent...")
                    return answer
                answer = self._route(method.lower(), parts.path, params)
                self.idempotent[key] = (params, answer)
                return answer
            return self._route(method.lower(), parts.path, params)

    def close(self) -> None:
        pass

    def _route(self, method: str, path: str, params: dict):
        if method == "post" and path == "/v1/customers":
            customer = {
                "id": "cus_" + secrets.token_hex(7),
                "object": "customer",
                "email": params.get("email"),
                "metadata": params.get("metadata", {}),
            }
            self.customers[customer["id"]] = customer
            return self._ok(customer)
        if method == "get" and path == "/v1/prices":
            keys = params.get("lookup_keys", [])
            found = [
                p
                for p in self.prices.values()
                if p["lookup_key"] in keys and (params.get("active") != "true" or p["active"])
            ]
            return self._ok({"object": "list", "data": found, "has_more": False})
        if method == "get" and path.startswith("/v1/prices/"):
            price = self.prices.get(path.rsplit("/", 1)[1])
            return self._ok(price) if price else self._missing("price")
        if method == "post" and path == "/v1/billing_portal/sessions":
            portal_id = "bps_" + secrets.token_hex(8)
            return self._ok(
                {
                    "id": portal_id,
                    "object": "billing_portal.session",
                    "customer": params.get("customer"),
                    "return_url": params.get("return_url"),
                    "url": f"https://billing.stripe.com/p/session/{portal_id}",
                }
            )
        if method == "post" and path == "/v1/checkout/sessions":
            return self._ok(self._create_session(params))
        if method == "get" and path == "/v1/checkout/sessions":
            since = int(params.get("created", {}).get("gte", 0))
            found = [
                s
                for s in self.sessions.values()
                if s["created"] >= since
                and (not params.get("status") or s["status"] == params["status"])
            ]
            return self._ok({"object": "list", "data": found, "has_more": False})
        if method == "get" and path.startswith("/v1/checkout/sessions/"):
            session_id = path.rsplit("/", 1)[1]
            if session_id not in self.sessions:
                return self._missing("checkout.session")
            if "line_items" in params.get("expand", []):
                return self._ok(self.session_with_items(session_id))
            return self._ok(self.sessions[session_id])
        if method == "get" and path == "/v1/invoices":
            since = int(params.get("created", {}).get("gte", 0))
            found = [
                i
                for i in self.invoices.values()
                if i["created"] >= since
                and (not params.get("status") or i["status"] == params["status"])
            ]
            return self._ok({"object": "list", "data": found, "has_more": False})
        if method == "get" and path == "/v1/invoice_payments":
            wanted = params.get("payment", {}).get("payment_intent")
            found = [
                p
                for p in self.invoice_payments
                if (wanted is None or p["payment"]["payment_intent"] == wanted)
                and (not params.get("invoice") or p["invoice"] == params["invoice"])
            ][: int(params.get("limit", 10))]
            return self._ok({"object": "list", "data": found, "has_more": False})
        if method == "get" and path in ("/v1/refunds", "/v1/disputes"):
            since = int(params.get("created", {}).get("gte", 0))
            listed = self.refunds if path == "/v1/refunds" else list(self.disputes.values())
            found = [r for r in listed if r["created"] >= since]
            return self._ok({"object": "list", "data": found, "has_more": False})
        if method == "get" and path.startswith("/v1/charges/"):
            charge = self.charges.get(path.rsplit("/", 1)[1])
            return self._ok(charge) if charge else self._missing("charge")
        if method == "delete" and path.startswith("/v1/subscriptions/"):
            subscription_id = path.rsplit("/", 1)[1]
            subscription = self.subscriptions.get(subscription_id)
            if subscription is None:
                return self._missing("subscription")
            subscription.update(status="canceled", canceled_at=int(time.time()))
            return self._ok(subscription)
        return self._error(404, "invalid_request_error", f"Unrecognized request URL {path}")

    def _create_session(self, params: dict) -> dict:
        items = params["line_items"]
        price = self.prices[items[0]["price"]]
        quantity = int(items[0]["quantity"])
        session_id = "cs_test_" + secrets.token_hex(16)
        amount = price["unit_amount"] * quantity
        session = {
            "id": session_id,
            "object": "checkout.session",
            "mode": params["mode"],
            "status": "open",
            "payment_status": "unpaid",
            "client_reference_id": params.get("client_reference_id"),
            "customer": params.get("customer"),
            "metadata": params.get("metadata", {}),
            "currency": price["currency"],
            "amount_subtotal": amount,
            "amount_total": amount,
            "total_details": {"amount_discount": 0, "amount_shipping": 0, "amount_tax": 0},
            "payment_intent": None,
            "livemode": False,
            "created": int(time.time()),
            "expires_at": int(params["expires_at"]),
            "success_url": params["success_url"],
            "cancel_url": params["cancel_url"],
            "url": f"https://checkout.stripe.com/c/pay/{session_id}",
        }
        self.sessions[session_id] = session
        self.line_items[session_id] = [
            {
                "id": "li_" + secrets.token_hex(8),
                "object": "item",
                "price": price,
                "quantity": quantity,
                "currency": price["currency"],
                "amount_subtotal": amount,
                "amount_total": amount,
            }
        ]
        return session

    def _ok(self, body: dict):
        return json.dumps(body), 200, {"request-id": "req_" + secrets.token_hex(6)}

    def _missing(self, kind: str):
        return self._error(404, "invalid_request_error", f"No such {kind}", code="resource_missing")

    def _error(self, status: int, kind: str, message: str, code: str | None = None):
        body = {"error": {"type": kind, "message": message, "code": code}}
        return json.dumps(body), status, {"request-id": "req_" + secrets.token_hex(6)}
