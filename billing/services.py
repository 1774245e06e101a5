"""Purchases, fulfilment, the review queue and the sign-up bonus.

Credits reach a user only through ``ledger.api.grant``. Its key (``checkout:<session id>``,
``signup:<user id>``) is the exactly-once gate, so every function here is safe to run twice and
concurrently; our own rows only record what happened. Ledger calls run outside any transaction.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone
from django.utils.module_loading import import_string

from billing.exceptions import BillingError, GatewayError
from billing.gateway import PAID_STATUSES, Gateway, get_gateway
from billing.models import (
    CheckoutSession,
    CreditPack,
    Plan,
    ReviewItem,
    StripeCustomer,
    Subscription,
)
from billing.reviews import open_review, resolve_review
from ledger import api as ledger

logger = logging.getLogger(__name__)
Status = CheckoutSession.Status
Reason = ReviewItem.Reason
CHECKOUT_SOURCE = "stripe_checkout"
SIGNUP_SOURCE = "signup_bonus"


@dataclass(frozen=True)
class Fulfilment:
    """What ``fulfil_checkout`` did: ``granted``, ``duplicate``, ``pending``, ``expired``,
    ``review`` or ``ignored`` (a session that is not one of our purchases)."""

    outcome: str
    checkout: CheckoutSession | None = None


def ensure_customer(user: Any, gateway: Gateway) -> str:
    """Return the user's Stripe Customer id in the gateway's mode, creating it once.

    The idempotency key derives from the user and mode, so concurrent first purchases make one
    Stripe Customer, and the unique (user, mode) row makes one mapping.
    """
    existing = StripeCustomer.objects.filter(user=user, mode=gateway.mode).first()
    if existing is not None:
        return existing.stripe_customer_id
    customer_id = gateway.create_customer(
        user_id=str(user.pk), email=user.email, idempotency_key=f"customer:{user.pk}:{gateway.mode}"
    )
    try:
        with transaction.atomic():
            StripeCustomer.objects.create(
                user=user, mode=gateway.mode, stripe_customer_id=customer_id
            )
    except IntegrityError:
        # Another click stored the mapping first; Stripe returned the same customer to both.
        pass
    return StripeCustomer.objects.get(user=user, mode=gateway.mode).stripe_customer_id


def start_checkout(user: Any, pack: CreditPack) -> CheckoutSession:
    """Create a Checkout Session for one pack and store our row with the pack's snapshot.

    Raise ``BillingError`` (with a message for the buyer) when payments are not configured, the
    price does not match the pack, or Stripe refuses; a refused attempt stays as a failed row.
    """
    if not pack.active:
        raise BillingError("This pack is no longer on sale.")
    if not user.is_active:
        raise BillingError("This account cannot buy credits.")
    gateway = get_gateway()
    if settings.BILLING_PACKS_REQUIRE_SUBSCRIPTION and not has_active_subscription(
        user, gateway.mode
    ):
        raise BillingError("Credit packs are for subscribers: subscribe to a plan first.")
    return create_checkout(user, gateway, pack, credits=pack.credits, stripe_mode="payment")


def create_checkout(
    user: Any, gateway: Gateway, item: CreditPack | Plan, *, credits: int, stripe_mode: str
) -> CheckoutSession:
    """Snapshot ``item``'s Stripe price on our row, then create its Checkout Session once.

    ``stripe_mode`` is ``payment`` for a pack or ``subscription`` for a plan. The idempotency
    key is our row's id, so a retried request never opens a second session; a refused attempt
    stays as a failed row.
    """
    noun = "pack" if stripe_mode == "payment" else "plan"
    customer_id = ensure_customer(user, gateway)
    price = gateway.resolve_price(item)
    checkout = CheckoutSession.objects.create(
        user=user,
        **{noun: item},
        mode=gateway.mode,
        credits=credits,
        stripe_price_id=price.id,
        amount=price.unit_amount,
        currency=price.currency,
        stripe_customer_id=customer_id,
        expires_at=timezone.now() + timedelta(minutes=settings.BILLING_CHECKOUT_EXPIRY_MINUTES),
    )
    metadata = {"checkout_id": str(checkout.id), "user_id": str(user.pk), noun: item.slug}
    carries_metadata = "payment_intent_data" if noun == "pack" else "subscription_data"
    params = {
        "mode": stripe_mode,
        "customer": customer_id,
        "client_reference_id": str(user.pk),
        "line_items": [{"price": price.id, "quantity": 1}],
        "metadata": metadata,
        carries_metadata: {"metadata": metadata},
        "success_url": settings.SITE_URL
        + reverse("billing:success")
        + "?session_id={CHECKOUT_SESSION_ID}",
        "cancel_url": settings.SITE_URL + reverse("billing:cancel") + f"?checkout={checkout.id}",
        "expires_at": int(checkout.expires_at.timestamp()),
        "allow_promotion_codes": settings.BILLING_ALLOW_PROMOTION_CODES,
    }
    try:
        session = gateway.create_checkout_session(params, idempotency_key=f"checkout:{checkout.id}")
    except GatewayError as error:
        CheckoutSession.objects.filter(pk=checkout.pk).update(
            status=Status.FAILED, error=str(error), updated_at=timezone.now()
        )
        raise
    checkout.stripe_session_id = session["id"]
    checkout.url = session["url"]
    checkout.save(update_fields=["stripe_session_id", "url", "updated_at"])
    return checkout


def fulfil_checkout(session_id: str, *, source: str) -> Fulfilment:
    """Grant a paid session's credits exactly once, or say why not.

    Called by the webhook, the success page and reconciliation, in any order and concurrently.
    The session is retrieved from Stripe, checked against our snapshot and owner, and granted
    under the key ``checkout:<session id>``. A paid session that fails a check goes to the
    review queue with an ops alert; it is never skipped silently.
    """
    known = _checkout_by_session(session_id)
    if known is not None and known.status in (Status.PAID, Status.REVIEW):
        return Fulfilment("duplicate" if known.status == Status.PAID else "review", known)
    session = get_gateway().retrieve_checkout_session(session_id)
    checkout = known or _checkout_by_metadata(session)
    paid = session.get("payment_status") in PAID_STATUSES
    if checkout is not None and checkout.is_subscription:
        from billing import subscriptions

        return Fulfilment(subscriptions.complete_checkout(checkout, session), checkout)
    if checkout is None:
        if paid and _metadata(session).get("checkout_id"):
            open_review(
                Reason.UNKNOWN_SESSION,
                f"Paid session {session_id} names checkout {_metadata(session)['checkout_id']}, "
                "which is not ours.",
                stripe_object_id=session_id,
            )
            return Fulfilment("review")
        return Fulfilment("ignored")

    if not paid:
        _record_stripe_state(checkout, session)
        if session.get("status") == "expired":
            _transition(checkout, Status.EXPIRED, allowed=(Status.OPEN,))
            return Fulfilment("expired", checkout)
        return Fulfilment("pending", checkout)

    problem = checkout_problem(checkout, session)
    if problem is not None:
        _record_stripe_state(checkout, session)
        reason, detail = problem
        return _send_to_review(checkout, reason, detail)

    result = ledger.grant(
        checkout.user_id,
        checkout.credits,
        key=checkout.grant_key,
        source=CHECKOUT_SOURCE,
        memo=f"{checkout.product_name}: Stripe Checkout {session_id} ({source})",
    )
    if result.status == "conflict":
        _record_stripe_state(checkout, session)
        return _send_to_review(
            checkout, Reason.GRANT_CONFLICT, f"The ledger already used {checkout.grant_key}."
        )
    mark_paid(checkout, result.entry_id, _stripe_state(checkout, session))
    after_grant(checkout.user_id, result.status)
    logger.info(
        "checkout %s: %s by %s", session_id, result.status, source, extra={"checkout": session_id}
    )
    return Fulfilment("granted" if result.status == "granted" else "duplicate", checkout)


def checkout_problem(checkout: CheckoutSession, session: dict) -> tuple[str, str] | None:
    """Return the first reason a paid session must not be granted automatically, or None."""
    metadata = _metadata(session)
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


def has_active_subscription(user: Any, mode: str) -> bool:
    """Return whether the user has a trialing, active or past-due subscription in ``mode``."""
    return Subscription.objects.filter(
        user=user, mode=mode, status__in=Subscription.ACTIVE_STATUSES
    ).exists()


def after_grant(user_id: Any, status: str) -> None:
    """Let a top-up unlock the user's withheld outputs at once (a task queued after commit)."""
    if status != "granted":
        return
    from billing import tasks

    try:
        tasks.collect_unpaid.delay_on_commit(str(user_id))
    except Exception:
        # No broker: generation's re-drive collects on its own schedule.
        logger.exception("could not queue collect_unpaid for %s", user_id)


