"""A fixed-window rate limiter on the Redis-backed cache, shared by every limited endpoint.

One counter per (scope, identity, window) lives in the cache with a TTL a little longer than the
window. Counting fails open: when Redis is unreachable or was just wiped, the request goes
through and a warning is logged, because a broker outage must not turn into refused payments
or lost webhooks (the ledger keys and signatures are the real guards; the limit only sheds load).
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest, JsonResponse

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Verdict:
    """Whether the request may proceed, and how long until the window resets."""

    allowed: bool
    count: int
    limit: int
    retry_after: int


def hit(scope: str, identity: object, *, limit: int, window: int) -> Verdict:
    """Count one request for ``identity`` in ``scope``; refuse past ``limit`` per ``window`` s.

    A ``limit`` of 0 or less turns the limiter off for that scope.
    """
    now = time.time()
    retry_after = max(1, window - int(now) % window)
    if limit <= 0:
        return Verdict(True, 0, limit, retry_after)
    digest = hashlib.sha256(str(identity).encode()).hexdigest()[:32]
    key = f"rl:{scope}:{digest}:{int(now // window)}"
    try:
        cache.add(key, 0, timeout=window + 5)
        try:
            count = cache.incr(key)
        except ValueError:
            # The key vanished between add and incr (expiry or a FLUSHALL): start again.
            cache.add(key, 0, timeout=window + 5)
            count = cache.incr(key)
    except Exception as error:  # any cache failure fails open, logged
        logger.warning("rate limiter unavailable for %s, allowing: %s", scope, type(error).__name__)
        return Verdict(True, 0, limit, retry_after)
    return Verdict(count <= limit, count, limit, retry_after)


def client_ip(request: HttpRequest) -> str:
    """Return the address the request came from (the proxy sets REMOTE_ADDR via gunicorn)."""
    return request.META.get("REMOTE_ADDR", "") or "unknown"


def limit_webhook(request: HttpRequest, scope: str) -> JsonResponse | None:
    """Return a 429 for a sender past the webhook limit (senders retry), else None."""
    verdict = hit(
        f"webhook:{scope}",
        client_ip(request),
        limit=settings.WEBHOOK_RATE_LIMIT_COUNT,
        window=settings.WEBHOOK_RATE_LIMIT_WINDOW_SECONDS,
    )
    if verdict.allowed:
        return None
    response = JsonResponse({"status": "rate_limited"}, status=429)
    response["Retry-After"] = str(verdict.retry_after)
    return response
