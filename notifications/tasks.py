"""Celery entry points: send one notification, and re-drive the ones whose task was lost."""

from datetime import timedelta

from celery import shared_task

from notifications import services

# A task waiting in a busy queue is not lost; only rows older than this are queued again.
REDRIVE_AFTER = timedelta(minutes=2)


@shared_task(bind=True, max_retries=8)
def send_notification(self, notification_id: int) -> str:
    """Send one notification; a mail server error is retried with backoff (the claim decides)."""
    try:
        return services.deliver(notification_id)
    except Exception as error:
        raise self.retry(exc=error, countdown=min(60 * 2**self.request.retries, 3600)) from None


@shared_task
def redrive_notifications() -> int:
    """Queue pending notifications whose task the broker lost or whose sender died."""
    ids = services.pending_to_redrive(older_than=REDRIVE_AFTER)
    for notification_id in ids:
        send_notification.delay(notification_id)
    return len(ids)
