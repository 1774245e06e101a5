"""Receivers: credits arriving in the ledger unlock the account's withheld outputs at once."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from config.queue import enqueue_on_commit
from generation.models import Generation, Status


def collect_unpaid_after_credits(sender: Any, account_id: UUID, **kwargs: Any) -> None:
    """Queue the collection of the account's unpaid generations, if it has any.

    Connected to ``ledger.api.credits_added`` (sent after the grant or adjustment committed), so
    a purchase, a renewal, a won dispute or an admin adjustment pays withheld outputs now rather
    than at the next re-drive.
    """
    if Generation.objects.filter(user_id=account_id, status=Status.UNPAID).exists():
        enqueue_on_commit("generation.tasks.collect_unpaid", str(account_id))
