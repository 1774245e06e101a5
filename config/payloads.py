"""Strict JSON for signed third-party payloads, checked before anything is stored.

A sender's signature proves who sent the bytes, not that they are JSON we can keep. PostgreSQL's
jsonb refuses U+0000, lone surrogates and NaN/Infinity, and deep nesting exhausts the parser's
stack, so each of those would fail later as a server error that the sender retries forever.
``loads`` refuses them up front as ``MalformedPayload`` (a ``ValueError``), answered 400.
"""

from __future__ import annotations

import json
import math
from typing import Any

MAX_DEPTH = 64
_BOM = b"\xef\xbb\xbf"


class MalformedPayload(ValueError):
    """The body is not JSON we accept; the message says why (safe to log, not to show)."""


def loads(body: bytes) -> Any:
    """Parse ``body`` as strict UTF-8 JSON; raise ``MalformedPayload`` for anything else.

    Refused: a byte-order mark or invalid UTF-8, NaN/Infinity (or a number that overflows to
    it), nesting deeper than
    ``MAX_DEPTH``, and strings (keys included) holding U+0000 or a lone surrogate.
    """
    if body.startswith(_BOM):
        raise MalformedPayload("a byte-order mark before the JSON")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise MalformedPayload(f"not UTF-8: {error.reason}") from None
    try:
        value = json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
    except RecursionError:
        raise MalformedPayload("nested too deeply") from None
    except MalformedPayload:
        raise
    except ValueError as error:
        raise MalformedPayload(f"not JSON: {error}") from None
    _check(value)
    return value


def _refuse_constant(name: str) -> None:
    raise MalformedPayload(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise MalformedPayload(f"{text[:20]} overflows a float")
    return value


def _check(value: object) -> None:
    # Iterative, so a value nested deeper than the interpreter's stack cannot crash the check.
    pending: list[tuple[object, int]] = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, str):
            _check_text(item)
        elif isinstance(item, dict | list | tuple):
            if depth > MAX_DEPTH:
                raise MalformedPayload(f"nested deeper than {MAX_DEPTH} levels")
            if isinstance(item, dict):
                for key, inner in item.items():
                    _check_text(key)
                    pending.append((inner, depth + 1))
            else:
                pending.extend((inner, depth + 1) for inner in item)


def _check_text(text: str) -> None:
    if "\x00" in text:
        raise MalformedPayload("a string holds U+0000")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise MalformedPayload("a string holds a lone surrogate") from None
