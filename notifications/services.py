"""Recording notifications once per event and sending each once.

Exactly once: ``record`` inserts a row under a unique key naming the event, inside the
transaction that produced the event when the sender offers one (the ledger's low-balance claim,
a generation's transition), so the event and its notification commit together, and a repeated
event finds the key taken. ``deliver`` claims the row with a guarded UPDATE before it sends, so
a redelivered or duplicated task finds it claimed or sent and does nothing. A claim is retried
only after NOTIFY_CLAIM_TIMEOUT_SECONDS (the worker died mid-send); that is the one window in
which a mail could go twice, and only if the SMTP server had already accepted it.
"""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.urls import reverse
from django.utils import timezone

from config.emails import absolute_url, build_message
from config.queue import enqueue_on_commit
from notifications.models import OPTIONAL, Kind, Notification, Preferences

logger = logging.getLogger(__name__)


def record(user_id: uuid.UUID | str, kind: Kind, key: str, context: dict) -> bool:
    """Record one notification for the event ``key`` and queue its send after commit.

    Return False when the event was already recorded. Safe inside the caller's transaction
    (a savepoint guards the insert).
    """
    with transaction.atomic():
        notification, created = Notification.objects.get_or_create(
            key=f"{kind}:{key}"[:200],
            defaults={"user_id": user_id, "kind": kind, "context": context},
        )
    if created:
        # A broker outage is logged; the re-drive sends the row later.
        enqueue_on_commit("notifications.tasks.send_notification", notification.pk)
    return created


def wants(user, kind: str) -> bool:
    """Return whether the user gets this kind of email (inactive users get none)."""
    if not user.is_active:
        return False
    preference = OPTIONAL.get(kind)
    if preference is None:
        return True
    try:
        chosen = user.notification_preferences
    except Preferences.DoesNotExist:
        return True
    return getattr(chosen, preference)


def deliver(notification_id: int) -> str:
    """Send the notification unless it is sent, being sent or unwanted; return what happened.

    ``sent``, ``skipped`` (opted out or inactive) or ``taken`` (another run has it). A send
    that raises releases the claim and re-raises, so the task's retry can try again.
    """
    now = timezone.now()
    stale = now - timedelta(seconds=settings.NOTIFY_CLAIM_TIMEOUT_SECONDS)
    # One commit for the claim and the read; the mail server is only talked to after it.
    with transaction.atomic():
        claimed = (
            Notification.objects.filter(pk=notification_id, status=Notification.Status.PENDING)
            .filter(Q(claimed_at__isnull=True) | Q(claimed_at__lt=stale))
            .update(claimed_at=now, attempts=F("attempts") + 1)
        )
        notification = (
            Notification.objects.select_related("user", "user__notification_preferences")
            .filter(pk=notification_id)
            .first()
            if claimed
            else None
        )
    if notification is None:
        return "taken"
    if not wants(notification.user, notification.kind):
        _finish(notification_id, Notification.Status.SKIPPED)
        return "skipped"
    message = compose(notification)
    try:
        message.send()
    except Exception as error:
        Notification.objects.filter(pk=notification_id).update(
            claimed_at=None, error=str(error)[:300]
        )
        raise
    _finish(notification_id, Notification.Status.SENT, sent_at=timezone.now())
    return "sent"


def compose(notification: Notification):
    """Build the email for a notification from its kind's templates and stored context."""
    context = {**notification.context, **_links(notification)}
    context["preferences_url"] = absolute_url(reverse("notifications:preferences"))
    context["optional"] = notification.kind in OPTIONAL
    return build_message(f"email/{notification.kind}", context, [notification.user.email])


def pending_to_redrive(*, older_than: timedelta, limit: int = 500) -> list[int]:
    """Return pending notifications whose task may be lost, or whose claim went stale."""
    now = timezone.now()
    stale = now - timedelta(seconds=settings.NOTIFY_CLAIM_TIMEOUT_SECONDS)
    rows = Notification.objects.filter(
        status=Notification.Status.PENDING, created_at__lt=now - older_than
    ).filter(Q(claimed_at__isnull=True) | Q(claimed_at__lt=stale))
    return list(rows.order_by("created_at").values_list("pk", flat=True)[:limit])


def forget_user(user_id: uuid.UUID | str) -> None:
    """Remove a leaving user's notifications and choices (their contents are personal)."""
    with transaction.atomic():
        Notification.objects.filter(user_id=user_id).delete()
        Preferences.objects.filter(user_id=user_id).delete()


def _finish(notification_id: int, status: str, **fields: object) -> None:
    Notification.objects.filter(pk=notification_id).update(status=status, error="", **fields)


def _links(notification: Notification) -> dict[str, str]:
    context = notification.context
    links = {
        "billing_url": absolute_url(reverse("billing:overview")),
        "dashboard_url": absolute_url(reverse("pages:dashboard")),
    }
    if "generation_id" in context:
        links["generation_url"] = absolute_url(
            reverse("generation:detail", kwargs={"generation_id": context["generation_id"]})
        )
    if "export_id" in context:
        links["export_url"] = absolute_url(reverse("accounts:data"))
    return links
