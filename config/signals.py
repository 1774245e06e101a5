"""Sending an app's signals so that a listener's failure never undoes the sender's work."""

from __future__ import annotations

import logging

from django.dispatch import Signal

logger = logging.getLogger(__name__)


def announce(signal: Signal, sender: object, **kwargs: object) -> None:
    """Send ``signal`` to every receiver; log, never raise, what a receiver raises.

    Senders announce money and state changes (a settled generation, a grant); a listener above
    them (an email) must not be able to roll those back. Receivers that write do so inside a
    savepoint, so a failing one leaves the sender's transaction usable.
    """
    for receiver, result in signal.send_robust(sender=sender, **kwargs):
        if isinstance(result, Exception):
            logger.error(
                "receiver %r of %r failed",
                receiver,
                sender,
                exc_info=(type(result), result, result.__traceback__),
            )
