"""Template helpers for showing stored outputs (app URLs only, never signed URLs)."""

from __future__ import annotations

import uuid

from django import template

from media_store import api

register = template.Library()


@register.simple_tag
def first_output(generation_id: uuid.UUID) -> api.AssetInfo | None:
    """Return a generation's first output for a gallery card (one query per card)."""
    assets = api.assets_for_generation(generation_id)
    return assets[0] if assets else None
