"""Signals the ledger sends; apps above it listen instead of the ledger importing them."""

from django.dispatch import Signal

# Sent inside the transaction that claimed one low-balance notice for a descent below the
# threshold (ledger_alert_claim said "fire"), with ``account_id``, ``available`` and ``key``, a
# string unique to this descent. A receiver that writes in that transaction commits or rolls
# back with the claim, so a notice is recorded exactly once per descent.
low_balance = Signal()
