"""Public face of the generation app; other apps import only this module."""

from __future__ import annotations

from generation import catalogue, selectors
from generation.catalogue import CATALOGUE, ModelSpec
from generation.models import Generation, Status
from generation.owner import erase_user_generations
from generation.services.settlement import collect_unpaid
from generation.signals import generation_finished

__all__ = [
    "CATALOGUE",
    "Generation",
    "ModelSpec",
    "Status",
    "catalogue_models",
    "collect_unpaid",
    "erase_user_generations",
    "export_rows",
    "for_hold_references",
    "generation_finished",
    "model_name",
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


def for_hold_references(user, references: list[str]) -> dict[str, Generation]:
    """Return the user's generations by their ledger hold reference (the billing page's rows)."""
    return selectors.for_hold_references(user, references)


def model_name(model_key: str) -> str:
    """Return the catalogue's name for a model, or its key if it left the catalogue."""
    spec = CATALOGUE.get(model_key)
    return spec.name if spec else model_key


def export_rows(user) -> list[dict[str, object]]:
    """Return every generation the user has not deleted, as plain data for their export."""
    rows = selectors.user_generations(user).order_by("created_at")
    return [
        {
            "id": str(row.pk),
            "model": row.model_key,
            "model_name": model_name(row.model_key),
            "prompt": row.prompt,
            "settings": row.params,
            "status": row.status,
            "cost": row.cost,
            "error": row.error_message,
            "created_at": row.created_at.isoformat(),
            "finished_at": row.finished_at.isoformat() if row.finished_at else None,
        }
        for row in rows
    ]
