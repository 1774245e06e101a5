"""The seam between billing and Stripe: the real StripeClient, or the local stand-in.

Services ask ``get_gateway()`` for customers, prices, Checkout Sessions and invoices and get
plain dicts shaped like Stripe's objects (a retrieved session carries ``line_items`` expanded),
so fulfilment runs the same code whichever answers. ``base`` holds the protocol, ``stripe`` and
``standin`` the two adapters, as ``generation.providers`` holds the provider adapters.
"""

from __future__ import annotations

from django.conf import settings

from billing.exceptions import PaymentsNotConfigured
from billing.gateways.base import PAID_STATUSES, Gateway, Price
from billing.gateways.standin import StandinGateway
from billing.gateways.stripe import StripeGateway, stripe_client
from billing.models import StripeMode

__all__ = [
    "PAID_STATUSES",
    "Gateway",
    "Price",
    "current_mode",
    "get_gateway",
    "payments_configured",
]


def payments_configured() -> bool:
    """Return whether buying can work: Stripe keys are set or the stand-in is on."""
    if settings.BILLING_STANDIN_ENABLED:
        return bool(settings.STRIPE_WEBHOOK_SECRET)
    return bool(settings.STRIPE_SECRET_KEY and settings.STRIPE_WEBHOOK_SECRET)


def current_mode() -> StripeMode:
    """Return the mode new purchases are made in."""
    if settings.BILLING_STANDIN_ENABLED:
        return StripeMode.STANDIN
    return StripeMode.LIVE if settings.STRIPE_LIVEMODE else StripeMode.TEST


def get_gateway() -> Gateway:
    """Return the stand-in when its switch is on, else Stripe; raise when neither is set up."""
    if not payments_configured():
        raise PaymentsNotConfigured(
            "Payments are not configured: set STRIPE_SECRET_KEY and STRIPE_WEBHOOK_SECRET."
        )
    if settings.BILLING_STANDIN_ENABLED:
        return StandinGateway()
    return StripeGateway(stripe_client(), mode=current_mode())
