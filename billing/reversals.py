"""Refunds and disputes: one reversal account per payment, credits following the money lost.

Every refund and dispute names a payment intent, and each lands on that payment's
``PaymentReversal`` under a row lock, whatever charge of the payment it concerns and in whatever
order Stripe delivers it. Under the lock the subject's Stripe state is updated (a charge's
cumulative ``amount_refunded`` only grows; a dispute's outcome is final once closed), the money
lost is recounted and at most one ledger step is planned towards

    target = floor(credits_granted * min(paid, refunded + disputed) / paid)

where ``disputed`` counts disputes open or lost; won, ``warning_closed`` and ``prevented`` count
nothing. So a dispute of money already refunded takes nothing new, a closed dispute returns
only what the refunds do not cover, and nothing ever exceeds what the payment granted.

Towards a higher target a clawback is planned (or left for an admin under ``review_only``);
towards a lower one a clawback still waiting for an admin shrinks first, then the recorded
shortfall is forgiven, then credits actually taken are granted back. Steps run after commit
through ``ledger.api`` under the key fixed when they were planned, and their results move the
account's counters in the same guarded update that marks them done, so a crash, a replay or
two concurrent deliveries move credits once. Before the grant lands ``credits_granted`` is 0
and nothing is planned; ``purchase_granted`` applies what was recorded the moment it lands.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from billing import grants
from billing.exceptions import BillingError
from billing.gateways import get_gateway, payments_configured
from billing.models import (
    CheckoutSession,
    PaymentReversal,
    Reversal,
    ReversalStep,
    ReviewItem,
    SubscriptionInvoice,
)
from billing.review_queue import open_review
from config.ops import ops_alert
from ledger import api as ledger

logger = logging.getLogger(__name__)
Step = ReversalStep.Status
Action = ReversalStep.Action
Reason = ReviewItem.Reason
REVERSAL_SOURCE = "stripe_reversal"
# Closed with the money back with us: the dispute no longer counts as money lost. Stripe's
# ``prevented`` disputes are settled by a refund, which counts on its own.
DISPUTE_RETURNED = frozenset({"won", "warning_closed", "prevented"})
DISPUTE_LOST = frozenset({"lost"})
# Enough rounds for a crash's leftover step plus the step it makes necessary.
MAX_SETTLE_ROUNDS = 8


@dataclass(frozen=True)
class Purchase:
    """What a payment intent bought: whose credits, how many were granted, for how much.

    ``user_id`` is None for an invoice Stripe names that we have not recorded yet.
    """

    user_id: Any
    credits: int
    paid: int
    currency: str
    label: str
    checkout: CheckoutSession | None = None
    invoice: SubscriptionInvoice | None = None
    invoice_id: str = ""


def find_purchase(payment_intent_id: str) -> Purchase | None:
    """Return the pack purchase or subscription invoice paid by this intent, or None.

    ``credits`` is 0 while the purchase has not granted (still open, or in review).
    """
    if not payment_intent_id:
        return None
    checkout = (
        CheckoutSession.objects.select_related("pack", "plan")
        .filter(stripe_payment_intent_id=payment_intent_id)
        .first()
    )
    if checkout is not None:
        granted = checkout.status == CheckoutSession.Status.PAID and not checkout.is_subscription
        paid = checkout.amount if checkout.amount_total is None else checkout.amount_total
        return Purchase(
            user_id=checkout.user_id,
            credits=checkout.credits if granted else 0,
            paid=paid,
            currency=checkout.currency,
            label=f"{checkout.product_name} (Checkout {checkout.stripe_session_id})",
            checkout=checkout,
        )
    invoice, invoice_id = _invoice_paid_by(payment_intent_id)
    if invoice is not None:
        granted = invoice.status == SubscriptionInvoice.Status.GRANTED
        return Purchase(
            user_id=invoice.user_id,
            credits=invoice.credits if granted else 0,
            paid=invoice.amount_paid,
            currency=invoice.currency,
            label=f"subscription invoice {invoice.stripe_invoice_id}",
            invoice=invoice,
            invoice_id=invoice.stripe_invoice_id,
        )
    if invoice_id:
        return Purchase(None, 0, 0, "", f"invoice {invoice_id}", invoice_id=invoice_id)
    return None


def _invoice_paid_by(payment_intent_id: str) -> tuple[SubscriptionInvoice | None, str]:
    """Return our invoice this intent paid and its Stripe id, asking Stripe the first time.

    Stripe's invoice events do not name the intent that paid them, so the first refund or
    dispute of an invoice's payment asks the gateway and keeps the answer (on the invoice row,
    or on the reversal account when the invoice has not been recorded yet). A gateway error
    propagates: the event is answered 500 and Stripe's retry asks again.
    """
    ours = SubscriptionInvoice.objects.filter(user__isnull=False)
    invoice = ours.filter(stripe_payment_intent_id=payment_intent_id).first()
    if invoice is not None:
        return invoice, invoice.stripe_invoice_id
    known = (
        PaymentReversal.objects.filter(stripe_payment_intent_id=payment_intent_id)
        .exclude(stripe_invoice_id="")
        .values_list("stripe_invoice_id", flat=True)
        .first()
    )
    if known is None and not payments_configured():
        return None, ""
    invoice_id = known or get_gateway().invoice_paid_by(payment_intent_id) or ""
    invoice = ours.filter(stripe_invoice_id=invoice_id).first() if invoice_id else None
    if invoice is not None and not invoice.stripe_payment_intent_id:
        SubscriptionInvoice.objects.filter(pk=invoice.pk, stripe_payment_intent_id="").update(
            stripe_payment_intent_id=payment_intent_id
        )
    return invoice, invoice_id


def share(credits: int, amount: int, paid: int) -> int:
    """Return the credits that ``amount`` of ``paid`` bought, rounded down (0 when unpaid)."""
    if paid <= 0 or credits <= 0:
        return 0
    return credits * min(max(amount, 0), paid) // paid


def record_refund(charge: dict, *, event_id: str = "") -> str:
    """Apply a ``charge.refunded`` event to its payment's account.

    Return ``planned`` (a ledger step), ``recorded`` (news, nothing to move), ``stale`` (nothing
    new) or ``review`` (a payment we cannot map yet: recorded, applied when its grant lands).
    """
    charge_id = _text(charge.get("id"))
    refunded = _amount(charge.get("amount_refunded"))

    def update(subject: Reversal, purchase: Purchase) -> str:
        if refunded <= subject.stripe_amount:
            return ""
        subject.stripe_amount = refunded
        subject.stripe_status = "refunded" if charge.get("refunded") else "partial"
        return f"{purchase.label} refunded {refunded} {purchase.currency} on charge {charge_id}"

    return _apply(Reversal.Kind.REFUND, charge_id, charge, update, Reason.REFUND, event_id)


def record_dispute(dispute: dict, *, event_id: str = "") -> str:
    """Apply any ``charge.dispute.*`` event, in any order, any number of times.

    A dispute counts as money lost while open and once lost; won, ``warning_closed`` and
    ``prevented`` are final and count nothing. Return as ``record_refund``.
    """
    dispute_id = _text(dispute.get("id"))
    status = _text(dispute.get("status"))
    disputed = _amount(dispute.get("amount"))

    def update(subject: Reversal, purchase: Purchase) -> str:
        before = (subject.stripe_amount, subject.stripe_status, subject.outcome)
        subject.stripe_amount = max(subject.stripe_amount, disputed)
        if not subject.outcome:
            subject.stripe_status = status
            if status in DISPUTE_RETURNED:
                subject.outcome = Reversal.Outcome.WON
            elif status in DISPUTE_LOST:
                subject.outcome = Reversal.Outcome.LOST
        if (subject.stripe_amount, subject.stripe_status, subject.outcome) == before:
            return ""
        return (
            f"Dispute {dispute_id} of {purchase.label} for {subject.stripe_amount} "
            f"{purchase.currency}: {subject.stripe_status}"
        )

    reason = Reason.DISPUTE_CLOSED if status in DISPUTE_RETURNED | DISPUTE_LOST else Reason.DISPUTE
    return _apply(Reversal.Kind.DISPUTE, dispute_id, dispute, update, reason, event_id)


def _apply(kind: str, stripe_id: str, data: dict, update, reason: str, event_id: str) -> str:
    """Record one subject's news on its payment's account under the lock, then settle it."""
    payment_intent = _id(data.get("payment_intent"))
    purchase = find_purchase(payment_intent)
    if not payment_intent:
        _unknown_payment(kind, stripe_id, payment_intent, data)
        return "review"
    unknown = purchase is None or purchase.user_id is None
    known = purchase or Purchase(None, 0, 0, "", f"payment {payment_intent}")
    with transaction.atomic():
        payment = _locked_payment(payment_intent, purchase)
        subject, _ = Reversal.objects.get_or_create(
            kind=kind, stripe_id=stripe_id, defaults={"payment": payment}
        )
        if subject.payment_id != payment.pk:
            raise BillingError(f"{subject} belongs to another payment than {payment_intent}.")
        news = update(subject, known)
        if news:
            subject.save()
            _recount(payment)
        step = _plan_next(payment, reason=reason, cause=f"{news}, event {event_id}.")
        if news and step is None and not unknown:
            open_review(
                reason,
                f"{news} (event {event_id}). " + _plan_text(payment, None),
                checkout=payment.checkout_session,
                stripe_object_id=f"{stripe_id}:{subject.stripe_amount}:{subject.stripe_status}",
                user_id=payment.user_id,
            )
        payment.save()
    if unknown:
        _unknown_payment(kind, stripe_id, payment_intent, data)
    settle(payment.pk)
    if step is not None:
        return "planned"
    if unknown:
        return "review"
    return "recorded" if news else "stale"


def purchase_granted(*, payment_intent: str = "", invoice_id: str = "") -> None:
    """Apply refunds and disputes recorded before this purchase's grant landed.

    Called by every path that grants a purchase (webhook, success page, reconciliation, a
    review's grant), after the grant; a payment nobody reversed returns at once.
    """
    accounts = PaymentReversal.objects.all()
    if payment_intent:
        payment = accounts.filter(stripe_payment_intent_id=payment_intent).first()
    elif invoice_id:
        payment = accounts.filter(stripe_invoice_id=invoice_id).first()
    else:
        return
    if payment is None:
        return
    purchase = find_purchase(payment.stripe_payment_intent_id)
    if purchase is None or purchase.user_id is None:
        return
    with transaction.atomic():
        payment = _locked_payment(payment.stripe_payment_intent_id, purchase)
        _plan_next(
            payment,
            reason=Reason.REFUND if payment.refunded else Reason.DISPUTE,
            cause=f"{purchase.label} was granted after it was refunded or disputed.",
        )
        payment.save()
    settle(payment.pk)


def settle(payment_id: int) -> None:
    """Run the account's planned steps, then plan and run until it reaches its target."""
    for _ in range(MAX_SETTLE_ROUNDS):
        for step in ReversalStep.objects.filter(payment_id=payment_id, status=Step.PLANNED):
            execute_step(step)
        with transaction.atomic():
            payment = PaymentReversal.objects.select_for_update().get(pk=payment_id)
            step = _plan_next(payment, reason="", cause=f"{payment} settled.")
            payment.save()
        if step is None or step.status != Step.PLANNED:
            return
    logger.error("reversal account %s did not settle in %s rounds", payment_id, MAX_SETTLE_ROUNDS)


def _plan_next(payment: PaymentReversal, *, reason: str, cause: str) -> ReversalStep | None:
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
        f"{cause} " + _plan_text(payment, step),
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
        if recorded and result.shortfall and result.status != "conflict":
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
    failed = ledger_status == "conflict"
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


def _locked_payment(payment_intent: str, purchase: Purchase | None) -> PaymentReversal:
    """Return the payment's account locked FOR UPDATE, creating it and linking the purchase."""
    if not PaymentReversal.objects.filter(stripe_payment_intent_id=payment_intent).exists():
        try:
            with transaction.atomic():
                PaymentReversal.objects.create(stripe_payment_intent_id=payment_intent)
        except IntegrityError:
            pass  # A concurrent delivery created it; the lock below orders the two.
    payment = PaymentReversal.objects.select_for_update().get(
        stripe_payment_intent_id=payment_intent
    )
    if purchase is None:
        return payment
    payment.stripe_invoice_id = payment.stripe_invoice_id or purchase.invoice_id
    if purchase.user_id is not None:
        payment.user_id = payment.user_id or purchase.user_id
        payment.checkout_session = payment.checkout_session or purchase.checkout
        payment.invoice = payment.invoice or purchase.invoice
        payment.amount_paid = purchase.paid
        payment.currency = purchase.currency
        payment.credits_granted = max(payment.credits_granted, purchase.credits)
    return payment


def _recount(payment: PaymentReversal) -> None:
    """Sum the money lost over the account's subjects (under its lock)."""
    refunded = disputed = 0
    for subject in payment.subjects.all():
        if subject.kind == Reversal.Kind.REFUND:
            refunded += subject.stripe_amount
        elif subject.outcome != Reversal.Outcome.WON:
            disputed += subject.stripe_amount
    payment.refunded, payment.disputed = refunded, disputed


def _plan_text(payment: PaymentReversal, step: ReversalStep | None) -> str:
    if payment.credits_granted == 0:
        return "The purchase granted no credits yet: nothing to take back until it does."
    if step is None:
        return f"Credits taken back stay at {payment.credits_taken}; nothing moves."
    if step.action == Action.GRANT:
        return f"{step.credits} credits taken for it are granted back."
    if step.status == Step.REVIEW:
        return f"Policy review_only: {step.credits} credits may be clawed back from this review."
    return f"{step.credits} credits are clawed back (never below zero)."


def _unknown_payment(kind: str, object_id: str, payment_intent: str, data: dict) -> None:
    open_review(
        Reason.UNKNOWN_PAYMENT,
        f"A {kind} ({object_id}) of {data.get('amount')} {data.get('currency')} for payment "
        f"intent {payment_intent or '(none)'} matches no granted purchase or invoice of ours "
        "yet. It is recorded and applies if that purchase is granted later.",
        stripe_object_id=object_id,
    )


def _id(value: Any) -> str:
    if isinstance(value, dict):
        value = value.get("id")
    return value if isinstance(value, str) else ""


def _text(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise BillingError(f"Expected an id or status in the event, got {value!r}.")
    return value


def _amount(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise BillingError(f"Expected a non-negative amount in the event, got {value!r}.")
    return value
