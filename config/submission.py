"""One-time submission keys: a form carries one, the row it creates stores it unique per user.

A second POST of the same form (a double click, Back and submit) finds that row and answers
with the first result instead of charging again.
"""

from __future__ import annotations

import re
import secrets

KEY = re.compile(r"[A-Za-z0-9_-]{16,64}")


def new_key() -> str:
    """Return a fresh key for one rendering of a form."""
    return secrets.token_urlsafe(24)


def clean_key(value: object) -> str | None:
    """Return a well-formed key, None when absent; raise ``ValueError`` when malformed."""
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not KEY.fullmatch(value):
        raise ValueError("malformed submission key")
    return value
