"""The Replicate adapter against an httpx transport that plays Replicate's API."""

import dataclasses
import json

import httpx
import pytest

from generation import catalogue
from generation.models import Generation
from generation.providers.base import DispatchRefused, JobState, ProviderTemporaryError
from generation.providers.replicate import ReplicateProvider

pytestmark = pytest.mark.django_db


@pytest.fixture
def replicate_settings(settings):
    settings.REPLICATE_API_TOKEN = "r8_test_token"
    settings.REPLICATE_API_BASE_URL = "https://api.replicate.com/v1"
    settings.SITE_URL = "https://app.example.com"
    return settings


def _generation(alice) -> Generation:
    return Generation(
        user=alice,
        model_key="sdxl-replicate",
        kind="image",
        prompt="a red kite",
        params={"ratio": "16:9"},
        cost=8,
        provider="replicate",
        hold_ttl_seconds=60,
    )


def test_submit_posts_a_prediction_with_our_webhook_and_no_idempotency_key(
    replicate_settings, alice
):
    """Dispatch sends the model's prediction with webhook, filter and bearer token."""
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(201, json={"id": "pred-123", "status": "starting"})

    provider = ReplicateProvider(transport=httpx.MockTransport(handler))
    generation = _generation(alice)
    assert provider.submit(generation) == "pred-123"
    (request,) = seen
    # SDXL is a community model: Replicate runs it only by its pinned version.
    assert request.url.path == "/v1/predictions"
    assert request.headers["authorization"] == "Bearer r8_test_token"
    assert "idempotency-key" not in request.headers
    body = json.loads(request.content)
    assert body["version"] == catalogue.get_model("sdxl-replicate").provider_version
    assert len(body["version"]) == 64
    assert body["webhook"] == (
        f"https://app.example.com/webhooks/providers/replicate/?generation={generation.id}"
    )
    assert body["webhook_events_filter"] == ["start", "completed"]
    assert body["input"] == {"prompt": "a red kite", "width": 1344, "height": 768}


@pytest.mark.parametrize(
    ("status", "error"), [(422, DispatchRefused), (503, ProviderTemporaryError)]
)
def test_submit_sorts_refusals_from_temporary_errors(replicate_settings, alice, status, error):
    """4xx is permanent; 5xx is temporary."""
    provider = ReplicateProvider(
        transport=httpx.MockTransport(lambda r: httpx.Response(status, json={"detail": "x"}))
    )
    with pytest.raises(error):
        provider.submit(_generation(alice))


@pytest.mark.parametrize(
    ("payload", "state", "urls"),
    [
        ({"status": "processing"}, JobState.RUNNING, ()),
        (
            {"status": "succeeded", "output": ["https://replicate.delivery/a.png"]},
            JobState.SUCCEEDED,
            ("https://replicate.delivery/a.png",),
        ),
        (
            {"status": "succeeded", "output": "https://replicate.delivery/b.webp"},
            JobState.SUCCEEDED,
            ("https://replicate.delivery/b.webp",),
        ),
        ({"status": "succeeded", "output": None, "data_removed": True}, JobState.GONE, ()),
        ({"status": "failed", "error": "NSFW"}, JobState.FAILED, ()),
        ({"status": "canceled"}, JobState.CANCELED, ()),
    ],
)
def test_status_maps_predictions(replicate_settings, payload, state, urls):
    """Polling maps Replicate's statuses; a success whose files were removed is ``gone``."""
    provider = ReplicateProvider(
        transport=httpx.MockTransport(lambda r: httpx.Response(200, json={"id": "p", **payload}))
    )
    report = provider.status("p")
    assert (report.state, report.output_urls) == (state, urls)


def test_status_of_an_unknown_prediction_is_missing(replicate_settings):
    """A 404 on poll means the provider does not know the job."""
    provider = ReplicateProvider(transport=httpx.MockTransport(lambda r: httpx.Response(404)))
    assert provider.status("p").state == JobState.MISSING


def test_cancel_posts_to_the_cancel_url(replicate_settings):
    """Cancel calls POST /predictions/<id>/cancel."""
    seen = []
    provider = ReplicateProvider(
        transport=httpx.MockTransport(lambda r: seen.append(r) or httpx.Response(200, json={}))
    )
    provider.cancel("pred-9")
    assert (seen[0].method, seen[0].url.path) == ("POST", "/v1/predictions/pred-9/cancel")


def test_official_model_runs_through_the_models_endpoint_without_a_version(
    replicate_settings, alice, monkeypatch
):
    """A catalogue entry with no pinned version is an official model: models/{owner}/{name}."""
    official = dataclasses.replace(
        catalogue.get_model("sdxl-replicate"),
        provider_model="black-forest-labs/flux-schnell",
        provider_version="",
    )
    monkeypatch.setitem(catalogue.CATALOGUE, "sdxl-replicate", official)
    seen = []
    provider = ReplicateProvider(
        transport=httpx.MockTransport(
            lambda r: seen.append(r) or httpx.Response(201, json={"id": "p1", "status": "starting"})
        )
    )
    assert provider.submit(_generation(alice)) == "p1"
    assert seen[0].url.path == "/v1/models/black-forest-labs/flux-schnell/predictions"
    assert "version" not in json.loads(seen[0].content)


def test_every_shipped_replicate_model_says_how_it_runs():
    """Community models carry a 64-hex version; the catalogue names owner/name without one."""
    for spec in catalogue.CATALOGUE.values():
        if spec.provider == "replicate":
            assert ":" not in spec.provider_model
            owner, _, name = spec.provider_model.partition("/")
            assert owner and name
            if spec.provider_version:
                assert len(spec.provider_version) == 64
                int(spec.provider_version, 16)
