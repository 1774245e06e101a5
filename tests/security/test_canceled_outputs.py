"""A canceled generation keeps no outputs, even ones stored by a settle that was killed.

Found by bench/chaos.py: a worker SIGKILLed mid-ingest had stored output 0 of 2; the user then
canceled (credits returned), and the redelivered settle saw "canceled" and returned without
discarding, so a free partial output stayed attached to the canceled generation.
"""

from __future__ import annotations

import pytest

from generation.models import Generation, Status
from generation.providers.base import JobReport, JobState
from generation.services.settlement import settle_success
from media_store import api as media
from media_store.models import Asset

pytestmark = pytest.mark.django_db(transaction=True)


def test_settle_after_cancel_discards_outputs_stored_before_the_cancel(world):
    """The late success finds one stored output of a canceled generation and deletes it."""
    Generation.objects.filter(pk=world.generation.pk).update(status=Status.CANCELED)
    assert Asset.objects.filter(generation_id=world.generation.pk).count() == 1
    generation = Generation.objects.get(pk=world.generation.pk)
    report = JobReport(state=JobState.SUCCEEDED, output_urls=("http://127.0.0.1:9/0.png",))

    outcome = settle_success(generation, report)

    assert outcome == "discarded: canceled"
    assert media.assets_for_generation(world.generation.pk) == []
    assert settle_success(generation, report) == "discarded: canceled"
