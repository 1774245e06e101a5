"""Refunds and disputes: money going back, credits following it under review.

Each Stripe event is mapped to the purchase through its payment intent. Under a row lock on the
purchase's ``Reversal`` (one per refunded charge, one per dispute) the change is turned into
planned ``ReversalStep`` rows and a review item, then the lock is released and the steps run
through ``ledger.api`` outside any transaction. A step's ledger key is fixed when it is planned:

- refunds: Stripe's ``amount_refunded`` is cumulative, so the credits to take back in total are
  ``floor(credits * min(amount_refunded, paid) / paid)`` and each step takes only the growth of
  that target, keyed ``refund:<charge>:<from>-<to>``. The target only grows, so a replay or an
  older delivery plans nothing; rounding down favours the customer on a partial refund and a
  full refund takes exactly the purchase's credits.
- disputes: ``dispute:<id>:clawback`` takes the disputed share once (on creation, or on a loss
  seen first); a win (or an inquiry closed without a chargeback) after a clawback plans
  ``dispute:<id>:reinstate``, which grants back exactly what the clawback took.

A step whose ledger call failed or never ran (a crash) stays planned and runs on the next
delivery of any event for that reversal; its key makes a second run a ``duplicate``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from billing import grants
from billing.exceptions import BillingError
from billing.gateways import get_gateway, payments_configured
from billing.models import (
    CheckoutSession,
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
Reason = ReviewItem.Reason
REFUND_SOURCE = "stripe_refund"
DISPUTE_SOURCE = "stripe_dispute"
# Closed with the money back with us: the credits taken for the dispute are returned. Stripe's
# ``prevented`` disputes are settled by a refund, whose own event claws back instead.
DISPUTE_RETURNED = frozenset({"won", "warning_closed", "prevented"})
DISPUTE_LOST = frozenset({"lost"})


@dataclass(frozen=True)
class Purchase:
    """What a payment intent bought: whose credits, how many were granted, for how much."""

    user_id: Any
    credits: int
    paid: int
    currency: str
    label: str
    checkout: CheckoutSession | None = None
    invoice: SubscriptionInvoice | None = None


def find_purchase(payment_intent_id: str) -> Purchase | None:
    """Return the pack purchase or subscription invoice paid by this intent, or None.

    ``credits`` is 0 when the purchase never granted (still in review, say): there is nothing
    to take back then, only a case to review.
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
        return Purchase(
            user_id=checkout.user_id,
            credits=checkout.credits if granted else 0,
            paid=checkout.amount_total if checkout.amount_total else checkout.amount,
            currency=checkout.currency,
            label=f"{checkout.product_name} (Checkout {checkout.stripe_session_id})",
            checkout=checkout,
        )
    invoice = _invoice_paid_by(payment_intent_id)
    if invoice is not None:
        granted = invoice.status == SubscriptionInvoice.Status.GRANTED
        return Purchase(
            user_id=invoice.user_id,
            credits=invoice.credits if granted else 0,
            paid=invoice.amount_paid,
            currency=invoice.currency,
            label=f"subscription invoice {invoice.stripe_invoice_id}",
            invoice=invoice,
        )
    return None


def _invoice_paid_by(payment_intent_id: str) -> SubscriptionInvoice | None:
    """Return our subscription invoice this intent paid, asking Stripe the first time.

    Stripe's invoice events do not name the intent that paid them (``Invoice.payments`` is
    included only on request), so the first refund or dispute of an invoice's payment asks the
    gateway which invoice it paid and keeps the answer on the row. A gateway error propagates:
    the event is answered 500 and Stripe's retry asks again.
    """
    ours = SubscriptionInvoice.objects.filter(user__isnull=False)
    invoice = ours.filter(stripe_payment_intent_id=payment_intent_id).first()
    if invoice is not None or not payments_configured():
        return invoice
    invoice_id = get_gateway().invoice_paid_by(payment_intent_id)
    invoice = ours.filter(stripe_invoice_id=invoice_id).first() if invoice_id else None
    if invoice is not None and not invoice.stripe_payment_intent_id:
        SubscriptionInvoice.objects.filter(pk=invoice.pk, stripe_payment_intent_id="").update(
            stripe_payment_intent_id=payment_intent_id
        )
    return invoice


