"""Submit, start, dispatch, settle, cancel, reconcile and re-drive generations.

Ledger calls run outside any transaction (``ledger.api`` refuses to run inside one that holds
locks); state changes go through ``generation.transitions``. Every function here is safe to run
twice or concurrently: the guarded transitions decide who acts, and the ledger keys holds by
``gen:<id>``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import uuid
from collections.abc import Mapping
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from config import ratelimit
from config.ops import ops_alert
from generation import catalogue, transitions
from generation.exceptions import NotCancelable, ProviderUnavailable, RateLimited
from generation.models import (
    AT_PROVIDER,
    CAPTURABLE,
    Generation,
    PendingAction,
    ProviderCallback,
    Status,
)
from generation.providers import get_provider
from generation.providers.base import (
    CallbackEvent,
    DispatchRefused,
    JobReport,
    JobState,
    ProviderTemporaryError,
)

logger = logging.getLogger(__name__)


class CallbackNotReady(Exception):
    """The callback's job id is not yet stored on any generation (dispatch not committed)."""


def _ledger():
    from ledger import api

    return api


def _media():
    from media_store import api

    return api


def _tasks():
    from generation import tasks

    return tasks


def warm_up() -> None:
    """Build the provider clients and the media clients and codecs a worker process will use.

    Each costs tens to hundreds of milliseconds of CPU the first time (imports, CA bundles,
    botocore's service model); paid here, a fresh worker's first generations are not slower.
    """
    from generation.providers import provider_classes

    for slug in provider_classes():
        provider = get_provider(slug)
        if provider.configured()[0]:
            provider.client()
    _media().warm_up()


def enqueue_after_commit(task, *args: object) -> None:
    """Queue ``task`` once the transaction commits; a broker outage is logged, not raised.

    The row is already committed when the broker is asked, so an error here must not answer the
    user 500 for work that exists: the re-drive finds the row by its deadline and queues it.
    """

    def send() -> None:
        try:
            task.delay(*args)
        except Exception:
            logger.exception("could not queue %s%r; the re-drive will", task.name, args)

    transaction.on_commit(send)


# Submission


def check_rate_limit(user_id: uuid.UUID) -> None:
    """Count one submission in the user's current window; raise RateLimited past the limit."""
    limit = settings.GENERATION_RATE_LIMIT_COUNT
    window = settings.GENERATION_RATE_LIMIT_WINDOW_SECONDS
    verdict = ratelimit.hit("generate", user_id, limit=limit, window=window)
    if not verdict.allowed:
        raise RateLimited(
            f"You can start {limit} generations every {window} seconds. "
            f"Try again in {verdict.retry_after} seconds."
        )


def hold_ttl_seconds(model_key: str, params: Mapping[str, object]) -> int:
    """Return the hold's lifetime: expected duration times the safety factor, with a floor."""
    expected = catalogue.expected_seconds(model_key, params)
    return max(
        math.ceil(expected * settings.GENERATION_HOLD_SAFETY_FACTOR),
        settings.GENERATION_HOLD_MIN_SECONDS,
    )


def provider_status(model_key: str) -> tuple[bool, str]:
    """Return whether the model's provider can be used here, and why not."""
    spec = catalogue.get_model(model_key)
    return get_provider(spec.provider).configured()


