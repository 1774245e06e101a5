"""The local Checkout stand-in's sending side: signed events delivered to our own webhook.

Only used while ``BILLING_STANDIN_ENABLED`` is on (production refuses the switch). It pays,
renews, refunds and disputes by sending a correctly signed event over HTTP to the real webhook
endpoint, so the production path runs unchanged.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from typing import Any

import httpx
from django.conf import settings

from billing.exceptions import GatewayError
from billing.gateways.standin import INTENT_PREFIX, INVOICE_PREFIX, StandinGateway, digest
from billing.models import CheckoutSession, Plan, StripeMode, Subscription, SubscriptionInvoice

DELIVERY_TIMEOUT_SECONDS = 15

# What each stand-in action does to the session, and the event that tells the webhook.
ACTIONS: dict[str, tuple[str, dict[str, str]]] = {
    "pay": ("checkout.session.completed", {"status": "complete", "payment_status": "paid"}),
    "pay_delayed": (
        "checkout.session.completed",
        {"status": "complete", "payment_status": "unpaid"},
    ),
    "settle": (
        "checkout.session.async_payment_succeeded",
        {"status": "complete", "payment_status": "paid"},
    ),
    "fail": (
        "checkout.session.async_payment_failed",
        {"status": "complete", "payment_status": "unpaid"},
    ),
    "expire": ("checkout.session.expired", {"status": "expired", "payment_status": "unpaid"}),
}
EVENT_ACTIONS = {event_type: action for action, (event_type, _) in ACTIONS.items()}


def perform(action: str, session_id: str, *, webhook_url: str) -> httpx.Response:
    """Apply a stand-in action (pay, settle, ...) by delivering its signed event to the webhook."""
    event_type, changes = ACTIONS[action]
    session = StandinGateway().retrieve_checkout_session(session_id)
    session.update(changes)
    subscribing = session.get("mode") == "subscription"
    if subscribing and action == "pay":
        session["subscription"] = session.get("subscription") or "sub_standin_" + digest(session_id)
    elif action in ("pay", "pay_delayed") and not session.get("payment_intent"):
        session["payment_intent"] = INTENT_PREFIX + secrets.token_hex(12)
    session.pop("line_items", None)  # events carry the session without expansions, as Stripe's
    answer = deliver(build_event(event_type, session), webhook_url)
    if subscribing and action == "pay" and answer.status_code == 200:
        # Stripe follows a paid subscription checkout with the subscription and its invoice.
        row = CheckoutSession.objects.select_related("plan").get(stripe_session_id=session_id)
        subscription = subscription_object(
            session["subscription"], row.stripe_customer_id, row.plan, row.user_id
        )
        answer = deliver(build_event("customer.subscription.created", subscription), webhook_url)
        if answer.status_code == 200:
            invoice = invoice_object(subscription, row.plan, "subscription_create")
            answer = deliver(build_event("invoice.paid", invoice), webhook_url)
    return answer


def subscription_object(
    subscription_id: str, customer_id: str, plan: Plan, user_id: Any, status: str = "active"
) -> dict[str, Any]:
    """Return an active Subscription shaped like Stripe's (period end 30 days from now)."""
    now = int(time.time())
    price_id = plan.stripe_price_id or f"price_standin_{plan.slug}"
    return {
        "id": subscription_id,
        "object": "subscription",
        "customer": customer_id,
        "status": status,
        "livemode": False,
        "cancel_at_period_end": False,
        "canceled_at": now if status == "canceled" else None,
        "metadata": {"user_id": str(user_id), "plan": plan.slug},
        "items": {
            "object": "list",
            "data": [
                {
                    "id": "si_standin_" + digest(subscription_id),
                    "object": "subscription_item",
                    "price": {"id": price_id, "object": "price"},
                    "quantity": 1,
                    "current_period_start": now,
                    "current_period_end": now + 30 * 24 * 3600,
                }
            ],
        },
    }


def invoice_object(subscription: dict[str, Any], plan: Plan, billing_reason: str) -> dict:
    """Return a paid Invoice for the subscription, as Stripe's events carry it.

    Like Stripe's, it does not name the PaymentIntent that paid it (``payments`` is only
    included on request); that intent is ``invoice_payment_intent(invoice id)``.
    """
    invoice_id = INVOICE_PREFIX + secrets.token_hex(12)
    price_id = subscription["items"]["data"][0]["price"]["id"]
    return {
        "id": invoice_id,
        "object": "invoice",
        "customer": subscription["customer"],
        "status": "paid",
        "billing_reason": billing_reason,
        "currency": plan.currency,
        "subtotal": plan.price_amount,
        "total_discount_amounts": [],
        "amount_paid": plan.price_amount,
        "livemode": False,
        "parent": {
            "type": "subscription_details",
            "subscription_details": {
                "subscription": subscription["id"],
                "metadata": subscription["metadata"],
            },
        },
        "lines": {
            "object": "list",
            "data": [
                {
                    "id": "il_standin_" + secrets.token_hex(8),
                    "object": "line_item",
                    "amount": plan.price_amount,
                    "quantity": 1,
                    "pricing": {"type": "price_details", "price_details": {"price": price_id}},
                }
            ],
        },
    }