def user_is_eligible(user: Any) -> str | None:
    """Return why the user may not receive purchased credits now, or None (the default hook)."""
    if not user.is_active:
        return f"User {user.pk} is deactivated."
    return None


def record_checkout_failed(session: dict) -> CheckoutSession | None:
    """Mark an open purchase failed after its delayed payment failed."""
    checkout = _checkout_by_session(session.get("id", ""))
    if checkout is not None:
        _record_stripe_state(checkout, session)
        _transition(checkout, Status.FAILED, allowed=(Status.OPEN,))
    return checkout


def record_checkout_expired(session: dict) -> CheckoutSession | None:
    """Mark an open purchase expired: the buyer never paid."""
    checkout = _checkout_by_session(session.get("id", ""))
    if checkout is not None:
        _transition(checkout, Status.EXPIRED, allowed=(Status.OPEN,))
    return checkout


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


def grant_signup_bonus(user_id: uuid.UUID | str) -> str:
    """Grant SIGNUP_BONUS_CREDITS once per user (key ``signup:<user id>``); return the status.

    Returns ``skipped`` when the bonus is off or the user is inactive.
    """
    from django.contrib.auth import get_user_model

    amount = settings.SIGNUP_BONUS_CREDITS
    user = get_user_model().objects.filter(pk=user_id, is_active=True).first()
    if amount <= 0 or user is None:
        return "skipped"
    result = ledger.grant(
        user.pk, amount, key=f"signup:{user.pk}", source=SIGNUP_SOURCE, memo="Welcome credits"
    )
    return result.status


