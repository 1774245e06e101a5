"""A Replicate start is sent once: a duplicated or re-driven start cannot create two predictions.

Replicate has no idempotency key. The attempt is claimed before the POST (one worker sends it), a
re-driven start whose answer was lost finds its prediction among the account's recent ones, and
a prediction started for a generation that has another one is canceled and recorded. Replicate
is played at the network boundary by an httpx transport with its recorded request shapes.
"""

import base64
import json
import uuid
from datetime import UTC, datetime

import httpx
import pytest

from generation import providers
from generation.models import Generation, ProviderCallback, Status
from generation.providers.replicate import ReplicateProvider
from generation.services.callbacks import settle_callback
from generation.services.dispatch import dispatch_generation, start_generation
from tests.generation.flow import replicate_headers, submit

pytestmark = [pytest.mark.django_db(transaction=True)]
SECRET = "whsec_" + base64.b64encode(b"replicate-dispatch-secret-012345").decode()


class FakeReplicate:
    """Replicate's predictions API: create (either endpoint), list newest first, cancel."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self.predictions: list[dict] = []
        self.lose_next_answer = False
        self.during_create = None

    def posts(self) -> list[httpx.Request]:
        return [r for r in self.requests if r.method == "POST" and "cancel" not in r.url.path]

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        path = request.url.path
        if request.method == "POST" and path.endswith("/cancel"):
            return httpx.Response(200, json={"id": path.split("/")[-2], "status": "canceled"})
        if request.method == "POST" and path.endswith("/predictions"):
            body = json.loads(request.content)
            prediction = {
                "id": f"pred{len(self.predictions)}",
                "model": "stability-ai/sdxl",
                "version": body.get("version"),
                "input": body["input"],
                "status": "starting",
                "source": "api",
                "created_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
                "urls": {"get": "https://api.replicate.com/v1/predictions/x"},
            }
            self.predictions.insert(0, prediction)
            if self.during_create:
                hook, self.during_create = self.during_create, None
                hook()
            if self.lose_next_answer:
                self.lose_next_answer = False
                raise httpx.ReadTimeout("the answer was lost", request=request)
            return httpx.Response(201, json=prediction)
        if request.method == "GET" and path == "/v1/predictions":
            return httpx.Response(
                200, json={"previous": None, "next": None, "results": self.predictions}
            )
        return httpx.Response(404, json={"detail": "Not found."})


@pytest.fixture
def replicate(settings, monkeypatch, fund, alice):
    settings.REPLICATE_API_TOKEN = "r8_test_token"
    settings.REPLICATE_API_BASE_URL = "https://api.replicate.com/v1"
    settings.REPLICATE_WEBHOOK_SECRET = SECRET
    settings.SITE_URL = "https://app.example.com"
    settings.GENERATION_RATE_LIMIT_COUNT = 100
    fake = FakeReplicate()
    provider = ReplicateProvider(transport=httpx.MockTransport(fake))
    monkeypatch.setitem(providers._instances, "replicate", provider)
    fund(alice, 40)
    return fake


def test_a_start_whose_answer_was_lost_finds_its_prediction_on_redrive(replicate, alice):
    """The POST created a prediction but its answer never came: the re-drive binds that one."""
    generation = submit(alice, model_key="sdxl-replicate")
    replicate.lose_next_answer = True
    assert start_generation(generation.pk) == "uncertain"

    assert start_generation(generation.pk) == "dispatched (found the attempted job)"

    generation.refresh_from_db()
    assert len(replicate.posts()) == 1
    assert generation.status == Status.DISPATCHED
    assert generation.provider_job_id == "pred0"
    assert any(r.method == "GET" and r.url.path == "/v1/predictions" for r in replicate.requests)


def test_two_workers_starting_one_generation_post_once(replicate, alice):
    """A second start arriving while the first POST is in flight sends nothing."""
    generation = submit(alice, model_key="sdxl-replicate")
    stale = Generation.objects.get(pk=generation.pk)  # read before any attempt was recorded
    outcomes = []
    replicate.during_create = lambda: outcomes.append(dispatch_generation(stale))

    assert start_generation(generation.pk) == "dispatched"

    assert outcomes == ["not claimed (queued)"]
    assert len(replicate.posts()) == 1
    generation.refresh_from_db()
    assert generation.dispatch_attempts == 1


def test_a_second_prediction_for_a_generation_is_canceled_and_recorded(replicate, alice, client):
    """A prediction calling back for a generation that has another one is an orphan: stop it."""
    generation = submit(alice, model_key="sdxl-replicate")
    assert start_generation(generation.pk) == "dispatched"
    body = json.dumps({"id": "pred-orphan", "status": "processing"}).encode()
    response = client.post(
        f"/webhooks/providers/replicate/?generation={generation.pk}",
        data=body,
        content_type="application/json",
        **replicate_headers(body, f"msg_{uuid.uuid4().hex}", SECRET),
    )
    assert response.status_code == 200
    callback = ProviderCallback.objects.get(provider_job_id="pred-orphan")

    assert settle_callback(callback.pk) == "orphan canceled"

    cancels = [r.url.path for r in replicate.requests if r.url.path.endswith("/cancel")]
    assert cancels == ["/v1/predictions/pred-orphan/cancel"]
    callback.refresh_from_db()
    assert callback.processed_at is not None
    assert "orphan" in callback.outcome
    generation.refresh_from_db()
    assert (generation.status, generation.provider_job_id) == (Status.DISPATCHED, "pred0")
