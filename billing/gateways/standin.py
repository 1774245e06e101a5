"""The local Checkout stand-in's answers: a pretend Stripe for development without keys.

Only used while ``BILLING_STANDIN_ENABLED`` is on (production refuses the switch). It answers
the gateway calls from our own rows: a session's state is the one built from our row, overlaid
by the newest signed ``checkout.session.*`` event stored for it, so in stand-in mode whoever
holds the webhook secret plays Stripe. ``billing.standin_events`` is its sending side.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from django.urls import reverse
from django.utils import timezone

from billing.exceptions import GatewayError, SessionNotFound
from billing.gateways.base import PAID_STATUSES, Price
from billing.models import (
    CheckoutSession,
    CreditPack,
    Plan,
    StripeEvent,
    StripeMode,
    Subscription,
)

INVOICE_PREFIX = "in_standin_"
INTENT_PREFIX = "pi_standin_"


class StandinGateway:
    """Answer the gateway's calls locally; never touches the network."""

    mode = StripeMode.STANDIN

    def create_customer(self, *, user_id: str, email: str, idempotency_key: str) -> str:
        return "cus_standin_" + digest(idempotency_key)

    def resolve_price(self, product: CreditPack | Plan) -> Price:
        price_id = product.stripe_price_id or f"price_standin_{product.slug}"
        return Price(id=price_id, unit_amount=product.price_amount, currency=product.currency)

    def create_checkout_session(self, params: dict, *, idempotency_key: str) -> dict:
        # Derived from the key, as Stripe answers a repeated key with the same session.
        session_id = "cs_test_standin_" + digest(idempotency_key)
        return {
            "id": session_id,
            "object": "checkout.session",
            # Relative, so the stand-in works on whatever host and port serves the app.
            "url": reverse("billing:standin", args=[session_id]),
            "expires_at": params["expires_at"],
            "livemode": False,
        }

    def retrieve_checkout_session(self, session_id: str) -> dict:
        row = (
            CheckoutSession.objects.select_related("pack", "plan")
            .filter(stripe_session_id=session_id)
            .first()
        )
        latest = (
            StripeEvent.objects.filter(object_id=session_id, type__startswith="checkout.session.")
            .order_by("-payload__created", "-received_at")
            .only("payload")
            .first()
        )
        if row is None and latest is None:
            raise SessionNotFound(f"No stand-in session {session_id}.")
        session = session_object(row) if row is not None else {"id": session_id}
        if latest is not None:
            session.update(latest.payload.get("data", {}).get("object", {}))
        if not isinstance(session.get("line_items"), dict):
            # A signed object may carry its own expanded line items; else ours stand.
            session["line_items"] = (
                _line_items(row) if row is not None else {"object": "list", "data": []}
            )
        return session

    def list_paid_checkout_sessions(self, *, created_since: datetime) -> Iterator[dict]:
        rows = CheckoutSession.objects.filter(
            mode=StripeMode.STANDIN, created_at__gte=created_since
        ).exclude(stripe_session_id=None)
        for session_id in rows.values_list("stripe_session_id", flat=True).iterator():
            session = self.retrieve_checkout_session(session_id)
            if session.get("status") == "complete" and session.get("payment_status") in (
                PAID_STATUSES
            ):
                yield session

    def create_portal_session(self, *, customer_id: str, return_url: str) -> str:
        raise GatewayError("The customer portal is Stripe's own page; the stand-in has none.")

    def list_paid_invoices(self, *, created_since: datetime) -> Iterator[dict]:
        # The stand-in keeps no invoices of its own: the ones it sent are its answer.
        events = StripeEvent.objects.filter(
            type="invoice.paid", livemode=False, received_at__gte=created_since
        ).only("payload")
        for event in events.iterator():
            yield event.payload["data"]["object"]

    def list_refunded_charges(self, *, created_since: datetime) -> Iterator[dict]:
        # Like invoices, the refunds it sent are its answer.
        yield from _sent("charge.refunded", created_since)

    def list_disputes(self, *, created_since: datetime) -> Iterator[dict]:
        yield from _sent("charge.dispute.", created_since)

    def invoice_paid_by(self, payment_intent: str) -> str:
        if not payment_intent.startswith(INTENT_PREFIX):
            return ""
        return INVOICE_PREFIX + payment_intent.removeprefix(INTENT_PREFIX)

    def cancel_subscription(self, subscription_id: str) -> dict:
        # Stripe's reply, reduced to what sync_subscription reads: the row as it stands, canceled.
        row = Subscription.objects.select_related("plan").get(
            stripe_subscription_id=subscription_id, mode=StripeMode.STANDIN
        )
        period_end = int(row.current_period_end.timestamp()) if row.current_period_end else None
        price_id = row.plan.stripe_price_id if row.plan else ""
        return {
            "id": subscription_id,
            "object": "subscription",
            "customer": row.stripe_customer_id,
            "status": "canceled",
            "livemode": False,
            "cancel_at_period_end": False,
            "canceled_at": int(timezone.now().timestamp()),
            "metadata": {"user_id": str(row.user_id), "plan": row.plan.slug if row.plan else ""},
            "items": {
                "object": "list",
                "data": [{"price": {"id": price_id}, "current_period_end": period_end}],
            },
        }


def invoice_payment_intent(invoice_id: str) -> str:
    """Return the PaymentIntent that paid a stand-in invoice (named after it)."""
    return INTENT_PREFIX + invoice_id.removeprefix(INVOICE_PREFIX)


def session_object(row: CheckoutSession) -> dict[str, Any]:
    """Return the Checkout Session Stripe would hold for our row before anything happened."""
    expires_at = int(row.expires_at.timestamp()) if row.expires_at else None
    expired = row.expires_at is not None and row.expires_at <= timezone.now()
    return {
        "id": row.stripe_session_id,
        "object": "checkout.session",
        "mode": "subscription" if row.is_subscription else "payment",
        "livemode": False,
        "status": "expired" if expired else "open",
        "payment_status": "unpaid",
        "client_reference_id": str(row.user_id),
        "customer": row.stripe_customer_id or None,
        "metadata": {
            "checkout_id": str(row.id),
            "user_id": str(row.user_id),
            **({"plan": row.plan.slug} if row.is_subscription else {"pack": row.pack.slug}),
        },
        "currency": row.currency,
        "amount_subtotal": row.amount,
        "amount_total": row.amount,
        "total_details": {"amount_discount": 0, "amount_shipping": 0, "amount_tax": 0},
        "payment_intent": None,
        "url": row.url,
        "created": int(row.created_at.timestamp()),
        "expires_at": expires_at,
        "line_items": _line_items(row),
    }


def _line_items(row: CheckoutSession) -> dict[str, Any]:
    item = {
        "id": "li_standin_" + digest(str(row.id)),
        "object": "item",
        "price": {"id": row.stripe_price_id, "object": "price", "unit_amount": row.amount},
        "quantity": 1,
        "currency": row.currency,
        "amount_subtotal": row.amount,
        "amount_total": row.amount,
        "description": row.product_name,
    }
    return {"object": "list", "data": [item], "has_more": False}


def digest(text: str) -> str:
    """Return a short stable id part derived from ``text`` (Stripe-like, never secret)."""
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def _sent(event_type: str, since: datetime) -> Iterator[dict]:
    """Yield the objects of the stand-in's stored events of this type (or type prefix)."""
    events = StripeEvent.objects.filter(
        type__startswith=event_type, livemode=False, received_at__gte=since
    ).order_by("received_at")
    for event in events.only("payload").iterator():
        yield event.payload["data"]["object"]
