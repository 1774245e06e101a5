"""Fulfilment: a paid Checkout Session becomes credits exactly once, or a case for review.

The webhook, the success page and reconciliation all call ``fulfil_checkout``, in any order and
concurrently; the grant key ``checkout:<session id>`` is the exactly-once gate (``grants``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.utils import timezone
from django.utils.module_loading import import_string

from billing import grants, subscriptions
from billing.checkout import (
    checkout_by_metadata,
    checkout_by_session,
    mark_paid,
    record_stripe_state,
    session_metadata,
    stripe_state,
    transition,
)
from billing.events import announce_payment
from billing.gateways import PAID_STATUSES, get_gateway
from billing.models import CheckoutSession, ReviewItem, StripeCustomer
from billing.review_queue import open_review
from billing.selectors import has_active_subscription
from ledger import api as ledger

logger = logging.getLogger(__name__)
Status = CheckoutSession.Status
Reason = ReviewItem.Reason


@dataclass(frozen=True)
class Fulfilment:
    """What ``fulfil_checkout`` did: ``granted``, ``duplicate``, ``pending``, ``expired``,
    ``review`` or ``ignored`` (a session that is not one of our purchases)."""

    outcome: str
    checkout: CheckoutSession | None = None


def fulfil_checkout(session_id: str, *, source: str) -> Fulfilment:
    """Grant a paid session's credits exactly once, or say why not.

    Called by the webhook, the success page and reconciliation, in any order and concurrently.
    The session is retrieved from Stripe, checked against our snapshot and owner, and granted
    under the key ``checkout:<session id>``. A paid session that fails a check goes to the
    review queue with an ops alert; it is never skipped silently.
    """
    known = checkout_by_session(session_id)
    if known is not None and known.status in (Status.PAID, Status.REVIEW):
        return Fulfilment("duplicate" if known.status == Status.PAID else "review", known)
    session = get_gateway().retrieve_checkout_session(session_id)
    checkout = known or checkout_by_metadata(session)
    paid = session.get("payment_status") in PAID_STATUSES
    if checkout is not None and checkout.is_subscription:
        return Fulfilment(subscriptions.complete_checkout(checkout, session), checkout)
    if checkout is None:
        named = session_metadata(session).get("checkout_id")
        if paid and named:
            open_review(
                Reason.UNKNOWN_SESSION,
                f"Paid session {session_id} names checkout {named}, which is not ours.",
                stripe_object_id=session_id,
            )
            return Fulfilment("review")
        return Fulfilment("ignored")

    if not paid:
        record_stripe_state(checkout, session)
        if session.get("status") == "expired":
            transition(checkout, Status.EXPIRED, allowed=(Status.OPEN,))
            return Fulfilment("expired", checkout)
        return Fulfilment("pending", checkout)

    problem = checkout_problem(checkout, session)
    if problem is not None:
        record_stripe_state(checkout, session)
        reason, detail = problem
        return _send_to_review(checkout, reason, detail)

    def to_review(detail: str) -> None:
        record_stripe_state(checkout, session)
        _send_to_review(checkout, Reason.GRANT_CONFLICT, detail)

    result = grants.grant(
        checkout.user_id,
        checkout.credits,
        key=checkout.grant_key,
        source=grants.CHECKOUT_SOURCE,
        memo=f"{checkout.product_name}: Stripe Checkout {session_id} ({source})",
        on_conflict=to_review,
    )
    if result.status == ledger.GrantOutcome.CONFLICT:
        return Fulfilment("review", checkout)
    # Before mark_paid: a crash in between leaves the checkout unpaid, so the next caller
    # announces again (the receipt's key keeps it to one email).
    announce_payment(
        checkout.user_id,
        key=checkout.grant_key,
        product=checkout.product_name,
        credits=checkout.credits,
        amount=checkout.amount_total if checkout.amount_total is not None else checkout.amount,
        currency=checkout.currency,
    )
    mark_paid(checkout, result.entry_id, stripe_state(checkout, session))
    logger.info(
        "checkout %s: %s by %s", session_id, result.status, source, extra={"checkout": session_id}
    )
    granted = result.status == ledger.GrantOutcome.GRANTED
    return Fulfilment("granted" if granted else "duplicate", checkout)


def checkout_problem(checkout: CheckoutSession, session: dict) -> tuple[str, str] | None:
    """Return the first reason a paid session must not be granted automatically, or None."""
    metadata = session_metadata(session)
    customer = session.get("customer")
    if isinstance(customer, dict):
        customer = customer.get("id")
    user_id = str(checkout.user_id)
    owners = {
        "client_reference_id": session.get("client_reference_id"),
        "metadata.user_id": metadata.get("user_id"),
    }
    strangers = {name: value for name, value in owners.items() if value != user_id}
    # The purchase's customer came from its user's mapping, and mappings never change owner,
    # so the same customer id means the same user.
    if customer != checkout.stripe_customer_id:
        strangers["customer's user"] = _customer_user(customer, checkout.mode)
    if strangers:
        return (
            Reason.OWNER_MISMATCH,
            f"Purchase by user {user_id} with customer {checkout.stripe_customer_id}; the session "
            f"says customer {customer}, {', '.join(f'{k}={v}' for k, v in strangers.items())}.",
        )

    items = (session.get("line_items") or {}).get("data") or []
    item = items[0] if len(items) == 1 else {}
    price_id = (item.get("price") or {}).get("id")
    seen = {
        "mode": session.get("mode"),
        "line items": len(items),
        "price": price_id,
        "quantity": item.get("quantity"),
        "currency": item.get("currency"),
        "session currency": session.get("currency"),
        "amount_subtotal": item.get("amount_subtotal"),
        "session amount_subtotal": session.get("amount_subtotal"),
    }
    expected = {
        "mode": "payment",
        "line items": 1,
        "price": checkout.stripe_price_id,
        "quantity": 1,
        "currency": checkout.currency,
        "session currency": checkout.currency,
        "amount_subtotal": checkout.amount,
        "session amount_subtotal": checkout.amount,
    }
    differences = [f"{k} {seen[k]!r} (sold {v!r})" for k, v in expected.items() if seen[k] != v]
    if differences:
        return Reason.SNAPSHOT_MISMATCH, "; ".join(differences)

    discount = (session.get("total_details") or {}).get("amount_discount") or 0
    free = session.get("payment_status") == "no_payment_required"
    if (discount or free) and not settings.BILLING_ALLOW_PROMOTION_CODES:
        return (
            Reason.DISCOUNT_NOT_ALLOWED,
            f"Discount {discount} ({session.get('payment_status')}) while promotion codes are off.",
        )
    # Refund shares are taken of what was paid: a total below the price that no discount
    # explains would make a one-cent refund take back the whole pack.
    total = session.get("amount_total")
    if not isinstance(total, int) or isinstance(total, bool) or total < checkout.amount - discount:
        return (
            Reason.SNAPSHOT_MISMATCH,
            f"amount_total {total!r} is below the price {checkout.amount} less the discount "
            f"{discount}.",
        )

    refusal = import_string(settings.BILLING_ELIGIBILITY_CHECK)(checkout.user)
    if refusal:
        return Reason.USER_INELIGIBLE, refusal
    if settings.BILLING_PACKS_REQUIRE_SUBSCRIPTION and not has_active_subscription(
        checkout.user, checkout.mode
    ):
        return (
            Reason.NOT_SUBSCRIBED,
            f"User {user_id} has no active subscription now; packs are for subscribers.",
        )
    return None


def user_is_eligible(user: Any) -> str | None:
    """Return why the user may not receive purchased credits now, or None (the default hook)."""
    if not user.is_active:
        return f"User {user.pk} is deactivated."
    return None


def reconcile_checkouts(*, lookback: timedelta) -> dict[str, int]:
    """Fulfil recent paid sessions whose webhook never arrived; return counts per outcome."""
    gateway = get_gateway()
    counts: dict[str, int] = {}
    since = timezone.now() - lookback
    for session in gateway.list_paid_checkout_sessions(created_since=since):
        done = CheckoutSession.objects.filter(
            stripe_session_id=session["id"], status__in=(Status.PAID, Status.REVIEW)
        ).exists()
        outcome = "known" if done else fulfil_checkout(session["id"], source="reconcile").outcome
        counts[outcome] = counts.get(outcome, 0) + 1
    if counts.get("granted"):
        logger.warning("reconciliation granted %s missed checkout(s)", counts["granted"])
    return counts


def _send_to_review(checkout: CheckoutSession, reason: str, detail: str) -> Fulfilment:
    transition(checkout, Status.REVIEW, allowed=(Status.OPEN, Status.FAILED, Status.EXPIRED))
    open_review(reason, f"{checkout.stripe_session_id}: {detail}", checkout=checkout)
    return Fulfilment("review", checkout)


def _customer_user(customer_id: str | None, mode: str) -> str | None:
    if not customer_id:
        return None
    user_id = (
        StripeCustomer.objects.filter(stripe_customer_id=customer_id, mode=mode)
        .values_list("user_id", flat=True)
        .first()
    )
    return str(user_id) if user_id else None
