"""Start a generation: hold its credits, then send it to the provider exactly once."""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from config.ops import ops_alert
from generation import catalogue, transitions
from generation.models import Generation, Status
from generation.providers import get_provider, provider_classes
from generation.providers.base import DispatchRefused, ProviderTemporaryError
from generation.services.holds import finish_release, keep_hold_alive
from generation.services.queueing import send_after_commit
from ledger import api as ledger
from media_store import api as media

logger = logging.getLogger(__name__)


def warm_up() -> None:
    """Build the provider clients and the media clients and codecs a worker process will use.

    Each costs tens to hundreds of milliseconds of CPU the first time (imports, CA bundles,
    botocore's service model); paid here, a fresh worker's first generations are not slower.
    """
    for slug in provider_classes():
        provider = get_provider(slug)
        if provider.configured()[0]:
            provider.client()
    media.warm_up()


def start_generation(generation_id: uuid.UUID | str) -> str:
    """Hold the credits of a queued generation, then dispatch a reserved one."""
    generation = Generation.objects.get(pk=generation_id)
    held_now = False
    if generation.status == Status.QUEUED:
        # One commit: the hold (first, before any row is written) and the transition it allows.
        with transaction.atomic():
            result = ledger.hold(
                generation.user_id,
                generation.hold_reference,
                generation.cost,
                ttl=timedelta(seconds=generation.hold_ttl_seconds),
            )
            held = result.status in (ledger.HoldOutcome.HELD, ledger.HoldOutcome.DUPLICATE)
            if held:
                reserved = transitions.reserve(generation)
            elif result.status == ledger.HoldOutcome.INSUFFICIENT:
                transitions.reject(generation, available=result.available)
        if held:
            held_now = reserved and result.status == ledger.HoldOutcome.HELD
            if not reserved:
                generation.refresh_from_db()  # another run reserved it, or it moved on
        elif result.status == ledger.HoldOutcome.INSUFFICIENT:
            return "rejected"
        else:
            ops_alert(
                "Generation hold conflict",
                f"ledger.hold returned {result.status} for {generation.hold_reference}",
                generation_id=str(generation.pk),
            )
            return f"hold {result.status}"
    if generation.status == Status.RESERVED and generation.pending_action is None:
        return dispatch_generation(generation, fresh_hold=held_now)
    return f"nothing to start ({generation.status})"


def dispatch_generation(generation: Generation, *, fresh_hold: bool = False) -> str:
    """Send a reserved generation to its provider and record the job id.

    BabySea keys the request by our id, so a retry returns the same job and the attempt is
    counted with the dispatch. Replicate has no key: the attempt is recorded before the POST and
    never repeated; ``resolve_uncertain_dispatch`` handles it instead. ``fresh_hold`` says the
    hold was placed moments ago in this same start, so it is pending with its whole lifetime.
    """
    provider = get_provider(generation.provider)
    if not provider.idempotent_submit and generation.dispatch_attempted_at is not None:
        return resolve_uncertain_dispatch(generation)
    # Dispatch is a sign of life, and the check that the credits are still held: a hold that
    # lapsed (or a job past its model's maximum run time) starts nothing at the provider.
    hold = ledger.ExtendOutcome.EXTENDED if fresh_hold else keep_hold_alive(generation)
    if hold != ledger.ExtendOutcome.EXTENDED:
        if transitions.refuse_dispatch(
            generation,
            detail=f"hold {hold} before dispatch",
            message="This generation could not start in time. Your credits were returned.",
        ):
            finish_release(generation)
        return f"not dispatched (hold {hold})"
    if not provider.idempotent_submit and not transitions.record_dispatch_attempt(generation):
        # Another worker claimed the attempt (or the row moved on): it alone sends the POST.
        return f"not claimed ({generation.status})"
    try:
        job_id = provider.submit(generation)
    except DispatchRefused as error:
        if transitions.refuse_dispatch(generation, detail=str(error)):
            finish_release(generation)
        return "refused"
    except ProviderTemporaryError:
        if provider.idempotent_submit:
            raise
        logger.warning("uncertain dispatch of %s; not retrying", generation.pk)
        return "uncertain"
    expected = catalogue.expected_seconds(generation.model_key, generation.params)
    if transitions.dispatch(
        generation, job_id, expected_seconds=expected, count_attempt=provider.idempotent_submit
    ):
        return "dispatched"
    # The row moved on while the POST was in flight (the user canceled): stop the job too.
    generation.refresh_from_db()
    Generation.objects.filter(pk=generation.pk, provider_job_id__isnull=True).update(
        provider_job_id=job_id
    )
    if generation.status == Status.CANCELED:
        send_after_commit("cancel_at_provider", str(generation.pk))
    return f"dispatched but {generation.status}"


def resolve_uncertain_dispatch(generation: Generation) -> str:
    """Find the job an uncertain at-most-once dispatch created; else, after the grace, release.

    The start is never sent again: the provider is asked for a job this attempt created, and
    one found is recorded as the dispatch.
    """
    attempted = generation.dispatch_attempted_at
    job_id = get_provider(generation.provider).find_job(generation, attempted)
    if job_id:
        expected = catalogue.expected_seconds(generation.model_key, generation.params)
        if transitions.dispatch(generation, job_id, expected_seconds=expected):
            return "dispatched (found the attempted job)"
        generation.refresh_from_db()
        return f"found the attempted job ({generation.status})"
    grace = timedelta(seconds=settings.GENERATION_DISPATCH_GRACE_SECONDS)
    if attempted and timezone.now() - attempted < grace:
        return "waiting for the uncertain dispatch"
    detail = "dispatch outcome unknown and no callback bound a job id within the grace period"
    if transitions.refuse_dispatch(generation, detail=detail):
        finish_release(generation)
    return "uncertain dispatch released"
