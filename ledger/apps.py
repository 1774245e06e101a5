from django.apps import AppConfig


class LedgerConfig(AppConfig):
    """Credit balances, holds and the immutable journal, enforced in PostgreSQL."""

    name = "ledger"
    verbose_name = "Ledger"
