"""Celery entry points for media storage."""

from datetime import timedelta

from celery import shared_task
from django.conf import settings

from media_store import services


@shared_task
def sweep_orphan_objects() -> int:
    """Delete objects left behind by an ingest that died between upload and insert."""
    grace = timedelta(seconds=settings.MEDIA_ORPHAN_GRACE_SECONDS)
    return services.sweep_orphans(grace=grace).deleted