def share(credits: int, amount: int, paid: int) -> int:
    """Return the credits that ``amount`` of ``paid`` bought, rounded down (0 when unpaid)."""
    if paid <= 0 or credits <= 0:
        return 0
    return credits * min(max(amount, 0), paid) // paid


def record_refund(charge: dict, *, event_id: str = "") -> str:
    """Apply a ``charge.refunded`` event: plan the clawback of the refund's growth, then run it.

    Return ``planned``, ``stale`` (nothing new), ``review`` (unmapped) or ``recorded``.
    """
    charge_id = _text(charge.get("id"))
    payment_intent = _id(charge.get("payment_intent"))
    refunded = _amount(charge.get("amount_refunded"))
    purchase = find_purchase(payment_intent)
    if purchase is None:
        _unknown_payment("refund", charge_id, payment_intent, refunded, charge.get("currency"))
        return "review"
    paid = purchase.paid or _amount(charge.get("amount"))
    target = share(purchase.credits, refunded, paid)
    policy = settings.BILLING_REFUND_POLICY
    with transaction.atomic():
        reversal = _locked_reversal(Reversal.Kind.REFUND, charge_id, purchase, payment_intent, paid)
        grew = refunded > reversal.stripe_amount
        step = None
        if target > reversal.credits_target:
            step = ReversalStep.objects.create(
                reversal=reversal,
                key=f"refund:{charge_id}:{reversal.credits_target}-{target}",
                action=ReversalStep.Action.CLAWBACK,
                credits=target - reversal.credits_target,
                status=Step.PLANNED if policy == "clawback_unspent" else Step.REVIEW,
            )
            reversal.credits_target = target
        if grew:
            reversal.stripe_amount = refunded
            reversal.stripe_status = "refunded" if charge.get("refunded") else "partial"
            whole = "in full" if refunded >= paid else f"{refunded} of {paid} {purchase.currency}"
            open_review(
                Reason.REFUND,
                f"{purchase.label} refunded {whole} (charge {charge_id}, event {event_id}). "
                + _plan_text(step, policy, purchase.credits),
                checkout=purchase.checkout,
                stripe_object_id=step.key if step else f"{charge_id}:{refunded}",
                user_id=purchase.user_id,
                step=step,
                credits=step.credits if step else 0,
            )
        reversal.save()
    run_steps(reversal)
    if step is not None:
        return "planned"
    return "recorded" if grew else "stale"


