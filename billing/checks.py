"""System checks for Stripe settings that would otherwise fail only when money moves."""

from django.conf import settings
from django.core import checks


@checks.register(checks.Tags.security)
def check_stripe_settings(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    """Refuse half-configured Stripe keys; warn when production runs on test keys."""
    key = settings.STRIPE_SECRET_KEY
    problems: list[checks.CheckMessage] = []
    if key and not key.startswith(("sk_", "rk_")):
        problems.append(
            checks.Error(
                "STRIPE_SECRET_KEY must be a secret (sk_) or restricted (rk_) key.",
                id="billing.E001",
            )
        )
    if key and not settings.STRIPE_WEBHOOK_SECRET:
        problems.append(
            checks.Error(
                "STRIPE_SECRET_KEY is set but STRIPE_WEBHOOK_SECRET is not: payments would be "
                "taken and never credited.",
                hint="Create the webhook endpoint (docs/stripe.md) and copy its signing secret.",
                id="billing.E002",
            )
        )
    if settings.PRODUCTION and key and not settings.STRIPE_LIVEMODE:
        problems.append(checks.Warning("Production is using a Stripe test key.", id="billing.W001"))
    return problems
