from django.apps import AppConfig
from django.db.models.signals import post_migrate


class LedgerConfig(AppConfig):
    """Credit balances, holds and the immutable journal, enforced in PostgreSQL."""

    name = "ledger"
    verbose_name = "Ledger"

    def ready(self) -> None:
        from ledger.groups import ensure_operator_group

        post_migrate.connect(ensure_operator_group, sender=self)
