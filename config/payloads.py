"""Checks on signed third-party payloads before they are stored."""

from __future__ import annotations


def holds_nul(value: object) -> bool:
    """Return whether any string in a parsed JSON value (keys included) holds U+0000.

    PostgreSQL text and jsonb cannot store U+0000 (JSON's ``\\u0000``): such a payload would fail
    on insert with a server error. No sender emits it on purpose, so webhooks refuse it as
    malformed before anything is written.
    """
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(holds_nul(key) or holds_nul(item) for key, item in value.items())
    if isinstance(value, list | tuple):
        return any(holds_nul(item) for item in value)
    return False
