"""Store verified provider callbacks once per delivery and apply them to their generation."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import uuid

from django.db import IntegrityError, transaction
from django.utils import timezone

from generation import catalogue, transitions
from generation.models import AT_PROVIDER, Generation, ProviderCallback, Status
from generation.providers import get_provider
from generation.providers.base import CallbackEvent, JobReport, JobState
from generation.services.holds import keep_hold_alive
from generation.services.queueing import enqueue_after_commit
from generation.services.settlement import apply_report

logger = logging.getLogger(__name__)


class CallbackNotReady(Exception):
    """The callback's job id is not yet stored on any generation (dispatch not committed)."""


def record_callback(provider: str, event: CallbackEvent, *, hint: str = "") -> tuple[int, bool]:
    """Store a verified callback once per delivery id; apply progress now, settle the rest later.

    One commit: the lookup, the insert and, for a progress report about a job at the provider,
    its transition (it moves no credits, so no worker round trip is needed). Any other report,
    or progress that arrived before its dispatch committed, is settled by a task after commit.
    """
    delivery_id = event.delivery_id[:200]
    report = event.report
    try:
        # Insert first: a repeated delivery is rare, and the unique constraint decides it.
        with transaction.atomic():
            generation = (
                Generation.objects.filter(provider=provider, provider_job_id=event.job_id)
                .only(
                    "pk",
                    "status",
                    "progress",
                    "pending_action",
                    "model_key",
                    "created_at",
                    "hold_ttl_seconds",
                )
                .first()
            )
            outcome = ""
            if (
                report.state == JobState.RUNNING
                and generation is not None
                and generation.status not in (Status.QUEUED, Status.RESERVED)
            ):
                if generation.status in AT_PROVIDER and not generation.pending_action:
                    # A sign of life keeps the credits held; the ledger call comes before this
                    # transaction's first write, as ledger.api requires.
                    keep_hold_alive(generation)
                outcome = apply_report(generation, report)
            callback = ProviderCallback.objects.create(
                provider=provider,
                delivery_id=delivery_id,
                provider_job_id=event.job_id[:128],
                event=event.event[:64],
                reported_status=report.state,
                payload=event.payload,
                report=dataclasses.asdict(report),
                generation_id=generation.pk if generation else None,
                generation_hint=hint[:64],
                processed_at=timezone.now() if outcome else None,
                outcome=outcome[:200],
            )
            if not outcome:
                enqueue_after_commit("settle_callback", callback.pk)
    except IntegrityError:
        existing = (
            ProviderCallback.objects.filter(provider=provider, delivery_id=delivery_id)
            .values_list("pk", flat=True)
            .first()
        )
        if existing is None:
            raise
        return existing, False
    return callback.pk, True


def _bind_hinted_generation(callback: ProviderCallback) -> Generation | None:
    """Bind a job id to the generation named in the callback URL after an uncertain dispatch.

    Only an at-most-once dispatch that was attempted and has no job id yet can be bound, and the
    unique (provider, job id) constraint stops one job from being bound to two generations.
    """
    try:
        hinted = uuid.UUID(callback.generation_hint)
    except ValueError:
        return None
    try:
        with transaction.atomic():
            bound = Generation.objects.filter(
                pk=hinted,
                provider=callback.provider,
                provider_job_id__isnull=True,
                dispatch_attempted_at__isnull=False,
                status=Status.RESERVED,
            ).update(provider_job_id=callback.provider_job_id)
    except IntegrityError:
        return None
    if not bound:
        return None
    generation = Generation.objects.get(pk=hinted)
    expected = catalogue.expected_seconds(generation.model_key, generation.params)
    # The dispatch transition records what the provider's signed body says.
    transitions.dispatch(generation, callback.provider_job_id, expected_seconds=expected)
    return generation


def _success_came_first(callback: ProviderCallback) -> bool:
    """Return whether a success for the same job was received before this callback."""
    return ProviderCallback.objects.filter(
        provider=callback.provider,
        provider_job_id=callback.provider_job_id,
        reported_status=JobState.SUCCEEDED,
        pk__lt=callback.pk,
    ).exists()


def _cancel_orphan(callback: ProviderCallback) -> bool:
    """Stop a job started for a generation that ended up with another job, or with none.

    Only a duplicated start makes one; it is canceled at the provider (so it is not billed to
    run on) and the callback row records it. A generation still waiting to bind is left alone.
    """
    try:
        hinted = uuid.UUID(callback.generation_hint)
    except ValueError:
        return False
    owner = Generation.objects.filter(pk=hinted, provider=callback.provider).first()
    if owner is None or (owner.status == Status.RESERVED and owner.provider_job_id is None):
        return False
    get_provider(callback.provider).cancel(callback.provider_job_id)
    logger.warning("canceled orphan job %s started for %s", callback.provider_job_id, owner.pk)
    ProviderCallback.objects.filter(pk=callback.pk, processed_at__isnull=True).update(
        processed_at=timezone.now(),
        outcome=f"orphan job canceled at the provider (generation {owner.pk})",
    )
    return True


def settle_callback(callback_id: int) -> str:
    """Apply one stored callback to its generation; raise CallbackNotReady to retry later."""
    callback = ProviderCallback.objects.select_related("generation").get(pk=callback_id)
    if callback.processed_at:
        return "already processed"
    # Bound at receipt when the job id was already stored (job ids never change once set).
    generation = callback.generation
    if generation is None or generation.provider_job_id != callback.provider_job_id:
        generation = Generation.objects.filter(
            provider=callback.provider, provider_job_id=callback.provider_job_id
        ).first()
    if generation is None and callback.generation_hint:
        generation = _bind_hinted_generation(callback)
        if generation is None and _cancel_orphan(callback):
            return "orphan canceled"
    if generation is None:
        raise CallbackNotReady(f"no generation has job {callback.provider_job_id} yet")
    if callback.generation_id != generation.pk:
        ProviderCallback.objects.filter(pk=callback.pk).update(generation=generation)
    if generation.status in (Status.QUEUED, Status.RESERVED):
        raise CallbackNotReady(f"{generation.pk} is {generation.status}")
    report = JobReport(**{**callback.report, "output_urls": tuple(callback.report["output_urls"])})
    if report.state in (JobState.FAILED, JobState.CANCELED) and _success_came_first(callback):
        # The provider already said this job succeeded; that settle may still be downloading,
        # and a later failure report must not overtake it and release the hold.
        outcome = f"{report.state} ignored: the provider reported success first"
        ProviderCallback.objects.filter(pk=callback.pk, processed_at__isnull=True).update(
            processed_at=timezone.now(), outcome=outcome
        )
        return outcome
    marked = False

    def mark_processed(outcome: str) -> None:
        nonlocal marked
        marked = True
        ProviderCallback.objects.filter(pk=callback.pk, processed_at__isnull=True).update(
            processed_at=timezone.now(), outcome=outcome[:200]
        )

    # A progress report moves no credits, so its transition and the processed mark share one
    # commit; a success is marked in its capture's commit; anything else that calls the ledger
    # must run outside a transaction and is marked after.
    running = report.state == JobState.RUNNING
    with transaction.atomic() if running else contextlib.nullcontext():
        if running and generation.status in AT_PROVIDER and not generation.pending_action:
            keep_hold_alive(generation)  # a sign of life, before the first write
        outcome = apply_report(generation, report, with_capture=mark_processed)
        if not marked:
            mark_processed(outcome)
    return outcome
