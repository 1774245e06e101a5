"""Finish the ledger work a transition claimed on a generation's hold: capture or release.

A transition that needs the ledger sets ``pending_action`` in its own UPDATE; these functions
call ``ledger.api`` (outside any transaction) and record its answer, which clears the claim. A
crash in between leaves the claim for the re-drive, and the keyed ledger calls make the repeat
harmless.
"""

from __future__ import annotations

from config.ops import ops_alert
from generation import transitions
from generation.models import Generation, PendingAction, Status
from ledger import api as ledger


def finish_release(generation: Generation) -> str:
    """Release the hold claimed by a failed or canceled transition and clear the claim."""
    result = ledger.release(generation.hold_reference)
    if result.status == ledger.ReleaseOutcome.ALREADY_CAPTURED:
        ops_alert(
            "Released generation was captured",
            f"{generation.hold_reference} is {generation.status} but its hold was captured",
            generation_id=str(generation.pk),
        )
        return result.status
    transitions.record_release(generation, ledger_status=result.status)
    return result.status


def finish_capture(generation: Generation) -> str:
    """Capture the hold claimed for a success; the outcome picks succeeded or unpaid."""
    was_unpaid = generation.status == Status.UNPAID
    result = ledger.capture(generation.hold_reference)
    if result.status in (
        ledger.CaptureOutcome.CAPTURED,
        ledger.CaptureOutcome.DUPLICATE,
        ledger.CaptureOutcome.LATE_CHARGED,
    ):
        transitions.record_capture(
            generation, to_status=Status.SUCCEEDED, ledger_status=result.status
        )
    elif result.status == ledger.CaptureOutcome.UNPAID:
        transitions.record_capture(generation, to_status=Status.UNPAID, ledger_status=result.status)
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
