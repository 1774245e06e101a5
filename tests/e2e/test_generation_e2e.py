"""Generations through real Celery workers, the local provider over HTTP and the live callback.

Each test ends with exact balances and ``ledger.check()`` empty. Recovery is driven by calling the
re-drive (what beat runs every 30 s) until the database says the work is done.
"""

import uuid

import pytest
import redis
from django.conf import settings

from generation.models import Generation, Status
from generation.services import reconcile
from generation.services.cancellation import cancel_generation
from generation.services.submission import submit_generation
from ledger import api as ledger
from media_store import api as media
from tests.e2e.helpers import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
TERMINAL = (Status.SUCCEEDED, Status.FAILED, Status.CANCELED, Status.REJECTED, Status.EXPIRED)


def funded_user(user_factory, credits: int):
    user = user_factory()
    assert ledger.grant(user.pk, credits, key=f"e2e:{uuid.uuid4()}", source="test").status == (
        "granted"
    )
    return user


def submit(user, faults=None, **params) -> Generation:
    return submit_generation(
        user,
        model_key="flux-schnell",
        prompt="a lighthouse in fog",
        params=params,
        provider_options={"local_fault": faults} if faults else None,
    )


def status_of(generation: Generation) -> str:
    return Generation.objects.values_list("status", flat=True).get(pk=generation.pk)


def settled(generation: Generation) -> bool:
    row = Generation.objects.get(pk=generation.pk)
    return row.status in (*TERMINAL, Status.UNPAID) and row.pending_action is None


def wait_settled(*generations: Generation, timeout: float = 30, redrive: bool = False):
    """Wait until every generation is terminal with no ledger work pending."""

    def done():
        if redrive:
            reconcile.redrive()
        return all(settled(g) for g in generations)

    wait_until(done, timeout=timeout, interval=0.25, what="generations to settle")


def assert_ledger(user, *, available: int, held: int = 0) -> None:
    balance = ledger.balance(user.pk)
    assert (balance.available, balance.held) == (available, held)
    assert ledger.check() == []


def test_success_with_duplicate_callbacks_settles_once(e2e, user_factory):
    """Hold, dispatch, callbacks (duplicated), ingest, capture: one asset per output, one charge."""
    e2e.worker()
    user = funded_user(user_factory, 50)
    generation = submit(user, faults={"duplicate": 3}, outputs="2")
    wait_settled(generation)
    assert status_of(generation) == Status.SUCCEEDED
    assert len(media.assets_for_generation(generation.pk)) == 2
    # The extra deliveries keep arriving after the first settled: wait for them, then recheck.
    wait_until(
        lambda: generation.callbacks.filter(processed_at__isnull=False).count() >= 4,
        what="duplicate callbacks to be processed",
    )
    assert len(media.assets_for_generation(generation.pk)) == 2
    assert ledger.hold_status(generation.hold_reference) == "captured"
    assert_ledger(user, available=40)


def test_failure_and_reordered_callbacks(e2e, user_factory):
    """Failure releases; failure-after-success stays charged; success-after-failure is late."""
    e2e.worker()
    user = funded_user(user_factory, 50)
    failed = submit(user, faults={"fail": True})
    fail_after = submit(user, faults={"fail_after_success": True})
    success_after = submit(user, faults={"success_after_failure": True})
    reordered = submit(user, faults={"reorder": True})
    wait_settled(failed, fail_after, success_after, reordered)
    wait_until(
        lambda: status_of(success_after) == Status.SUCCEEDED,
        what="the success after the failure to be charged late",
    )
    wait_settled(success_after)
    assert status_of(failed) == Status.FAILED
    assert status_of(fail_after) == Status.SUCCEEDED
    assert status_of(reordered) == Status.SUCCEEDED
    assert all(len(media.assets_for_generation(g.pk)) == 1 for g in (fail_after, success_after))
    assert_ledger(user, available=50 - 3 * 5)


def test_cancel_returns_credits_and_stops_the_job(e2e, user_factory):
    """A cancel returns the credits at once and the provider is told to stop; nothing charged."""
    e2e.worker()
    user = funded_user(user_factory, 10)
    generation = submit(user, faults={"delay_ms": 4000})
    wait_until(lambda: status_of(generation) == Status.DISPATCHED, what="dispatch")
    cancel_generation(user, generation.pk)
    assert_ledger(user, available=10)
    generation.refresh_from_db()
    wait_until(
        lambda: (
            e2e.provider.content(generation.provider_job_id).json()["data"]["generation_status"]
            == "canceled"
        ),
        what="the provider to cancel the job",
    )
    assert status_of(generation) == Status.CANCELED
    assert media.assets_for_generation(generation.pk) == []
    assert_ledger(user, available=10)


