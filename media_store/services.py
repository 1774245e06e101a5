"""Writes: turn a provider's output URL into a private asset, and remove assets."""

from __future__ import annotations

import contextlib
import io
import logging
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from media_store import fetch, sniff
from media_store.backends import get_backend
from media_store.exceptions import AssetNotFound, IngestRefused, IngestTemporaryError
from media_store.models import Asset

logger = logging.getLogger(__name__)
MAX_SIGNED_URL_SECONDS = 300
# The keys ingest_asset writes: <owner>/<generation>/<index>-<asset id>[-thumb].<extension>.
_UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
ASSET_KEY = re.compile(rf"{_UUID}/{_UUID}/[0-9]+-(?P<asset>{_UUID})(?:-thumb)?\.[a-z0-9]+")


def ingest_asset(
    *,
    owner_id: uuid.UUID,
    generation_id: uuid.UUID,
    source_url: str,
    allowed_hosts: Sequence[str],
    index: int = 0,
) -> Asset:
    """Store one generation output once; any later call for the same output returns it."""
    if not 0 <= index <= 32767:
        raise ValueError(f"index must be between 0 and 32767, not {index}")
    existing = _existing(generation_id, index, owner_id)
    if existing is not None:
        return existing

    download = fetch.download(source_url, allowed_hosts)
    try:
        info, thumb = sniff.examine(
            download.body,
            download.head,
            max_pixels=settings.INGEST_MAX_IMAGE_PIXELS,
            preview_pixels=settings.MEDIA_THUMBNAIL_PIXELS,
        )
        content_type = info.content_type
        asset_id = uuid.uuid4()
        base = f"{owner_id}/{generation_id}/{index}-{asset_id}"
        key = f"{base}.{sniff.EXTENSIONS[content_type]}"
        thumbnail_key = f"{base}-thumb.webp" if thumb is not None else ""
        download.body.seek(0)
        _upload(key, download.body, content_type, download.size, thumbnail_key, thumb)
    finally:
        download.body.close()

    asset = Asset(
        id=asset_id,
        owner_id=owner_id,
        generation_id=generation_id,
        index=index,
        key=key,
        thumbnail_key=thumbnail_key,
        content_type=content_type,
        size=download.size,
        sha256=download.sha256,
        width=info.width,
        height=info.height,
        duration_ms=info.duration_ms,
        source_host=download.final_host,
    )
    try:
        # The unique (generation_id, index) constraint decides concurrent ingests; the
        # savepoint keeps a caller's surrounding transaction usable when this one loses.
        with transaction.atomic():
            asset.save(force_insert=True)
    except IntegrityError:
        _delete_objects(key, thumbnail_key)
        winner = _existing(generation_id, index, owner_id)
        if winner is None:
            raise
        return winner
    except BaseException:
        _delete_objects(key, thumbnail_key)
        raise
    return asset


def warm_up() -> None:
    """Pay the first ingest's one-time costs now: imports, CA bundle, botocore's service model."""
    from PIL import Image

    Image.init()
    fetch.open_transport().close()
    get_backend().warm_up()


def _upload(
    key: str, body, content_type: str, size: int, thumbnail_key: str, thumb: bytes | None
) -> None:
    """Store the object and its thumbnail; a storage outage is worth retrying."""
    backend = get_backend()
    try:
        backend.put(key, body, content_type=content_type, size=size)
        if thumb is not None:
            backend.put(
                thumbnail_key, io.BytesIO(thumb), content_type="image/webp", size=len(thumb)
            )
    except Exception as error:
        with contextlib.suppress(Exception):
            _delete_objects(key, thumbnail_key)
        raise IngestTemporaryError(f"storage refused the upload: {error}") from error


def _existing(generation_id: uuid.UUID, index: int, owner_id: uuid.UUID) -> Asset | None:
    asset = Asset.objects.filter(generation_id=generation_id, index=index).first()
    if asset is not None and asset.owner_id != uuid.UUID(str(owner_id)):
        raise IngestRefused("conflict", f"generation {generation_id} belongs to another owner")
    return asset


def _delete_objects(*keys: str) -> None:
    backend = get_backend()
    for key in keys:
        if key:
            backend.delete(key)


def signed_url(asset: Asset, *, seconds: int | None = None, thumbnail: bool = False) -> str:
    """Return a URL to the object that stops working after ``seconds`` (at most five minutes)."""
    limit = min(settings.MEDIA_SIGNED_URL_SECONDS, MAX_SIGNED_URL_SECONDS)
    if seconds is None:
        seconds = limit
    if not 1 <= seconds <= MAX_SIGNED_URL_SECONDS:
        raise ValueError(f"seconds must be between 1 and {MAX_SIGNED_URL_SECONDS}, not {seconds}")
    if thumbnail:
        if not asset.thumbnail_key:
            raise AssetNotFound(f"asset {asset.id} has no thumbnail")
        return get_backend().signed_url(
            asset.thumbnail_key, seconds=seconds, content_type="image/webp"
        )
    return get_backend().signed_url(asset.key, seconds=seconds, content_type=asset.content_type)


def delete_asset(asset_id: uuid.UUID) -> None:
    """Delete the stored objects first, then the row, so a failure can be retried."""
    asset = Asset.objects.filter(id=asset_id).first()
    if asset is None:
        return
    _delete_objects(asset.key, asset.thumbnail_key)
    Asset.objects.filter(id=asset.id).delete()
    logger.info("media asset deleted", extra={"asset_id": str(asset.id)})


@dataclass(frozen=True)
class OrphanSweep:
    """What one sweep saw: keys in the ingest layout it looked at, and those no asset names."""

    scanned: int
    orphans: list[str]
    deleted: int


def sweep_orphans(
    *, grace: timedelta | None = None, prefix: str = "", dry_run: bool = False, batch: int = 500
) -> OrphanSweep:
    """Delete stored objects whose asset row does not exist.

    ingest_asset uploads before it inserts the row, so a process killed in between leaves an
    object nobody can reach (or pay for). Only keys in ingest's own layout are considered, so
    whatever else shares the bucket is never touched, and only objects older than ``grace``
    (default MEDIA_ORPHAN_GRACE_SECONDS), so an ingest still between its upload and its insert
    is left alone.
    """
    if grace is None:
        grace = timedelta(seconds=settings.MEDIA_ORPHAN_GRACE_SECONDS)
    scanned, orphans = 0, []
    pending: dict[str, uuid.UUID] = {}

    def check_batch() -> None:
        known = set(Asset.objects.filter(id__in=set(pending.values())).values_list("id", flat=True))
        orphans.extend(key for key, asset_id in pending.items() if asset_id not in known)
        pending.clear()

    for key in get_backend().keys(prefix=prefix, modified_before=timezone.now() - grace):
        match = ASSET_KEY.fullmatch(key)
        if match is None:
            continue
        scanned += 1
        pending[key] = uuid.UUID(match["asset"])
        if len(pending) >= batch:
            check_batch()
    check_batch()
    if not dry_run:
        _delete_objects(*orphans)
    deleted = 0 if dry_run else len(orphans)
    if orphans:
        logger.warning(
            "media objects without an asset row: %d found, %d deleted",
            len(orphans),
            deleted,
            extra={"orphans": orphans[:20]},
        )
    return OrphanSweep(scanned=scanned, orphans=orphans, deleted=deleted)
