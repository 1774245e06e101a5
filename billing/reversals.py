"""Refunds and disputes: one reversal account per payment, credits following the money lost.

Every refund and dispute names a payment intent, and each lands on that payment's
``PaymentReversal`` under a row lock, whatever charge of the payment it concerns and in whatever
order Stripe delivers it. Under the lock the subject's Stripe state is updated (a charge's
cumulative ``amount_refunded`` only grows; a dispute's outcome is final once closed), the money
lost is recounted and at most one ledger step is planned (``billing.reversal_steps``) towards

    target = floor(credits_granted * min(paid, refunded + disputed) / paid)

where ``disputed`` counts disputes open or lost; won, ``warning_closed`` and ``prevented`` count
nothing. So a dispute of money already refunded takes nothing new, a closed dispute returns
only what the refunds do not cover, and nothing ever exceeds what the payment granted. Before
the grant lands ``credits_granted`` is 0 and nothing is planned; ``purchase_granted`` applies
what was recorded the moment it lands.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from billing.exceptions import BillingError
from billing.gateways import get_gateway
from billing.models import PaymentReversal, Reversal, ReviewItem
from billing.purchases import Purchase, find_purchase
from billing.reversal_steps import plan_next, plan_text, settle
from billing.review_queue import open_review

logger = logging.getLogger(__name__)
Reason = ReviewItem.Reason
# Closed with the money back with us: the dispute no longer counts as money lost. Stripe's
# ``prevented`` disputes are settled by a refund, which counts on its own.
DISPUTE_RETURNED = frozenset({"won", "warning_closed", "prevented"})
DISPUTE_LOST = frozenset({"lost"})


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


def _apply(
    kind: str,
    stripe_id: str,
    data: dict,
    update: Callable[[Reversal, Purchase], str],
    reason: str,
    event_id: str,
) -> str:
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
        step = plan_next(payment, reason=reason, cause=f"{news}, event {event_id}.")
        if news and step is None and not unknown:
            open_review(
                reason,
                f"{news} (event {event_id}). " + plan_text(payment, None),
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
        plan_next(
            payment,
            reason=Reason.REFUND if payment.refunded else Reason.DISPUTE,
            cause=f"{purchase.label} was granted after it was refunded or disputed.",
        )
        payment.save()
    settle(payment.pk)


def reconcile_reversals(*, lookback: timedelta) -> dict[str, int]:
    """Run recent refunds and disputes we have not seen through the webhook's path.

    A charge whose ``amount_refunded`` we already hold, or a dispute in the state we hold (or
    already closed), is ``known``; anything else is applied as its event would have been.
    Return counts per outcome.
    """
    gateway = get_gateway()
    since = timezone.now() - lookback
    counts: dict[str, int] = {}
    for charge in gateway.list_refunded_charges(created_since=since):
        known = Reversal.objects.filter(
            kind=Reversal.Kind.REFUND,
            stripe_id=charge.get("id"),
            stripe_amount__gte=_amount(charge.get("amount_refunded")),
        ).exists()
        outcome = "known" if known else record_refund(charge, event_id="reconcile")
        counts[outcome] = counts.get(outcome, 0) + 1
    for dispute in gateway.list_disputes(created_since=since):
        subject = Reversal.objects.filter(
            kind=Reversal.Kind.DISPUTE, stripe_id=dispute.get("id")
        ).first()
        known = subject is not None and (
            bool(subject.outcome) or subject.stripe_status == dispute.get("status")
        )
        outcome = "known" if known else record_dispute(dispute, event_id="reconcile")
        counts[outcome] = counts.get(outcome, 0) + 1
    if counts.get("planned"):
        logger.warning(
            "reconciliation applied %s missed refund(s) or dispute(s)", counts["planned"]
        )
    return counts


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
