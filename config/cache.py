"""Django's Redis cache, failing open: a Redis outage costs rate limits, never a page.

Everything the app keeps in the cache is disposable (rate-limit counters, allauth's limiter
history and its short locks, the success page's sync throttle), so when Redis cannot be
reached each operation answers as an empty cache would and the request goes on. The first
failure is logged and sent to ``ops_alert`` (once per outage per process); for a few seconds
after it Redis is not tried at all, so a dead or unreachable server costs a request nothing.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from django.core.cache.backends.base import DEFAULT_TIMEOUT
from django.core.cache.backends.redis import RedisCache
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from config.ops import clear_throttle, ops_alert_throttled

logger = logging.getLogger(__name__)

UNREACHABLE = (RedisConnectionError, RedisTimeoutError, OSError)
# After a failure, skip Redis for this long before trying again.
RETRY_AFTER_SECONDS = 5.0
ALERT_KEY = "cache-unreachable"

T = TypeVar("T")


class _Outage:
    """Per-process state of the current outage, shared by every cache alias."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.down_since: float | None = None
        self.retry_at = 0.0

    def skipping(self) -> bool:
        return self.down_since is not None and time.monotonic() < self.retry_at

    def failed(self, operation: str, error: BaseException) -> None:
        now = time.monotonic()
        with self.lock:
            first = self.down_since is None
            if first:
                self.down_since = now
            self.retry_at = now + RETRY_AFTER_SECONDS
        if first:
            logger.warning(
                "cache unreachable, failing open (rate limits off): %s in %s",
                type(error).__name__,
                operation,
            )
            ops_alert_throttled(
                ALERT_KEY,
                "Cache unreachable",
                "Redis did not answer; rate limits are off until it is back.",
                error=type(error).__name__,
            )

    def answered(self) -> None:
        if self.down_since is None:
            return
        with self.lock:
            since, self.down_since = self.down_since, None
        if since is not None:
            logger.warning("cache reachable again after %.0f s", time.monotonic() - since)
            clear_throttle(ALERT_KEY)


outage = _Outage()


class FailOpenRedisCache(RedisCache):
    """``RedisCache`` whose every operation answers like an empty cache while Redis is down.

    ``add`` answers True so a lock taken through the cache (allauth's limiter) is granted;
    ``incr`` answers ``delta`` so a counter reads as the first hit of its window.
    """

    def _call(self, operation: str, fallback: T, run: Callable[..., T], *args: Any) -> T:
        if outage.skipping():
            return fallback
        try:
            result = run(*args)
        except UNREACHABLE as error:
            outage.failed(operation, error)
            return fallback
        outage.answered()
        return result

    def add(self, key, value, timeout=DEFAULT_TIMEOUT, version=None) -> bool:
        return self._call("add", True, super().add, key, value, timeout, version)

    def get(self, key, default=None, version=None) -> Any:
        return self._call("get", default, super().get, key, default, version)

    def set(self, key, value, timeout=DEFAULT_TIMEOUT, version=None) -> None:
        self._call("set", None, super().set, key, value, timeout, version)

    def touch(self, key, timeout=DEFAULT_TIMEOUT, version=None) -> bool:
        return self._call("touch", False, super().touch, key, timeout, version)

    def delete(self, key, version=None) -> bool:
        return self._call("delete", False, super().delete, key, version)

    def get_many(self, keys, version=None) -> dict:
        return self._call("get_many", {}, super().get_many, keys, version)

    def has_key(self, key, version=None) -> bool:
        return self._call("has_key", False, super().has_key, key, version)

    def incr(self, key, delta=1, version=None) -> int:
        return self._call("incr", delta, super().incr, key, delta, version)

    def set_many(self, data, timeout=DEFAULT_TIMEOUT, version=None) -> list:
        return self._call("set_many", [], super().set_many, data, timeout, version)

    def delete_many(self, keys, version=None) -> None:
        self._call("delete_many", None, super().delete_many, keys, version)

    def clear(self) -> bool:
        return self._call("clear", False, super().clear)
