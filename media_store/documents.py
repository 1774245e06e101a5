"""Private files that are not generation outputs (a user's data export), under ``documents/``.

They live in the same bucket as assets but outside ingest's key layout, so the orphan sweep
never touches them; whoever stores one keeps its key and deletes it when it expires.
"""

from __future__ import annotations

import re
import uuid
from typing import BinaryIO

from media_store.backends import get_backend
from media_store.services import MAX_SIGNED_URL_SECONDS

PREFIX = "documents/"
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


def store(owner_id: uuid.UUID, name: str, body: BinaryIO, *, size: int, content_type: str) -> str:
    """Upload ``body`` as a private document of the owner and return its key."""
    key = f"{PREFIX}{owner_id}/{uuid.uuid4()}-{_SAFE_NAME.sub('-', name)[:80]}"
    get_backend().put(key, body, content_type=content_type, size=size)
    return key


def signed_url(key: str, *, content_type: str, seconds: int = MAX_SIGNED_URL_SECONDS) -> str:
    """Return a URL to the document that stops working after ``seconds`` (at most 5 minutes)."""
    _check(key)
    if not 1 <= seconds <= MAX_SIGNED_URL_SECONDS:
        raise ValueError(f"seconds must be between 1 and {MAX_SIGNED_URL_SECONDS}, not {seconds}")
    return get_backend().signed_url(key, seconds=seconds, content_type=content_type)


def delete(key: str) -> None:
    """Delete the document; deleting a missing one does nothing."""
    _check(key)
    get_backend().delete(key)


def _check(key: str) -> None:
    if not key.startswith(PREFIX):
        raise ValueError(f"not a document key: {key!r}")
