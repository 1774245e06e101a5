"""The generation lifecycle against the real ledger, media store and local provider over HTTP.

Callbacks are signed here as BabySea signs them and posted to the real endpoint; the settle step
is then run the way a worker runs it. Every test ends with exact balances and a clean
``ledger.check()``.
"""

import json
from datetime import timedelta

import pytest

from generation.exceptions import NotCancelable
from generation.models import Generation, ProviderCallback, Status
from generation.services.cancellation import cancel_generation
from generation.services.dispatch import start_generation
from generation.services.reconcile import reconcile_generation, redrive
from generation.services.settlement import retry_unpaid_capture
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


def assert_ledger(user, *, available: int, held: int = 0) -> None:
    balance = ledger.balance(user.pk)
    assert (balance.available, balance.held) == (available, held)
    assert ledger.check() == []


def test_success_stores_each_output_once_and_charges_the_cost(alice, fund, local_provider):
    """Duplicate deliveries (same id and new ids) settle once: one asset per output, one charge."""
    fund(alice, 100)
    generation = start(submit(alice, params={"outputs": "2"}))
    assert generation.status == Status.DISPATCHED
    assert generation.cost == 10
    assert_ledger(alice, available=90, held=10)
    data = finished_job(local_provider, generation)
    body = callback_body(data, delivery_id="whd_same")
    assert deliver(body).status_code == 200
    assert deliver(body).json()["status"] == "duplicate"
    assert deliver(callback_body(data)).status_code == 200
    assert ProviderCallback.objects.filter(generation=generation).count() == 2
    settle_pending_callbacks()
    generation.refresh_from_db()
    assert generation.status == Status.SUCCEEDED
    assert generation.progress == 100
    assets = media.assets_for_generation(generation.pk)
    assert [a.index for a in assets] == [0, 1]
    assert all(a.content_type == "image/png" and a.width for a in assets)
    assert ledger.hold_status(generation.hold_reference) == "captured"
    assert_ledger(alice, available=90)
    names = list(generation.events.values_list("name", flat=True))
    assert names == ["queued", "reserved", "dispatched", "succeeded"]


def test_failure_releases_the_hold(alice, fund, local_provider):
    """A failure callback fails the generation with a message for the user and returns credits."""
    fund(alice, 20)
    generation = start(submit(alice, faults={"fail": True}))
    deliver(callback_body(finished_job(local_provider, generation)))
    settle_pending_callbacks()
    generation.refresh_from_db()
    assert generation.status == Status.FAILED
    assert generation.error_message.endswith("Your credits were returned.")
    assert "BSE3001" in generation.error_detail
    assert ledger.hold_status(generation.hold_reference) == "released"
    assert media.assets_for_generation(generation.pk) == []
    assert_ledger(alice, available=20)


def test_insufficient_credits_reject_without_a_hold(alice, fund):
    """With less than the cost available, start rejects and the ledger records nothing."""
    fund(alice, 3)
    generation = start(submit(alice))
    assert generation.status == Status.REJECTED
    assert "5 credits and 3 are available" in generation.error_message
    assert ledger.hold_status(generation.hold_reference) is None
    assert_ledger(alice, available=3)


def test_cancel_then_late_success_charges_nothing_and_discards_output(alice, fund, local_provider):
    """After a cancel the credits come back at once; a success arriving later stays canceled."""
    fund(alice, 50)
    generation = start(submit(alice, faults={"delay_ms": 400}))
    cancel_generation(alice, generation.pk)
    generation.refresh_from_db()
    assert generation.status == Status.CANCELED
    assert generation.pending_action is None
    assert_ledger(alice, available=50)
    data = finished_job(local_provider, generation)
    assert data["generation_status"] == "succeeded"  # the provider was not told in this test
    deliver(callback_body(data))
    assert settle_pending_callbacks() == ["discarded: canceled"]
    generation.refresh_from_db()
    assert generation.status == Status.CANCELED
    assert generation.events.filter(name="late_output_discarded").count() == 1
    assert media.assets_for_generation(generation.pk) == []
    assert ledger.hold_status(generation.hold_reference) == "released"
    assert_ledger(alice, available=50)
    with pytest.raises(NotCancelable):
        cancel_generation(alice, generation.pk)


def test_failure_after_success_keeps_the_success(alice, fund, local_provider):
    """A failure reported after the success changes nothing: still one charge, one asset."""
    fund(alice, 30)
    generation = start(submit(alice))
    data = finished_job(local_provider, generation)
    deliver(callback_body(data))
    deliver(callback_body(data, status="failed"))
    settle_pending_callbacks()
    generation.refresh_from_db()
    assert generation.status == Status.SUCCEEDED
    assert len(media.assets_for_generation(generation.pk)) == 1
    assert_ledger(alice, available=25)


