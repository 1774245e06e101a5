"""A payment's reversal account moving towards its target, one keyed ledger step at a time.

Under the account's row lock at most one step is planned: a clawback towards a higher target
(left for an admin under ``review_only``), or towards a lower one a waiting clawback shrinks,
the recorded shortfall is forgiven, then credits taken are granted back. Steps run after commit
through ``ledger.api`` under the key fixed when they were planned, and their results move the
account's counters in the same guarded update that marks them done, so a crash, a replay or
two concurrent runs move credits once.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from billing import grants
from billing.exceptions import BillingError
from billing.models import PaymentReversal, ReversalStep, ReviewItem
from billing.review_queue import open_review
from config.ops import ops_alert
from ledger import api as ledger

logger = logging.getLogger(__name__)
Step = ReversalStep.Status
Action = ReversalStep.Action
Reason = ReviewItem.Reason
REVERSAL_SOURCE = "stripe_reversal"
# Enough rounds for a crash's leftover step plus the step it makes necessary.
MAX_SETTLE_ROUNDS = 8


def share(credits: int, amount: int, paid: int) -> int:
    """Return the credits that ``amount`` of ``paid`` bought, rounded down (0 when unpaid)."""
    if paid <= 0 or credits <= 0:
        return 0
    return credits * min(max(amount, 0), paid) // paid


def settle(payment_id: int) -> None:
    """Run the account's planned steps, then plan and run until it reaches its target."""
    for _ in range(MAX_SETTLE_ROUNDS):
        for step in ReversalStep.objects.filter(payment_id=payment_id, status=Step.PLANNED):
            execute_step(step)
        with transaction.atomic():
            payment = PaymentReversal.objects.select_for_update().get(pk=payment_id)
            step = plan_next(payment, reason="", cause=f"{payment} settled.")
            payment.save()
        if step is None or step.status != Step.PLANNED:
            return
    logger.error("reversal account %s did not settle in %s rounds", payment_id, MAX_SETTLE_ROUNDS)


def plan_next(payment: PaymentReversal, *, reason: str, cause: str) -> ReversalStep | None:
    """Under the account's lock: plan the one step that moves it towards its target, if any.

    Nothing is planned while a step is still ``planned``: its result decides what is left.
    """
    steps = payment.steps.all()
    if any(s.status == Step.PLANNED for s in steps):
        return None
    target = share(payment.credits_granted, payment.money_lost, payment.amount_paid)
    payment.credits_target = target
    waiting = [s for s in steps if s.status == Step.REVIEW and s.action == Action.CLAWBACK]
    claimed = payment.credits_taken + payment.credits_short + sum(s.credits for s in waiting)
    if target > claimed:
        review_only = settings.BILLING_REFUND_POLICY == "review_only"
        action, credits = Action.CLAWBACK, target - claimed
        status = Step.REVIEW if review_only else Step.PLANNED
    elif target < claimed:
        excess = claimed - target
        for waiting_step in reversed(waiting):
            excess -= _shrink(waiting_step, excess)
        forgiven = min(excess, payment.credits_short)
        payment.credits_short -= forgiven
        excess -= forgiven
        if not excess:
            return None
        action, credits, status = Action.GRANT, excess, Step.PLANNED
    else:
        return None
    step = ReversalStep.objects.create(
        payment=payment,
        key=f"reversal:{payment.stripe_payment_intent_id}:{len(steps) + 1}:{action}",
        action=action,
        credits=credits,
        status=status,
    )
    if action == Action.GRANT:
        reason = Reason.DISPUTE_CLOSED
    open_review(
        reason or (Reason.REFUND if payment.refunded else Reason.DISPUTE),
        f"{cause} " + plan_text(payment, step),
        checkout=payment.checkout_session,
        stripe_object_id=step.key,
        user_id=payment.user_id,
        step=step,
        credits=credits,
    )
    return step


def _shrink(step: ReversalStep, excess: int) -> int:
    """Cut a clawback that still waits for an admin by up to ``excess``; return the cut."""
    cut = min(excess, step.credits)
    if not cut:
        return 0
    if cut == step.credits:
        ReversalStep.objects.filter(pk=step.pk, status=Step.REVIEW).update(status=Step.CANCELED)
    else:
        ReversalStep.objects.filter(pk=step.pk, status=Step.REVIEW).update(
            credits=step.credits - cut
        )
        ReviewItem.objects.filter(step=step).update(credits=step.credits - cut)
    return cut


