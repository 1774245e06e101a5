from django.apps import AppConfig


class MediaStoreConfig(AppConfig):
    """Private media storage, ingest and owner-only signed access."""

    name = "media_store"
    verbose_name = "Media"
