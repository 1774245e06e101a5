"""Which purchase a payment intent paid: a pack's Checkout Session or a subscription invoice.

Refunds and disputes name only the payment intent. A pack purchase stores its intent when it is
fulfilled; an invoice's intent is learned from Stripe the first time one of its refunds or
disputes arrives, since invoice events do not name it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from billing.gateways import get_gateway, payments_configured
from billing.models import CheckoutSession, PaymentReversal, SubscriptionInvoice


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