def test_success_after_failure_is_charged_late(alice, fund, local_provider):
    """A success arriving after a failure was settled is captured late, exactly once."""
    fund(alice, 30)
    generation = start(submit(alice))
    data = finished_job(local_provider, generation)
    deliver(callback_body(data, status="failed"))
    settle_pending_callbacks()
    generation.refresh_from_db()
    assert generation.status == Status.FAILED
    assert_ledger(alice, available=30)
    deliver(callback_body(data))
    deliver(callback_body(data))
    settle_pending_callbacks()
    generation.refresh_from_db()
    assert generation.status == Status.SUCCEEDED
    assert generation.events.filter(name="late_charged").count() == 1
    assert len(media.assets_for_generation(generation.pk)) == 1
    assert_ledger(alice, available=25)


def _expire_hold(generation: Generation) -> None:
    """Let the hold lapse and run the ledger's sweeper, as beat would."""
    wait_until(
        lambda: (
            ledger.expire_due() >= 0 and ledger.hold_status(generation.hold_reference) == "expired"
        ),
        timeout=10,
        what="the hold to expire",
    )


def test_expiry_then_late_success_goes_unpaid_then_is_collected_after_a_top_up(
    alice, fund, local_provider
):
    """Hold expired, provider silent: expired; the late success is unpaid until credits arrive."""
    fund(alice, 5)
    generation = submit(alice, faults={"vanish_ms": 2500, "delay_ms": 100})
    Generation.objects.filter(pk=generation.pk).update(hold_ttl_seconds=1)
    generation = start(generation)
    _expire_hold(generation)
    assert reconcile_generation(generation.pk) == "expired"
    generation.refresh_from_db()
    assert generation.status == Status.EXPIRED
    assert_ledger(alice, available=5)
    other = start(submit(alice, faults={"delay_ms": 5000}))  # spends the returned credits
    assert other.status == Status.DISPATCHED
    data = finished_job(local_provider, generation)
    deliver(callback_body(data))
    settle_pending_callbacks()
    generation.refresh_from_db()
    assert generation.status == Status.UNPAID
    assert "withheld" in generation.error_message
    assert ledger.hold_status(generation.hold_reference) == "unpaid"
    assert_ledger(alice, available=0, held=5)
    assert retry_unpaid_capture(generation) == "still unpaid"
    fund(alice, 5)
    from generation import api

    assert api.collect_unpaid(alice.pk) == 1
    generation.refresh_from_db()
    assert generation.status == Status.SUCCEEDED
    assert len(media.assets_for_generation(generation.pk)) == 1
    assert ledger.hold_status(generation.hold_reference) == "late_charged"
    assert_ledger(alice, available=0, held=5)
    cancel_generation(alice, other.pk)
    assert_ledger(alice, available=5)


def test_expiry_then_late_success_with_credit_is_late_charged(alice, fund, local_provider):
    """When the balance covers it, a success after expiry is charged late and succeeds."""
    fund(alice, 40)
    generation = submit(alice, faults={"vanish_ms": 2500, "delay_ms": 100})
    Generation.objects.filter(pk=generation.pk).update(hold_ttl_seconds=1)
    generation = start(generation)
    _expire_hold(generation)
    reconcile_generation(generation.pk)
    generation.refresh_from_db()
    assert generation.status == Status.EXPIRED
    deliver(callback_body(finished_job(local_provider, generation)))
    settle_pending_callbacks()
    generation.refresh_from_db()
    assert generation.status == Status.SUCCEEDED
    assert_ledger(alice, available=35)


def test_output_gone_fails_and_releases(alice, fund, local_provider):
    """A success whose output URL answers 404 is a failure: nothing stored, credits returned."""
    fund(alice, 10)
    generation = start(submit(alice, faults={"output_404": True}))
    deliver(callback_body(finished_job(local_provider, generation)))
    settle_pending_callbacks()
    generation.refresh_from_db()
    assert generation.status == Status.FAILED
    assert "ingest refused" in generation.error_detail
    assert_ledger(alice, available=10)


def test_lost_callback_is_settled_by_reconcile(alice, fund, local_provider):
    """With no callback at all, polling the provider settles the generation."""
    fund(alice, 10)
    generation = start(submit(alice))
    finished_job(local_provider, generation)
    assert reconcile_generation(generation.pk) == "captured"
    generation.refresh_from_db()
    assert generation.status == Status.SUCCEEDED
    assert reconcile_generation(generation.pk).startswith("nothing to reconcile")
    assert_ledger(alice, available=5)


