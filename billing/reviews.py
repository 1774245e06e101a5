"""Resolving the review queue's cases through the ledger, with a reason.

A resolution is claimed first (one guarded UPDATE), then the ledger call runs outside any
transaction under a key derived from the item, so a double click, two admins or a retry after a
crash credit or debit at most once; a ledger refusal puts the item back in the queue.
"""

from __future__ import annotations

import logging
from typing import Any

from django.utils import timezone

from billing import grants
from billing.checkout import mark_paid
from billing.exceptions import BillingError
from billing.models import ReversalStep, ReviewItem
from billing.reversal_steps import recover_shortfall, release_step
from ledger import api as ledger

logger = logging.getLogger(__name__)
Resolution = ReviewItem.Resolution
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
    Clawback: an item waiting under ``review_only`` runs its planned step (its own key); a
    refund or dispute already clawed back takes up to its account's recorded shortfall; any
    other item takes ``credits`` (default: its shortfall) under ``review:<pk>:clawback``, never
    below zero. The same decision submitted again returns the item and moves nothing. Raise
    ``BillingError`` and change nothing when the input is bad, the item was resolved
    otherwise, or the ledger refuses.
    """
    reason = (reason or "").strip()
    if decision not in DECISIONS:
        raise BillingError(f"Unknown decision {decision!r}.")
    if not reason:
        raise BillingError("Give a reason: it is recorded with the resolution.")
    if credits is not None and (isinstance(credits, bool) or credits < 1):
        raise BillingError("Credits must be a positive whole number.")
    resolution = {
        "grant": Resolution.GRANTED,
        "clawback": Resolution.CLAWED_BACK,
        "dismiss": Resolution.DISMISSED,
    }[decision]
    item.refresh_from_db()
    if not item.is_open and item.resolution == resolution:
        return item  # The same decision submitted again (Back, a second click): nothing more.
    if not item.is_open:
        raise BillingError("This review item is already resolved.")
    plan = _plan(item, decision, credits)
    claimed = ReviewItem.objects.filter(pk=item.pk, resolved_at=None).update(
        resolved_at=timezone.now(),
        resolved_by=actor,
        resolution=resolution,
        note=reason,
        resolution_credits=plan.get("credits"),
    )
    if not claimed:
        item.refresh_from_db()
        if item.resolution == resolution:
            return item
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
    if decision == "clawback" and step is not None:
        return _step_clawback(item, step, credits)
    user_id = item.user_id or (checkout.user_id if checkout else None)
    if user_id is None:
        raise BillingError("This item names no account: resolve it with a ledger adjustment.")
    if decision == "grant":
        amount = credits or item.taken
        if not amount:
            raise BillingError("Say how many credits to grant.")
        return {"op": "grant", "credits": amount, "user_id": user_id}
    amount = credits or item.shortfall
    if not amount:
        raise BillingError("Nothing is short here: say how many credits to claw back.")
    return {"op": "clawback", "credits": amount, "user_id": user_id}


def _step_clawback(item: ReviewItem, step: ReversalStep, credits: int | None) -> dict[str, Any]:
    """Claw back for a refund or dispute through its payment's account, never twice.

    A step waiting for an admin runs as planned; after an automatic clawback only the account's
    recorded shortfall is left to take (by default all of it), so a second clawback of credits
    already taken is refused.
    """
    if step.status == ReversalStep.Status.REVIEW:
        if credits not in (None, step.credits):
            raise BillingError(f"This refund or dispute claws back {step.credits} credits.")
        return {"op": "step", "credits": step.credits}
    if step.status == ReversalStep.Status.CANCELED:
        raise BillingError("The money came back meanwhile: there is nothing to claw back.")
    short = step.payment.credits_short
    if not short:
        raise BillingError(
            "Nothing is left to claw back: the credits were taken back automatically."
        )
    return {"op": "recover", "credits": min(credits or short, short)}


def _apply(item: ReviewItem, plan: dict[str, Any], *, actor: Any, reason: str) -> str:
    op = plan["op"]
    if op == "none":
        return "dismissed"
    memo = f"review {item.pk} by {actor}: {reason}"[:1000]
    if op == "checkout_grant":
        checkout = item.checkout_session
        result = grants.grant(
            checkout.user_id,
            checkout.credits,
            key=checkout.grant_key,
            source=grants.CHECKOUT_SOURCE,
            memo=memo,
            on_conflict=_refuse(checkout.grant_key),
        )
        mark_paid(checkout, result.entry_id)
        return f"grant {checkout.grant_key}: {result.status}"
    if op in ("recover", "step"):
        if op == "recover":
            key = grants.review_key(item.pk, "clawback")
            step = recover_shortfall(item.step.payment, plan["credits"], key=key)
        else:
            step = release_step(item.step)
        return (
            f"clawback {step.key}: {step.ledger_status}, took {step.taken}, short {step.shortfall}"
        )
    key = grants.review_key(item.pk, op)
    if op == "grant":
        result = grants.grant(
            plan["user_id"],
            plan["credits"],
            key=key,
            source=grants.REVIEW_SOURCE,
            memo=memo,
            on_conflict=_refuse(key),
        )
        return f"grant {key}: {result.status}"
    result = ledger.clawback(
        plan["user_id"], plan["credits"], key=key, source=grants.REVIEW_SOURCE, memo=memo
    )
    if result.status == ledger.ClawbackOutcome.CONFLICT:
        _refuse(key)("")
    return f"clawback {key}: {result.status}, took {result.taken}, short {result.shortfall}"


def _refuse(key: str):
    """Return a conflict handler that refuses the resolution (the item goes back to the queue)."""

    def refuse(_detail: str) -> None:
        raise BillingError(f"The ledger refused {key}: conflict.")

    return refuse
