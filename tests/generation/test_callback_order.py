"""A failure reported after a success must not overtake that success's settle."""

import pytest

from generation.models import ProviderCallback, Status
from generation.services.callbacks import settle_callback
from ledger import api as ledger
from media_store import api as media
from tests.generation.flow import callback_body, deliver, finished_job, start, submit

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("generation_settings"),
]


def test_a_failure_settled_before_the_earlier_success_changes_nothing(alice, fund, local_provider):
    """Two workers: the failure's task runs while the success's is still downloading."""
    fund(alice, 30)
    generation = start(submit(alice))
    data = finished_job(local_provider, generation)
    deliver(callback_body(data))
    deliver(callback_body(data, status="failed"))
    success, failure = ProviderCallback.objects.order_by("pk").values_list("pk", flat=True)
    assert settle_callback(failure) == "failed ignored: the provider reported success first"
    assert settle_callback(success) == "captured"
    generation.refresh_from_db()
    assert generation.status == Status.SUCCEEDED
    assert ledger.hold_status(generation.hold_reference) == "captured"
    assert "failed" not in generation.events.values_list("name", flat=True)
    assert len(media.assets_for_generation(generation.pk)) == 1
    assert ledger.balance(alice.pk).available == 25
    assert ledger.check() == []
