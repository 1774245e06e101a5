"""Reads of ledger rows for pages, the admin and operators, always through a reader role.

A user's reads run as ``<prefix>_user_reader`` with ``app.account_id`` set for one transaction,
so row-level security returns only that user's rows whatever the query asks for. Staff reads run
as ``<prefix>_staff_reader``.
"""

from dataclasses import dataclass
from datetime import date, datetime
from uuid import UUID

from ledger.database import reading_as_staff, reading_as_user, require_uuid
from ledger.models import Entry, EntryKind, Hold

# Other apps read these through ``ledger.api``, which re-exports them.
__all__ = [
    "ENTRY_WORDS",
    "Balance",
    "BalanceHistory",
    "JournalPage",
    "Totals",
    "balance",
    "balance_history",
    "hold_entries",
    "holds_by_id",
    "holds_for_account",
    "journal_page",
    "totals",
]


# What each entry kind means to a customer: the journal's own words (hold, capture) stay staff-side.
ENTRY_WORDS = {
    EntryKind.GRANT: "Credits added",
    EntryKind.HOLD: "Reserved while it runs",
    EntryKind.CAPTURE: "Charged",
    EntryKind.RELEASE: "Returned",
    EntryKind.EXPIRE: "Returned (timed out)",
    EntryKind.LATE_CHARGE: "Charged after it finished",
    EntryKind.ADJUST: "Balance correction",
    EntryKind.CLAWBACK: "Credits taken back",
}


@dataclass(frozen=True)
class Balance:
    available: int
    held: int


def balance(account_id: UUID) -> Balance:
    """Return the account's available and held credits (0/0 for an account never granted)."""
    require_uuid(account_id)
    with reading_as_user(account_id) as cursor:
        cursor.execute(
            "SELECT available, held FROM ledger_account WHERE account_id = %s", [account_id]
        )
        row = cursor.fetchone()
    return Balance(*row) if row else Balance(0, 0)


@dataclass(frozen=True)
class JournalPage:
    entries: list[Entry]
    next_before: int | None  # pass as ``before`` for the next (older) page; None on the last


@dataclass(frozen=True)
class Totals:
    accounts: int
    available: int
    held: int
    granted: int
    adjusted: int
    clawed_back: int
    captured: int
    late_charged: int
    pending_holds: int
    overdue_holds: int
    unpaid_holds: int


def journal_page(account_id: UUID, *, before: int | None = None, limit: int = 50) -> JournalPage:
    """Return one page of the account's journal, newest first, keyset-paginated by version."""
    limit = max(1, min(limit, 200))
    with reading_as_user(account_id):
        # RLS limits the rows to this account; the filter lets the planner use the index.
        rows = Entry.objects.filter(account_id=account_id).order_by("-account_version")
        if before is not None:
            rows = rows.filter(account_version__lt=before)
        entries = list(rows[: limit + 1])
    more = len(entries) > limit
    entries = entries[:limit]
    return JournalPage(entries, entries[-1].account_version if more and entries else None)


def holds_for_account(account_id: UUID, *, limit: int = 50) -> list[Hold]:
    """Return the account's most recent holds, newest first."""
    with reading_as_user(account_id):
        # ledger_hold has no per-account index (it cost the hot path an index insertion per
        # hold and per settlement); each hold has exactly one `hold` entry in its account's
        # journal, which the (account_id, account_version) index walks newest first.
        newest = (
            Entry.objects.filter(account_id=account_id, kind=EntryKind.HOLD)
            .order_by("-account_version")
            .values("hold_id")[:limit]
        )
        return list(Hold.objects.filter(hold_id__in=newest).order_by("-created_at", "-hold_id"))


def holds_by_id(account_id: UUID, hold_ids: list[UUID]) -> dict[UUID, Hold]:
    """Return the account's holds among ``hold_ids`` (the billing page's generation rows)."""
    if not hold_ids:
        return {}
    with reading_as_user(account_id):
        rows = Hold.objects.filter(account_id=account_id, hold_id__in=list(hold_ids))
        return {hold.hold_id: hold for hold in rows}


def hold_entries(account_id: UUID, reference: str) -> list[Entry]:
    """Return the journal entries of the account's hold named ``reference``, oldest first.

    Read through the hold itself (its reference is unique), so a generation's lines show at
    any age; [] when no such hold exists for this account.
    """
    with reading_as_user(account_id):
        hold = Hold.objects.filter(account_id=account_id, reference=reference).first()
        if hold is None:
            return []
        # No index on hold_id: the (account_id, account_version) index bounds the scan to
        # this account's entries, and a hold's entries are few.
        return list(
            Entry.objects.filter(account_id=account_id, hold_id=hold.hold_id).order_by(
                "account_version"
            )
        )


def totals() -> Totals:
    """Return ledger-wide sums for the admin health panel (reads accounts and pending holds)."""
    with reading_as_staff() as cursor:
        cursor.execute(
            """
            SELECT count(*), coalesce(sum(available), 0), coalesce(sum(held), 0),
                   coalesce(sum(granted), 0), coalesce(sum(adjusted), 0),
                   coalesce(sum(clawed_back), 0), coalesce(sum(captured), 0),
                   coalesce(sum(late_charged), 0),
                   (SELECT count(*) FROM ledger_hold WHERE status = 'pending'),
                   (SELECT count(*) FROM ledger_hold
                     WHERE status = 'pending' AND expires_at < now() - interval '5 minutes'),
                   (SELECT count(*) FROM ledger_hold WHERE late = 'unpaid')
            FROM ledger_account
            """
        )
        return Totals(*cursor.fetchone())


@dataclass(frozen=True)
class BalanceHistory:
    opening: int | None  # available just before ``since``; None if the account had no entries
    days: list[tuple[date, int]]  # end-of-day available for each day with entries, oldest first
    changes: int  # entries since ``since``
    highs: list[tuple[date, int]]  # highest available after any entry of each such day


def balance_history(account_id: UUID, *, since: datetime) -> BalanceHistory:
    """Return the account's end-of-day available balance from ``since`` on, for the billing chart.

    Days follow the database session's time zone (Django's, UTC by default).
    """
    with reading_as_user(account_id) as cursor:
        cursor.execute(
            """
            SELECT available_after FROM ledger_entry
            WHERE account_id = %s AND created_at < %s
            ORDER BY account_version DESC LIMIT 1
            """,
            [account_id, since],
        )
        opening = cursor.fetchone()
        cursor.execute(
            """
            SELECT created_at::date AS day,
                   (array_agg(available_after ORDER BY account_version DESC))[1],
                   count(*),
                   max(available_after)
            FROM ledger_entry
            WHERE account_id = %s AND created_at >= %s
            GROUP BY day ORDER BY day
            """,
            [account_id, since],
        )
        rows = cursor.fetchall()
    return BalanceHistory(
        opening=opening[0] if opening else None,
        days=[(day, available) for day, available, _, _ in rows],
        changes=sum(count for _, _, count, _ in rows),
        highs=[(day, high) for day, _, _, high in rows],
    )
