"""Reads for the account pages."""

from accounts.models import DataExport


def recent_exports(user, limit: int = 5) -> list[DataExport]:
    """Return the user's latest data exports, newest first (the data page)."""
    return list(DataExport.objects.filter(user=user)[:limit])
