"""Objects a crashed ingest left without an asset row are found and deleted, nothing else is."""

import io
import uuid
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from config.celery import app
from media_store import api, services
from media_store.backends import get_backend
from media_store.models import Asset
from media_store.tasks import sweep_orphan_objects
from tests.media_store.conftest import image_bytes, wait_for_second_start

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("private_hosts_allowed")]
both_backends = pytest.mark.usefixtures("backend_name")
NOW = timedelta(0)


def _put(key: str) -> str:
    body = image_bytes("PNG")
    get_backend().put(key, io.BytesIO(body), content_type="image/png", size=len(body))
    return key


def _stored(prefix: str) -> set[str]:
    return set(get_backend().keys(prefix=prefix, modified_before=timezone.now() + timedelta(1)))


@pytest.fixture
def stored_asset(payload_server, ids):
    """A real ingested PNG (object, thumbnail and row) and a crashed ingest's two leftovers."""
    owner_id, generation_id = ids
    url = payload_server.serve("/out.png", image_bytes("PNG"))
    info = api.ingest(
        owner_id=owner_id, generation_id=generation_id, source_url=url, allowed_hosts=["127.0.0.1"]
    )
    asset = Asset.objects.get(id=info.id)
    lost = f"{owner_id}/{generation_id}/1-{uuid.uuid4()}"
    leftovers = {_put(f"{lost}.png"), _put(f"{lost}-thumb.webp")}
    wait_for_second_start()  # S3 dates objects to the second: let theirs be in the past
    return asset, leftovers


@both_backends
def test_sweep_deletes_only_objects_without_an_asset_row(stored_asset, ids):
    asset, leftovers = stored_asset
    owner = f"{ids[0]}/"
    foreign = {_put(f"{owner}notes/readme.png"), _put(f"{owner}{uuid.uuid4()}.png")}
    wait_for_second_start()
    kept = {asset.key, asset.thumbnail_key} | foreign
    assert asset.thumbnail_key and _stored(owner) == kept | leftovers

    sweep = services.sweep_orphans(grace=NOW, prefix=owner)

    assert sorted(sweep.orphans) == sorted(leftovers)
    assert sweep.deleted == 2 and sweep.scanned == 4  # the two not in ingest's layout: skipped
    assert _stored(owner) == kept
    assert api.signed_url(asset.id)  # the real asset is still served


@both_backends
def test_objects_younger_than_the_grace_period_are_left_alone(stored_asset, ids):
    _asset, leftovers = stored_asset

    sweep = services.sweep_orphans(grace=timedelta(hours=1), prefix=f"{ids[0]}/")

    assert sweep.orphans == [] and sweep.deleted == 0
    assert leftovers <= _stored(f"{ids[0]}/")


@both_backends
def test_dry_run_lists_orphans_and_deletes_nothing(stored_asset, ids):
    _asset, leftovers = stored_asset

    sweep = services.sweep_orphans(grace=NOW, prefix=f"{ids[0]}/", dry_run=True, batch=1)

    assert sorted(sweep.orphans) == sorted(leftovers) and sweep.deleted == 0
    assert leftovers <= _stored(f"{ids[0]}/")


@pytest.fixture
def private_filesystem(settings, tmp_path):
    """A storage root of this test's own: the command and the task sweep everything stored."""
    settings.MEDIA_BACKEND = "filesystem"
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.mark.usefixtures("private_filesystem")
def test_command_and_beat_task_sweep_with_the_configured_grace(stored_asset, ids, settings):
    asset, leftovers = stored_asset
    out = io.StringIO()

    call_command("sweep_orphan_media", "--dry-run", stdout=out)  # grace: one hour
    assert not leftovers & set(out.getvalue().split())

    settings.MEDIA_ORPHAN_GRACE_SECONDS = 0
    call_command("sweep_orphan_media", "--dry-run", stdout=out)
    assert leftovers <= set(out.getvalue().split())
    assert leftovers <= _stored(f"{ids[0]}/")

    assert sweep_orphan_objects() == 2
    assert _stored(f"{ids[0]}/") == {asset.key, asset.thumbnail_key}


def test_every_beat_entry_names_a_registered_task(settings):
    app.loader.import_default_modules()
    missing = {
        name: entry["task"]
        for name, entry in settings.CELERY_BEAT_SCHEDULE.items()
        if entry["task"] not in app.tasks
    }
    assert missing == {}
    assert settings.CELERY_BEAT_SCHEDULE["media-sweep-orphans"]["task"] == (
        "media_store.tasks.sweep_orphan_objects"
    )