def record_dispute(dispute: dict, *, closed: bool, event_id: str = "") -> str:
    """Apply ``charge.dispute.created`` or ``.closed``, in either order, any number of times.

    Return ``planned`` (a new step), ``review`` (unmapped) or ``recorded``.
    """
    dispute_id = _text(dispute.get("id"))
    status = _text(dispute.get("status"))
    payment_intent = _id(dispute.get("payment_intent"))
    disputed = _amount(dispute.get("amount"))
    purchase = find_purchase(payment_intent)
    if purchase is None:
        _unknown_payment("dispute", dispute_id, payment_intent, disputed, dispute.get("currency"))
        return "review"
    paid = purchase.paid or disputed
    policy = settings.BILLING_REFUND_POLICY
    planned = None
    with transaction.atomic():
        reversal = _locked_reversal(
            Reversal.Kind.DISPUTE, dispute_id, purchase, payment_intent, paid
        )
        reversal.stripe_amount = max(reversal.stripe_amount, disputed)
        if closed or not reversal.outcome:
            reversal.stripe_status = status
        if closed and not reversal.outcome:
            if status in DISPUTE_RETURNED:
                reversal.outcome = Reversal.Outcome.WON
            elif status in DISPUTE_LOST:
                reversal.outcome = Reversal.Outcome.LOST
        steps = {s.action: s for s in reversal.steps.all()}
        clawback = steps.get(ReversalStep.Action.CLAWBACK)
        if reversal.outcome == Reversal.Outcome.WON:
            planned = _plan_reinstate(reversal, clawback, steps.get(ReversalStep.Action.GRANT))
        elif clawback is None:
            target = share(purchase.credits, disputed, paid)
            if target:
                planned = ReversalStep.objects.create(
                    reversal=reversal,
                    key=f"dispute:{dispute_id}:clawback",
                    action=ReversalStep.Action.CLAWBACK,
                    credits=target,
                    status=Step.PLANNED if policy == "clawback_unspent" else Step.REVIEW,
                )
                reversal.credits_target = target
        reversal.save()
        if closed:
            outcome = reversal.get_outcome_display() if reversal.outcome else status
            detail = f"Dispute {dispute_id} of {purchase.label} closed: {outcome}. "
        else:
            detail = (
                f"Dispute {dispute_id} of {purchase.label} opened for {disputed} "
                f"{purchase.currency} ({status}). "
            )
        step = planned or clawback
        open_review(
            Reason.DISPUTE_CLOSED if closed else Reason.DISPUTE,
            detail + _plan_text(planned, policy, purchase.credits) + f" Event {event_id}.",
            checkout=purchase.checkout,
            stripe_object_id=dispute_id,
            user_id=purchase.user_id,
            step=step,
            credits=step.credits if step and step.credits else 0,
        )
    run_steps(reversal)
    return "planned" if planned else "recorded"


def run_steps(reversal: Reversal) -> None:
    """Run the reversal's planned steps in order, outside any transaction."""
    for step in reversal.steps.filter(status=Step.PLANNED).order_by("pk"):
        execute_step(step)


def release_step(step: ReversalStep) -> ReversalStep:
    """Run a step that waited for an admin (``review_only``); raise when it cannot run."""
    ReversalStep.objects.filter(pk=step.pk, status=Step.REVIEW).update(status=Step.PLANNED)
    step.refresh_from_db()
    if step.status == Step.CANCELED:
        raise BillingError("The dispute was won meanwhile: there is nothing to claw back.")
    if step.status == Step.PLANNED:
        execute_step(step)
        step.refresh_from_db()
    if step.status == Step.FAILED:
        raise BillingError(f"The ledger refused {step.key}.")
    return step


def execute_step(step: ReversalStep) -> ReversalStep:
    """Make the step's one ledger call (keyed, so safe to repeat) and record its result."""
    reversal = step.reversal
    if step.action == ReversalStep.Action.CLAWBACK:
        result = ledger.clawback(
            reversal.user_id,
            step.credits,
            key=step.key,
            source=REFUND_SOURCE if reversal.kind == Reversal.Kind.REFUND else DISPUTE_SOURCE,
            memo=f"{reversal}: take back {step.credits} credits",
        )
        _finish(step, result.status, taken=result.taken, shortfall=result.shortfall)
        if result.shortfall and result.status != "conflict":
            ops_alert(
                "Billing: clawback shortfall",
                f"{reversal} for user {reversal.user_id}: {result.shortfall} of {step.credits} "
                "credits were already spent or held and could not be taken back.",
                step=step.key,
            )
        return step
    credits = _reinstate_amount(step)
    if credits == 0:
        _finish(step, "nothing_taken", taken=0, shortfall=0)
        return step
    result = grants.grant(
        reversal.user_id,
        credits,
        key=step.key,
        source=DISPUTE_SOURCE,
        memo=f"{reversal} won: return the {credits} credits taken",
    )
    # A conflict is recorded as a failed step with an ops alert (``_finish``).
    _finish(step, result.status, taken=0, shortfall=0)
    return step


