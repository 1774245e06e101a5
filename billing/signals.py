"""Receivers: the sign-up bonus follows email verification."""

import logging

from allauth.account.signals import email_confirmed
from django.conf import settings
from django.db import transaction
from django.dispatch import receiver

logger = logging.getLogger(__name__)


@receiver(email_confirmed, dispatch_uid="billing.signup_bonus")
def queue_signup_bonus(sender, request, email_address, **kwargs) -> None:
    """Queue the one-time sign-up bonus after the confirmation commits, outside its locks."""
    if settings.SIGNUP_BONUS_CREDITS > 0:
        user_id = str(email_address.user_id)
        transaction.on_commit(lambda: _enqueue_signup_bonus(user_id))


def _enqueue_signup_bonus(user_id: str) -> None:
    from billing import services, tasks

    try:
        tasks.grant_signup_bonus.delay(user_id)
    except Exception:
        # No broker: grant inline instead (after commit, so no lock is held); the key keeps
        # a later retry from granting twice.
        logger.exception("could not queue the sign-up bonus for %s; granting inline", user_id)
        services.grant_signup_bonus(user_id)
