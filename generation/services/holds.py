"""Finish the ledger work a transition claimed on a generation's hold: capture or release.

A transition that needs the ledger sets ``pending_action`` in its own UPDATE; these functions
call ``ledger.api`` and record its answer, which clears the claim, in one transaction: the ledger
call comes first (``ledger.api`` runs only before a transaction's first write, so no generation
row is locked while balance rows are), then the record. A crash before that commit leaves the
claim for the re-drive, and the keyed ledger calls make the repeat harmless.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from config.ops import ops_alert
from generation import catalogue, transitions
from generation.models import AT_PROVIDER, Generation, PendingAction, Status
from ledger import api as ledger
from media_store import api as media


def keep_hold_alive(generation: Generation) -> str:
    """Extend the hold by its TTL on a sign of life, never past the model's maximum run time.

    Returns the ledger's answer (extended | not_pending | not_found), or ``past_max_run`` when
    the job has used up its model's maximum run time and the hold is left to lapse. Like every
    ledger call it runs outside a transaction or before the transaction's first write.
    """
    spec = catalogue.get_model(generation.model_key)
    deadline = generation.created_at + timedelta(seconds=spec.max_run_seconds)
    remaining = math.floor((deadline - timezone.now()).total_seconds())
    ttl = min(generation.hold_ttl_seconds, remaining)
    if ttl < 1:
        return "past_max_run"
    return ledger.extend(generation.hold_reference, ttl=timedelta(seconds=ttl)).status


def keep_running_holds_alive(limit: int = 1000) -> dict[str, int]:
    """Extend the holds of generations running at a provider (beat), each within its bound.

    Callbacks and polls extend holds too, but a provider may run quietly for longer than a
    hold lives; this keeps such a job's credits held until it reports or reaches its limit.
    """
    counts: dict[str, int] = {}
    running = Generation.objects.filter(status__in=AT_PROVIDER, pending_action__isnull=True).only(
        "pk", "model_key", "created_at", "hold_ttl_seconds"
    )[:limit]
    for generation in running:
        outcome = keep_hold_alive(generation)
        counts[outcome] = counts.get(outcome, 0) + 1
    return counts


def finish_release(generation: Generation) -> str:
    """Release the hold claimed by a failed or canceled transition and clear the claim."""
    with transaction.atomic():
        result = ledger.release(generation.hold_reference)
        if result.status != ledger.ReleaseOutcome.ALREADY_CAPTURED:
            transitions.record_release(generation, ledger_status=result.status)
    if result.status == ledger.ReleaseOutcome.ALREADY_CAPTURED:
        ops_alert(
            "Released generation was captured",
            f"{generation.hold_reference} is {generation.status} but its hold was captured",
            generation_id=str(generation.pk),
        )
    return result.status


def delivered_charge(generation: Generation) -> tuple[int, str]:
    """Return what to charge for the stored outputs, and what fell short in the customer's words.

    Fewer images than were paid for are charged pro rata, rounded down; the amount comes from
    the stored outputs, so every retry of the capture asks the ledger for the same amount.
    """
    ordered = int(generation.params.get("outputs") or 1)
    if ordered <= 1:
        return generation.cost, ""
    delivered = min(len(media.assets_for_generation(generation.pk)), ordered)
    if delivered >= ordered or delivered == 0:
        return generation.cost, ""
    amount = max(generation.cost * delivered // ordered, 1)
    return amount, f"{delivered} of {ordered} images arrived"


def finish_capture(generation: Generation, *, also: Callable[[str], None] | None = None) -> str:
    """Capture the hold claimed for a success; the outcome picks succeeded or unpaid.

    ``also`` is called with the ledger's answer inside the same transaction.
    """
    was_unpaid = generation.status == Status.UNPAID
    charged = (
        ledger.CaptureOutcome.CAPTURED,
        ledger.CaptureOutcome.DUPLICATE,
        ledger.CaptureOutcome.LATE_CHARGED,
    )
    amount, shortfall = delivered_charge(generation)
    with transaction.atomic():
        result = ledger.capture(
            generation.hold_reference, amount if amount < generation.cost else None
        )
        if result.status in charged:
            transitions.record_capture(
                generation,
                to_status=Status.SUCCEEDED,
                ledger_status=result.status,
                charged=amount,
                shortfall=shortfall,
            )
        elif result.status == ledger.CaptureOutcome.UNPAID:
            transitions.record_capture(
                generation, to_status=Status.UNPAID, ledger_status=result.status
            )
        if also is not None:
            also(result.status)
    if result.status == ledger.CaptureOutcome.UNPAID and not was_unpaid:
        ops_alert(
            "Generation unpaid",
            f"{generation.hold_reference} succeeded late and the balance did not cover it",
            generation_id=str(generation.pk),
            user_id=str(generation.user_id),
        )
    elif result.status not in (*charged, ledger.CaptureOutcome.UNPAID):
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