def submit_generation(
    user,
    *,
    model_key: str,
    prompt: object,
    params: Mapping[str, object],
    provider_options: Mapping[str, object] | None = None,
) -> Generation:
    """Validate, price and store a queued generation, then start it after commit.

    Raises InvalidRequest, ProviderUnavailable or RateLimited and stores nothing in those cases.
    """
    spec = catalogue.get_model(model_key)
    cleaned = catalogue.clean_parameters(spec, params)
    text = catalogue.clean_prompt(prompt)
    ready, reason = provider_status(model_key)
    if not ready:
        raise ProviderUnavailable(reason)
    cost = catalogue.price(model_key, cleaned)
    check_rate_limit(user.pk)
    with transaction.atomic():
        generation = Generation.objects.create(
            user=user,
            model_key=spec.key,
            kind=spec.kind,
            prompt=text,
            params=cleaned,
            cost=cost,
            provider=spec.provider,
            provider_options=dict(provider_options or {}),
            hold_ttl_seconds=hold_ttl_seconds(spec.key, cleaned),
            next_check_at=timezone.now()
            + timedelta(seconds=settings.GENERATION_START_GRACE_SECONDS),
        )
        transitions.note(generation, "queued", f"Queued; this costs {cost} credits.")
        enqueue_after_commit(_tasks().start_generation, str(generation.pk))
    return generation


# Start: hold, then dispatch


def start_generation(generation_id: uuid.UUID | str) -> str:
    """Hold the credits of a queued generation, then dispatch a reserved one."""
    generation = Generation.objects.get(pk=generation_id)
    if generation.status == Status.QUEUED:
        result = _ledger().hold(
            generation.user_id,
            generation.hold_reference,
            generation.cost,
            ttl=timedelta(seconds=generation.hold_ttl_seconds),
        )
        if result.status in ("held", "duplicate"):
            if not transitions.reserve(generation):
                generation.refresh_from_db()  # another run reserved it, or it moved on
        elif result.status == "insufficient":
            transitions.reject(generation, available=result.available)
            return "rejected"
        else:
            ops_alert(
                "Generation hold conflict",
                f"ledger.hold returned {result.status} for {generation.hold_reference}",
                generation_id=str(generation.pk),
            )
            return f"hold {result.status}"
    if generation.status == Status.RESERVED and generation.pending_action is None:
        return dispatch_generation(generation)
    return f"nothing to start ({generation.status})"


def dispatch_generation(generation: Generation) -> str:
    """Send a reserved generation to its provider and record the job id.

    BabySea keys the request by our id, so a retry returns the same job and the attempt is
    counted with the dispatch. Replicate has no key: the attempt is recorded before the POST and
    never repeated; ``resolve_uncertain_dispatch`` handles it instead.
    """
    provider = get_provider(generation.provider)
    if not provider.idempotent_submit:
        if generation.dispatch_attempted_at is not None:
            return resolve_uncertain_dispatch(generation)
        if not transitions.record_dispatch_attempt(generation):
            return f"not reserved ({generation.status})"
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
        _tasks().cancel_generation.delay_on_commit(str(generation.pk))
    return f"dispatched but {generation.status}"


def resolve_uncertain_dispatch(generation: Generation) -> str:
    """Fail and release an at-most-once dispatch that never reported a job id within the grace."""
    attempted = generation.dispatch_attempted_at
    grace = timedelta(seconds=settings.GENERATION_DISPATCH_GRACE_SECONDS)
    if attempted and timezone.now() - attempted < grace:
        return "waiting for the uncertain dispatch"
    detail = "dispatch outcome unknown and no callback bound a job id within the grace period"
    if transitions.refuse_dispatch(generation, detail=detail):
        finish_release(generation)
    return "uncertain dispatch released"


# Ledger work claimed by a transition


def finish_release(generation: Generation) -> str:
    """Release the hold claimed by a failed or canceled transition and clear the claim."""
    result = _ledger().release(generation.hold_reference)
    if result.status == "already_captured":
        ops_alert(
            "Released generation was captured",
            f"{generation.hold_reference} is {generation.status} but its hold was captured",
            generation_id=str(generation.pk),
        )
        return result.status
    transitions.finish_release(generation, ledger_status=result.status)
    return result.status