def release_step(step: ReversalStep) -> ReversalStep:
    """Run a step that waited for an admin (``review_only``); raise when it cannot run."""
    with transaction.atomic():
        PaymentReversal.objects.select_for_update().get(pk=step.payment_id)
        ReversalStep.objects.filter(pk=step.pk, status=Step.REVIEW).update(status=Step.PLANNED)
    step.refresh_from_db()
    if step.status == Step.CANCELED:
        raise BillingError("The money came back meanwhile: there is nothing to claw back.")
    settle(step.payment_id)
    step.refresh_from_db()
    if step.status == Step.FAILED:
        raise BillingError(f"The ledger refused {step.key}.")
    return step


def recover_shortfall(payment: PaymentReversal, credits: int, *, key: str) -> ReversalStep:
    """Claw back up to ``credits`` of the account's recorded shortfall (an admin's decision).

    Raise ``BillingError`` when nothing is short any more: the credits were already taken.
    """
    with transaction.atomic():
        payment = PaymentReversal.objects.select_for_update().get(pk=payment.pk)
        step = ReversalStep.objects.filter(key=key).first()
        if step is not None:
            # A retry after the ledger failed: the step planned then runs, nothing new.
            transaction.on_commit(lambda: settle(payment.pk))
            return step
        amount = min(credits, payment.credits_short)
        if amount <= 0:
            raise BillingError("Nothing is left to claw back for this payment.")
        payment.credits_short -= amount
        payment.save()
        step = ReversalStep.objects.create(
            payment=payment, key=key, action=Action.CLAWBACK, credits=amount, status=Step.PLANNED
        )
    settle(payment.pk)
    step.refresh_from_db()
    return step


def execute_step(step: ReversalStep) -> ReversalStep:
    """Make the step's one ledger call (keyed, so safe to repeat) and record its result."""
    payment = step.payment
    if step.action == Action.CLAWBACK:
        result = ledger.clawback(
            payment.user_id,
            step.credits,
            key=step.key,
            source=REVERSAL_SOURCE,
            memo=f"{payment}: take back {step.credits} credits",
        )
        recorded = _finish(step, result.status, taken=result.taken, shortfall=result.shortfall)
        if recorded and result.shortfall and result.status != ledger.ClawbackOutcome.CONFLICT:
            ops_alert(
                "Billing: clawback shortfall",
                f"{payment} for user {payment.user_id}: {result.shortfall} of {step.credits} "
                "credits were already spent or held and could not be taken back.",
                step=step.key,
            )
        return step
    result = grants.grant(
        payment.user_id,
        step.credits,
        key=step.key,
        source=REVERSAL_SOURCE,
        memo=f"{payment}: the money came back, return {step.credits} credits",
    )
    # A conflict is recorded as a failed step with an ops alert (``_finish``).
    _finish(step, result.status, taken=0, shortfall=0)
    return step


def _finish(step: ReversalStep, ledger_status: str, *, taken: int, shortfall: int) -> bool:
    """Mark the step done and move the account's counters, once; return whether this call did."""
    # Both outcomes spell a refused key the same way.
    failed = ledger_status == ledger.ClawbackOutcome.CONFLICT
    with transaction.atomic():
        updated = ReversalStep.objects.filter(pk=step.pk, status=Step.PLANNED).update(
            status=Step.FAILED if failed else Step.DONE,
            ledger_status=ledger_status,
            taken=taken,
            shortfall=shortfall,
            executed_at=timezone.now(),
        )
        if updated and step.action == Action.CLAWBACK:
            # A refused clawback took nothing: all of it counts as short.
            short = step.credits if failed else shortfall
            PaymentReversal.objects.filter(pk=step.payment_id).update(
                credits_taken=F("credits_taken") + taken, credits_short=F("credits_short") + short
            )
            ReviewItem.objects.filter(step=step).update(taken=taken, shortfall=short)
        elif updated and not failed:
            PaymentReversal.objects.filter(pk=step.payment_id).update(
                credits_taken=F("credits_taken") - step.credits
            )
    step.refresh_from_db()
    if updated and failed:
        ops_alert(
            "Billing: ledger refused a reversal step",
            f"{step.key} ({step.credits} credits) was refused: {ledger_status}.",
            step=step.key,
        )
    return bool(updated)


def plan_text(payment: PaymentReversal, step: ReversalStep | None) -> str:
    if payment.credits_granted == 0:
        return "The purchase granted no credits yet: nothing to take back until it does."
    if step is None:
        return f"Credits taken back stay at {payment.credits_taken}; nothing moves."
    if step.action == Action.GRANT:
        return f"{step.credits} credits taken for it are granted back."
    if step.status == Step.REVIEW:
        return f"Policy review_only: {step.credits} credits may be clawed back from this review."
    return f"{step.credits} credits are clawed back (never below zero)."
