from django.apps import AppConfig


class ConfigConfig(AppConfig):
    """Project-level wiring: role bootstrap, health, production checks, operator alerts."""

    name = "config"
    verbose_name = "Project"

    def ready(self) -> None:
        from config import checks  # noqa: F401  (registers the system checks)
