"""Signals the ledger sends; apps above it listen instead of the ledger importing them."""

from __future__ import annotations

from uuid import UUID

from django.db import transaction
from django.dispatch import Signal

from config.signals import announce

# Sent inside the transaction that claimed one low-balance notice for a descent below the
# threshold (ledger_alert_claim said "fire"), with ``account_id``, ``available`` and ``key``, a
# string unique to this descent. A receiver that writes in that transaction commits or rolls
# back with the claim, so a notice is recorded exactly once per descent.
low_balance = Signal()

# Sent once per new grant or positive adjustment, after the surrounding transaction commits (at
# once in autocommit), with ``account_id`` (UUID), ``amount`` (int, > 0), ``kind`` ("grant" or
# "adjust") and ``key`` (the entry's ledger key); a duplicate, a conflict or a rollback sends
# nothing. Apps waiting for credits (generation's withheld outputs) listen here instead of every
# caller that adds credits having to know them. A receiver's error is logged and never reaches
# the caller, whose credits are already committed.
credits_added = Signal()


def announce_credits_added(account_id: UUID, amount: int, *, kind: str, key: str) -> None:
    """Send ``credits_added`` once the caller's transaction commits."""
    transaction.on_commit(
        lambda: announce(
            credits_added,
            sender=announce_credits_added,
            account_id=account_id,
            amount=amount,
            kind=kind,
            key=key,
        ),
        using="default",
    )
