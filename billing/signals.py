"""Receivers: the sign-up bonus follows email verification."""

from allauth.account.signals import email_confirmed
from django.conf import settings
from django.dispatch import receiver

from billing import grants
from config.queue import enqueue_on_commit


@receiver(email_confirmed, dispatch_uid="billing.signup_bonus")
def queue_signup_bonus(sender, request, email_address, **kwargs) -> None:
    """Queue the one-time sign-up bonus after the confirmation commits, outside its locks.

    Without a broker the bonus is granted inline instead (still after commit, so no lock is
    held); its key keeps a later retry from granting twice.
    """
    if settings.SIGNUP_BONUS_CREDITS > 0:
        user_id = str(email_address.user_id)
        enqueue_on_commit(
            "billing.tasks.grant_signup_bonus",
            user_id,
            fallback=lambda: grants.grant_signup_bonus(user_id),
        )
