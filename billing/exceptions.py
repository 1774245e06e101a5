class BillingError(Exception):
    """A purchase could not start; the message is safe to show the buyer."""


class PaymentsNotConfigured(BillingError):
    """Neither Stripe keys nor the Checkout stand-in are configured."""


class GatewayError(BillingError):
    """Stripe (or the stand-in) refused or could not be reached."""


class SessionNotFound(GatewayError):
    """Stripe has no Checkout Session with that id in this mode."""


class PriceMismatch(BillingError):
    """The pack's Stripe Price is missing, inactive or differs from the pack."""
