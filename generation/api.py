"""Public face of the generation app; other apps import only this module."""

from __future__ import annotations

import uuid

from generation import catalogue, selectors, services
from generation.catalogue import CATALOGUE, ModelSpec
from generation.models import Generation, Status

__all__ = [
    "CATALOGUE",
    "Generation",
    "ModelSpec",
    "Status",
    "catalogue_models",
    "collect_unpaid",
    "price",
    "recent_generations",
]


def catalogue_models() -> list[ModelSpec]:
    """Return the models users can pick, in catalogue order (the landing page's live prices)."""
    return list(CATALOGUE.values())


def price(model_key: str, params: dict[str, object] | None = None) -> int:
    """Return the cost in credits of one generation (defaults for missing parameters)."""
    return catalogue.price(model_key, params or {})


def recent_generations(user, limit: int = 5) -> list[Generation]:
    """Return the user's latest generations, newest first (for the dashboard)."""
    return selectors.recent_generations(user, limit)


def collect_unpaid(account_id: uuid.UUID) -> int:
    """Retry the capture of the account's unpaid generations now; return how many were paid.

    Billing may call this after a grant so a top-up unlocks withheld outputs at once; the
    re-drive does the same on its own schedule.
    """
    paid = 0
    for generation in Generation.objects.filter(user_id=account_id, status=Status.UNPAID):
        services.collect_unpaid(generation)
        generation.refresh_from_db()
        paid += generation.status == Status.SUCCEEDED
    return paid
