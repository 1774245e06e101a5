"""One way to tell operators something needs a human (docs/design.md §9)."""

import logging
import threading
import time

from django.conf import settings
from django.core.mail import mail_admins

logger = logging.getLogger("ops")

# A dependency that stays down re-alerts this often per process, not on every request.
REPEAT_SECONDS = 15 * 60
_last_alerted: dict[str, float] = {}
_last_alerted_lock = threading.Lock()


def ops_alert(subject: str, detail: str, **context: object) -> None:
    """Log at ERROR, mail ADMINS once and, when configured, send one Sentry event.

    Used for ledger check violations, review-queue items, exhausted retries and unpaid
    generations. Never raises: an alert that fails to send must not break the caller's work.
    The ``ops`` logger has no mail handler and Sentry ignores it (config/settings/base.py), so the
    record below is only the log line; the mail and the event are sent here, once each.
    """
    logger.error("%s: %s", subject, detail, extra={"alert": subject, **context})
    if settings.ADMINS:
        try:
            mail_admins(subject, f"{detail}\n\n{context!r}" if context else detail)
        except Exception:
            logger.exception("could not mail the ops alert", extra={"alert": subject})
    if settings.SENTRY_DSN:
        import sentry_sdk

        sentry_sdk.capture_message(f"{subject}: {detail}", level="error")


def ops_alert_throttled(key: str, subject: str, detail: str, **context: object) -> bool:
    """Send ``ops_alert`` unless ``key`` alerted in this process within REPEAT_SECONDS.

    For outages seen on every request (Redis, storage): the first failure alerts, the rest
    only log. Return whether the alert went out.
    """
    now = time.monotonic()
    with _last_alerted_lock:
        last = _last_alerted.get(key)
        if last is not None and now - last < REPEAT_SECONDS:
            return False
        _last_alerted[key] = now
    ops_alert(subject, detail, **context)
    return True


def clear_throttle(key: str) -> None:
    """Forget ``key``'s last alert, so the next outage of that part alerts at once."""
    with _last_alerted_lock:
        _last_alerted.pop(key, None)
