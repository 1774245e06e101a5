"""The ledger's public face: typed calls onto the SQL functions (docs/ledger.md).

Each operation is one function call in autocommit on Django's ``default`` connection (the
runtime role). PostgreSQL decides every outcome; this module only validates arguments early,
retries transient conflicts with the same arguments, and turns rows into dataclasses.
Reads of ledger rows go through the reader roles inside a transaction (``SET LOCAL ROLE``),
never session-level settings, so a pooled connection cannot leak them.
"""

from __future__ import annotations

from datetime import timedelta
from uuid import UUID

from django.conf import settings

from config.queue import enqueue_on_commit
from ledger.database import MAX_AMOUNT, reading_as_staff, reading_as_user
from ledger.database import call as _call
from ledger.database import require_amount as _require_amount
from ledger.database import require_text as _require_text
from ledger.database import require_ttl as _require_ttl
from ledger.database import require_uuid as _require_uuid
from ledger.exceptions import LedgerError, LedgerInputError
from ledger.models import EntryKind, HoldStatus, LateStatus
from ledger.results import (
    AdjustOutcome,
    AdjustResult,
    CaptureOutcome,
    CaptureResult,
    ClawbackOutcome,
    ClawbackResult,
    ExtendOutcome,
    ExtendResult,
    GrantOutcome,
    GrantResult,
    HoldOutcome,
    HoldResult,
    ReleaseOutcome,
    ReleaseResult,
    Violation,
)
from ledger.selectors import (
    ENTRY_WORDS,
    Balance,
    BalanceHistory,
    JournalPage,
    balance,
    balance_history,
    hold_entries,
    holds_by_id,
    holds_for_account,
    journal_page,
)
from ledger.signals import announce_credits_added, credits_added, low_balance

__all__ = [
    "ENTRY_WORDS",
    "AdjustOutcome",
    "AdjustResult",
    "Balance",
    "BalanceHistory",
    "CaptureOutcome",
    "CaptureResult",
    "ClawbackOutcome",
    "ClawbackResult",
    "EntryKind",
    "ExtendOutcome",
    "ExtendResult",
    "GrantOutcome",
    "GrantResult",
    "HoldOutcome",
    "HoldResult",
    "HoldStatus",
    "JournalPage",
    "LateStatus",
    "LedgerError",
    "LedgerInputError",
    "ReleaseOutcome",
    "ReleaseResult",
    "Violation",
    "adjust",
    "audit",
    "balance",
    "balance_history",
    "capture",
    "check",
    "clawback",
    "credits_added",
    "expire_due",
    "extend",
    "grant",
    "hold",
    "hold_entries",
    "hold_status",
    "holds_by_id",
    "holds_for_account",
    "journal_page",
    "low_balance",
    "reading_as_staff",
    "reading_as_user",
    "release",
]


def grant(account_id: UUID, amount: int, *, key: str, source: str, memo: str = "") -> GrantResult:
    """Add credits to an account, at most once per key (granted | duplicate | conflict).

    ``duplicate`` carries the first grant's entry id; ``conflict`` means the key was used for
    another account or amount and nothing was written.
    """
    _require_uuid(account_id)
    _require_amount(amount)
    _require_text("key", key)
    _require_text("source", source)
    row = _call(
        "SELECT * FROM ledger_grant(%s, %s, %s, %s, %s)",
        [account_id, amount, key, source, memo or ""],
    )
    result = GrantResult(GrantOutcome(row[0]), row[1], row[2] or 0)
    if result.status == GrantOutcome.GRANTED:
        announce_credits_added(account_id, amount, kind="grant", key=key)
    if (
        result.status == GrantOutcome.GRANTED
        and result.available - amount < low_balance_threshold()
    ):
        # Only a balance that started below the threshold can have fired a notice to re-arm.
        _queue_low_balance_notice(account_id)
    return result


def hold(account_id: UUID, reference: str, amount: int, *, ttl: timedelta) -> HoldResult:
    """Reserve credits for the job ``reference`` (held | insufficient | duplicate | conflict).

    ``insufficient`` writes nothing; ``duplicate`` returns the existing hold's id whatever its
    status now, and never deducts twice.
    """
    _require_uuid(account_id)
    _require_text("reference", reference)
    _require_amount(amount)
    _require_ttl(ttl)
    row = _call("SELECT * FROM ledger_hold(%s, %s, %s, %s)", [account_id, reference, amount, ttl])
    result = HoldResult(HoldOutcome(row[0]), row[1], row[2] or 0)
    if result.status == HoldOutcome.HELD and result.available < low_balance_threshold():
        _queue_low_balance_notice(account_id)
    return result


def capture(reference: str, amount: int | None = None) -> CaptureResult:
    """Charge a hold fully or partly.

    Statuses: captured | duplicate | late_charged | unpaid | not_found | conflict.

    After a release or expiry the charge is a one-time ``late_charged`` debit, or ``unpaid``
    when the balance cannot cover it (a later capture tries again).
    """
    _require_text("reference", reference)
    if amount is not None:
        _require_amount(amount)
    row = _call("SELECT * FROM ledger_capture(%s, %s)", [reference, amount])
    return CaptureResult(CaptureOutcome(row[0]), row[1] or 0, row[2] or 0)


