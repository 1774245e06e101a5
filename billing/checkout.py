"""Buying: the user's Stripe customer, a Checkout Session per purchase, and our row's state.

Our ``CheckoutSession`` row snapshots what was sold (price, amount, currency, credits) before
Stripe is asked, and its status only moves forward through guarded UPDATEs, so whichever of the
webhook, the success page or reconciliation arrives last changes nothing.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone

from billing import reversals
from billing.exceptions import BillingError, GatewayError
from billing.gateways import Gateway, get_gateway
from billing.models import CheckoutSession, CreditPack, Plan, StripeCustomer
from billing.selectors import has_active_subscription
from config import submission

Status = CheckoutSession.Status


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


def start_checkout(
    user: Any, pack: CreditPack, *, submission_key: object = None
) -> CheckoutSession:
    """Create a Checkout Session for one pack and store our row with the pack's snapshot.

    A second call with the same ``submission_key`` returns the first call's checkout. Raise
    ``BillingError`` (with a message for the buyer) when payments are not configured, the price
    does not match the pack, or Stripe refuses; a refused attempt stays as a failed row.
    """
    key = clean_submission_key(submission_key)
    first = submitted_before(user, key)
    if first is not None:
        return reopen(first)
    if not pack.active:
        raise BillingError("This pack is no longer on sale.")
    if not user.is_active:
        raise BillingError("This account cannot buy credits.")
    gateway = get_gateway()
    if settings.BILLING_PACKS_REQUIRE_SUBSCRIPTION and not has_active_subscription(
        user, gateway.mode
    ):
        raise BillingError("Credit packs are for subscribers: subscribe to a plan first.")
    return create_checkout(
        user, gateway, pack, credits=pack.credits, stripe_mode="payment", submission_key=key
    )


def clean_submission_key(value: object) -> str | None:
    """Return the buy form's one-time key (None when absent); refuse a malformed one."""
    try:
        return submission.clean_key(value)
    except ValueError:
        raise BillingError("This page is out of date: reload it and try again.") from None


def submitted_before(user: Any, key: str | None) -> CheckoutSession | None:
    """Return the checkout an earlier POST of the same form created, if any."""
    if key is None:
        return None
    return CheckoutSession.objects.filter(user=user, submission_key=key).first()


def reopen(checkout: CheckoutSession) -> CheckoutSession:
    """Answer a repeated form with its first checkout, finishing it if that request crashed."""
    if checkout.url:
        return checkout
    if checkout.status != Status.OPEN:
        raise BillingError("This purchase could not be started. Reload the page and try again.")
    # The first request may still be talking to Stripe: the same key and parameters return
    # the same session.
    return open_session(checkout)


def create_checkout(
    user: Any,
    gateway: Gateway,
    item: CreditPack | Plan,
    *,
    credits: int,
    stripe_mode: str,
    submission_key: str | None = None,
) -> CheckoutSession:
    """Snapshot ``item``'s Stripe price on our row, then create its Checkout Session once.

    ``stripe_mode`` is ``payment`` for a pack or ``subscription`` for a plan. The idempotency
    key is our row's id, so a retried request never opens a second session; a refused attempt
    stays as a failed row.
    """
    noun = "pack" if stripe_mode == "payment" else "plan"
    customer_id = ensure_customer(user, gateway)
    price = gateway.resolve_price(item)
    try:
        with transaction.atomic():
            checkout = CheckoutSession.objects.create(
                user=user,
                **{noun: item},
                mode=gateway.mode,
                credits=credits,
                stripe_price_id=price.id,
                amount=price.unit_amount,
                currency=price.currency,
                stripe_customer_id=customer_id,
                submission_key=submission_key,
                expires_at=timezone.now()
                + timedelta(minutes=settings.BILLING_CHECKOUT_EXPIRY_MINUTES),
            )
    except IntegrityError:
        # The same form posted concurrently: the other request stored its row first.
        first = submitted_before(user, submission_key)
        if first is None:
            raise
        return reopen(first)
    return open_session(checkout, gateway)


