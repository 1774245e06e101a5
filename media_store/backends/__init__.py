"""Storage backends behind one small interface, chosen by ``settings.MEDIA_BACKEND``."""

from collections.abc import Iterator
from datetime import datetime
from typing import BinaryIO, Protocol

from django.conf import settings


class Backend(Protocol):
    """What media_store needs from a place that keeps private objects."""

    def put(self, key: str, body: BinaryIO, *, content_type: str, size: int) -> None: ...

    def delete(self, key: str) -> None: ...

    def open(self, key: str) -> BinaryIO: ...

    def keys(self, *, prefix: str, modified_before: datetime) -> Iterator[str]: ...

    def signed_url(self, key: str, *, seconds: int, content_type: str) -> str: ...

    def check(self) -> None: ...

    def warm_up(self) -> None: ...

    def ensure_bucket(self) -> bool: ...


def get_backend() -> Backend:
    """Return the configured backend (built per call; its clients are cached per settings)."""
    if settings.MEDIA_BACKEND == "filesystem":
        from media_store.backends.filesystem import FilesystemBackend

        return FilesystemBackend(settings.MEDIA_ROOT)
    from media_store.backends.s3 import S3Backend

    return S3Backend.from_settings()
