from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    """Email to users: one keyed row per event, sent once by Celery after commit."""

    name = "notifications"
    verbose_name = "Notifications"

    def ready(self) -> None:
        from notifications import receivers  # noqa: F401 - connects the receivers
