"""Video outputs from both providers: stored with duration and poster, or refused and released.

The local provider renders real H.264 MP4; a Replicate-shaped video prediction is served by a
loopback output host. A file that is not what it claims fails the generation once, with a reason
the customer can read, returns the credits and is never downloaded again.
"""

import base64
import json
import uuid
from datetime import timedelta

import pytest

from generation.models import Generation, ProviderCallback, Status
from generation.services.callbacks import settle_callback
from generation.services.reconcile import reconcile_generation
from ledger import api as ledger
from media_store import api as media
from tests.generation.flow import (
    callback_body,
    deliver,
    finished_job,
    replicate_headers,
    start,
    submit,
)
from tests.media_store.conftest import mp4_bytes, running_payload_server

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("generation_settings"),
]
VIDEO = {"ratio": "16:9", "duration": "3", "resolution": "480p"}
REPLICATE_SECRET = "whsec_" + base64.b64encode(b"replicate-video-secret-012345678").decode()


def _settle_all() -> list[str]:
    return [
        settle_callback(pk)
        for pk in ProviderCallback.objects.filter(processed_at__isnull=True).values_list(
            "pk", flat=True
        )
    ]


def test_babysea_video_is_stored_with_its_duration_and_poster(alice, fund, local_provider):
    fund(alice, 100)
    generation = start(submit(alice, model_key="clip-video", params=VIDEO))
    assert generation.cost == 45
    deliver(callback_body(finished_job(local_provider, generation)))
    assert _settle_all() == ["captured"]
    generation.refresh_from_db()
    assert generation.status == Status.SUCCEEDED
    [asset] = media.assets_for_generation(generation.pk)
    assert (asset.content_type, asset.width, asset.height) == ("video/mp4", 854, 480)
    assert asset.duration_ms == 3000
    assert asset.thumbnail_url is not None
    assert ledger.balance(alice.pk).available == 55
    assert ledger.check() == []


def test_a_corrupt_video_fails_once_with_a_reason_and_returns_the_credits(
    alice, fund, local_provider
):
    """An MP4 cut off halfway: failed, released, told why, and settling again downloads nothing."""
    fund(alice, 100)
    generation = start(
        submit(alice, model_key="clip-video", params=VIDEO, faults={"corrupt_output": True})
    )
    data = finished_job(local_provider, generation)
    deliver(callback_body(data))
    assert _settle_all() == ["failed"]
    generation.refresh_from_db()
    assert generation.status == Status.FAILED
    assert generation.error_message == (
        "The provider sent a damaged file that cannot be played or shown. "
        "Your credits were returned."
    )
    assert "corrupt" in generation.error_detail
    assert ledger.hold_status(generation.hold_reference) == "released"
    assert media.assets_for_generation(generation.pk) == []
    assert ledger.balance(alice.pk).available == 100
    # A repeated delivery, a re-run of the task and the re-drive change nothing.
    deliver(callback_body(data))
    assert _settle_all() == ["output already refused"]
    assert reconcile_generation(generation.pk) == "nothing to reconcile (failed)"
    assert Generation.objects.get(pk=generation.pk).next_check_at is None
    assert ledger.check() == []


@pytest.fixture
def output_host():
    """A loopback server standing in for Replicate's output host."""
    with running_payload_server() as server:
        yield server


def _replicate_delivery(client, prediction: dict) -> int:
    body = json.dumps(prediction).encode()
    response = client.post(
        "/webhooks/providers/replicate/",
        data=body,
        content_type="application/json",
        **replicate_headers(body, f"msg_{uuid.uuid4().hex}", REPLICATE_SECRET),
    )
    assert response.status_code == 200
    return response.json()["id"]


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (mp4_bytes(2, 320), Status.SUCCEEDED, ""),
        (
            mp4_bytes(2, 320)[:-500],
            Status.FAILED,
            "The provider sent a damaged file that cannot be played or shown.",
        ),
    ],
    ids=["whole", "truncated"],
)
def test_replicate_video_output_maps_like_babysea(
    alice, fund, settings, client, output_host, body, status, message
):
    """Replicate's ``output`` is one URL for video models: the same ingest, poster and refusal."""
    settings.REPLICATE_API_TOKEN = "r8_test"
    settings.REPLICATE_WEBHOOK_SECRET = REPLICATE_SECRET
    settings.REPLICATE_OUTPUT_HOSTS = ["127.0.0.1"]
    fund(alice, 20)
    generation = Generation.objects.create(
        user=alice,
        model_key="sdxl-replicate",
        kind="video",
        prompt="a replicate clip",
        cost=8,
        provider="replicate",
        status=Status.DISPATCHED,
        provider_job_id="pred-video",
        hold_ttl_seconds=60,
    )
    hold = ledger.hold(alice.pk, generation.hold_reference, 8, ttl=timedelta(minutes=5))
    assert hold.status == "held"
    url = output_host.serve("/pbxt/out.mp4", body, headers={"Content-Type": "video/mp4"})
    _replicate_delivery(client, {"id": "pred-video", "status": "succeeded", "output": url})
    _settle_all()
    generation.refresh_from_db()
    assert generation.status == status
    assets = media.assets_for_generation(generation.pk)
    if status == Status.SUCCEEDED:
        [asset] = assets
        assert (asset.content_type, asset.duration_ms, asset.width) == ("video/mp4", 2000, 320)
        assert asset.thumbnail_url is not None
        assert ledger.balance(alice.pk).available == 12
    else:
        assert assets == []
        assert generation.error_message.startswith(message)
        assert ledger.balance(alice.pk).available == 20
    assert ledger.check() == []
