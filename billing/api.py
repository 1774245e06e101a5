"""Billing's public face for other apps: what is on sale and whether buying works."""

from django.db.models import QuerySet

from billing.gateways import payments_configured
from billing.models import CreditPack
from billing.selectors import packs_for_sale

__all__ = ["CreditPack", "active_packs", "payments_configured"]


def active_packs() -> QuerySet[CreditPack]:
    """Return the packs on sale, in display order (post a pack's ``pk`` to ``billing:buy``)."""
    return packs_for_sale()
