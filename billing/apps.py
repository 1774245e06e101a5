from django.apps import AppConfig


class BillingConfig(AppConfig):
    """Credit packs, Stripe Checkout, webhooks and the review queue."""

    name = "billing"
    verbose_name = "Billing"

    def ready(self) -> None:
        from billing import checks, signals  # noqa: F401 - registers checks and receivers
