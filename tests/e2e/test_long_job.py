"""A job that runs three times its hold's lifetime, reporting progress every second.

Real worker, local provider over HTTP, live callbacks. The ledger's sweeper runs far more often
than beat runs it, and the re-drive (which would poll) never runs: only the job's own signs of
life keep its hold. It must end captured, once, with no late charge.
"""

import time

import pytest

from generation.models import Generation, GenerationEvent, Status
from ledger import api as ledger
from tests.e2e.helpers import wait_until
from tests.e2e.test_generation_e2e import assert_ledger, funded_user, settled, submit

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

HOLD_TTL_SECONDS = 3
JOB_SECONDS = 9


def test_job_three_times_the_hold_ttl_with_progress_every_second_is_captured_once(
    e2e, user_factory
):
    user = funded_user(user_factory, 50)
    generation = submit(user, faults={"delay_ms": JOB_SECONDS * 1000, "progress_ms": 1000})
    # Before any worker runs, so the hold itself is made with the short lifetime.
    Generation.objects.filter(pk=generation.pk).update(hold_ttl_seconds=HOLD_TTL_SECONDS)
    e2e.worker()
    began = time.monotonic()

    def done() -> bool:
        ledger.expire_due()  # the sweeper, every 0.2 s instead of beat's 30 s
        return settled(generation)

    wait_until(done, timeout=JOB_SECONDS * 4, interval=0.2, what="the long job to settle")
    elapsed = time.monotonic() - began

    generation.refresh_from_db()
    progress_callbacks = generation.callbacks.filter(event="generation.progress").count()
    print(  # the numbers the report quotes (pytest -s)
        f"long job: hold TTL {HOLD_TTL_SECONDS}s, job {JOB_SECONDS}s, settled after "
        f"{elapsed:.1f}s, {progress_callbacks} progress callbacks, "
        f"hold {ledger.hold_status(generation.hold_reference)}"
    )
    assert elapsed >= JOB_SECONDS
    assert progress_callbacks >= JOB_SECONDS - 3
    assert generation.status == Status.SUCCEEDED
    assert ledger.hold_status(generation.hold_reference) == "captured"
    names = list(
        GenerationEvent.objects.filter(generation=generation).values_list("name", flat=True)
    )
    assert names.count("succeeded") == 1
    assert not {"expired", "late_charged", "unpaid"} & set(names)
    assert_ledger(user, available=45)
