"""Public face of media storage; other apps import only this module."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import BinaryIO

from django.urls import reverse

from media_store import documents, services
from media_store.backends import get_backend
from media_store.exceptions import (
    AssetNotFound,
    IngestRefused,
    IngestTemporaryError,
    MediaError,
)
from media_store.models import Asset

__all__ = [
    "AssetInfo",
    "AssetNotFound",
    "IngestRefused",
    "IngestTemporaryError",
    "MediaError",
    "assets_for_generation",
    "check_storage",
    "delete",
    "delete_document",
    "delete_owner_assets",
    "document_url",
    "ingest",
    "open_asset",
    "set_withheld",
    "signed_url",
    "store_document",
    "warm_up",
]


@dataclass(frozen=True)
class AssetInfo:
    """What other apps may know about a stored asset; ``url`` is the owner-only app URL."""

    id: uuid.UUID
    owner_id: uuid.UUID
    generation_id: uuid.UUID
    index: int
    content_type: str
    size: int
    sha256: str
    width: int | None
    height: int | None
    duration_ms: int | None
    url: str
    thumbnail_url: str | None
    withheld: bool = False

    @classmethod
    def from_asset(cls, asset: Asset) -> AssetInfo:
        return cls(
            id=asset.id,
            owner_id=asset.owner_id,
            generation_id=asset.generation_id,
            index=asset.index,
            content_type=asset.content_type,
            size=asset.size,
            sha256=asset.sha256,
            width=asset.width,
            height=asset.height,
            duration_ms=asset.duration_ms,
            url=reverse("media_store:asset", kwargs={"asset_id": asset.id}),
            thumbnail_url=reverse("media_store:thumbnail", kwargs={"asset_id": asset.id})
            if asset.thumbnail_key
            else None,
            withheld=asset.withheld,
        )


def ingest(
    *,
    owner_id: uuid.UUID,
    generation_id: uuid.UUID,
    source_url: str,
    allowed_hosts: Sequence[str],
    index: int = 0,
) -> AssetInfo:
    """Copy a provider's output into private storage, once per (generation, index).

    Repeats return the existing asset without downloading. Raises ``IngestRefused`` (never
    retry: size, type, host, private address, output gone) or ``IngestTemporaryError``
    (retry later: timeouts, 5xx, connection errors). Call it outside ``transaction.atomic()``:
    it downloads and uploads before it writes its row.
    """
    asset = services.ingest_asset(
        owner_id=owner_id,
        generation_id=generation_id,
        source_url=source_url,
        allowed_hosts=allowed_hosts,
        index=index,
    )
    return AssetInfo.from_asset(asset)


def assets_for_generation(generation_id: uuid.UUID) -> list[AssetInfo]:
    """Return a generation's assets in output order."""
    assets = Asset.objects.filter(generation_id=generation_id).order_by("index")
    return [AssetInfo.from_asset(asset) for asset in assets]


def first_outputs(generation_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, AssetInfo]:
    """Return each generation's first output, for a gallery's previews, in one query."""
    ids = list(generation_ids)
    if not ids:
        return {}
    assets = (
        Asset.objects.filter(generation_id__in=ids)
        .order_by("generation_id", "index")
        .distinct("generation_id")
    )
    return {asset.generation_id: AssetInfo.from_asset(asset) for asset in assets}


def signed_url(asset_id: uuid.UUID, *, seconds: int | None = None, thumbnail: bool = False) -> str:
    """Return a fresh URL to the stored object living ``seconds`` (default and cap: 5 minutes).

    Raises ``AssetNotFound`` for an unknown asset or a missing thumbnail. Never store the result.
    """
    asset = Asset.objects.filter(id=asset_id).first()
    if asset is None:
        raise AssetNotFound(f"no asset {asset_id}")
    return services.signed_url(asset, seconds=seconds, thumbnail=thumbnail)


def set_withheld(generation_id: uuid.UUID, withheld: bool) -> int:
    """Withhold (or release) every output of a generation while it is unpaid; return the count.

    Generation calls it inside the transaction that enters or leaves ``unpaid``, so the flag and
    the status commit together.
    """
    return Asset.objects.filter(generation_id=generation_id).update(withheld=withheld)


def delete(asset_id: uuid.UUID) -> None:
    """Remove an asset and its stored objects; deleting a missing asset does nothing."""
    services.delete_asset(asset_id)


def check_storage() -> None:
    """Raise when the configured storage cannot be reached (used by /healthz)."""
    get_backend().check()


def warm_up() -> None:
    """Build this process's storage client, download TLS context and image codecs up front."""
    services.warm_up()


def open_asset(asset_id: uuid.UUID) -> BinaryIO:
    """Return a readable stream of the stored output (close it when done)."""
    asset = Asset.objects.filter(id=asset_id).first()
    if asset is None:
        raise AssetNotFound(f"no asset {asset_id}")
    return get_backend().open(asset.key)


def delete_owner_assets(owner_id: uuid.UUID) -> int:
    """Delete every asset of the owner and its stored objects; return how many."""
    ids = list(Asset.objects.filter(owner_id=owner_id).values_list("id", flat=True))
    for asset_id in ids:
        services.delete_asset(asset_id)
    return len(ids)


def store_document(
    owner_id: uuid.UUID, name: str, body: BinaryIO, *, size: int, content_type: str
) -> str:
    """Store a private non-output file (a data export) and return its key."""
    return documents.store(owner_id, name, body, size=size, content_type=content_type)


def document_url(key: str, *, content_type: str) -> str:
    """Return a fresh short-lived URL to a stored document. Never store the result."""
    return documents.signed_url(key, content_type=content_type)


def delete_document(key: str) -> None:
    """Delete a stored document; a missing one is already gone."""
    documents.delete(key)
