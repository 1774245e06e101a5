"""The review queue: open a case once, and resolve it through the ledger with a reason.

A resolution is claimed first (one guarded UPDATE), then the ledger call runs outside any
transaction under a key derived from the item, so a double click, two admins or a retry after a
crash credit or debit at most once; a ledger refusal puts the item back in the queue.
"""

from __future__ import annotations

import logging
from typing import Any

from django.db import transaction
from django.utils import timezone

from billing.exceptions import BillingError
from billing.models import CheckoutSession, ReversalStep, ReviewItem, StripeEvent
from config.ops import ops_alert
from ledger import api as ledger

logger = logging.getLogger(__name__)
Resolution = ReviewItem.Resolution
CHECKOUT_SOURCE = "stripe_checkout"
REVIEW_SOURCE = "billing_review"
# Reasons whose grant is the purchase's own grant (key ``checkout:<session id>``).
PURCHASE_REASONS = frozenset(
    {
        ReviewItem.Reason.SNAPSHOT_MISMATCH,
        ReviewItem.Reason.OWNER_MISMATCH,
        ReviewItem.Reason.USER_INELIGIBLE,
        ReviewItem.Reason.DISCOUNT_NOT_ALLOWED,
        ReviewItem.Reason.GRANT_CONFLICT,
        ReviewItem.Reason.NOT_SUBSCRIBED,
    }
)
DECISIONS = ("grant", "clawback", "dismiss")


def open_review(
    reason: str,
    detail: str,
    *,
    checkout: CheckoutSession | None = None,
    event: StripeEvent | None = None,
    stripe_object_id: str = "",
    **fields: Any,
) -> ReviewItem:
    """Queue a case for a human, once per subject and reason, alerting operators the first time.

    ``fields`` sets the item's ``user``, ``step``, ``credits``, ``taken`` or ``shortfall``. The
    alert is sent after the surrounding transaction commits (at once in autocommit).
    """
    subject = stripe_object_id or (checkout.stripe_session_id if checkout else "") or ""
    if checkout is not None and "user" not in fields:
        fields["user_id"] = checkout.user_id
    item, created = ReviewItem.objects.get_or_create(
        key=f"{reason}:{subject}"[:300],
        defaults={
            "reason": reason,
            "detail": detail,
            "checkout_session": checkout,
            "event": event,
            "stripe_object_id": subject[:255],
            **fields,
        },
    )
    if created:
        title = f"Billing review: {item.get_reason_display()}"
        transaction.on_commit(
            lambda: ops_alert(title, detail, review_item=item.pk, stripe_object=subject)
        )
    return item


def resolve_review(
    item: ReviewItem,
    *,
    actor: Any,
    decision: str,
    reason: str,
    credits: int | None = None,
) -> ReviewItem:
    """Resolve an open item by ``grant``, ``clawback`` or ``dismiss``, recording who and why.

    Grant: a purchase's review grants its snapshot under ``checkout:<session id>``; any other
    item grants ``credits`` (default: what was clawed back) under ``review:<pk>:grant``.
    Clawback: an item waiting under ``review_only`` runs its planned step (its own key); any
    other takes ``credits`` (default: the shortfall, else the credits in question) under
    ``review:<pk>:clawback``, never below zero. Raise ``BillingError`` and change nothing when
    the input is bad, the item is resolved, or the ledger refuses.
    """
    reason = (reason or "").strip()
    if decision not in DECISIONS:
        raise BillingError(f"Unknown decision {decision!r}.")
    if not reason:
        raise BillingError("Give a reason: it is recorded with the resolution.")
    if credits is not None and (isinstance(credits, bool) or credits < 1):
        raise BillingError("Credits must be a positive whole number.")
    if not item.is_open:
        raise BillingError("This review item is already resolved.")
    plan = _plan(item, decision, credits)
    resolution = {
        "grant": Resolution.GRANTED,
        "clawback": Resolution.CLAWED_BACK,
        "dismiss": Resolution.DISMISSED,
    }[decision]
    claimed = ReviewItem.objects.filter(pk=item.pk, resolved_at=None).update(
        resolved_at=timezone.now(),
        resolved_by=actor,
        resolution=resolution,
        note=reason,
        resolution_credits=plan.get("credits"),
    )
    if not claimed:
        raise BillingError("This review item was resolved by someone else meanwhile.")
    try:
        detail = _apply(item, plan, actor=actor, reason=reason)
    except BaseException:
        # The ledger refused or failed: nothing moved, so the case goes back to the queue.
        ReviewItem.objects.filter(pk=item.pk, resolution=resolution).update(
            resolved_at=None, resolved_by=None, resolution="", resolution_credits=None
        )
        raise
    ReviewItem.objects.filter(pk=item.pk).update(resolution_detail=detail[:300])
    item.refresh_from_db()
    logger.info("review %s resolved: %s by %s (%s)", item.pk, decision, actor, detail)
    return item