def release(reference: str) -> ReleaseResult:
    """Return a pending hold's credits (released | duplicate | already_captured | not_found)."""
    _require_text("reference", reference)
    row = _call("SELECT * FROM ledger_release(%s)", [reference])
    return ReleaseResult(ReleaseOutcome(row[0]), row[1] or 0, row[2] or 0)


def extend(reference: str, *, ttl: timedelta) -> ExtendResult:
    """Keep a pending hold alive for at least ``ttl`` more (extended | not_pending | not_found)."""
    _require_text("reference", reference)
    _require_ttl(ttl)
    row = _call("SELECT * FROM ledger_extend(%s, %s)", [reference, ttl])
    return ExtendResult(ExtendOutcome(row[0]), row[1])


def expire_due(max_rows: int = 1000) -> int:
    """Expire up to ``max_rows`` overdue pending holds; return how many were expired."""
    if isinstance(max_rows, bool) or not isinstance(max_rows, int) or not 1 <= max_rows <= 10_000:
        raise LedgerInputError(f"max_rows must be an int in 1..10000, got {max_rows!r}")
    return _call("SELECT ledger_expire_due(%s)", [max_rows])[0]


def adjust(account_id: UUID, delta: int, *, key: str, actor: str, reason: str) -> AdjustResult:
    """Correct a balance by ``delta`` as ``actor`` with a reason.

    Statuses: adjusted | insufficient | duplicate | conflict; keyed globally like grants.
    """
    _require_uuid(account_id)
    if (
        isinstance(delta, bool)
        or not isinstance(delta, int)
        or delta == 0
        or abs(delta) > MAX_AMOUNT
    ):
        raise LedgerInputError(
            f"delta must be a non-zero int of size <= {MAX_AMOUNT}, got {delta!r}"
        )
    _require_text("key", key)
    _require_text("actor", actor)
    _require_text("reason", reason, limit=1000)
    row = _call(
        "SELECT * FROM ledger_adjust(%s, %s, %s, %s, %s)", [account_id, delta, key, actor, reason]
    )
    result = AdjustResult(AdjustOutcome(row[0]), row[1], row[2] or 0)
    if result.status == AdjustOutcome.ADJUSTED and delta > 0:
        announce_credits_added(account_id, delta, kind="adjust", key=key)
    if (
        result.status == AdjustOutcome.ADJUSTED
        and delta > 0
        and result.available - delta < low_balance_threshold()
    ):
        _queue_low_balance_notice(account_id)
    return result


def clawback(
    account_id: UUID, amount: int, *, key: str, source: str, memo: str = ""
) -> ClawbackResult:
    """Take back up to ``amount`` credits, never below zero.

    Statuses: clawed_back | partial (``shortfall`` was not there to take) | duplicate | conflict.
    """
    _require_uuid(account_id)
    _require_amount(amount)
    _require_text("key", key)
    _require_text("source", source)
    row = _call(
        "SELECT * FROM ledger_clawback(%s, %s, %s, %s, %s)",
        [account_id, amount, key, source, memo or ""],
    )
    return ClawbackResult(ClawbackOutcome(row[0]), row[1] or 0, row[2] or 0)


def request_balance(request) -> Balance:
    """Return the signed-in user's balance, read once per request.

    The header and the page (the generate form's estimate) show the same figure, from one read.
    """
    cached = getattr(request, "_ledger_balance", None)
    if cached is None:
        cached = request._ledger_balance = balance(request.user.pk)
    return cached


def hold_status(reference: str) -> HoldStatus | LateStatus | None:
    """Return the hold's status, or its late outcome once it has one (None when unknown)."""
    _require_text("reference", reference)
    with reading_as_staff() as cursor:
        cursor.execute("SELECT status, late FROM ledger_hold WHERE reference = %s", [reference])
        row = cursor.fetchone()
    if row is None:
        return None
    return LateStatus(row[1]) if row[1] else HoldStatus(row[0])


def check() -> list[Violation]:
    """Run ``ledger_check()``: cheap invariants, no rows when healthy."""
    return [Violation(*row) for row in _call("SELECT * FROM ledger_check()", [], fetch="all")]


def audit() -> list[Violation]:
    """Run ``ledger_audit()``: the full fold of the journal, no rows when healthy."""
    return [Violation(*row) for row in _call("SELECT * FROM ledger_audit()", [], fetch="all")]


def low_balance_threshold() -> int:
    """Return the available balance below which a user gets one low-balance notice per descent."""
    return int(getattr(settings, "LEDGER_LOW_BALANCE_THRESHOLD", 100))


def _queue_low_balance_notice(account_id: UUID) -> None:
    # Never able to fail or slow the caller much (no publish retries): a broker outage is
    # logged, the notice is skipped, the credits are unaffected.
    enqueue_on_commit("ledger.tasks.notice_low_balance", str(account_id), retry=False)