def _send_to_review(checkout: CheckoutSession, reason: str, detail: str) -> Fulfilment:
    _transition(checkout, Status.REVIEW, allowed=(Status.OPEN, Status.FAILED, Status.EXPIRED))
    open_review(reason, f"{checkout.stripe_session_id}: {detail}", checkout=checkout)
    return Fulfilment("review", checkout)


def _transition(checkout: CheckoutSession, to: str, *, allowed: tuple[str, ...]) -> bool:
    # One guarded UPDATE: a paid purchase never moves back, whichever caller arrives last.
    changed = CheckoutSession.objects.filter(pk=checkout.pk, status__in=allowed).update(
        status=to, updated_at=timezone.now()
    )
    checkout.refresh_from_db(fields=["status", "updated_at"])
    return bool(changed)


def mark_paid(checkout: CheckoutSession, entry_id: int | None, state: dict | None = None) -> None:
    """Record the purchase as paid once; later callers change nothing."""
    # Guarded: the first caller to get here records the time; later ones change nothing.
    now = timezone.now()
    fields = {
        "status": Status.PAID,
        "fulfilled_at": now,
        "ledger_entry_id": entry_id,
        **(state or {}),
    }
    CheckoutSession.objects.filter(pk=checkout.pk).exclude(status=Status.PAID).update(
        **fields, updated_at=now
    )
    for field, value in fields.items():
        setattr(checkout, field, value)


def _stripe_state(checkout: CheckoutSession, session: dict) -> dict[str, Any]:
    """Return what Stripe says about the payment, in our field names."""
    payment_intent = session.get("payment_intent") or ""
    if isinstance(payment_intent, dict):
        payment_intent = payment_intent.get("id", "")
    return {
        "stripe_payment_intent_id": payment_intent or checkout.stripe_payment_intent_id,
        "payment_status": session.get("payment_status") or checkout.payment_status,
        "amount_total": session.get("amount_total", checkout.amount_total),
    }


def _record_stripe_state(checkout: CheckoutSession, session: dict) -> None:
    state = _stripe_state(checkout, session)
    if any(getattr(checkout, field) != value for field, value in state.items()):
        CheckoutSession.objects.filter(pk=checkout.pk).update(**state, updated_at=timezone.now())
        for field, value in state.items():
            setattr(checkout, field, value)


def _checkout_by_session(session_id: str) -> CheckoutSession | None:
    if not session_id:
        return None
    return (
        CheckoutSession.objects.select_related("pack", "user")
        .filter(stripe_session_id=session_id)
        .first()
    )


def _checkout_by_metadata(session: dict) -> CheckoutSession | None:
    """Find a purchase whose session id was never stored (a crash right after creating it)."""
    try:
        checkout_id = uuid.UUID(str(_metadata(session).get("checkout_id")))
    except ValueError:
        return None
    claimed = CheckoutSession.objects.filter(pk=checkout_id, stripe_session_id=None).update(
        stripe_session_id=session["id"], updated_at=timezone.now()
    )
    if not claimed:
        return None
    return _checkout_by_session(session["id"])


def _metadata(session: dict) -> dict:
    metadata = session.get("metadata")
    return metadata if isinstance(metadata, dict) else {}


def _customer_user(customer_id: str | None, mode: str) -> str | None:
    if not customer_id:
        return None
    user_id = (
        StripeCustomer.objects.filter(stripe_customer_id=customer_id, mode=mode)
        .values_list("user_id", flat=True)
        .first()
    )
    return str(user_id) if user_id else None


__all__ = [
    "Fulfilment",
    "after_grant",
    "checkout_problem",
    "ensure_customer",
    "fulfil_checkout",
    "grant_signup_bonus",
    "has_active_subscription",
    "mark_paid",
    "open_review",
    "reconcile_checkouts",
    "record_checkout_expired",
    "record_checkout_failed",
    "resolve_review",
    "start_checkout",
    "user_is_eligible",
]
