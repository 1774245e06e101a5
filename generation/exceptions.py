"""Errors of the generation app; each carries a message safe to show the user."""


class GenerationError(Exception):
    """Base class; ``str(error)`` is written for end users."""


class InvalidRequest(GenerationError):
    """The submitted model or parameters are not in the catalogue."""


class PriceChanged(InvalidRequest):
    """The price the page showed is not the price of the submitted options now."""


class ProviderUnavailable(GenerationError):
    """The provider is not configured in this deployment."""


class NotCancelable(GenerationError):
    """The generation is past the point where it can be canceled."""
