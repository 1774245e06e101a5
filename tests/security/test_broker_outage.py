"""A broker outage after commit: the user gets their page and providers a 200, not a 500.

Found by bench/chaos.py: with Valkey restarting, the generate view answered 500 although the
generation was committed (the start task is queued after commit). The re-drive starts such rows
from the database, so the view must answer as usual.
"""

from __future__ import annotations

import pytest

from generation.models import Generation, Status
from tests.security.conftest import csrf_client, post_babysea_completed

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def broker_down(broker_down, settings):
    """The shared outage, with the local provider on and the generate limit off."""
    from generation.providers import reset_providers

    settings.LOCAL_PROVIDER_ENABLED = True
    settings.LOCAL_PROVIDER_URL = "http://127.0.0.1:9"
    settings.PROVIDER_WEBHOOK_SECRET = "whsec_" + "s" * 32  # the provider needs one to count
    settings.GENERATION_RATE_LIMIT_COUNT = 0
    reset_providers()
    yield
    reset_providers()


def test_submit_during_a_broker_outage_answers_the_generation_page(world, broker_down, caplog):
    """302 to the stored generation, queued with a deadline for the re-drive; error logged."""
    client = csrf_client(world.bob)
    client.get("/dashboard/")
    response = client.post(
        "/generations/new/",
        {
            "model": "flux-schnell",
            "prompt": "a lighthouse during an outage",
            "csrfmiddlewaretoken": client.cookies["csrftoken"].value,
        },
    )
    assert response.status_code == 302
    generation = Generation.objects.get(user=world.bob)
    assert response["Location"] == f"/generations/{generation.pk}/"
    assert generation.status == Status.QUEUED and generation.next_check_at is not None
    assert "could not queue" in caplog.text


def test_a_callback_during_a_broker_outage_is_stored_and_acknowledged(broker_down, settings):
    """200 and stored unprocessed: the re-drive settles it; a 500 would only cause resends."""
    from generation.models import ProviderCallback
    from generation.providers import reset_providers

    settings.PROVIDER_WEBHOOK_SECRET = "whsec_outage_" + "d" * 16
    reset_providers()
    response = post_babysea_completed("whd_outage", "job-outage", settings.PROVIDER_WEBHOOK_SECRET)
    assert response.status_code == 200
    stored = ProviderCallback.objects.get(delivery_id="whd_outage")
    assert stored.processed_at is None
