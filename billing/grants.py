"""The one way billing credits a user: grant under a key, review on conflict, then record.

Packs, subscription invoices, review decisions, won disputes and the sign-up bonus all credit
through ``grant``. The key is the exactly-once gate (``ledger.api.grant`` answers ``duplicate``
for a key it has seen with the same account and amount, ``conflict`` for a key used otherwise),
so every caller is safe to run twice and concurrently; the caller records the outcome on its own
rows afterwards. Ledger calls run outside any transaction.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model

from ledger import api as ledger

CHECKOUT_SOURCE = "stripe_checkout"
INVOICE_SOURCE = "stripe_invoice"
REVIEW_SOURCE = "billing_review"
SIGNUP_SOURCE = "signup_bonus"


def signup_key(user_id: Any) -> str:
    """Return the sign-up bonus's ledger key: one bonus per user."""
    return f"signup:{user_id}"


def review_key(item_pk: Any, op: str) -> str:
    """Return the key of a review decision's own ledger call (``grant`` or ``clawback``)."""
    return f"review:{item_pk}:{op}"


def conflict_detail(key: str) -> str:
    """Say why a grant went to review: the key was already used otherwise."""
    return f"The ledger already used {key} for another account or amount."


def grant(
    user_id: Any,
    credits: int,
    *,
    key: str,
    source: str,
    memo: str,
    on_conflict: Callable[[str], object] | None = None,
) -> ledger.GrantResult:
    """Grant ``credits`` once under ``key``; return the ledger's result.

    On ``conflict`` nothing moved and ``on_conflict(detail)`` runs (it opens a review or raises);
    without it the caller reads the status. The ledger announces a new grant itself
    (``ledger.api.credits_added``), which is what unlocks withheld outputs.
    """
    result = ledger.grant(user_id, credits, key=key, source=source, memo=memo)
    if result.status == ledger.GrantOutcome.CONFLICT and on_conflict is not None:
        on_conflict(conflict_detail(key))
    return result


def grant_signup_bonus(user_id: uuid.UUID | str) -> str:
    """Grant SIGNUP_BONUS_CREDITS once per user (key ``signup:<user id>``); return the status.

    Returns ``skipped`` when the bonus is off or the user is inactive.
    """
    amount = settings.SIGNUP_BONUS_CREDITS
    user = get_user_model().objects.filter(pk=user_id, is_active=True).first()
    if amount <= 0 or user is None:
        return "skipped"
    result = grant(
        user.pk, amount, key=signup_key(user.pk), source=SIGNUP_SOURCE, memo="Welcome credits"
    )
    return result.status
