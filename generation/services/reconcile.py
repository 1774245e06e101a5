"""Poll providers about jobs with no news, and re-drive every row past its deadline."""

from __future__ import annotations

import uuid
from datetime import timedelta

from django.conf import settings
from django.db.models import F
from django.utils import timezone

from config.ops import ops_alert
from generation import transitions
from generation.models import AT_PROVIDER, Generation, ProviderCallback, Status
from generation.providers import get_provider
from generation.providers.base import JobState, ProviderTemporaryError
from generation.services.dispatch import start_generation
from generation.services.holds import finish_pending, keep_hold_alive
from generation.services.queueing import send_after_commit
from generation.services.settlement import apply_report, retry_unpaid_capture, settle_failure
from ledger import api as ledger


def reconcile_generation(generation_id: uuid.UUID | str) -> str:
    """Poll the provider about a job with no news; extend the hold while it runs, else settle."""
    generation = Generation.objects.get(pk=generation_id)
    if generation.pending_action:
        return finish_pending(generation)
    if generation.status in (Status.QUEUED, Status.RESERVED):
        return start_generation(generation.pk)
    if generation.status == Status.UNPAID:
        return retry_unpaid_capture(generation)
    if generation.status not in AT_PROVIDER or not generation.provider_job_id:
        return f"nothing to reconcile ({generation.status})"
    provider = get_provider(generation.provider)
    try:
        report = provider.status(generation.provider_job_id)
    except ProviderTemporaryError as error:
        if ledger.hold_status(generation.hold_reference) == ledger.HoldStatus.EXPIRED:
            transitions.expire(generation, detail=f"provider unreachable: {error}")
            return "expired (provider unreachable)"
        raise
    # A callback may have moved the row while the poll was in flight.
    generation.refresh_from_db()
    if report.state == JobState.RUNNING:
        extended = keep_hold_alive(generation)
        apply_report(generation, report)
        return f"running (hold {extended})"
    if report.state == JobState.MISSING:
        if ledger.hold_status(generation.hold_reference) == ledger.HoldStatus.EXPIRED:
            transitions.expire(generation, detail="provider does not know the job")
            return "expired"
        return settle_failure(
            generation,
            message="The provider lost this generation. Your credits were returned.",
            detail="provider does not know the job",
        )
    return apply_report(generation, report)


def redrive(now: timezone.datetime | None = None, *, limit: int = 500) -> dict[str, int]:
    """Re-enqueue the right task for every non-terminal row past its deadline.

    The database is the schedule: a broker that lost its messages delays work but loses none.
    Each round bumps the row's deadline in a guarded UPDATE, so overlapping runs enqueue once;
    after ``GENERATION_REDRIVE_MAX_ATTEMPTS`` rounds without progress operators are alerted.
    """
    now = now or timezone.now()
    cap = settings.GENERATION_REDRIVE_MAX_ATTEMPTS
    counts = {"start": 0, "settle": 0, "reconcile": 0, "callbacks": 0, "alerted": 0}
    due = (
        Generation.objects.filter(next_check_at__lte=now)
        .order_by("next_check_at")
        .values_list("pk", "status", "pending_action", "redrive_attempts")[:limit]
    )
    for pk, status, pending, attempts in due:
        unpaid = status == Status.UNPAID and not pending
        if attempts >= cap and not unpaid:
            if Generation.objects.filter(pk=pk, next_check_at__lte=now).update(
                next_check_at=None, alerted_at=now
            ):
                counts["alerted"] += 1
                ops_alert(
                    "Generation stuck",
                    f"{pk} is {status} (pending {pending}) after {attempts} re-drives",
                    generation_id=str(pk),
                )
            continue
        backoff = settings.GENERATION_REDRIVE_BACKOFF_SECONDS * (attempts + 1)
        claimed = Generation.objects.filter(pk=pk, next_check_at__lte=now).update(
            next_check_at=now + timedelta(seconds=backoff),
            redrive_attempts=F("redrive_attempts") + (0 if unpaid else 1),
        )
        if not claimed:
            continue
        if pending or unpaid:
            send_after_commit("settle_generation", str(pk))
            counts["settle"] += 1
        elif status in (Status.QUEUED, Status.RESERVED):
            send_after_commit("start_generation", str(pk))
            counts["start"] += 1
        elif status in AT_PROVIDER:
            send_after_commit("reconcile_generation", str(pk))
            counts["reconcile"] += 1
    stale = now - timedelta(seconds=settings.GENERATION_SETTLE_GRACE_SECONDS)
    waiting = ProviderCallback.objects.filter(
        processed_at__isnull=True, received_at__lte=stale, attempts__lt=cap
    ).values_list("pk", flat=True)[:limit]
    for callback_id in waiting:
        if ProviderCallback.objects.filter(pk=callback_id, attempts__lt=cap).update(
            attempts=F("attempts") + 1
        ):
            send_after_commit("settle_callback", callback_id)
            counts["callbacks"] += 1
    return counts
