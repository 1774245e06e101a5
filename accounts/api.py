"""Public face of accounts for the apps above it (notifications)."""

from accounts.signals import account_deleted, export_ready

__all__ = ["account_deleted", "export_ready"]
