"""Celery entry points for accounts: build a data export, and expire old ones."""

import logging

from celery import shared_task

from accounts import exports

logger = logging.getLogger(__name__)


@shared_task(bind=True, max_retries=5)
def build_export(self, export_id: str) -> str:
    """Build the export; storage trouble is retried (the pending status makes a rerun safe)."""
    try:
        return exports.build_export(export_id)
    except Exception as error:
        if self.request.retries >= self.max_retries:
            logger.exception("data export %s failed for good", export_id)
            exports.mark_failed(export_id)
            return "failed"
        raise self.retry(exc=error, countdown=60 * 2**self.request.retries) from None


@shared_task
def expire_exports() -> int:
    """Delete exports past their download window."""
    return exports.expire_exports()
