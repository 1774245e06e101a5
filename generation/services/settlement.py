"""Settle what a provider reported: store outputs then capture, or fail and release.

Also collects unpaid generations: a success the balance did not cover is captured once it does.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from generation import transitions
from generation.models import AT_PROVIDER, CAPTURABLE, Generation, PendingAction, Status
from generation.providers import get_provider
from generation.providers.base import JobReport, JobState
from generation.services.holds import finish_capture, finish_pending, finish_release
from ledger import api as ledger
from media_store import api as media

# How a failure caused by a refused output starts its detail (never shown to customers).
REFUSED = "ingest refused"


def settle_success(
    generation: Generation, report: JobReport, *, with_capture: Callable[[str], None] | None = None
) -> str:
    """Store the outputs, then capture: ingest first so a charge always has its media.

    ``generation`` must be freshly loaded; the guarded transitions still decide every change.
    ``with_capture`` runs in the capture's own transaction (the callback's processed mark).
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
    if generation.status == Status.FAILED and generation.error_detail.startswith(REFUSED):
        # The same job's outputs were refused once: a repeated success is not downloaded again.
        return "output already refused"
    if not report.output_urls:
        return settle_failure(
            generation,
            message="The provider finished without an output. Your credits were returned.",
            detail="success reported with no output files",
        )
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
                message=f"{error.customer_message} Your credits were returned.",
                detail=f"{REFUSED}: {error}",
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
    return finish_capture(generation, also=with_capture)


def discard_outputs(generation: Generation) -> None:
    """Delete outputs stored for a generation the user canceled (they are never shown)."""
    for asset in media.assets_for_generation(generation.pk):
        media.delete(asset.id)


def settle_failure(generation: Generation, *, message: str, detail: str) -> str:
    """Fail a generation at the provider and release its hold; later failures change nothing."""
    if transitions.fail(generation, message=message, detail=detail):
        finish_release(generation)
        return "failed"
    generation.refresh_from_db()
    return f"failure ignored ({generation.status})"


def apply_report(
    generation: Generation, report: JobReport, *, with_capture: Callable[[str], None] | None = None
) -> str:
    """Move a generation according to what its provider reported."""
    if report.state == JobState.RUNNING:
        next_check = settings.GENERATION_RECONCILE_INTERVAL_SECONDS
        return (
            "progress"
            if transitions.progress(generation, report.progress, next_check_seconds=next_check)
            else f"progress ignored ({generation.status})"
        )
    if report.state == JobState.SUCCEEDED:
        return settle_success(generation, report, with_capture=with_capture)
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


def retry_unpaid_capture(generation: Generation) -> str:
    """Retry the capture of one unpaid generation once the balance covers it."""
    if generation.status != Status.UNPAID:
        return f"not unpaid ({generation.status})"
    balance = ledger.balance(generation.user_id)
    if balance.available < generation.cost:
        Generation.objects.filter(pk=generation.pk, status=Status.UNPAID).update(
            next_check_at=timezone.now()
            + timedelta(seconds=settings.GENERATION_COLLECT_INTERVAL_SECONDS)
        )
        return "still unpaid"
    if not transitions.claim_capture(generation):
        return "not claimed"
    return finish_capture(generation)


def collect_unpaid(account_id: uuid.UUID) -> int:
    """Retry the capture of the account's unpaid generations now; return how many were paid.

    Called after credits arrive so a top-up unlocks withheld outputs at once; the re-drive
    retries each unpaid generation on its own schedule too.
    """
    paid = 0
    for generation in Generation.objects.filter(user_id=account_id, status=Status.UNPAID):
        retry_unpaid_capture(generation)
        generation.refresh_from_db()
        paid += generation.status == Status.SUCCEEDED
    return paid


def settle_generation(generation_id: uuid.UUID | str) -> str:
    """Finish claimed ledger work, or try to collect an unpaid generation."""
    generation = Generation.objects.get(pk=generation_id)
    if generation.pending_action:
        return finish_pending(generation)
    if generation.status == Status.UNPAID:
        return retry_unpaid_capture(generation)
    return f"nothing to settle ({generation.status})"
