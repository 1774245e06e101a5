"""Billing's public face for other apps: what is on sale and whether buying works."""

from django.db.models import QuerySet

from billing.events import payment_received
from billing.exceptions import BillingError
from billing.gateways import payments_configured
from billing.models import CreditPack
from billing.selectors import ledger_csv_rows, packs_for_sale
from billing.subscriptions import cancel_for_user as cancel_subscriptions

__all__ = [
    "BillingError",
    "CreditPack",
    "active_packs",
    "cancel_subscriptions",
    "ledger_csv_rows",
    "payment_received",
    "payments_configured",
]


def active_packs() -> QuerySet[CreditPack]:
    """Return the packs on sale, in display order (post a pack's ``pk`` to ``billing:buy``)."""
    return packs_for_sale()