def renew(subscription_id: str, *, webhook_url: str) -> httpx.Response:
    """Send ``invoice.paid`` for the subscription's next period."""
    row = _subscription(subscription_id)
    subscription = subscription_object(
        subscription_id, row.stripe_customer_id, row.plan, row.user_id
    )
    deliver(build_event("customer.subscription.updated", subscription), webhook_url)
    invoice = invoice_object(subscription, row.plan, "subscription_cycle")
    return deliver(build_event("invoice.paid", invoice), webhook_url)


def cancel_subscription(subscription_id: str, *, webhook_url: str) -> httpx.Response:
    """Send ``customer.subscription.deleted``, as Stripe does when a cancellation takes effect."""
    row = _subscription(subscription_id)
    subscription = subscription_object(
        subscription_id, row.stripe_customer_id, row.plan, row.user_id, status="canceled"
    )
    return deliver(build_event("customer.subscription.deleted", subscription), webhook_url)


def refund(payment_intent: str, *, amount_refunded: int | None, webhook_url: str):
    """Send ``charge.refunded`` with Stripe's cumulative ``amount_refunded`` (default: in full)."""
    paid, currency = _payment(payment_intent)
    total = paid if amount_refunded is None else min(amount_refunded, paid)
    charge = {
        "id": "ch_standin_" + digest(payment_intent),
        "object": "charge",
        "payment_intent": payment_intent,
        "amount": paid,
        "amount_refunded": total,
        "currency": currency,
        "refunded": total >= paid,
        "livemode": False,
    }
    return deliver(build_event("charge.refunded", charge), webhook_url)


def dispute(payment_intent: str, *, status: str, webhook_url: str) -> httpx.Response:
    """Send ``charge.dispute.created`` (status ``needs_response``) or ``.closed`` (won, lost)."""
    paid, currency = _payment(payment_intent)
    event_type = "charge.dispute.created" if status == "needs_response" else "charge.dispute.closed"
    data = {
        "id": "dp_standin_" + digest(payment_intent),
        "object": "dispute",
        "charge": "ch_standin_" + digest(payment_intent),
        "payment_intent": payment_intent,
        "amount": paid,
        "currency": currency,
        "status": status,
        "reason": "fraudulent",
        "livemode": False,
    }
    return deliver(build_event(event_type, data), webhook_url)


def _subscription(subscription_id: str) -> Subscription:
    row = (
        Subscription.objects.select_related("plan")
        .filter(stripe_subscription_id=subscription_id, mode=StripeMode.STANDIN)
        .first()
    )
    if row is None or row.plan is None:
        raise GatewayError(f"No stand-in subscription {subscription_id} with a plan.")
    return row


def _payment(payment_intent: str) -> tuple[int, str]:
    checkout = CheckoutSession.objects.filter(
        stripe_payment_intent_id=payment_intent, mode=StripeMode.STANDIN
    ).first()
    if checkout is not None:
        return checkout.amount_total or checkout.amount, checkout.currency
    invoice = SubscriptionInvoice.objects.filter(
        stripe_invoice_id=StandinGateway().invoice_paid_by(payment_intent)
    ).first()
    if invoice is not None:
        return invoice.amount_paid, invoice.currency
    raise GatewayError(f"No stand-in payment {payment_intent}.")


def build_event(event_type: str, data_object: dict[str, Any]) -> dict[str, Any]:
    """Return an event envelope shaped like Stripe's."""
    return {
        "id": "evt_standin_" + secrets.token_hex(12),
        "object": "event",
        "api_version": settings.STRIPE_API_VERSION,
        "created": int(time.time()),
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": event_type,
        "data": {"object": data_object},
    }


def signature_header(payload: bytes, secret: str, timestamp: int | None = None) -> str:
    """Return a ``Stripe-Signature`` header: ``t=<ts>,v1=<hex HMAC-SHA256 of "ts.payload">``."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    signed = str(timestamp).encode() + b"." + payload
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def deliver(event: dict[str, Any], url: str) -> httpx.Response:
    """POST the event, signed with the webhook secret, as Stripe delivers it."""
    payload = json.dumps(event, separators=(",", ":")).encode()
    headers = {
        "Content-Type": "application/json; charset=utf-8",
        "Stripe-Signature": signature_header(payload, settings.STRIPE_WEBHOOK_SECRET),
        "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks) stand-in",
    }
    try:
        return httpx.post(url, content=payload, headers=headers, timeout=DELIVERY_TIMEOUT_SECONDS)
    except httpx.HTTPError as error:
        raise GatewayError(f"The stand-in could not reach the webhook at {url}: {error}") from error
