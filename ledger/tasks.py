"""Celery entry points for the ledger: the sweeper, the checks and low-balance notices."""

import logging
import time
from uuid import UUID

from celery import shared_task
from django.db import connections, transaction

from config.ops import ops_alert
from config.signals import announce
from ledger import api
from ledger.signals import low_balance

logger = logging.getLogger("ledger")

SWEEP_BATCH = 1000
SWEEP_BUDGET_SECONDS = 20


@shared_task
def expire_due_holds() -> int:
    """Expire overdue holds in batches until none are due or the time budget is spent.

    The budget stays below the 30 s beat interval, so sweeps never pile up; SKIP LOCKED lets two
    overlapping sweeps share the work anyway.
    """
    deadline = time.monotonic() + SWEEP_BUDGET_SECONDS
    total = 0
    while time.monotonic() < deadline:
        expired = api.expire_due(SWEEP_BATCH)
        total += expired
        if expired < SWEEP_BATCH:
            break
    return total


@shared_task
def check_ledger() -> int:
    """Run ledger_check() and alert operators once per violation; return the count."""
    return _alert_each("ledger check", api.check())


@shared_task
def audit_ledger() -> int:
    """Run the full ledger_audit() fold and alert operators once per violation; return the count."""
    return _alert_each("ledger audit", api.audit())


@shared_task
def notice_low_balance(account_id: str) -> str:
    """Announce one low-balance notice per descent below the threshold; return the claim status.

    ledger_alert_claim() decides atomically, so ten holds crossing the threshold at once (ten of
    these tasks) fire once; a top-up re-arms it. ``low_balance`` is sent inside the claim's
    transaction, so whatever a receiver records commits with the claim or not at all.
    """
    threshold = api.low_balance_threshold()
    with transaction.atomic(using="default"), connections["default"].cursor() as cursor:
        cursor.execute("SELECT * FROM ledger_alert_claim(%s, %s)", [UUID(account_id), threshold])
        status, available = cursor.fetchone()
        if status == "fire":
            cursor.execute("SELECT clock_timestamp()")
            (fired_at,) = cursor.fetchone()
            announce(
                low_balance,
                notice_low_balance,
                account_id=UUID(account_id),
                available=available,
                key=f"{account_id}:{threshold}:{fired_at.isoformat()}",
            )
    return status


def _alert_each(subject: str, violations: list[api.Violation]) -> int:
    for violation in violations:
        ops_alert(f"{subject}: {violation.invariant}", violation.detail)
    return len(violations)
