"""Public face of the generation app; other apps import only this module."""

from __future__ import annotations

from generation import catalogue, selectors
from generation.catalogue import CATALOGUE, ModelSpec
from generation.models import Generation, Status
from generation.services.settlement import collect_unpaid

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
