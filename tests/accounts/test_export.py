"""Export my data: a ZIP built by the real task, announced by email, fetched by a signed URL."""

import io
import json
import zipfile
from datetime import timedelta

import pytest
from django.core import mail
from django.test import Client
from django.utils import timezone

from accounts import exports
from accounts.models import DataExport
from media_store import api as media
from tests.accounts.conftest import bucket_keys, fetch

pytestmark = pytest.mark.django_db(transaction=True)


def test_export_zip_holds_profile_prompts_ledger_and_media_and_its_link_expires(
    alice, bob, alice_client, finished_generation, eager_celery, settings
):
    settings.SITE_URL = "https://studio.example"
    generation = finished_generation(alice)
    [asset] = media.assets_for_generation(generation.pk)
    with media.open_asset(asset.id) as stored:
        original = stored.read()
    mail.outbox.clear()

    assert alice_client.post("/account/data/export/").status_code == 302

    export = DataExport.objects.get(user=alice)
    assert export.status == "ready" and export.expires_at > timezone.now()
    [message] = [m for m in mail.outbox if m.to == [alice.email]]
    assert message.subject.endswith("Your data export is ready")
    assert "https://studio.example/account/data/" in message.body
    page = alice_client.get("/account/data/").content.decode()
    assert f"/account/data/exports/{export.pk}/" in page

    redirect = alice_client.get(f"/account/data/exports/{export.pk}/")
    assert redirect.status_code == 302 and "X-Amz-Expires=300" in redirect["Location"]
    download = fetch(redirect["Location"])
    assert download.status_code == 200
    bundle = zipfile.ZipFile(io.BytesIO(download.content))
    profile = json.loads(bundle.read("profile.json"))
    assert profile["email"] == alice.email
    [row] = json.loads(bundle.read("generations.json"))
    assert row["id"] == str(generation.pk) and row["prompt"] == generation.prompt
    assert row["settings"] == generation.params
    ledger_csv = bundle.read("ledger.csv").decode()
    assert ledger_csv.startswith("entry_id,time,description") and "Charged" in ledger_csv
    [media_name] = [name for name in bundle.namelist() if name.startswith("media/")]
    assert media_name.startswith(f"media/{generation.pk}/0.")
    assert bundle.read(media_name) == original

    # Someone else cannot fetch it; once expired, the link is gone and so is the object.
    stranger = Client()
    stranger.force_login(bob)
    assert stranger.get(f"/account/data/exports/{export.pk}/").status_code == 404
    DataExport.objects.filter(pk=export.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert alice_client.get(f"/account/data/exports/{export.pk}/").status_code == 404
    assert bucket_keys(f"documents/{alice.pk}/")
    assert exports.expire_exports() == 1
    assert bucket_keys(f"documents/{alice.pk}/") == []


def test_a_second_click_while_building_starts_no_second_export(alice, alice_client):
    alice_client.post("/account/data/export/")
    alice_client.post("/account/data/export/")
    assert DataExport.objects.filter(user=alice).count() == 1