def test_lost_callbacks_and_gone_outputs_are_settled_by_reconcile(e2e, user_factory):
    """With no callbacks, reconcile polls: a success is captured, a 404 output is released."""
    e2e.worker()
    user = funded_user(user_factory, 20)
    lost = submit(user, faults={"lose_callback": True})
    gone = submit(user, faults={"lose_callback": True, "output_404": True})
    wait_settled(lost, gone, redrive=True)
    assert status_of(lost) == Status.SUCCEEDED
    assert status_of(gone) == Status.FAILED
    assert_ledger(user, available=15)


def test_sigkill_of_the_worker_mid_settle_settles_once(e2e, user_factory):
    """Killing the worker while it ingests leaves the callback stored; the re-drive settles it."""
    first = e2e.worker(concurrency=1)
    user = funded_user(user_factory, 10)
    generation = submit(user, faults={"slow_output_ms": 4000})
    wait_until(
        lambda: generation.callbacks.filter(reported_status="succeeded").exists(),
        what="the success callback to be stored",
    )
    wait_until(
        lambda: b"generation.tasks.settle_callback" in first.log.read_bytes(),
        what="the worker to receive the settle (it then blocks in the slow download)",
    )
    assert status_of(generation) in (Status.DISPATCHED, Status.PROCESSING)
    first.kill_main()
    e2e.worker(concurrency=1)
    wait_settled(generation, timeout=60, redrive=True)
    assert status_of(generation) == Status.SUCCEEDED
    assert len(media.assets_for_generation(generation.pk)) == 1
    assert_ledger(user, available=5)


def test_flushall_with_work_in_flight_loses_nothing(e2e, user_factory):
    """A broker that forgot every message delays work; the re-drive from the database ends it."""
    worker = e2e.worker()
    user = funded_user(user_factory, 100)
    running = [submit(user, faults={"delay_ms": 800}) for _ in range(3)]
    # At the provider: a started callback may already have made one processing.
    wait_until(
        lambda: all(status_of(g) in (Status.DISPATCHED, Status.PROCESSING) for g in running),
        what="dispatch",
    )
    worker.stop()
    queued = [submit(user) for _ in range(3)]  # start messages wait in the broker
    wait_until(
        lambda: all(g.callbacks.filter(reported_status="succeeded").exists() for g in running),
        what="callbacks stored while no worker runs",
    )
    redis.Redis.from_url(settings.CELERY_BROKER_URL).flushall()
    e2e.worker()
    wait_settled(*running, *queued, timeout=60, redrive=True)
    assert all(status_of(g) == Status.SUCCEEDED for g in (*running, *queued))
    assert_ledger(user, available=100 - 6 * 5)


def test_expiry_then_success_is_unpaid_then_collected_after_a_top_up(e2e, user_factory):
    """Hold expired and the provider silent: expired; the late success is unpaid until a top-up."""
    e2e.worker()
    user = funded_user(user_factory, 5)
    generation = submit(user, faults={"vanish_ms": 4000, "delay_ms": 100})
    Generation.objects.filter(pk=generation.pk).update(hold_ttl_seconds=1)
    wait_until(
        lambda: (
            ledger.expire_due() >= 0 and ledger.hold_status(generation.hold_reference) == "expired"
        ),
        what="the hold to expire",
    )
    wait_until(
        lambda: reconcile.redrive() and status_of(generation) == Status.EXPIRED,
        what="reconcile to mark it expired",
    )
    blocker = submit(user, faults={"delay_ms": 20000})
    wait_until(lambda: status_of(blocker) == Status.DISPATCHED, what="the second hold")
    wait_until(lambda: status_of(generation) == Status.UNPAID, timeout=30, what="unpaid")
    assert_ledger(user, available=0, held=5)
    ledger.grant(user.pk, 5, key=f"e2e:{uuid.uuid4()}", source="test")
    wait_until(
        lambda: reconcile.redrive() is not None and status_of(generation) == Status.SUCCEEDED,
        timeout=30,
        what="the top-up to be collected",
    )
    assert ledger.hold_status(generation.hold_reference) == "late_charged"
    cancel_generation(user, blocker.pk)
    assert_ledger(user, available=5)
