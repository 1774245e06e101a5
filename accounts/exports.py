"""The user's data export: a ZIP built by a task and fetched through short-lived signed URLs.

The ZIP holds ``profile.json``, ``generations.json`` (prompts and settings), ``ledger.csv`` and
``media/<generation id>/<n>.<ext>``. It is built in a temporary file (outputs can be large),
stored as a private document and offered until EXPORT_RETENTION_HOURS have passed; the page's
download link re-signs a five-minute URL on every click, so no long-lived link exists.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import mimetypes
import shutil
import tempfile
import uuid
import zipfile
from datetime import timedelta

from allauth.account.models import EmailAddress
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts.models import DataExport, User
from accounts.signals import export_ready
from billing import api as billing
from config.signals import announce
from generation import api as generation
from media_store import api as media

logger = logging.getLogger(__name__)
ZIP_TYPE = "application/zip"


def build_export(export_id: uuid.UUID | str) -> str:
    """Build, store and announce the export once; return ``ready`` or why nothing was done."""
    export = DataExport.objects.select_related("user").filter(pk=export_id).first()
    if export is None or export.status != DataExport.Status.PENDING:
        return "not pending"
    with tempfile.TemporaryFile() as archive:
        _write_zip(export.user, archive)
        size = archive.tell()
        archive.seek(0)
        key = media.store_document(
            export.user_id,
            f"data-export-{timezone.localdate().isoformat()}.zip",
            archive,
            size=size,
            content_type=ZIP_TYPE,
        )
    now = timezone.now()
    with transaction.atomic():
        marked = DataExport.objects.filter(pk=export.pk, status=DataExport.Status.PENDING).update(
            status=DataExport.Status.READY,
            object_key=key,
            size=size,
            ready_at=now,
            expires_at=now + timedelta(hours=settings.EXPORT_RETENTION_HOURS),
        )
        if not marked:
            # Another run finished first; this copy is surplus.
            transaction.on_commit(lambda: media.delete_document(key))
            return "not pending"
        export.refresh_from_db()
        announce(export_ready, DataExport, export=export)
    return "ready"


def mark_failed(export_id: uuid.UUID | str) -> None:
    """Give up on a pending export (its task ran out of retries); the user may ask again."""
    DataExport.objects.filter(pk=export_id, status=DataExport.Status.PENDING).update(
        status=DataExport.Status.FAILED
    )


def download_url(user: User, export_id: uuid.UUID) -> str | None:
    """Return a fresh signed URL for the user's ready export, or None if it is not available."""
    export = DataExport.objects.filter(pk=export_id, user=user).first()
    if export is None or not _available(export):
        return None
    return media.document_url(export.object_key, content_type=ZIP_TYPE)


def expire_exports() -> int:
    """Delete the stored ZIP of every export past its expiry; return how many."""
    due = DataExport.objects.filter(status=DataExport.Status.READY, expires_at__lte=timezone.now())
    count = 0
    for export in due:
        media.delete_document(export.object_key)
        DataExport.objects.filter(pk=export.pk).update(
            status=DataExport.Status.EXPIRED, object_key=""
        )
        count += 1
    return count


def delete_exports(user: User) -> None:
    """Delete every stored export of the user (account deletion)."""
    for export in DataExport.objects.filter(user=user).exclude(object_key=""):
        media.delete_document(export.object_key)
    DataExport.objects.filter(user=user).delete()


def _available(export: DataExport) -> bool:
    return (
        export.status == DataExport.Status.READY
        and export.expires_at is not None
        and export.expires_at > timezone.now()
    )


def _write_zip(user: User, archive) -> None:
    rows = generation.export_rows(user)
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as bundle:
        bundle.writestr("profile.json", json.dumps(_profile(user), indent=2))
        bundle.writestr("generations.json", json.dumps(rows, indent=2))
        ledger_csv = io.StringIO()
        csv.writer(ledger_csv).writerows(billing.ledger_csv_rows(user))
        bundle.writestr("ledger.csv", ledger_csv.getvalue())
        for row in rows:
            for asset in media.assets_for_generation(uuid.UUID(row["id"])):
                extension = mimetypes.guess_extension(asset.content_type) or ""
                name = f"media/{row['id']}/{asset.index}{extension}"
                # Stored uncompressed: images and video are compressed already.
                with (
                    media.open_asset(asset.id) as source,
                    bundle.open(zipfile.ZipInfo(name), "w", force_zip64=True) as target,
                ):
                    shutil.copyfileobj(source, target, 1024 * 1024)


def _profile(user: User) -> dict[str, object]:
    return {
        "id": str(user.pk),
        "email": user.email,
        "name": user.name,
        "date_joined": user.date_joined.isoformat(),
        "email_addresses": [
            {"email": address.email, "verified": address.verified, "primary": address.primary}
            for address in EmailAddress.objects.filter(user=user)
        ],
    }