def open_session(checkout: CheckoutSession, gateway: Gateway | None = None) -> CheckoutSession:
    """Create the row's Checkout Session at Stripe, keyed by the row: at most one per row."""
    gateway = gateway or get_gateway()
    item = checkout.pack or checkout.plan
    noun = "pack" if checkout.pack_id else "plan"
    metadata = {"checkout_id": str(checkout.id), "user_id": str(checkout.user_id), noun: item.slug}
    carries_metadata = "payment_intent_data" if noun == "pack" else "subscription_data"
    params = {
        "mode": "payment" if noun == "pack" else "subscription",
        "customer": checkout.stripe_customer_id,
        "client_reference_id": str(checkout.user_id),
        "line_items": [{"price": checkout.stripe_price_id, "quantity": 1}],
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


def record_checkout_failed(session: dict) -> CheckoutSession | None:
    """Mark an open purchase failed after its delayed payment failed."""
    checkout = checkout_by_session(session.get("id", ""))
    # Only an open purchase fails: after a grant (or a review) Stripe's word changes nothing.
    if checkout is not None and transition(checkout, Status.FAILED, allowed=(Status.OPEN,)):
        record_stripe_state(checkout, session)
    return checkout


def record_checkout_expired(session: dict) -> CheckoutSession | None:
    """Mark an open purchase expired: the buyer never paid."""
    checkout = checkout_by_session(session.get("id", ""))
    if checkout is not None:
        transition(checkout, Status.EXPIRED, allowed=(Status.OPEN,))
    return checkout


def transition(checkout: CheckoutSession, to: str, *, allowed: tuple[str, ...]) -> bool:
    # One guarded UPDATE: a paid purchase never moves back, whichever caller arrives last.
    changed = CheckoutSession.objects.filter(pk=checkout.pk, status__in=allowed).update(
        status=to, updated_at=timezone.now()
    )
    checkout.refresh_from_db(fields=["status", "updated_at"])
    return bool(changed)


def mark_paid(checkout: CheckoutSession, entry_id: int | None, state: dict | None = None) -> None:
    """Record the purchase as paid once, then apply any reversal recorded before the grant."""
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
    # A refund or dispute may have arrived before the grant: it applies now.
    reversals.purchase_granted(payment_intent=checkout.stripe_payment_intent_id)


def stripe_state(checkout: CheckoutSession, session: dict) -> dict[str, Any]:
    """Return what Stripe says about the payment, in our field names."""
    payment_intent = session.get("payment_intent") or ""
    if isinstance(payment_intent, dict):
        payment_intent = payment_intent.get("id", "")
    return {
        "stripe_payment_intent_id": payment_intent or checkout.stripe_payment_intent_id,
        "payment_status": session.get("payment_status") or checkout.payment_status,
        "amount_total": session.get("amount_total", checkout.amount_total),
    }


def record_stripe_state(checkout: CheckoutSession, session: dict) -> None:
    state = stripe_state(checkout, session)
    if any(getattr(checkout, field) != value for field, value in state.items()):
        CheckoutSession.objects.filter(pk=checkout.pk).update(**state, updated_at=timezone.now())
        for field, value in state.items():
            setattr(checkout, field, value)


def checkout_by_session(session_id: str) -> CheckoutSession | None:
    if not session_id:
        return None
    return (
        CheckoutSession.objects.select_related("pack", "user")
        .filter(stripe_session_id=session_id)
        .first()
    )


def checkout_by_metadata(session: dict) -> CheckoutSession | None:
    """Find a purchase whose session id was never stored (a crash right after creating it)."""
    try:
        checkout_id = uuid.UUID(str(session_metadata(session).get("checkout_id")))
    except ValueError:
        return None
    claimed = CheckoutSession.objects.filter(pk=checkout_id, stripe_session_id=None).update(
        stripe_session_id=session["id"], updated_at=timezone.now()
    )
    if not claimed:
        return None
    return checkout_by_session(session["id"])


def session_metadata(session: dict) -> dict:
    metadata = session.get("metadata")
    return metadata if isinstance(metadata, dict) else {}
