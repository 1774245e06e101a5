"""One shape for every inbound webhook: capped raw body, signature first, strict JSON, one answer.

Both endpoints (Stripe's events, the providers' callbacks) run ``receive``:

1. the raw body, refused with 413 past ``WEBHOOK_MAX_BYTES`` (the declared length is checked
   before anything is read);
2. the sender's signature over exactly those bytes; only a failed signature counts toward the
   sender's rate limit (``config.ratelimit.limit_failed_signature``), so a genuine sender is never
   throttled by junk from elsewhere;
3. strict JSON (``config.payloads.loads``): malformed but signed bodies get 400, never 500;
4. the endpoint's handler, which stores the delivery once by the sender's id (a repeat is
   ``duplicate``) and returns an ``Answer``;
5. a JSON response ``{"status": <word>, ...}`` with the answer's HTTP status.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.http import HttpRequest, JsonResponse

from config import ratelimit
from config.payloads import MalformedPayload, loads

logger = logging.getLogger(__name__)


class BadSignature(Exception):
    """The delivery is not signed by the sender it claims (missing, wrong, or out of time)."""


@dataclass(frozen=True)
class Answer:
    """The HTTP status for the sender, a short word for logs and the body, and extra fields."""

    status: int
    word: str
    fields: dict[str, Any] = field(default_factory=dict)


def receive(
    request: HttpRequest,
    *,
    scope: str,
    verify: Callable[[bytes], None],
    handle: Callable[[Any, bytes], Answer],
    bad_signature_status: int = 400,
) -> JsonResponse:
    """Run one delivery through the shared steps; ``verify`` raises ``BadSignature``.

    ``handle(payload, body)`` receives the parsed JSON and the raw bytes it was parsed from.
    """
    body = read_body(request)
    if body is None:
        return respond(Answer(413, "too_large"))
    try:
        verify(body)
    except BadSignature as error:
        logger.warning("rejected %s webhook: %s", scope, error)
        limited = ratelimit.limit_failed_signature(request, scope)
        return limited or respond(Answer(bad_signature_status, "bad_signature"))
    try:
        payload = loads(body)
    except MalformedPayload as error:
        logger.warning("malformed %s webhook: %s", scope, error)
        return respond(Answer(400, "malformed"))
    return respond(handle(payload, body))


def read_body(request: HttpRequest) -> bytes | None:
    """Return the raw body, or None when it is larger than ``WEBHOOK_MAX_BYTES``."""
    limit = settings.WEBHOOK_MAX_BYTES
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > limit:
        return None
    body = request.read(limit + 1)
    return None if len(body) > limit else body


def respond(answer: Answer) -> JsonResponse:
    """Return the answer as ``{"status": <word>, **fields}``."""
    return JsonResponse({"status": answer.word, **answer.fields}, status=answer.status)
