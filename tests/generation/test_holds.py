"""A generation's hold lives as long as its job: signs of life extend it, within the model's limit.

Dispatch, progress callbacks and polls extend the hold by its TTL; a beat job extends the holds of
jobs still running; nothing extends a hold past the model's ``max_run_seconds``; and a hold that
is no longer pending starts nothing at the provider.
"""

from datetime import timedelta

import pytest
from django.utils import timezone

from generation import catalogue
from generation.models import Generation, Status
from generation.services.dispatch import start_generation
from generation.services.holds import keep_hold_alive, keep_running_holds_alive
from ledger import api as ledger
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


def expires_at(generation: Generation):
    hold = next(
        h
        for h in ledger.holds_for_account(generation.user_id)
        if h.reference == generation.hold_reference
    )
    return hold.expires_at


def test_dispatch_of_a_lapsed_hold_starts_nothing_and_returns_the_credits(alice, fund):
    """The hold lapsed between reserve and dispatch: no job at the provider, credits back."""
    fund(alice, 5)
    generation = submit(alice)
    held = ledger.hold(alice.pk, generation.hold_reference, 5, ttl=timedelta(seconds=1))
    assert held.status == "held"
    wait_until(
        lambda: (
            ledger.expire_due() >= 0 and ledger.hold_status(generation.hold_reference) == "expired"
        ),
        what="the hold to expire",
        timeout=10,
    )
    Generation.objects.filter(pk=generation.pk).update(status=Status.RESERVED)

    assert start_generation(generation.pk) == "not dispatched (hold not_pending)"

    generation.refresh_from_db()
    assert generation.status == Status.FAILED
    assert generation.provider_job_id is None
    assert generation.dispatch_attempts == 0
    assert "could not start in time" in generation.error_message
    assert generation.pending_action is None
    balance = ledger.balance(alice.pk)
    assert (balance.available, balance.held) == (5, 0)
    assert ledger.check() == []


def test_dispatch_and_polls_extend_the_hold(alice, fund):
    """Dispatch extends the hold by its TTL; a later sign of life moves it further."""
    fund(alice, 5)
    generation = submit(alice, faults={"delay_ms": 20000})
    Generation.objects.filter(pk=generation.pk).update(hold_ttl_seconds=60)
    generation = start(generation)
    assert generation.status == Status.DISPATCHED
    first = expires_at(generation)
    assert first >= timezone.now() + timedelta(seconds=55)
    Generation.objects.filter(pk=generation.pk).update(hold_ttl_seconds=600)
    generation.refresh_from_db()
    assert keep_hold_alive(generation) == "extended"
    assert expires_at(generation) >= first + timedelta(seconds=500)


def test_no_sign_of_life_extends_a_hold_past_the_models_maximum_run_time(alice, fund):
    """Near the limit the extension is cut to it; past it the hold is left to lapse."""
    fund(alice, 5)
    generation = submit(alice, faults={"delay_ms": 20000})
    Generation.objects.filter(pk=generation.pk).update(hold_ttl_seconds=5)
    generation = start(generation)
    limit = catalogue.get_model(generation.model_key).max_run_seconds
    Generation.objects.filter(pk=generation.pk).update(
        created_at=timezone.now() - timedelta(seconds=limit - 100), hold_ttl_seconds=100_000
    )
    generation.refresh_from_db()
    assert keep_hold_alive(generation) == "extended"
    deadline = generation.created_at + timedelta(seconds=limit)
    assert deadline - timedelta(seconds=2) <= expires_at(generation) <= deadline

    Generation.objects.filter(pk=generation.pk).update(
        created_at=timezone.now() - timedelta(seconds=limit + 1)
    )
    generation.refresh_from_db()
    before = expires_at(generation)
    assert keep_hold_alive(generation) == "past_max_run"
    assert expires_at(generation) == before


def test_beat_extends_the_holds_of_running_generations_only(alice, fund):
    """The beat job extends a dispatched job's hold and leaves finished ones alone."""
    fund(alice, 20)
    running = start(submit(alice, faults={"delay_ms": 20000}))
    finished = start(submit(alice, faults={"fail": True}))
    Generation.objects.filter(pk=finished.pk).update(status=Status.FAILED)
    Generation.objects.filter(pk=running.pk).update(hold_ttl_seconds=600)
    before = expires_at(running)

    counts = keep_running_holds_alive()

    assert counts == {"extended": 1}
    assert expires_at(running) >= before + timedelta(seconds=250)


def test_three_of_four_images_capture_three_quarters_and_return_the_rest(
    alice, fund, local_provider
):
    """Fewer outputs than paid for: partial capture pro rata, the timeline says so."""
    fund(alice, 100)
    generation = start(submit(alice, params={"outputs": "4"}))
    assert generation.cost == 20
    data = finished_job(local_provider, generation)
    data["generation_output_file"] = data["generation_output_file"][:3]
    assert deliver(callback_body(data)).status_code == 200
    settle_pending_callbacks()

    generation.refresh_from_db()
    assert generation.status == Status.SUCCEEDED
    assert ledger.hold_status(generation.hold_reference) == "captured"
    balance = ledger.balance(alice.pk)
    assert (balance.available, balance.held) == (85, 0)
    assert ledger.check() == []
    done = generation.events.get(name="succeeded")
    assert done.message == ("Done; 15 credits charged. 3 of 4 images arrived; 5 credits returned.")
