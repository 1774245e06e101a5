"""The provider callback endpoint: verified on the raw bytes, stored once, nothing else trusted."""

import base64
import json
import time
import uuid

import pytest

from generation.models import Generation, ProviderCallback, Status
from generation.services.callbacks import settle_callback
from tests.generation.flow import CALLBACK_URL, callback_body, deliver, replicate_headers

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("generation_settings"),
]
REPLICATE_SECRET = "whsec_" + base64.b64encode(b"replicate-test-secret-0123456789").decode()


def _job_record(job_id: str, status: str = "succeeded") -> dict:
    return {
        "generation_id": job_id,
        "generation_status": status,
        "generation_output_file": ["http://127.0.0.1:9/files/x/0.png"],
    }


def test_forged_signature_is_refused_and_nothing_is_stored(client):
    """A body signed with another secret gets 401 and leaves no row."""
    body = callback_body(_job_record("job-1"))
    response = deliver(body, secret="whsec_not_ours", client=client)
    assert response.status_code == 401
    assert not ProviderCallback.objects.exists()


def test_stale_signature_is_refused(client):
    """A correctly signed body older than the five-minute tolerance gets 401."""
    body = callback_body(_job_record("job-1"))
    response = deliver(body, timestamp=int(time.time()) - 600, client=client)
    assert response.status_code == 401
    assert not ProviderCallback.objects.exists()


def test_altered_body_is_refused(client):
    """Changing one byte after signing breaks the signature."""
    from tests.e2e.helpers import babysea_header
    from tests.generation.conftest import SECRET

    body = callback_body(_job_record("job-1"))
    header = babysea_header(body, SECRET)
    tampered = body.replace(b"succeeded", b"failed\x20\x20\x20")
    response = client.post(
        CALLBACK_URL,
        data=tampered,
        content_type="application/json",
        HTTP_X_BABYSEA_SIGNATURE=header,
    )
    assert response.status_code == 401


def test_oversized_body_is_refused(client, settings):
    """A body over the limit gets 413 before any parsing."""
    settings.WEBHOOK_MAX_BYTES = 2048
    body = json.dumps({"padding": "x" * 4096}).encode()
    response = deliver(body, client=client)
    assert response.status_code == 413


def test_same_delivery_is_stored_once(client):
    """A redelivery with the same delivery id is acknowledged and not stored again."""
    body = callback_body(_job_record("job-1"), delivery_id="whd_1")
    first = deliver(body, client=client)
    second = deliver(body, client=client)
    assert (first.status_code, second.status_code) == (200, 200)
    assert second.json()["status"] == "duplicate"
    assert ProviderCallback.objects.count() == 1


def test_test_events_are_acknowledged_and_ignored(client):
    """BabySea's webhook.test needs a 2xx but settles nothing."""
    body = json.dumps(
        {
            "webhook_event": "credits.low_balance",
            "webhook_delivery_id": "whd_t",
            "webhook_timestamp": "x",
            "webhook_data": {"current_balance": 1},
        }
    ).encode()
    response = deliver(body, client=client)
    assert response.status_code == 200
    assert response.json()["status"] == "ignored"
    assert not ProviderCallback.objects.exists()


def test_unknown_provider_and_get_are_refused(client):
    """Only known providers and POST are accepted."""
    assert (
        client.post(
            "/webhooks/providers/nobody/", data=b"{}", content_type="application/json"
        ).status_code
        == 404
    )
    assert client.get(CALLBACK_URL).status_code == 405


def test_malformed_but_signed_body_is_a_bad_request(client):
    """A validly signed body that is not a BabySea payload gets 400."""
    assert deliver(b'{"hello": 1}', client=client).status_code == 400


def _progress_body(progress: str) -> bytes:
    """A signed-to-be started event whose generation_progress is the literal JSON ``progress``."""
    record = {"generation_id": "job-progress", "generation_status": "processing"}
    body = callback_body(record)
    assert body.endswith(b"}}")
    return body[:-2] + b', "generation_progress": ' + progress.encode() + b"}}"


@pytest.mark.parametrize(
    "progress", ["Infinity", "-Infinity", "NaN", "1e999", "101", "-1", '"50"', "true"]
)
def test_signed_progress_that_is_not_a_percentage_is_a_bad_request(client, progress):
    """Non-finite or out-of-range progress in a signed callback is refused with 400 (was 500)."""
    response = deliver(_progress_body(progress), client=client)
    assert response.status_code == 400
    assert not ProviderCallback.objects.exists()


def test_signed_progress_in_range_is_accepted(client):
    assert deliver(_progress_body("42.5"), client=client).status_code == 200
    assert ProviderCallback.objects.get().report["progress"] == 42


