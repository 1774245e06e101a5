"""Stripe's webhook endpoint: verify, store, process, mark processed.

The event row is an audit record, not the dedupe gate: a stored but unprocessed event (a crash,
an error, a concurrent delivery still running) is processed again on the next delivery, and
the ledger's grant key keeps that harmless. Only an event already marked processed is answered
at once.
"""

from __future__ import annotations

import logging
import time
import traceback

import stripe
from django.conf import settings
from django.db import connection, transaction
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from billing import fulfilment, reversals, subscriptions
from billing.checkout import record_checkout_expired, record_checkout_failed
from billing.models import StripeEvent
from config.webhooks import Answer, BadSignature, receive, respond

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


@csrf_exempt
@transaction.non_atomic_requests
@require_POST
def stripe_webhook(request: HttpRequest) -> HttpResponse:
    """Receive a Stripe event in the shared webhook shape (``config.webhooks``)."""
    if not settings.STRIPE_WEBHOOK_SECRET:
        logger.error("Stripe webhook received but STRIPE_WEBHOOK_SECRET is not set")
        return respond(Answer(503, "not_configured"))
    signature = request.headers.get("Stripe-Signature")
    return receive(
        request,
        scope="stripe",
        verify=lambda body: verify_signature(body, signature),
        handle=handle_event,
    )


def verify_signature(body: bytes, header: str | None) -> None:
    """Raise ``BadSignature`` unless ``header`` signs ``body`` with the webhook secret, dated
    within ``STRIPE_WEBHOOK_TOLERANCE_SECONDS`` of now in either direction.

    stripe-python refuses only signatures older than the tolerance; one dated in the future
    would stay replayable until then, so it is refused here too.
    """
    tolerance = settings.STRIPE_WEBHOOK_TOLERANCE_SECONDS
    try:
        stripe.WebhookSignature.verify_header(
            body, header, settings.STRIPE_WEBHOOK_SECRET, tolerance=tolerance
        )
    except (stripe.SignatureVerificationError, UnicodeDecodeError) as error:
        raise BadSignature(str(error)) from None
    stamps = [part[2:] for part in (header or "").split(",") if part.startswith("t=")]
    if not stamps or not stamps[0].isdigit() or int(stamps[0]) > time.time() + tolerance:
        raise BadSignature("timestamp in the future beyond the tolerance")


def handle_event(payload: object, body: bytes) -> Answer:
    """Store a verified event once, process it, mark it processed; a repeat is ``duplicate``."""
    event = _event(payload)
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

    event_pk, processed = _store(event, body)
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


def _event(event: object) -> dict | None:
    """Return the event when it has the fields every handler reads, else None."""
    if not isinstance(event, dict):
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


def _store(event: dict, body: bytes) -> tuple[int, bool]:
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
                body.decode(),
            ],
        )
        event_pk, processed = cursor.fetchone()
    return event_pk, processed


def _record_failure(event_pk: int, error: str) -> None:
    # Its own statement in autocommit: the webhook runs outside any request transaction, so
    # the error survives whatever the processing rolled back.
    StripeEvent.objects.filter(pk=event_pk).update(error=error[-8000:])