def _plan_reinstate(
    reversal: Reversal, clawback: ReversalStep | None, reinstate: ReversalStep | None
) -> ReversalStep | None:
    """Under the reversal's lock: cancel a clawback nobody ran, or plan giving it back once."""
    if clawback is None or reinstate is not None:
        return None
    cancelled = ReversalStep.objects.filter(pk=clawback.pk, status=Step.REVIEW).update(
        status=Step.CANCELED
    )
    clawback.refresh_from_db()
    if cancelled or clawback.status not in (Step.PLANNED, Step.DONE):
        return None
    return ReversalStep.objects.create(
        reversal=reversal,
        key=f"dispute:{reversal.stripe_id}:reinstate",
        action=ReversalStep.Action.GRANT,
        credits=None,
        status=Step.PLANNED,
    )


def _reinstate_amount(step: ReversalStep) -> int:
    """Return what the dispute's clawback took, running it first if it is still planned."""
    if step.credits is not None:
        return step.credits
    clawback = step.reversal.steps.get(action=ReversalStep.Action.CLAWBACK)
    if clawback.status == Step.PLANNED:
        execute_step(clawback)
        clawback.refresh_from_db()
    if clawback.status != Step.DONE:
        raise BillingError(f"{step.key} waits for {clawback.key} ({clawback.status}).")
    # Fixed once, so every later run grants the same amount under the same key.
    ReversalStep.objects.filter(pk=step.pk, credits=None).update(credits=clawback.taken)
    step.refresh_from_db(fields=["credits"])
    return step.credits


def _finish(step: ReversalStep, ledger_status: str, *, taken: int, shortfall: int) -> None:
    status = Step.FAILED if ledger_status == "conflict" else Step.DONE
    updated = ReversalStep.objects.filter(pk=step.pk, status=Step.PLANNED).update(
        status=status,
        ledger_status=ledger_status,
        taken=taken,
        shortfall=shortfall,
        executed_at=timezone.now(),
    )
    step.refresh_from_db()
    if not updated:
        return
    if step.action == ReversalStep.Action.CLAWBACK:
        ReviewItem.objects.filter(step=step).update(taken=taken, shortfall=shortfall)
    if status == Step.FAILED:
        ops_alert(
            "Billing: ledger refused a reversal step",
            f"{step.key} ({step.credits} credits) was refused: {ledger_status}.",
            step=step.key,
        )


def _locked_reversal(
    kind: str, stripe_id: str, purchase: Purchase, payment_intent: str, paid: int
) -> Reversal:
    """Return the reversal row locked FOR UPDATE, creating it first when it is new."""
    defaults = {
        "user_id": purchase.user_id,
        "checkout_session": purchase.checkout,
        "invoice": purchase.invoice,
        "stripe_payment_intent_id": payment_intent,
        "credits_granted": purchase.credits,
        "amount_paid": paid,
        "currency": purchase.currency,
    }
    if not Reversal.objects.filter(kind=kind, stripe_id=stripe_id).exists():
        try:
            with transaction.atomic():
                Reversal.objects.create(kind=kind, stripe_id=stripe_id, **defaults)
        except IntegrityError:
            pass  # A concurrent delivery created it; the lock below orders the two.
    return Reversal.objects.select_for_update().get(kind=kind, stripe_id=stripe_id)


def _plan_text(step: ReversalStep | None, policy: str, credits: int) -> str:
    if credits == 0:
        return "The purchase granted no credits, so there is nothing to take back."
    if step is None:
        return "No further credits to take back."
    if step.action == ReversalStep.Action.GRANT:
        return "The credits taken for it are granted back."
    if step.status == Step.REVIEW:
        return f"Policy review_only: {step.credits} credits may be clawed back from this review."
    return f"Policy {policy}: {step.credits} credits are clawed back (never below zero)."


def _unknown_payment(kind: str, object_id: str, payment_intent: str, amount: int, currency):
    open_review(
        Reason.UNKNOWN_PAYMENT,
        f"A {kind} ({object_id}) of {amount} {currency} for payment intent "
        f"{payment_intent or '(none)'} matches no purchase or invoice of ours.",
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