def finish_capture(generation: Generation) -> str:
    """Capture the hold claimed for a success; the outcome picks succeeded or unpaid."""
    was_unpaid = generation.status == Status.UNPAID
    result = _ledger().capture(generation.hold_reference)
    if result.status in ("captured", "duplicate", "late_charged"):
        transitions.finish_capture(
            generation, to_status=Status.SUCCEEDED, ledger_status=result.status
        )
    elif result.status == "unpaid":
        transitions.finish_capture(generation, to_status=Status.UNPAID, ledger_status="unpaid")
        if not was_unpaid:
            ops_alert(
                "Generation unpaid",
                f"{generation.hold_reference} succeeded late and the balance did not cover it",
                generation_id=str(generation.pk),
                user_id=str(generation.user_id),
            )
    else:
        ops_alert(
            "Generation capture failed",
            f"ledger.capture returned {result.status} for {generation.hold_reference}",
            generation_id=str(generation.pk),
        )
    return result.status


def finish_pending(generation: Generation) -> str:
    """Complete whatever ledger work a crash left claimed on this generation."""
    if generation.pending_action == PendingAction.CAPTURE:
        return finish_capture(generation)
    if generation.pending_action == PendingAction.RELEASE:
        return finish_release(generation)
    return "nothing pending"


# Settlement


def settle_success(generation: Generation, report: JobReport) -> str:
    """Store the outputs, then capture: ingest first so a charge always has its media.

    ``generation`` must be freshly loaded; the guarded transitions still decide every change.
    """
    if generation.pending_action == PendingAction.RELEASE:
        finish_release(generation)
        generation.refresh_from_db()
    if generation.status == Status.CANCELED:
        if not generation.events.filter(name="late_output_discarded").exists():
            transitions.note(
                generation,
                "late_output_discarded",
                "The provider finished after you canceled; the output was discarded.",
            )
        # A settle killed mid-ingest may have stored some outputs before the cancel landed.
        discard_outputs(generation)
        return "discarded: canceled"
    if generation.status in (Status.SUCCEEDED, Status.UNPAID) and not generation.pending_action:
        return "already settled"
    if generation.status not in CAPTURABLE:
        return f"ignored in {generation.status}"
    if not report.output_urls:
        return settle_failure(
            generation,
            message="The provider finished without an output. Your credits were returned.",
            detail="success reported with no output files",
        )
    media = _media()
    hosts = get_provider(generation.provider).allowed_hosts()
    try:
        for index, url in enumerate(report.output_urls):
            media.ingest(
                owner_id=generation.user_id,
                generation_id=generation.pk,
                source_url=url,
                allowed_hosts=hosts,
                index=index,
            )
    except media.IngestRefused as error:
        if generation.status in AT_PROVIDER:
            return settle_failure(
                generation,
                message="The output could not be stored. Your credits were returned.",
                detail=f"ingest refused: {error}",
            )
        transitions.note(
            generation, "late_output_refused", "A late output was refused.", str(error)
        )
        return "late output refused"
    if not transitions.claim_capture(generation):
        generation.refresh_from_db()
        if generation.status == Status.CANCELED:
            discard_outputs(generation)
        return f"not claimed ({generation.status})"
    return finish_capture(generation)


def discard_outputs(generation: Generation) -> None:
    """Delete outputs stored for a generation the user canceled (they are never shown)."""
    media = _media()
    for asset in media.assets_for_generation(generation.pk):
        media.delete(asset.id)


def settle_failure(generation: Generation, *, message: str, detail: str) -> str:
    """Fail a generation at the provider and release its hold; later failures change nothing."""
    if transitions.fail(generation, message=message, detail=detail):
        finish_release(generation)
        return "failed"
    generation.refresh_from_db()
    return f"failure ignored ({generation.status})"


