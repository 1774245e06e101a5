"""Listeners for the lower apps' events; each records at most one notification per event."""

from datetime import timedelta

from django.conf import settings
from django.dispatch import receiver
from django.utils import timezone

from accounts import api as accounts
from billing import api as billing
from generation import api as generations
from ledger import api as ledger
from notifications import services
from notifications.models import Kind

FINISHED_KINDS = {
    generations.Status.SUCCEEDED: Kind.GENERATION_SUCCEEDED,
    generations.Status.FAILED: Kind.GENERATION_FAILED,
    generations.Status.EXPIRED: Kind.GENERATION_FAILED,
    generations.Status.UNPAID: Kind.OUTPUT_WITHHELD,
}


def was_watched(row) -> bool:
    """Return whether the owner had the generation's page open when it ended.

    The live page polls about every second while the generation runs, and each poll stamps
    ``last_viewed_at``; a stamp older than NOTIFY_WATCH_GRACE_SECONDS means the tab is closed.
    A job that ran longer than NOTIFY_LONG_JOB_SECONDS counts as unwatched anyway.
    """
    ended = row.finished_at or timezone.now()
    if (ended - row.created_at).total_seconds() >= settings.NOTIFY_LONG_JOB_SECONDS:
        return False
    grace = timedelta(seconds=settings.NOTIFY_WATCH_GRACE_SECONDS)
    return row.last_viewed_at is not None and row.last_viewed_at >= ended - grace


@receiver(generations.generation_finished, dispatch_uid="notifications.generation_finished")
def on_generation_finished(sender, generation, **kwargs) -> None:
    """Mail a finished or failed generation nobody watched, and every withheld output."""
    kind = FINISHED_KINDS.get(generation.status)
    if kind is None:
        return
    if kind != Kind.OUTPUT_WITHHELD and was_watched(generation):
        return
    services.record(
        generation.user_id,
        kind,
        f"{generation.pk}",
        {
            "generation_id": str(generation.pk),
            "model_name": generations.model_name(generation.model_key),
            "cost": generation.cost,
            "error": generation.error_message,
        },
    )


@receiver(ledger.low_balance, dispatch_uid="notifications.low_balance")
def on_low_balance(sender, account_id, available, key, **kwargs) -> None:
    """Record the low-balance reminder inside the ledger's claim, so it is recorded once."""
    services.record(account_id, Kind.LOW_BALANCE, key, {"available": available})


@receiver(billing.payment_received, dispatch_uid="notifications.payment_received")
def on_payment_received(sender, user_id, key, receipt, **kwargs) -> None:
    """Record a receipt for a paid checkout or invoice; its grant key names the payment."""
    services.record(user_id, Kind.RECEIPT, key, receipt)


@receiver(accounts.export_ready, dispatch_uid="notifications.export_ready")
def on_export_ready(sender, export, **kwargs) -> None:
    """Tell the user their data export can be downloaded, and until when."""
    services.record(
        export.user_id,
        Kind.EXPORT_READY,
        str(export.pk),
        {"export_id": str(export.pk), "expires": f"{export.expires_at:%Y-%m-%d %H:%M}"},
    )


@receiver(accounts.account_deleted, dispatch_uid="notifications.account_deleted")
def on_account_deleted(sender, user_id, **kwargs) -> None:
    """Forget a leaving user's notifications and choices."""
    services.forget_user(user_id)
