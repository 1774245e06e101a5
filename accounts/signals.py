"""Signals accounts sends; notifications listens instead of accounts importing it."""

from django.dispatch import Signal

# Sent inside the transaction that marks ``export`` (a DataExport) ready.
export_ready = Signal()
# Sent inside the transaction that anonymizes the account, with ``user_id``.
account_deleted = Signal()
