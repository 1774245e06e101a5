"""Provider adapters behind one interface; ``get_provider(slug)`` returns a shared instance."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from generation.providers.base import Provider

_instances: dict[str, Provider] = {}


def provider_classes() -> dict[str, type[Provider]]:
    """Return the shipped adapters by slug (add a provider here)."""
    from generation.providers.babysea import BabySeaProvider
    from generation.providers.replicate import ReplicateProvider

    return {BabySeaProvider.slug: BabySeaProvider, ReplicateProvider.slug: ReplicateProvider}


def get_provider(slug: str) -> Provider:
    """Return the adapter for ``slug``; raise KeyError for an unknown provider."""
    if slug not in _instances:
        _instances[slug] = provider_classes()[slug]()
    return _instances[slug]


def reset_providers() -> None:
    """Drop cached clients (tests change settings between cases)."""
    _instances.clear()
