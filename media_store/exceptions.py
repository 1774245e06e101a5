"""Errors raised by media storage and ingest."""


class MediaError(Exception):
    """Base class for every media_store error."""


class AssetNotFound(MediaError):
    """The asset does not exist (or has no thumbnail)."""


# What a customer is told about a refused output, by reason; the detail is for operators only.
CUSTOMER_MESSAGES = {
    "unsupported_type": "The provider sent a file that is not an image or video we can show.",
    "corrupt": "The provider sent a damaged file that cannot be played or shown.",
    "too_large": "The provider sent a file larger than we can store.",
    "output_gone": "The output expired at the provider before it could be saved.",
}
DEFAULT_CUSTOMER_MESSAGE = "The provider's output could not be saved."


class IngestRefused(MediaError):
    """A download that must not be retried: the source broke a rule or is gone for good.

    ``reason`` is a short stable code (``too_large``, ``unsupported_type``, ``corrupt``,
    ``host_not_allowed``, ``private_address``, ``output_gone``, ...) callers may store; ``detail``
    is for operators; ``customer_message`` is the sentence a customer may read.
    """

    def __init__(self, reason: str, detail: str = "") -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}" if detail else reason)

    @property
    def customer_message(self) -> str:
        return CUSTOMER_MESSAGES.get(self.reason, DEFAULT_CUSTOMER_MESSAGE)


class IngestTemporaryError(MediaError):
    """A download that may succeed later: a timeout, a 5xx or a connection error."""