def test_replicate_body_holding_infinity_is_a_bad_request(client, settings):
    """A signed Replicate body with a bare Infinity is refused before it reaches jsonb."""
    settings.REPLICATE_WEBHOOK_SECRET = REPLICATE_SECRET
    body = b'{"id": "pred-x", "status": "processing", "metrics": {"predict_time": Infinity}}'
    response = client.post(
        "/webhooks/providers/replicate/",
        data=body,
        content_type="application/json",
        **replicate_headers(body, f"msg_{uuid.uuid4().hex}", REPLICATE_SECRET),
    )
    assert response.status_code == 400
    assert not ProviderCallback.objects.exists()


def test_replayed_body_against_another_generation_changes_nothing(client, alice, settings):
    """A real signed body posted to another generation's URL still applies only to its own job."""
    settings.REPLICATE_API_TOKEN = "r8_test"
    settings.REPLICATE_WEBHOOK_SECRET = REPLICATE_SECRET
    common = {
        "user": alice,
        "model_key": "sdxl-replicate",
        "kind": "image",
        "prompt": "p",
        "cost": 8,
        "provider": "replicate",
        "hold_ttl_seconds": 60,
    }
    owner = Generation.objects.create(**common, status=Status.DISPATCHED, provider_job_id="pred-a")
    victim = Generation.objects.create(**common, status=Status.DISPATCHED, provider_job_id="pred-b")
    body = json.dumps({"id": "pred-a", "status": "failed", "error": "boom"}).encode()
    response = client.post(
        f"/webhooks/providers/replicate/?generation={victim.pk}",
        data=body,
        content_type="application/json",
        **replicate_headers(body, f"msg_{uuid.uuid4().hex}", REPLICATE_SECRET),
    )
    assert response.status_code == 200
    callback = ProviderCallback.objects.get()
    assert callback.generation_id == owner.pk
    assert settle_callback(callback.pk) == "failed"
    victim.refresh_from_db()
    owner.refresh_from_db()
    assert victim.status == Status.DISPATCHED
    assert owner.status == Status.FAILED


def test_replicate_signature_with_the_wrong_secret_is_refused(client, settings):
    """Standard Webhooks verification rejects a signature made with another key."""
    settings.REPLICATE_WEBHOOK_SECRET = REPLICATE_SECRET
    other = "whsec_" + base64.b64encode(b"another-secret-another-secret-xx").decode()
    body = json.dumps({"id": "pred-a", "status": "succeeded"}).encode()
    response = client.post(
        "/webhooks/providers/replicate/",
        data=body,
        content_type="application/json",
        **replicate_headers(body, "msg_1", secret=other),
    )
    assert response.status_code == 401
    assert not ProviderCallback.objects.exists()


def _at_provider(alice, status: str, job_id: str) -> Generation:
    return Generation.objects.create(
        user=alice,
        model_key="flux-schnell",
        kind="image",
        prompt="p",
        cost=5,
        provider="babysea",
        status=status,
        provider_job_id=job_id,
        progress=10,
        hold_ttl_seconds=60,
    )


def test_progress_for_a_job_at_the_provider_is_applied_at_receipt(client, alice):
    """Progress moves no credits: the endpoint applies it in the insert's commit, no task needed."""
    generation = _at_provider(alice, Status.DISPATCHED, "job-live")
    body = callback_body({"generation_id": "job-live", "generation_status": "processing"})
    body = body[:-2] + b', "generation_progress": 40}}'
    assert deliver(body, client=client).status_code == 200
    generation.refresh_from_db()
    assert (generation.status, generation.progress) == (Status.PROCESSING, 40)
    callback = ProviderCallback.objects.get()
    assert callback.processed_at is not None
    assert (callback.outcome, callback.generation_id) == ("progress", generation.pk)
    assert settle_callback(callback.pk) == "already processed"
    # A repeat of the same delivery changes nothing and is reported as a duplicate.
    assert deliver(body, client=client).json()["status"] == "duplicate"
    assert list(generation.events.values_list("name", flat=True)) == ["processing"]


@pytest.mark.parametrize(
    ("status", "processed"), [(Status.RESERVED, False), (Status.SUCCEEDED, True)]
)
def test_progress_before_dispatch_waits_for_the_task_and_after_the_end_is_ignored(
    client, alice, status, processed
):
    """Before the dispatch commits the settle task retries it; after the end it is a no-op."""
    generation = _at_provider(alice, status, "job-edge")
    body = callback_body({"generation_id": "job-edge", "generation_status": "processing"})
    assert deliver(body, client=client).status_code == 200
    callback = ProviderCallback.objects.get()
    assert (callback.processed_at is not None) == processed
    generation.refresh_from_db()
    assert generation.status == status
