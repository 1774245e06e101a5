"""Subscriptions: Checkout in subscription mode, credits on every paid invoice, a synced row.

Credits come only from ``invoice.paid`` (billing reasons ``subscription_create`` and
``subscription_cycle``), granted under the key ``invoice:<invoice id>``; that key is the
exactly-once gate however often or in whatever order the events arrive. Grants add to the
balance: a renewal never resets credits bought in packs. The subscription row only mirrors
Stripe for pages and eligibility; an older event never overwrites a newer one.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from billing import grants, reversals
from billing.checkout import (
    clean_submission_key,
    create_checkout,
    reopen,
    submitted_before,
    transition,
)
from billing.events import announce_payment
from billing.exceptions import BillingError
from billing.gateways import PAID_STATUSES, get_gateway
from billing.invoice_checks import invoice_plan, invoice_problem, plan_for_price
from billing.models import (
    CheckoutSession,
    Plan,
    ReviewItem,
    StripeCustomer,
    StripeMode,
    Subscription,
    SubscriptionInvoice,
)
from billing.review_queue import open_review
from billing.selectors import has_active_subscription
from ledger import api as ledger

logger = logging.getLogger(__name__)
GRANTING_REASONS = frozenset({"subscription_create", "subscription_cycle"})
Reason = ReviewItem.Reason


def start_subscription(user: Any, plan: Plan, *, submission_key: object = None) -> CheckoutSession:
    """Create a subscription-mode Checkout Session for ``plan`` and store our row.

    A second call with the same ``submission_key`` returns the first call's checkout. Raise
    ``BillingError`` (a message for the buyer) when the plan is off sale, the user already
    subscribes, or Stripe refuses.
    """
    key = clean_submission_key(submission_key)
    first = submitted_before(user, key)
    if first is not None:
        return reopen(first)
    if not plan.active:
        raise BillingError("This plan is no longer on sale.")
    if not user.is_active:
        raise BillingError("This account cannot subscribe.")
    gateway = get_gateway()
    if has_active_subscription(user, gateway.mode):
        raise BillingError("You already have a subscription: manage it from the billing page.")
    return create_checkout(
        user,
        gateway,
        plan,
        credits=plan.credits_per_period,
        stripe_mode="subscription",
        submission_key=key,
    )


def complete_checkout(checkout: CheckoutSession, session: dict) -> str:
    """Record a subscription-mode session's outcome; credits come from its first invoice.

    Return ``subscribed``, ``pending``, ``expired`` or ``review`` (the session names another
    user).
    """
    if session.get("status") == "expired":
        transition(checkout, CheckoutSession.Status.EXPIRED, allowed=("open",))
        return "expired"
    if session.get("status") != "complete" or session.get("payment_status") not in PAID_STATUSES:
        return "pending"
    metadata = session.get("metadata") if isinstance(session.get("metadata"), dict) else {}
    owners = {session.get("client_reference_id"), metadata.get("user_id")}
    if owners != {str(checkout.user_id)}:
        transition(checkout, CheckoutSession.Status.REVIEW, allowed=("open", "failed", "expired"))
        open_review(
            Reason.OWNER_MISMATCH,
            f"Subscription checkout {checkout.stripe_session_id} for user {checkout.user_id} "
            f"names {sorted(o for o in owners if o)}.",
            checkout=checkout,
        )
        return "review"
    subscription_id = _id(session.get("subscription"))
    now = timezone.now()
    CheckoutSession.objects.filter(pk=checkout.pk).exclude(
        status=CheckoutSession.Status.PAID
    ).update(
        status=CheckoutSession.Status.PAID,
        fulfilled_at=now,
        payment_status=session.get("payment_status") or "",
        stripe_subscription_id=subscription_id,
        updated_at=now,
    )
    if subscription_id:
        _ensure_row(subscription_id, checkout.user_id, checkout.mode, checkout.plan, "incomplete")
    checkout.refresh_from_db()
    return "subscribed"


def record_invoice_paid(invoice: dict, *, event_id: str = "") -> str:
    """Grant a paid subscription invoice's credits once; return what happened.

    ``granted`` or ``duplicate`` for the granting billing reasons, ``recorded`` for the others
    (a proration, a manual invoice), ``review`` when the invoice cannot be tied to one user and
    plan.
    """
    invoice_id = invoice.get("id")
    if not isinstance(invoice_id, str) or not invoice_id:
        raise BillingError("invoice.paid without an invoice id.")
    details = ((invoice.get("parent") or {}).get("subscription_details")) or {}
    subscription_id = _id(details.get("subscription")) or _id(invoice.get("subscription"))
    metadata = details.get("metadata") if isinstance(details.get("metadata"), dict) else {}
    customer_id = _id(invoice.get("customer"))
    reason = invoice.get("billing_reason") or ""
    row = Subscription.objects.filter(stripe_subscription_id=subscription_id).first()
    user_id = _customer_user(customer_id)
    plan, price_id = invoice_plan(invoice)
    fields = {
        "user_id": user_id,
        "plan": plan,
        "stripe_subscription_id": subscription_id,
        "stripe_customer_id": customer_id,
        "billing_reason": reason,
        "amount_paid": max(int(invoice.get("amount_paid") or 0), 0),
        "currency": invoice.get("currency") or "",
    }
    if reason not in GRANTING_REASONS:
        _store_invoice(invoice_id, status=SubscriptionInvoice.Status.RECORDED, **fields)
        return "recorded"

    problem = None
    if user_id is None:
        problem = f"customer {customer_id or '(none)'} is not one of our users"
    elif metadata.get("user_id") and metadata["user_id"] != str(user_id):
        problem = f"customer's user {user_id} differs from metadata user {metadata['user_id']}"
    elif row is not None and row.user_id != user_id:
        problem = f"subscription {subscription_id} belongs to user {row.user_id}"
    elif plan is None:
        problem = f"its price {price_id or '(none)'} matches none of our plans"
    else:
        problem = invoice_problem(invoice, plan, price_id)
    if problem:
        _store_invoice(invoice_id, status=SubscriptionInvoice.Status.REVIEW, **fields)
        open_review(
            Reason.INVOICE_PROBLEM,
            f"Paid invoice {invoice_id} ({reason}, event {event_id}): {problem}.",
            stripe_object_id=invoice_id,
            user_id=user_id,
            credits=plan.credits_per_period if plan else None,
        )
        return "review"

    credits = plan.credits_per_period
    record = SubscriptionInvoice(stripe_invoice_id=invoice_id)

    def to_review(detail: str) -> None:
        _store_invoice(invoice_id, status=SubscriptionInvoice.Status.REVIEW, **fields)
        open_review(Reason.GRANT_CONFLICT, detail, stripe_object_id=invoice_id, user_id=user_id)

    result = grants.grant(
        user_id,
        credits,
        key=record.grant_key,
        source=grants.INVOICE_SOURCE,
        memo=f"{plan.name}: invoice {invoice_id} ({reason})",
        on_conflict=to_review,
    )
    if result.status == ledger.GrantOutcome.CONFLICT:
        return "review"
    announce_payment(
        user_id,
        key=record.grant_key,
        product=plan.name,
        credits=credits,
        amount=fields["amount_paid"],
        currency=fields["currency"],
        renewal=reason == "subscription_cycle",
    )
    _store_invoice(
        invoice_id,
        status=SubscriptionInvoice.Status.GRANTED,
        credits=credits,
        ledger_entry_id=result.entry_id,
        **fields,
    )
    # A refund or dispute of this invoice's payment may have arrived first: it applies now.
    reversals.purchase_granted(invoice_id=invoice_id)
    return result.status


def reconcile_invoices(*, lookback: timedelta) -> dict[str, int]:
    """Record recent paid invoices whose ``invoice.paid`` never arrived; return counts.

    The same path as the webhook, so a renewal granted here is granted once whatever arrives
    later. An invoice we already hold a row for (granted, recorded or in review) is ``known``.
    """
    counts: dict[str, int] = {}
    since = timezone.now() - lookback
    for invoice in get_gateway().list_paid_invoices(created_since=since):
        known = SubscriptionInvoice.objects.filter(stripe_invoice_id=invoice.get("id")).exists()
        outcome = "known" if known else record_invoice_paid(invoice, event_id="reconcile")
        counts[outcome] = counts.get(outcome, 0) + 1
    if counts.get("granted"):
        logger.warning("reconciliation granted %s missed invoice(s)", counts["granted"])
    return counts


def sync_subscription(subscription: dict, *, event_created: int) -> str:
    """Mirror a ``customer.subscription.*`` object on our row; return ``synced`` or ``stale``.

    An event older than the last one applied changes nothing, and ``canceled`` is final, so
    reordered deliveries end in Stripe's latest state.
    """
    subscription_id = subscription.get("id")
    if not isinstance(subscription_id, str) or not subscription_id:
        raise BillingError("Subscription event without an id.")
    status = subscription.get("status") or ""
    metadata = (
        subscription.get("metadata") if isinstance(subscription.get("metadata"), dict) else {}
    )
    customer_id = _id(subscription.get("customer"))
    user_id = _customer_user(customer_id)
    if user_id is None:
        open_review(
            Reason.INVOICE_PROBLEM,
            f"Subscription {subscription_id} of customer {customer_id} names no user of ours.",
            stripe_object_id=subscription_id,
        )
        return "review"
    items = ((subscription.get("items") or {}).get("data")) or [{}]
    price_id = _id((items[0] or {}).get("price"))
    plan = plan_for_price(price_id) or Plan.objects.filter(slug=metadata.get("plan", "")).first()
    period_end = items[0].get("current_period_end") or subscription.get("current_period_end")
    mode = _customer_mode(customer_id)
    _ensure_row(subscription_id, user_id, mode, plan, status)
    with transaction.atomic():
        row = Subscription.objects.select_for_update().get(stripe_subscription_id=subscription_id)
        older = event_created < row.synced_event_created
        if (row.status == "canceled" and status != "canceled") or (older and status != "canceled"):
            return "stale"
        row.status = status
        row.plan = plan or row.plan
        row.stripe_customer_id = customer_id
        row.current_period_end = _time(period_end)
        row.cancel_at_period_end = bool(subscription.get("cancel_at_period_end"))
        row.canceled_at = _time(subscription.get("canceled_at") or subscription.get("ended_at"))
        row.synced_event_created = max(event_created, row.synced_event_created)
        row.save()
    return "synced"


def cancel_for_user(user_id: Any) -> int:
    """Cancel the user's live subscriptions at Stripe now and mirror it; return how many.

    Used when the account is deleted: no renewal may charge a person who left. Only the current
    mode's subscriptions can be reached; the reply is applied as an event would be.
    """
    live = Subscription.objects.filter(user_id=user_id).exclude(
        status__in=("canceled", "incomplete_expired")
    )
    if not live.exists():
        return 0  # nothing to cancel, and no need for payments to be configured
    gateway = get_gateway()
    live = live.filter(mode=gateway.mode)
    canceled = 0
    for row in live:
        subscription = gateway.cancel_subscription(row.stripe_subscription_id)
        sync_subscription(subscription, event_created=int(timezone.now().timestamp()))
        canceled += 1
    return canceled


def portal_url(user: Any, *, return_url: str) -> str:
    """Return a Stripe customer portal URL; raise ``BillingError`` saying why there is none."""
    gateway = get_gateway()
    if gateway.mode == StripeMode.STANDIN:
        raise BillingError(
            "The customer portal is Stripe's own page and does not exist in stand-in mode. To "
            "try a cancellation, run: manage.py stripe_send_event customer.subscription.deleted "
            "--subscription <sub id>."
        )
    customer = StripeCustomer.objects.filter(user=user, mode=gateway.mode).first()
    if customer is None:
        raise BillingError("You have no subscription or purchase to manage yet.")
    return gateway.create_portal_session(
        customer_id=customer.stripe_customer_id, return_url=return_url
    )


def _ensure_row(subscription_id: str, user_id: Any, mode: str, plan: Plan | None, status: str):
    if Subscription.objects.filter(stripe_subscription_id=subscription_id).exists():
        return
    try:
        with transaction.atomic():
            Subscription.objects.create(
                stripe_subscription_id=subscription_id,
                user_id=user_id,
                mode=mode,
                plan=plan,
                status=status,
            )
    except IntegrityError:
        pass  # A concurrent event created it.


def _store_invoice(invoice_id: str, *, status: str, **fields: Any) -> None:
    # Granted is final: a replay after a grant (or a review) never downgrades the record.
    try:
        with transaction.atomic():
            SubscriptionInvoice.objects.create(
                stripe_invoice_id=invoice_id, status=status, **fields
            )
            return
    except IntegrityError:
        pass
    if status == SubscriptionInvoice.Status.GRANTED:
        SubscriptionInvoice.objects.filter(stripe_invoice_id=invoice_id).exclude(
            status=status
        ).update(status=status, **fields)


def _customer_user(customer_id: str) -> Any:
    if not customer_id:
        return None
    return (
        StripeCustomer.objects.filter(stripe_customer_id=customer_id)
        .values_list("user_id", flat=True)
        .first()
    )


def _customer_mode(customer_id: str) -> str:
    mode = (
        StripeCustomer.objects.filter(stripe_customer_id=customer_id)
        .values_list("mode", flat=True)
        .first()
    )
    return mode or StripeMode.TEST


def _time(value: Any) -> datetime | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return datetime.fromtimestamp(value, tz=UTC)


def _id(value: Any) -> str:
    if isinstance(value, dict):
        value = value.get("id")
    return value if isinstance(value, str) else ""
