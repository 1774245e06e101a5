"""Receive Stripe's events: verify, store, process, mark processed.

The event row is an audit record, not the dedupe gate: a stored but unprocessed event (a crash,
an error, a concurrent delivery still running) is processed again on the next delivery, and
the ledger's grant key keeps that harmless. Only an event already marked processed is answered
at once.
"""

from __future__ import annotations

import json
import logging
import traceback
from dataclasses import dataclass

import stripe
from django.conf import settings
from django.db import connection
from django.utils import timezone

from billing import fulfilment, reversals, subscriptions
from billing.checkout import record_checkout_expired, record_checkout_failed
from billing.models import StripeEvent
from config.payloads import holds_nul

logger = logging.getLogger(__name__)

FULFILLING_TYPES = frozenset(
    {"checkout.session.completed", "checkout.session.async_payment_succeeded"}
)
# Every dispute event carries the whole dispute; its status, not the event type, decides.
DISPUTE_TYPES = frozenset(
    {
        "charge.dispute.created",
        "charge.dispute.updated",
        "charge.dispute.funds_withdrawn",
        "charge.dispute.funds_reinstated",
        "charge.dispute.closed",
    }
)
SUBSCRIPTION_TYPES = frozenset(
    {
        "customer.subscription.created",
        "customer.subscription.updated",
        "customer.subscription.deleted",
    }
)


@dataclass(frozen=True)
class Answer:
    """The HTTP status for Stripe and a short word for logs and the response body."""

    status: int
    word: str


def receive(payload: bytes, signature: str | None) -> Answer:
    """Verify and process one delivery; nothing is stored unless the signature holds."""
    secret = settings.STRIPE_WEBHOOK_SECRET
    if not secret:
        logger.error("Stripe webhook received but STRIPE_WEBHOOK_SECRET is not set")
        return Answer(503, "not_configured")
    try:
        stripe.WebhookSignature.verify_header(
            payload, signature, secret, tolerance=settings.STRIPE_WEBHOOK_TOLERANCE_SECONDS
        )
    except (stripe.SignatureVerificationError, UnicodeDecodeError):
        return Answer(400, "bad_signature")
    event = _parse(payload)
    if event is None:
        return Answer(400, "malformed")
    if event["livemode"] is not settings.STRIPE_LIVEMODE:
        logger.warning(
            "Stripe event %s has livemode=%s, this app runs with livemode=%s",
            event["id"],
            event["livemode"],
            settings.STRIPE_LIVEMODE,
        )
        return Answer(400, "wrong_mode")

    event_pk, processed = _store(event, payload)
    if processed:
        return Answer(200, "duplicate")
    try:
        process(event)
    except Exception:
        _record_failure(event_pk, traceback.format_exc())
        logger.exception("Stripe event %s failed; Stripe will retry", event["id"])
        return Answer(500, "error")
    StripeEvent.objects.filter(pk=event_pk).update(processed_at=timezone.now(), error="")
    return Answer(200, "processed")


def process(event: dict) -> str:
    """Act on one event by type; return what happened. Safe to run again for the same event."""
    kind = event["type"]
    session = event["data"]["object"]
    if kind in FULFILLING_TYPES:
        return fulfilment.fulfil_checkout(session["id"], source=kind).outcome
    if kind == "checkout.session.async_payment_failed":
        record_checkout_failed(session)
        return "failed"
    if kind == "checkout.session.expired":
        record_checkout_expired(session)
        return "expired"
    data = event["data"]["object"]
    if kind == "charge.refunded":
        return reversals.record_refund(data, event_id=event["id"])
    if kind in DISPUTE_TYPES:
        return reversals.record_dispute(data, event_id=event["id"])
    if kind == "invoice.paid":
        return subscriptions.record_invoice_paid(data, event_id=event["id"])
    if kind in SUBSCRIPTION_TYPES:
        return subscriptions.sync_subscription(data, event_created=int(event.get("created") or 0))
    return "recorded"


def reprocess(event: StripeEvent) -> str:
    """Run a stored event again (the admin action); record success or the error."""
    StripeEvent.objects.filter(pk=event.pk).update(attempts=event.attempts + 1)
    try:
        outcome = process(event.payload)
    except Exception:
        _record_failure(event.pk, traceback.format_exc())
        raise
    StripeEvent.objects.filter(pk=event.pk).update(processed_at=timezone.now(), error="")
    return outcome


def _parse(payload: bytes) -> dict | None:
    try:
        event = json.loads(payload)
    except ValueError:
        return None
    if not isinstance(event, dict) or holds_nul(event):
        return None
    data = event.get("data")
    valid = (
        isinstance(event.get("id"), str)
        and event["id"]
        and isinstance(event.get("type"), str)
        and isinstance(event.get("livemode"), bool)
        and isinstance(data, dict)
        and isinstance(data.get("object"), dict)
    )
    if not valid:
        return None
    if event["type"].startswith("checkout.session.") and not isinstance(
        data["object"].get("id"), str
    ):
        return None
    return event


def _store(event: dict, payload: bytes) -> tuple[int, bool]:
    """Insert the event or count another delivery; return its pk and whether it was processed.

    One statement, so concurrent deliveries of the same event cannot both insert it.
    """
    object_id = event["data"]["object"].get("id")
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO billing_stripeevent
                (stripe_event_id, type, livemode, api_version, object_id, payload,
                 received_at, attempts, error)
            VALUES (%s, %s, %s, %s, %s, %s::jsonb, now(), 1, '')
            ON CONFLICT (stripe_event_id)
                DO UPDATE SET attempts = billing_stripeevent.attempts + 1
            RETURNING id, processed_at IS NOT NULL
            """,
            [
                event["id"],
                event["type"],
                event["livemode"],
                str(event.get("api_version") or ""),
                object_id if isinstance(object_id, str) else "",
                payload.decode(),
            ],
        )
        event_pk, processed = cursor.fetchone()
    return event_pk, processed


def _record_failure(event_pk: int, error: str) -> None:
    # Its own statement in autocommit: the webhook runs outside any request transaction, so
    # the error survives whatever the processing rolled back.
    StripeEvent.objects.filter(pk=event_pk).update(error=error[-8000:])
