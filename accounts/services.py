"""Leaving and taking your data: the account's own writes."""

from __future__ import annotations

import logging

from allauth.account.internal.flows.email_verification import (
    send_verification_email_to_address,
)
from allauth.account.models import EmailAddress
from django.db import transaction
from django.utils import timezone

from accounts import exports
from accounts.models import DataExport, User
from accounts.signals import account_deleted
from billing import api as billing
from config.queue import enqueue_on_commit
from config.signals import announce
from generation import api as generation
from media_store import api as media

logger = logging.getLogger(__name__)


class AccountError(Exception):
    """Why an account action was refused; ``str(error)`` is written for the user."""


def request_export(user: User) -> DataExport:
    """Start building a data export, or return the one already being built (a second click)."""
    with transaction.atomic():
        # Serialises two clicks of the same user, so at most one export is pending.
        User.objects.select_for_update().filter(pk=user.pk).exists()
        pending = DataExport.objects.filter(user=user, status=DataExport.Status.PENDING).first()
        if pending is not None:
            return pending
        export = DataExport.objects.create(user=user)
        enqueue_on_commit("accounts.tasks.build_export", str(export.pk))
    return export


def resend_verification(request, email: str) -> bool:
    """Send a new confirmation link to an unconfirmed address; return whether one went out.

    allauth's own rate limit applies (per address), so the button cannot be used to flood an
    inbox; an unknown or confirmed address sends nothing and looks the same to the caller.
    """
    address = EmailAddress.objects.filter(email__iexact=email.strip(), verified=False).first()
    if address is None or not address.user.is_active:
        return False
    return bool(send_verification_email_to_address(request, address))


def delete_account(user: User, *, password: str) -> None:
    """Delete the account after checking the password again.

    Order matters: the subscription is canceled at Stripe first (if Stripe cannot be reached,
    nothing is deleted and the user may try again); then running generations are canceled,
    every output object and export is removed from storage, and last the user row is
    anonymized in one transaction (email ``deleted-<id>@invalid``, no name, no password,
    inactive, ``deleted_at``). Ledger entries are kept under the same pseudonymous id, so the
    books still add up; staff see the anonymized row and when it left.
    """
    if not user.check_password(password):
        raise AccountError("That password is not right.")
    try:
        billing.cancel_subscriptions(user.pk)
    except billing.BillingError as error:
        logger.exception("account deletion of %s stopped: subscription not canceled", user.pk)
        raise AccountError(
            "Your subscription could not be canceled just now, so nothing was deleted. "
            "Please try again in a few minutes."
        ) from error
    generation.erase_user_generations(user)
    media.delete_owner_assets(user.pk)
    exports.delete_exports(user)
    now = timezone.now()
    with transaction.atomic():
        EmailAddress.objects.filter(user=user).delete()
        user.email = f"deleted-{user.pk}@invalid"
        user.name = ""
        user.set_unusable_password()
        user.is_active = False
        user.deleted_at = now
        user.deactivated_at = user.deactivated_at or now
        user.save()
        announce(account_deleted, User, user_id=user.pk)
    logger.info("account deleted", extra={"user_id": str(user.pk)})