def apply_report(generation: Generation, report: JobReport) -> str:
    """Move a generation according to what its provider reported."""
    if report.state == JobState.RUNNING:
        next_check = settings.GENERATION_RECONCILE_INTERVAL_SECONDS
        return (
            "progress"
            if transitions.progress(generation, report.progress, next_check_seconds=next_check)
            else f"progress ignored ({generation.status})"
        )
    if report.state == JobState.SUCCEEDED:
        return settle_success(generation, report)
    if report.state == JobState.GONE:
        return settle_failure(
            generation,
            message="The output expired at the provider before it was stored. "
            "Your credits were returned.",
            detail="provider reports the output removed",
        )
    if report.state == JobState.CANCELED:
        return settle_failure(
            generation,
            message="The provider canceled this generation. Your credits were returned.",
            detail=f"provider canceled: {report.error}",
        )
    return settle_failure(
        generation,
        message="The generation failed at the provider. Your credits were returned.",
        detail=f"{report.error_code} {report.error}".strip() or f"provider state {report.state}",
    )


def record_callback(provider: str, event: CallbackEvent, *, hint: str = "") -> tuple[int, bool]:
    """Store a verified callback once per delivery id and settle it after commit."""
    generation_id = (
        Generation.objects.filter(provider=provider, provider_job_id=event.job_id)
        .values_list("pk", flat=True)
        .first()
    )
    delivery_id = event.delivery_id[:200]
    try:
        # Insert first: a repeated delivery is rare, and the unique constraint decides it.
        with transaction.atomic():
            callback = ProviderCallback.objects.create(
                provider=provider,
                delivery_id=delivery_id,
                provider_job_id=event.job_id[:128],
                event=event.event[:64],
                reported_status=event.report.state,
                payload=event.payload,
                report=dataclasses.asdict(event.report),
                generation_id=generation_id,
                generation_hint=hint[:64],
            )
            enqueue_after_commit(_tasks().settle_callback, callback.pk)
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
    if generation is None:
        raise CallbackNotReady(f"no generation has job {callback.provider_job_id} yet")
    if callback.generation_id != generation.pk:
        ProviderCallback.objects.filter(pk=callback.pk).update(generation=generation)
    if generation.status in (Status.QUEUED, Status.RESERVED):
        raise CallbackNotReady(f"{generation.pk} is {generation.status}")
    report = JobReport(**{**callback.report, "output_urls": tuple(callback.report["output_urls"])})
    # A progress report moves no credits, so its transition and the processed mark can share one
    # commit; any other report calls the ledger, which must run outside a transaction.
    running = report.state == JobState.RUNNING
    with transaction.atomic() if running else contextlib.nullcontext():
        outcome = apply_report(generation, report)
        ProviderCallback.objects.filter(pk=callback.pk, processed_at__isnull=True).update(
            processed_at=timezone.now(), outcome=outcome[:200]
        )
    return outcome


# Cancel


def cancel_generation(user, generation_id: uuid.UUID | str) -> Generation:
    """Cancel the user's generation and return its credits now; tell the provider after commit.

    Raises Generation.DoesNotExist for someone else's generation and NotCancelable when it has
    already finished or its result is being settled.
    """
    generation = Generation.objects.get(pk=generation_id, user=user)
    if not transitions.cancel(generation):
        generation.refresh_from_db()
        raise NotCancelable(
            "This generation has already finished."
            if not generation.is_active
            else "This generation is finishing and can no longer be canceled."
        )
    try:
        finish_release(generation)
    except Exception:
        # The claim stays on the row: the cancel task and the re-drive finish the release.
        logger.exception("release after cancel of %s failed; left for the re-drive", generation.pk)
    enqueue_after_commit(_tasks().cancel_generation, str(generation.pk))
    return generation


def cancel_at_provider(generation_id: uuid.UUID | str) -> str:
    """Finish a canceled generation's release and ask the provider to stop the job."""
    generation = Generation.objects.get(pk=generation_id)
    if generation.pending_action:
        finish_pending(generation)
    if generation.status != Status.CANCELED or not generation.provider_job_id:
        return "nothing to cancel at the provider"
    get_provider(generation.provider).cancel(generation.provider_job_id)
    return "provider cancel sent"


# Reconcile and re-drive


