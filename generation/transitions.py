"""Every state change of a generation: one guarded UPDATE plus an event row (docs/design.md §5).

Each function returns True when this caller made the change and False when the row was not in a
state that allows it (another worker got there first, or the event is stale). Callers act on the
ledger only after winning. ``pending_action`` is the claim on ledger work: a transition that needs
a capture or a release sets it in the same UPDATE, and it is cleared once ``ledger.api`` answered,
so a crash in between leaves a row the re-drive finishes. While it is set no other transition runs.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from datetime import timedelta

from django.conf import settings
from django.db import connections, router, transaction
from django.db.models import F
from django.db.models.sql import UpdateQuery
from django.utils import timezone

from config.signals import announce
from generation.models import (
    AT_PROVIDER,
    CANCELABLE,
    CAPTURABLE,
    Generation,
    GenerationEvent,
    PendingAction,
    Status,
)
from generation.signals import generation_finished
from media_store import api as media

# Transitions announced through ``generation_finished``.
FINISHED = (Status.SUCCEEDED, Status.FAILED, Status.EXPIRED, Status.UNPAID)


def _later(seconds: float) -> timezone.datetime:
    return timezone.now() + timedelta(seconds=seconds)


def _apply(
    generation: Generation,
    *,
    name: str,
    from_statuses: Iterable[str],
    to_status: str | None = None,
    pending: tuple[str | None, ...] = (None,),
    unset: tuple[str, ...] = (),
    message: str = "",
    detail: str = "",
    event: bool = True,
    **fields: object,
) -> bool:
    """Run one guarded UPDATE and, when it changed the row, write its event in the same commit.

    The guard is the status, the pending claim and, for each field named in ``unset``, that it is
    still NULL.

    One statement, one round trip: lock the row (so the event's from_status is exact), update it
    only if the guard holds, insert the event, and return the new row to refresh ``generation``.
    """
    values = dict(fields)
    if to_status is not None:
        values["status"] = to_status
    values["updated_at"] = timezone.now()
    allowed = [value for value in pending if value is not None]
    pending_sql = ["pending_action = ANY(%s)"] if allowed else []
    if None in pending:
        pending_sql.append("pending_action IS NULL")
    connection = connections[router.db_for_write(Generation)]
    table = connection.ops.quote_name(Generation._meta.db_table)
    unset_sql = "".join(
        f"AND {table}.{connection.ops.quote_name(Generation._meta.get_field(name).column)} IS NULL "
        for name in unset
    )
    update = UpdateQuery(Generation)
    compiler = update.get_compiler(connection=connection)
    sets, set_params = [], []
    for field_name, value in values.items():
        field = Generation._meta.get_field(field_name)
        if hasattr(value, "resolve_expression"):
            sql, params = compiler.compile(
                value.resolve_expression(update, allow_joins=False, for_save=True)
            )
        else:
            sql, params = "%s", [field.get_db_prep_save(value, connection)]
        sets.append(f"{connection.ops.quote_name(field.column)} = {sql}")
        set_params.extend(params)
    # Only quoted identifiers and compiled expressions are interpolated; values are parameters.
    statement = (
        f"WITH before AS (SELECT id AS before_id, status AS before_status FROM {table} "  # noqa: S608
        f"WHERE id = %s FOR UPDATE), "
        f"changed AS (UPDATE {table} SET {', '.join(sets)} FROM before "
        f"WHERE {table}.id = before.before_id AND {table}.status = ANY(%s) "
        f"AND ({' OR '.join(pending_sql) or 'false'}) {unset_sql}"
        f"RETURNING {table}.*, before.before_status)"
    )
    params: list[object] = [generation.pk, *set_params, [str(s) for s in from_statuses]]
    if allowed:
        params.append([str(value) for value in allowed])
    if event:
        events = connection.ops.quote_name(GenerationEvent._meta.db_table)
        statement += (
            f", logged AS (INSERT INTO {events} "  # noqa: S608
            "(generation_id, name, from_status, to_status, message, detail, created_at) "
            "SELECT id, %s, before_status, COALESCE(%s, before_status), %s, %s, %s FROM changed)"
        )
        to = str(to_status) if to_status is not None else None
        params += [name, to, message[:300], detail, timezone.now()]
    statement += " SELECT * FROM changed"
    finished = to_status in FINISHED
    # A finished transition and what its receivers record commit together.
    with transaction.atomic() if finished else contextlib.nullcontext():
        rows = list(Generation.objects.raw(statement, params))
        if not rows:
            return False
        for field in Generation._meta.concrete_fields:
            setattr(generation, field.attname, getattr(rows[0], field.attname))
        if finished:
            announce(generation_finished, Generation, generation=generation)
    return True


def reserve(generation: Generation) -> bool:
    """queued -> reserved: the hold is in place."""
    return _apply(
        generation,
        name="reserved",
        from_statuses=(Status.QUEUED,),
        to_status=Status.RESERVED,
        message=f"{generation.cost} credits held.",
        next_check_at=_later(settings.GENERATION_DISPATCH_GRACE_SECONDS),
        redrive_attempts=0,
    )


def reject(generation: Generation, *, available: int) -> bool:
    """queued -> rejected: not enough credits; nothing was held."""
    return _apply(
        generation,
        name="rejected",
        from_statuses=(Status.QUEUED,),
        to_status=Status.REJECTED,
        message="Not enough credits.",
        error_message=(
            f"This costs {generation.cost} credits and {available} are available. "
            "Buy a credit pack and try again."
        ),
        next_check_at=None,
        finished_at=timezone.now(),
    )


def withdraw(generation: Generation) -> bool:
    """queued -> canceled: the owner left before any credits were held (account deletion).

    A start task that already asked the ledger for the hold finds the row canceled and leaves
    that hold to expire, so the credits come back all the same.
    """
    return _apply(
        generation,
        name="canceled",
        from_statuses=(Status.QUEUED,),
        to_status=Status.CANCELED,
        message="Canceled: the account was closed.",
        next_check_at=None,
        finished_at=timezone.now(),
    )


def record_dispatch_attempt(generation: Generation) -> bool:
    """Claim the one dispatch attempt before the POST (at-most-once providers check it).

    Guarded on no earlier attempt, so of two workers starting the same generation one POSTs.
    """
    return _apply(
        generation,
        name="dispatch_attempt",
        from_statuses=(Status.RESERVED,),
        unset=("dispatch_attempted_at",),
        event=False,
        dispatch_attempts=F("dispatch_attempts") + 1,
        dispatch_attempted_at=timezone.now(),
    )


def dispatch(
    generation: Generation, job_id: str, *, expected_seconds: float, count_attempt: bool = False
) -> bool:
    """reserved -> dispatched: the provider accepted the job.

    ``count_attempt`` records the attempt here, for providers whose retried submit is safe and
    so need no record before the POST.
    """
    attempt: dict[str, object] = (
        {"dispatch_attempts": F("dispatch_attempts") + 1, "dispatch_attempted_at": timezone.now()}
        if count_attempt
        else {}
    )
    return _apply(
        generation,
        name="dispatched",
        from_statuses=(Status.RESERVED,),
        to_status=Status.DISPATCHED,
        message="Sent to the provider.",
        provider_job_id=job_id,
        next_check_at=_later(expected_seconds * 2 + settings.GENERATION_RECONCILE_GRACE_SECONDS),
        redrive_attempts=0,
        **attempt,
    )


def refuse_dispatch(
    generation: Generation,
    *,
    detail: str,
    message: str = "The provider refused this request. Your credits were returned.",
) -> bool:
    """reserved -> failed (release pending): the job cannot start (refused, or hold lapsed)."""
    return _apply(
        generation,
        name="failed",
        from_statuses=(Status.RESERVED,),
        to_status=Status.FAILED,
        message=message,
        detail=detail,
        pending_action=PendingAction.RELEASE,
        error_message=message,
        error_detail=detail,
        next_check_at=_later(settings.GENERATION_SETTLE_GRACE_SECONDS),
        finished_at=timezone.now(),
    )


def progress(generation: Generation, percent: int | None, *, next_check_seconds: float) -> bool:
    """dispatched|processing -> processing: the provider says it is running."""
    values: dict[str, object] = {
        "next_check_at": _later(next_check_seconds),
        "redrive_attempts": 0,
    }
    if percent is not None:
        values["progress"] = max(min(int(percent), 99), generation.progress)
    return _apply(
        generation,
        name="processing",
        from_statuses=AT_PROVIDER,
        to_status=Status.PROCESSING,
        message="The provider is working on it.",
        event=generation.status != Status.PROCESSING,
        **values,
    )


def fail(generation: Generation, *, message: str, detail: str) -> bool:
    """dispatched|processing -> failed (release pending): failure reported or output gone."""
    return _apply(
        generation,
        name="failed",
        from_statuses=AT_PROVIDER,
        to_status=Status.FAILED,
        message="The generation failed.",
        detail=detail,
        pending_action=PendingAction.RELEASE,
        error_message=message,
        error_detail=detail,
        next_check_at=_later(settings.GENERATION_SETTLE_GRACE_SECONDS),
        finished_at=timezone.now(),
    )


def cancel(generation: Generation) -> bool:
    """reserved|dispatched|processing -> canceled (release pending): the user canceled."""
    return _apply(
        generation,
        name="canceled",
        from_statuses=CANCELABLE,
        to_status=Status.CANCELED,
        message="Canceled by you. Your credits were returned.",
        pending_action=PendingAction.RELEASE,
        next_check_at=_later(settings.GENERATION_SETTLE_GRACE_SECONDS),
        finished_at=timezone.now(),
    )


def expire(generation: Generation, *, detail: str) -> bool:
    """dispatched|processing -> expired: the hold lapsed and the provider is not running it."""
    return _apply(
        generation,
        name="expired",
        from_statuses=AT_PROVIDER,
        to_status=Status.EXPIRED,
        message="The provider did not finish in time. Your credits were returned.",
        detail=detail,
        error_message="The provider did not finish in time. Your credits were returned.",
        error_detail=detail,
        next_check_at=None,
        finished_at=timezone.now(),
    )


def claim_capture(generation: Generation) -> bool:
    """Claim the capture for a reported success (or a retried collection of an unpaid one)."""
    return _apply(
        generation,
        name="capture_claimed",
        from_statuses=(*CAPTURABLE, Status.UNPAID),
        pending=(None, PendingAction.CAPTURE),
        event=False,
        pending_action=PendingAction.CAPTURE,
        next_check_at=_later(settings.GENERATION_SETTLE_GRACE_SECONDS),
    )


def record_capture(
    generation: Generation,
    *,
    to_status: str,
    ledger_status: str,
    charged: int | None = None,
    shortfall: str = "",
) -> bool:
    """Apply the capture's outcome: -> succeeded (captured or late_charged) or -> unpaid.

    ``charged`` is what was captured when less than the cost arrived, and ``shortfall`` says
    so in the customer's words.
    """
    unpaid = to_status == Status.UNPAID
    late = generation.status in (Status.FAILED, Status.EXPIRED, Status.UNPAID)
    amount = generation.cost if charged is None else charged
    returned = f" {shortfall}; {generation.cost - amount} credits returned." if shortfall else ""
    if unpaid:
        message = "The output arrived late and your balance did not cover it; it is withheld."
    elif late:
        message = f"The output arrived late; {amount} credits charged.{returned}"
    else:
        message = f"Done; {amount} credits charged.{returned}"
    was_unpaid = generation.status == Status.UNPAID
    with transaction.atomic():
        changed = _apply(
            generation,
            name=ledger_status if late else "succeeded",
            from_statuses=(*CAPTURABLE, Status.UNPAID),
            to_status=to_status,
            pending=(PendingAction.CAPTURE,),
            message=message,
            event=not (unpaid and generation.status == Status.UNPAID),
            pending_action=None,
            progress=100,
            error_message=(
                "The output is withheld until your balance covers it. Buy credits to unlock it."
                if unpaid
                else ""
            ),
            next_check_at=_later(settings.GENERATION_COLLECT_INTERVAL_SECONDS) if unpaid else None,
            finished_at=timezone.now(),
        )
        # Same transaction as the status, so unpaid output is never served (docs/design.md §5).
        if changed and (unpaid or was_unpaid):
            media.set_withheld(generation.pk, unpaid)
    return changed


def record_release(generation: Generation, *, ledger_status: str) -> bool:
    """Confirm the release claimed by a failed, canceled or refused transition."""
    return _apply(
        generation,
        name="released",
        from_statuses=(Status.FAILED, Status.CANCELED),
        pending=(PendingAction.RELEASE,),
        message=f"{generation.cost} credits returned ({ledger_status}).",
        pending_action=None,
        next_check_at=None,
    )


def note(generation: Generation, name: str, message: str, detail: str = "") -> None:
    """Record something on the timeline that does not change the state (a discarded output)."""
    GenerationEvent.objects.create(
        generation_id=generation.pk,
        name=name,
        from_status=generation.status,
        to_status=generation.status,
        message=message[:300],
        detail=detail,
    )
