"""Readiness of each part the app depends on, for ``/healthz`` and deploy scripts.

Only the database decides readiness: without it nothing works, while a Redis or storage outage
costs rate limits, queue latency or media and is better survived than drained. Those outages
are logged with their error and alerted (throttled); the public answer names parts, never
errors, hosts or roles.
"""

import logging
import time
from collections.abc import Callable

from django.conf import settings
from django.db import connection

from config.ops import clear_throttle, ops_alert_throttled

logger = logging.getLogger(__name__)

# Parts whose failure makes the instance unready (the load balancer drains it).
REQUIRED = frozenset({"database"})


def check_database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


def check_redis() -> None:
    import redis

    client = redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=1, socket_timeout=1)
    try:
        client.ping()
    finally:
        client.close()


def check_storage() -> None:
    from media_store.api import check_storage as check

    check()


CHECKS: dict[str, Callable[[], None]] = {
    "database": check_database,
    "redis": check_redis,
    "storage": check_storage,
}


def run_checks() -> dict[str, dict]:
    """Run every check; each part reports ``ok`` and, when ok, its latency in seconds.

    A failure is logged with its error and, for a part the instance can run without, sent to
    ``ops_alert`` at most once per outage window per process.
    """
    results = {}
    for name, check in CHECKS.items():
        started = time.monotonic()
        try:
            check()
        except Exception as error:
            results[name] = {"ok": False}
            logger.warning("health check %s failed: %s: %s", name, type(error).__name__, error)
            if name not in REQUIRED:
                ops_alert_throttled(
                    f"health:{name}",
                    f"{name} unreachable",
                    f"The {name} health check failed ({type(error).__name__}); the app keeps "
                    "serving without it.",
                )
        else:
            results[name] = {"ok": True, "seconds": round(time.monotonic() - started, 4)}
            clear_throttle(f"health:{name}")
    return results


def ready(results: dict[str, dict]) -> bool:
    """Return whether every part the instance cannot run without answered."""
    return all(results[name]["ok"] for name in REQUIRED if name in results)