def _plan(item: ReviewItem, decision: str, credits: int | None) -> dict[str, Any]:
    """Decide the ledger call before claiming the item; raise when it cannot be made."""
    if decision == "dismiss":
        return {"op": "none"}
    checkout = item.checkout_session
    if decision == "grant" and item.reason in PURCHASE_REASONS:
        if checkout is None or not checkout.stripe_session_id or checkout.is_subscription:
            raise BillingError("Only a review of one of our pack purchases can grant its credits.")
        return {"op": "checkout_grant", "credits": checkout.credits}
    step = item.step
    if decision == "clawback" and step is not None and step.status == ReversalStep.Status.REVIEW:
        if credits not in (None, step.credits):
            raise BillingError(f"This refund or dispute claws back {step.credits} credits.")
        return {"op": "step", "credits": step.credits}
    if decision == "clawback" and step is not None and step.status == ReversalStep.Status.CANCELED:
        raise BillingError("The dispute was won meanwhile: there is nothing to claw back.")
    user_id = item.user_id or (checkout.user_id if checkout else None)
    if user_id is None:
        raise BillingError("This item names no account: resolve it with a ledger adjustment.")
    if decision == "grant":
        amount = credits or item.taken
        if not amount:
            raise BillingError("Say how many credits to grant.")
        return {"op": "grant", "credits": amount, "user_id": user_id}
    amount = credits or item.shortfall or item.credits
    if not amount:
        raise BillingError("Say how many credits to claw back.")
    return {"op": "clawback", "credits": amount, "user_id": user_id}


def _apply(item: ReviewItem, plan: dict[str, Any], *, actor: Any, reason: str) -> str:
    from billing import reversals, services

    op = plan["op"]
    if op == "none":
        return "dismissed"
    memo = f"review {item.pk} by {actor}: {reason}"[:1000]
    if op == "checkout_grant":
        checkout = item.checkout_session
        result = ledger.grant(
            checkout.user_id,
            checkout.credits,
            key=checkout.grant_key,
            source=CHECKOUT_SOURCE,
            memo=memo,
        )
        if result.status == "conflict":
            raise BillingError(f"The ledger refused {checkout.grant_key}: conflict.")
        services.mark_paid(checkout, result.entry_id)
        services.after_grant(checkout.user_id, result.status)
        return f"grant {checkout.grant_key}: {result.status}"
    if op == "step":
        step = reversals.release_step(item.step)
        return (
            f"clawback {step.key}: {step.ledger_status}, took {step.taken}, short {step.shortfall}"
        )
    key = f"review:{item.pk}:{op}"
    if op == "grant":
        result = ledger.grant(
            plan["user_id"], plan["credits"], key=key, source=REVIEW_SOURCE, memo=memo
        )
        if result.status == "conflict":
            raise BillingError(f"The ledger refused {key}: conflict.")
        services.after_grant(plan["user_id"], result.status)
        return f"grant {key}: {result.status}"
    result = ledger.clawback(
        plan["user_id"], plan["credits"], key=key, source=REVIEW_SOURCE, memo=memo
    )
    if result.status == "conflict":
        raise BillingError(f"The ledger refused {key}: conflict.")
    return f"clawback {key}: {result.status}, took {result.taken}, short {result.shortfall}"