def reconcile_generation(generation_id: uuid.UUID | str) -> str:
    """Poll the provider about a job with no news; extend the hold while it runs, else settle."""
    generation = Generation.objects.get(pk=generation_id)
    if generation.pending_action:
        return finish_pending(generation)
    if generation.status in (Status.QUEUED, Status.RESERVED):
        return start_generation(generation.pk)
    if generation.status == Status.UNPAID:
        return collect_unpaid(generation)
    if generation.status not in AT_PROVIDER or not generation.provider_job_id:
        return f"nothing to reconcile ({generation.status})"
    provider = get_provider(generation.provider)
    ledger = _ledger()
    try:
        report = provider.status(generation.provider_job_id)
    except ProviderTemporaryError as error:
        if ledger.hold_status(generation.hold_reference) == "expired":
            transitions.expire(generation, detail=f"provider unreachable: {error}")
            return "expired (provider unreachable)"
        raise
    # A callback may have moved the row while the poll was in flight.
    generation.refresh_from_db()
    if report.state == JobState.RUNNING:
        extended = ledger.extend(
            generation.hold_reference, ttl=timedelta(seconds=generation.hold_ttl_seconds)
        )
        apply_report(generation, report)
        return f"running (hold {extended.status})"
    if report.state == JobState.MISSING:
        if ledger.hold_status(generation.hold_reference) == "expired":
            transitions.expire(generation, detail="provider does not know the job")
            return "expired"
        return settle_failure(
            generation,
            message="The provider lost this generation. Your credits were returned.",
            detail="provider does not know the job",
        )
    return apply_report(generation, report)


def collect_unpaid(generation: Generation) -> str:
    """Retry the capture of an unpaid generation once the balance covers it."""
    if generation.status != Status.UNPAID:
        return f"not unpaid ({generation.status})"
    balance = _ledger().balance(generation.user_id)
    if balance.available < generation.cost:
        Generation.objects.filter(pk=generation.pk, status=Status.UNPAID).update(
            next_check_at=timezone.now()
            + timedelta(seconds=settings.GENERATION_COLLECT_INTERVAL_SECONDS)
        )
        return "still unpaid"
    if not transitions.claim_capture(generation):
        return "not claimed"
    return finish_capture(generation)


def settle_generation(generation_id: uuid.UUID | str) -> str:
    """Finish claimed ledger work, or try to collect an unpaid generation."""
    generation = Generation.objects.get(pk=generation_id)
    if generation.pending_action:
        return finish_pending(generation)
    if generation.status == Status.UNPAID:
        return collect_unpaid(generation)
    return f"nothing to settle ({generation.status})"


def redrive(now: timezone.datetime | None = None, *, limit: int = 500) -> dict[str, int]:
    """Re-enqueue the right task for every non-terminal row past its deadline (DESIGN section 4).

    The database is the schedule: a broker that lost its messages delays work but loses none.
    Each round bumps the row's deadline in a guarded UPDATE, so overlapping runs enqueue once;
    after ``GENERATION_REDRIVE_MAX_ATTEMPTS`` rounds without progress operators are alerted.
    """
    now = now or timezone.now()
    tasks = _tasks()
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
            tasks.settle_generation.delay_on_commit(str(pk))
            counts["settle"] += 1
        elif status in (Status.QUEUED, Status.RESERVED):
            tasks.start_generation.delay_on_commit(str(pk))
            counts["start"] += 1
        elif status in AT_PROVIDER:
            tasks.reconcile_generation.delay_on_commit(str(pk))
            counts["reconcile"] += 1
    stale = now - timedelta(seconds=settings.GENERATION_SETTLE_GRACE_SECONDS)
    waiting = ProviderCallback.objects.filter(
        processed_at__isnull=True, received_at__lte=stale, attempts__lt=cap
    ).values_list("pk", flat=True)[:limit]
    for callback_id in waiting:
        if ProviderCallback.objects.filter(pk=callback_id, attempts__lt=cap).update(
            attempts=F("attempts") + 1
        ):
            tasks.settle_callback.delay_on_commit(callback_id)
            counts["callbacks"] += 1
    return counts
