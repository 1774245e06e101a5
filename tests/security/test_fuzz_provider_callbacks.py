"""Hostile input at the provider callbacks: never a 500, never a change without a signature."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from generation.models import Generation, ProviderCallback, Status
from tests.e2e.helpers import babysea_header
from tests.security.conftest import csrf_client
from tests.security.fuzz import FUZZ, json_values, raw_bodies, signature_headers

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("no_limits")]
SECRET = "whsec_fuzz_provider_" + "c" * 16


@pytest.fixture
def provider_secret(settings):
    from generation.providers import reset_providers

    settings.PROVIDER_WEBHOOK_SECRET = SECRET
    settings.REPLICATE_WEBHOOK_SECRET = "whsec_cmVwbGljYXRlLWZ1enotc2VjcmV0LTAxMjM0NTY3"
    reset_providers()
    yield settings
    reset_providers()


@pytest.fixture
def dispatched(world):
    """Alice's generation, dispatched to the provider as job ``job-fuzz``."""
    Generation.objects.filter(pk=world.generation.pk).update(
        status=Status.DISPATCHED, provider_job_id="job-fuzz"
    )
    return world.generation


def completed(job_id: str = "job-fuzz", delivery: str = "whd_fuzz") -> bytes:
    return json.dumps(
        {
            "webhook_event": "generation.completed",
            "webhook_timestamp": "2026-01-01T00:00:00Z",
            "webhook_delivery_id": delivery,
            "webhook_data": {
                "generation_id": job_id,
                "generation_status": "succeeded",
                "generation_output_file": ["http://127.0.0.1:9/files/x/0.png"],
            },
        }
    ).encode()


def post(client, path: str, body: bytes, headers: dict):
    return client.post(path, data=body, content_type="application/json", **headers)


def test_unsigned_garbage_at_every_provider_changes_nothing(provider_secret, dispatched):
    """Random bodies and signatures at babysea, replicate and unknown slugs: 4xx, no rows."""
    client = csrf_client()

    @FUZZ
    @given(
        provider=st.sampled_from(["babysea", "replicate", "local", "nope"]),
        body=raw_bodies,
        signature=signature_headers,
        webhook_id=st.none() | st.text(max_size=30),
    )
    def attempt(provider, body, signature, webhook_id):
        headers = {}
        if signature is not None:
            headers["HTTP_X_BABYSEA_SIGNATURE"] = signature
            headers["HTTP_WEBHOOK_SIGNATURE"] = signature
        if webhook_id is not None:
            headers["HTTP_WEBHOOK_ID"] = webhook_id
            headers["HTTP_WEBHOOK_TIMESTAMP"] = webhook_id
        response = post(client, f"/webhooks/providers/{provider}/", body, headers)
        assert response.status_code in (400, 401, 404, 413), response.content[:200]

    attempt()
    assert not ProviderCallback.objects.exists()
    assert Generation.objects.get(pk=dispatched.pk).status == Status.DISPATCHED


def test_the_real_callback_with_a_wrong_signature_changes_nothing(provider_secret, dispatched):
    """A completed callback for Alice's job, signed with another secret or time, gets 401."""
    client = csrf_client()
    body = completed()

    @FUZZ
    @given(
        secret=st.text(min_size=1, max_size=40).filter(lambda s: s != SECRET),
        skew=st.sampled_from([0, -301, 301, -(10**8)]),
    )
    def attempt(secret, skew):
        import time

        use = secret if skew == 0 else SECRET
        header = babysea_header(body, use, int(time.time()) + skew)
        response = post(
            client, "/webhooks/providers/babysea/", body, {"HTTP_X_BABYSEA_SIGNATURE": header}
        )
        assert response.status_code == 401

    attempt()
    assert not ProviderCallback.objects.exists()
    assert Generation.objects.get(pk=dispatched.pk).status == Status.DISPATCHED


def test_signed_but_type_confused_callbacks_never_answer_500(provider_secret, dispatched):
    """A validly signed body of any shape gets 200 or 400, never a crash."""
    client = csrf_client()

    @FUZZ
    @given(
        payload=st.fixed_dictionaries(
            {},
            optional={
                "webhook_event": st.sampled_from(["generation.completed", "generation.failed"])
                | json_values,
                "webhook_delivery_id": json_values,
                "webhook_data": st.fixed_dictionaries(
                    {},
                    optional={
                        "generation_id": json_values,
                        "generation_status": st.sampled_from(
                            ["succeeded", "failed", "processing", "canceled"]
                        )
                        | json_values,
                        "generation_output_file": json_values,
                        "generation_progress": json_values,
                        "generation_error": json_values,
                    },
                )
                | json_values,
            },
        )
        | json_values
    )
    def attempt(payload):
        body = json.dumps(payload).encode()
        response = post(
            client,
            "/webhooks/providers/babysea/",
            body,
            {"HTTP_X_BABYSEA_SIGNATURE": babysea_header(body, SECRET)},
        )
        assert response.status_code in (200, 400), response.content[:300]

    attempt()


def test_valid_callback_is_still_stored_once_after_hostile_traffic(provider_secret, dispatched):
    """After garbage, the real signed callback is accepted, and its replay is a duplicate."""
    client = csrf_client()
    for body in (b"", b"{", b"[1]", b"\xff\xfe"):
        response = post(
            client, "/webhooks/providers/babysea/", body, {"HTTP_X_BABYSEA_SIGNATURE": "t=1,v1=00"}
        )
        assert response.status_code == 401
    body = completed()
    header = {"HTTP_X_BABYSEA_SIGNATURE": babysea_header(body, SECRET)}
    first = post(client, "/webhooks/providers/babysea/", body, header)
    second = post(client, "/webhooks/providers/babysea/", body, header)
    assert first.status_code == second.status_code == 200
    assert (first.json()["status"], second.json()["status"]) == ("received", "duplicate")
    assert ProviderCallback.objects.filter(provider_job_id="job-fuzz").count() == 1


@pytest.mark.parametrize(
    "output_file",
    [1, "http://127.0.0.1:9/files/x/0.png", [1], {"\x00": None}, ["http://h/\x00.png"]],
)
def test_signed_callback_with_a_bad_output_list_is_refused_cleanly(
    provider_secret, dispatched, output_file
):
    """Hypothesis found these: a non-list output, or a NUL (which PostgreSQL cannot store),
    in a correctly signed callback is a 400 and stores nothing, not a 500."""
    body = json.dumps(
        {
            "webhook_event": "generation.completed",
            "webhook_delivery_id": "whd_bad_output",
            "webhook_data": {
                "generation_id": "job-fuzz",
                "generation_status": "succeeded",
                "generation_output_file": output_file,
            },
        }
    ).encode()
    response = post(
        csrf_client(),
        "/webhooks/providers/babysea/",
        body,
        {"HTTP_X_BABYSEA_SIGNATURE": babysea_header(body, SECRET)},
    )
    assert response.status_code == 400, response.content[:300]
    assert not ProviderCallback.objects.exists()
