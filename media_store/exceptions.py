"""Errors raised by media storage and ingest."""


class MediaError(Exception):
    """Base class for every media_store error."""


class AssetNotFound(MediaError):
    """The asset does not exist (or has no thumbnail)."""


class IngestRefused(MediaError):
    """A download that must not be retried: the source broke a rule or is gone for good.

    ``reason`` is a short stable code (``too_large``, ``unsupported_type``, ``host_not_allowed``,
    ``private_address``, ``output_gone``, ...) callers may store; ``detail`` is for humans.
    """

    def __init__(self, reason: str, detail: str = "") -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}" if detail else reason)


class IngestTemporaryError(MediaError):
    """A download that may succeed later: a timeout, a 5xx or a connection error."""
