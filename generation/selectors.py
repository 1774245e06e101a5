"""Reads for the generation pages."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from django.core.paginator import Page, Paginator
from django.db.models import QuerySet

from generation.models import Generation, Status
from ledger import api as ledger
from media_store import api as media


@dataclass(frozen=True)
class LedgerLine:
    """One journal entry that belongs to a generation's hold, for its detail page."""

    label: str
    amount: int
    available_after: int
    held_after: int
    created_at: object


def user_generations(user, *, status: str = "") -> QuerySet[Generation]:
    """Return the user's generations, newest first, optionally of one status."""
    rows = Generation.objects.filter(user=user, deleted_at__isnull=True)
    if status in Status.values:
        rows = rows.filter(status=status)
    return rows.order_by("-created_at")


def with_previews(generations: list[Generation]) -> list[Generation]:
    """Set ``preview`` on each generation: its first output if it succeeded, else None.

    One query for the whole list, however many cards a gallery shows.
    """
    previews = media.first_outputs(g.pk for g in generations if g.status == Status.SUCCEEDED)
    for generation in generations:
        generation.preview = previews.get(generation.pk)
    return generations


def history_page(user, *, status: str = "", page: object = 1, per_page: int = 12) -> Page:
    """Return one page of the user's history, each card with its preview."""
    result = Paginator(user_generations(user, status=status), per_page).get_page(page)
    result.object_list = with_previews(list(result.object_list))
    return result


def recent_generations(user, limit: int = 5) -> list[Generation]:
    """Return the user's latest generations (the dashboard's list), with previews."""
    return with_previews(list(user_generations(user)[:limit]))


def generation_for(user, generation_id: uuid.UUID) -> Generation:
    """Return the user's generation; raise Generation.DoesNotExist for anyone else's."""
    return Generation.objects.get(pk=generation_id, user=user, deleted_at__isnull=True)


def outputs(generation: Generation) -> list:
    """Return the assets to show: none while unpaid (withheld) or after a cancel (discarded)."""
    if generation.status != Status.SUCCEEDED:
        return []
    return media.assets_for_generation(generation.pk)


def ledger_lines(generation: Generation) -> list[LedgerLine]:
    """Return the journal entries of this generation's hold, oldest first, at any age."""
    return [
        LedgerLine(
            ledger.ENTRY_WORDS.get(e.kind, e.kind),
            e.amount,
            e.available_after,
            e.held_after,
            e.created_at,
        )
        for e in ledger.hold_entries(generation.user_id, generation.hold_reference)
    ]


def for_hold_references(user, references: list[str]) -> dict[str, Generation]:
    """Return the user's generations named by these hold references, deleted ones included."""
    ids = [ref.removeprefix("gen:") for ref in references if ref.startswith("gen:")]
    valid = []
    for value in ids:
        try:
            valid.append(uuid.UUID(value))
        except ValueError:
            continue
    rows = Generation.objects.filter(user=user, pk__in=valid)
    return {row.hold_reference: row for row in rows}