def test_reconcile_of_a_running_job_extends_the_hold(alice, fund, local_provider):
    """While the provider reports running, reconcile moves to processing and extends the hold."""
    fund(alice, 10)
    generation = start(submit(alice, faults={"delay_ms": 3000}))
    assert reconcile_generation(generation.pk) == "running (hold extended)"
    generation.refresh_from_db()
    assert generation.status == Status.PROCESSING
    assert ledger.hold_status(generation.hold_reference) == "pending"
    assert_ledger(alice, available=5, held=5)
    cancel_generation(alice, generation.pk)
    assert_ledger(alice, available=10)


def test_crashed_job_is_failed_and_released_at_reconcile(alice, fund, local_provider):
    """A job the provider lost (crash mid-job) fails at reconcile while the hold is live."""
    fund(alice, 10)
    generation = start(submit(alice, faults={"crash": True, "delay_ms": 200}))
    wait_until(
        lambda: local_provider.content(generation.provider_job_id).status_code == 404,
        what="the job to vanish",
    )
    reconcile_generation(generation.pk)
    generation.refresh_from_db()
    assert generation.status == Status.FAILED
    assert_ledger(alice, available=10)


def test_dispatch_refused_fails_and_releases(alice, fund):
    """A permanent refusal by the provider fails the generation and returns the credits."""
    fund(alice, 10)
    generation = start(submit(alice, provider_options={"generation_prompt": ""}))
    assert generation.status == Status.FAILED
    assert "refused" in generation.error_message
    assert generation.pending_action is None
    assert_ledger(alice, available=10)


def test_start_is_idempotent(alice, fund):
    """Running start twice holds once and dispatches once (the provider replays the key)."""
    fund(alice, 10)
    generation = start(submit(alice, faults={"delay_ms": 3000}))
    job_id = generation.provider_job_id
    assert start_generation(generation.pk) == "nothing to start (dispatched)"
    Generation.objects.filter(pk=generation.pk).update(status=Status.RESERVED)
    assert start_generation(generation.pk) == "dispatched"
    generation.refresh_from_db()
    assert generation.provider_job_id == job_id
    assert_ledger(alice, available=5, held=5)
    cancel_generation(alice, generation.pk)


def test_rate_limit_refuses_with_a_clear_message_and_stores_nothing(
    alice, alice_client, fund, settings
):
    """Past the per-user limit the form answers 400 with the reason and no row is written.

    The limit applies in the view: a preview is not counted, nor is a form resubmitted with its
    one-time key (a double click), which opens the first generation.
    """
    settings.GENERATION_RATE_LIMIT_COUNT = 2
    fund(alice, 100)
    form = {"model": "flux-schnell", "prompt": "a quiet harbour at dawn"}

    def submit_form(key: str):
        return alice_client.post("/generations/new/", {**form, "submission_key": key})

    first, again = submit_form("k" * 20), submit_form("k" * 20)
    second, third = submit_form("m" * 20), submit_form("n" * 20)
    preview = alice_client.post("/generations/new/", {**form, "preview": "1"})

    assert [a.status_code for a in (first, again, second, third)] == [302, 302, 302, 400]
    assert again["Location"] == first["Location"]
    assert b"You can start 2 generations every 60 seconds" in third.content
    assert preview.status_code == 200
    assert Generation.objects.filter(user=alice).count() == 2


def test_redrive_enqueues_past_deadlines_and_alerts_at_the_cap(alice, fund, settings, caplog):
    """Rows past their deadline are re-driven with capped attempts; the cap alerts operators."""
    fund(alice, 10)
    generation = submit(alice)
    now = generation.created_at + timedelta(hours=1)
    assert redrive(now)["start"] == 1
    assert redrive(now)["start"] == 0  # the deadline moved: no double enqueue
    Generation.objects.filter(pk=generation.pk).update(
        redrive_attempts=settings.GENERATION_REDRIVE_MAX_ATTEMPTS, next_check_at=now
    )
    with caplog.at_level("ERROR", logger="ops"):
        assert redrive(now)["alerted"] == 1
    assert "Generation stuck" in caplog.text
    generation.refresh_from_db()
    assert generation.next_check_at is None
    assert json.dumps(redrive(now)) == json.dumps(
        {"start": 0, "settle": 0, "reconcile": 0, "callbacks": 0, "alerted": 0}
    )
