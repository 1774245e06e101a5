"""A fixed-window rate limiter on the cache, and the client address every limit counts by.

One counter per (scope, identity, window) lives in the cache with a TTL a little longer than the
window. The cache fails open (config/cache.py): when Redis is unreachable every request goes
through, because an outage must not turn into refused payments or lost webhooks (the ledger keys
and signatures are the real guards; the limit only sheds load).

Behind proxies, ``client_ip`` reads X-Forwarded-For only as far as the proxies the deployment
trusts (``TRUSTED_PROXY_CIDRS`` or ``TRUSTED_PROXY_COUNT``); allauth's limits use it too
(accounts/adapters.py).
"""

from __future__ import annotations

import hashlib
import ipaddress
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse, JsonResponse


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
    cache.add(key, 0, timeout=window + 5)
    try:
        count = cache.incr(key)
    except ValueError:
        # The key vanished between add and incr (expiry or a FLUSHALL): start again.
        cache.add(key, 0, timeout=window + 5)
        count = cache.incr(key)
    return Verdict(count <= limit, count, limit, retry_after)


def limit_per_user(
    scope: str,
    setting: str,
    *,
    refused: Callable[[HttpRequest, Verdict], HttpResponse],
    counts: Callable[[HttpRequest], bool] = lambda request: request.method == "POST",
) -> Callable:
    """Decorate a view (inside ``login_required``): the one layer where per-user limits apply.

    Each request that ``counts`` (by default a POST) is counted for the signed-in user in
    ``scope``, at most ``<setting>_COUNT`` per ``<setting>_WINDOW_SECONDS``; past that the view
    does not run and ``refused(request, verdict)`` answers instead, so nothing is stored.
    """

    def decorate(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @wraps(view)
        def limited(request: HttpRequest, *args: object, **kwargs: object) -> HttpResponse:
            if counts(request):
                verdict = hit(
                    scope,
                    request.user.pk,
                    limit=getattr(settings, f"{setting}_COUNT"),
                    window=getattr(settings, f"{setting}_WINDOW_SECONDS"),
                )
                if not verdict.allowed:
                    return refused(request, verdict)
            return view(request, *args, **kwargs)

        return limited

    return decorate


def _address(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(value.strip())
    except ValueError:
        return None


def client_ip(request: HttpRequest) -> str:
    """Return the client's address, reading X-Forwarded-For only through trusted proxies.

    With ``TRUSTED_PROXY_CIDRS`` the chain (X-Forwarded-For, then REMOTE_ADDR) is walked from
    the right past every address inside those networks; with ``TRUSTED_PROXY_COUNT`` = n the
    n-th entry from the right of X-Forwarded-For is taken (what the outermost trusted proxy
    saw). A header that is shorter than that or holds a non-address falls back to REMOTE_ADDR,
    which a client cannot forge.
    """
    remote = request.META.get("REMOTE_ADDR", "") or "unknown"
    forwarded = [hop.strip() for hop in request.headers.get("X-Forwarded-For", "").split(",")]
    forwarded = [hop for hop in forwarded if hop]
    networks = settings.TRUSTED_PROXY_NETWORKS
    if networks:
        chain = [*forwarded, remote]
        for hop in reversed(chain):
            address = _address(hop)
            if address is None:
                return remote
            if not any(address in network for network in networks):
                return str(address)
        return str(_address(chain[0]))
    count = settings.TRUSTED_PROXY_COUNT
    if count and len(forwarded) >= count:
        address = _address(forwarded[-count])
        if address is not None:
            return str(address)
    return remote


def limit_failed_signature(request: HttpRequest, scope: str) -> JsonResponse | None:
    """Count a delivery whose signature failed; return a 429 once its sender is past the limit.

    Called only after verification failed, so a genuine sender is never slowed by junk from
    elsewhere: signed deliveries are not counted at all.
    """
    verdict = hit(
        f"webhook-bad-signature:{scope}",
        client_ip(request),
        limit=settings.WEBHOOK_RATE_LIMIT_COUNT,
        window=settings.WEBHOOK_RATE_LIMIT_WINDOW_SECONDS,
    )
    if verdict.allowed:
        return None
    response = JsonResponse({"status": "rate_limited"}, status=429)
    response["Retry-After"] = str(verdict.retry_after)
    return response
