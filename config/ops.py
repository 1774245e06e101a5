"""One way to tell operators something needs a human (DESIGN section 8)."""

import logging

from django.conf import settings
from django.core.mail import mail_admins

logger = logging.getLogger("ops")


def ops_alert(subject: str, detail: str, **context: object) -> None:
    """Log at ERROR, mail ADMINS and, when configured, report to Sentry.

    Used for ledger check violations, review-queue items, exhausted retries and unpaid
    generations. Never raises: an alert that fails to send must not break the caller's work.
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
