"""Unpaid output is withheld until paid (docs/design.md §5), then unlocks itself."""

import pytest
from django.core.management import call_command
from django.test import Client

from generation import api as generation_api
from generation.models import Generation, Status
from generation.services.cancellation import cancel_generation
from generation.services.reconcile import reconcile_generation
from ledger import api as ledger
from media_store import api as media
from tests.e2e.helpers import wait_until
from tests.generation.flow import (
    callback_body,
    deliver,
    finished_job,
    settle_pending_callbacks,
    start,
    submit,
)

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("generation_settings"),
]


def withhold_output(alice, fund, local_provider) -> tuple[Generation, Generation]:
    """Return a generation that succeeded unpaid (its output withheld), and the running one that
    spent the credits its expired hold returned (cancel it at the end of the test)."""
    fund(alice, 5)
    generation = submit(alice, faults={"vanish_ms": 2500, "delay_ms": 100})
    Generation.objects.filter(pk=generation.pk).update(hold_ttl_seconds=1)
    generation = start(generation)
    wait_until(
        lambda: (
            ledger.expire_due() >= 0 and ledger.hold_status(generation.hold_reference) == "expired"
        ),
        timeout=10,
        what="the hold to expire",
    )
    assert reconcile_generation(generation.pk) == "expired"
    other = start(submit(alice, faults={"delay_ms": 5000}))  # spends the returned credits
    deliver(callback_body(finished_job(local_provider, generation)))
    settle_pending_callbacks()
    generation.refresh_from_db()
    assert generation.status == Status.UNPAID
    return generation, other


def test_unpaid_output_is_withheld_from_its_owner_until_a_top_up_pays_it(
    alice, bob, fund, local_provider
):
    """Late success with no balance: status unpaid and the media URL refuses; paid: it serves."""
    generation, other = withhold_output(alice, fund, local_provider)
    [asset] = media.assets_for_generation(generation.pk)
    assert asset.withheld
    owner, stranger = Client(), Client()
    owner.force_login(alice)
    stranger.force_login(bob)
    assert owner.get(asset.url).status_code == 402
    assert stranger.get(asset.url).status_code == 404
    assert owner.get(f"/generations/{generation.pk}/").context["outputs"] == []

    fund(alice, 5)
    assert generation_api.collect_unpaid(alice.pk) == 1
    [asset] = media.assets_for_generation(generation.pk)
    assert not asset.withheld
    assert owner.get(asset.url).status_code == 302
    assert stranger.get(asset.url).status_code == 404
    cancel_generation(alice, other.pk)


def test_an_admin_adjustment_unlocks_withheld_output_at_once(
    alice, fund, local_provider, staff_client, request
):
    """The ledger announces the committed adjustment; generation collects without a re-drive."""
    generation, other = withhold_output(alice, fund, local_provider)
    request.getfixturevalue("eager_celery")  # from here on a queued task runs at once
    url = f"/admin/ledger/account/{alice.pk}/adjust/"
    assert staff_client.get(url).status_code == 200  # the form fixes its key when rendered

    staff_client.post(url, {"delta": 5, "reason": "goodwill"})

    generation.refresh_from_db()
    assert generation.status == Status.SUCCEEDED
    [asset] = media.assets_for_generation(generation.pk)
    assert not asset.withheld
    cancel_generation(alice, other.pk)


def test_ledger_adjust_command_unlocks_withheld_output_at_once(
    alice, fund, local_provider, request
):
    generation, other = withhold_output(alice, fund, local_provider)
    request.getfixturevalue("eager_celery")

    call_command("ledger", "adjust", email=alice.email, delta=5, reason="support goodwill")

    generation.refresh_from_db()
    assert generation.status == Status.SUCCEEDED
    [asset] = media.assets_for_generation(generation.pk)
    assert not asset.withheld
    cancel_generation(alice, other.pk)
