"""Celery entry points for media storage."""

from celery import shared_task

from media_store import services


@shared_task
def sweep_orphan_objects() -> int:
    """Delete objects left behind by an ingest that died between upload and insert."""
    return services.sweep_orphans().deleted
