"""How the ledger talks to PostgreSQL: one function call per operation, and reader-role cursors.

``ledger.api`` and ``ledger.selectors`` both build on this module, so neither imports the other
for its plumbing. Other apps never import it: ``ledger.api`` is their door.
"""

from __future__ import annotations

import logging
import random
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any
from uuid import UUID

from django.conf import settings
from django.db import DatabaseError, connections, transaction

from ledger.exceptions import LedgerError, LedgerInputError

logger = logging.getLogger("ledger")

MAX_AMOUNT = 1_000_000_000_000
MAX_KEY_LENGTH = 200
MAX_TTL = timedelta(days=30)
MAX_ATTEMPTS = 6
# serialization_failure, deadlock_detected, lock_not_available (lock_timeout)
RETRY_SQLSTATES = frozenset({"40001", "40P01", "55P03"})
INVALID_INPUT_SQLSTATES = frozenset({"22023", "22P02", "22003"})
_ROLE_PREFIX = re.compile(r"^[a-z_][a-z0-9_]{0,40}$")


def role_name(kind: str) -> str:
    """Return ``<prefix>_<kind>`` for this database, refusing a prefix that is not a plain name."""
    prefix = settings.DATABASE_ROLE_PREFIX
    if not _ROLE_PREFIX.match(prefix):
        raise LedgerError(f"DATABASE_ROLE_PREFIX {prefix!r} is not a plain lower-case identifier")
    return f"{prefix}_{kind}"


@contextmanager
def reading_as_user(account_id: UUID) -> Iterator[Any]:
    """Yield a cursor that sees only ``account_id``'s ledger rows (user reader role + RLS)."""
    with _reading_as(role_name("user_reader"), str(account_id)) as cursor:
        yield cursor


@contextmanager
def reading_as_staff() -> Iterator[Any]:
    """Yield a cursor that sees every ledger row (staff reader role), read-only."""
    with _reading_as(role_name("staff_reader"), "") as cursor:
        yield cursor


@contextmanager
def _reading_as(role: str, account: str) -> Iterator[Any]:
    # SET LOCAL lasts until the end of the transaction; inside an outer atomic block the
    # savepoint is rolled back at the end so the role never outlives this block.
    connection = connections["default"]
    nested = connection.in_atomic_block
    with transaction.atomic(using="default"), connection.cursor() as cursor:
        cursor.execute(f'SET LOCAL ROLE "{role}"')
        cursor.execute("SELECT set_config('app.account_id', %s, true)", [account])
        yield cursor
        if nested:
            transaction.set_rollback(True, using="default")


def call(sql: str, params: list, *, fetch: str = "one") -> Any:
    """Run one ledger function call in autocommit; retry transient conflicts, same arguments."""
    connection = connections["default"]
    for attempt in range(1, MAX_ATTEMPTS + 1):
        in_transaction = connection.in_atomic_block
        if in_transaction:
            _refuse_if_holding_locks(connection)
        try:
            if in_transaction:
                # No retry inside a caller's transaction: its snapshot and locks are not ours.
                with transaction.atomic(using="default"), connection.cursor() as cursor:
                    cursor.execute(sql, params)
                    return cursor.fetchone() if fetch == "one" else cursor.fetchall()
            with connection.cursor() as cursor:
                cursor.execute(sql, params)
                return cursor.fetchone() if fetch == "one" else cursor.fetchall()
        except DatabaseError as exc:
            sqlstate = getattr(exc.__cause__, "sqlstate", None)
            if sqlstate in INVALID_INPUT_SQLSTATES:
                raise LedgerInputError(str(exc.__cause__ or exc).splitlines()[0]) from exc
            retryable = sqlstate in RETRY_SQLSTATES or _connection_lost(connection, exc)
            if in_transaction or not retryable:
                raise
            if attempt == MAX_ATTEMPTS:
                raise LedgerError(f"ledger call failed after {attempt} attempts: {exc}") from exc
            if sqlstate not in RETRY_SQLSTATES:
                # The server dropped the connection (restart, terminated backend): reconnect and
                # repeat; the call is idempotent, so a commit we never heard of answers duplicate.
                connection.close()
            logger.warning("ledger call retried", extra={"sqlstate": sqlstate, "attempt": attempt})
            time.sleep(random.uniform(0, 0.02 * 2**attempt))
    raise AssertionError("unreachable")


def _connection_lost(connection: Any, exc: DatabaseError) -> bool:
    raw = connection.connection
    return (
        raw is None
        or bool(getattr(raw, "closed", False))
        or getattr(exc.__cause__, "sqlstate", None)
        in {
            "57P01",
            "57P02",
            "57P03",
            "08006",
            "08003",
        }
    )


def _refuse_if_holding_locks(connection: Any) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_current_xact_id_if_assigned() IS NOT NULL")
        (holding,) = cursor.fetchone()
    if holding:
        raise LedgerError(
            "ledger calls must not run inside a transaction that already wrote or locked rows: "
            "a balance row lock would be held until that transaction commits. Call it outside "
            "transaction.atomic() (or before the first write)."
        )


def require_uuid(value: object) -> None:
    """Refuse anything but a UUID as an account id."""
    if not isinstance(value, UUID):
        raise LedgerInputError(f"account_id must be a UUID, got {value!r}")


def require_amount(value: object) -> None:
    """Refuse anything but an int of credits in 1..MAX_AMOUNT."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_AMOUNT:
        raise LedgerInputError(f"amount must be an int in 1..{MAX_AMOUNT}, got {value!r}")


def require_text(name: str, value: object, *, limit: int = MAX_KEY_LENGTH) -> None:
    """Refuse a key, reference or label that is blank, not text, or longer than ``limit``."""
    if not isinstance(value, str) or not value.strip() or len(value) > limit:
        raise LedgerInputError(f"{name} must be 1..{limit} characters and not blank, got {value!r}")


def require_ttl(value: object) -> None:
    """Refuse a hold lifetime outside 1 second..30 days."""
    if not isinstance(value, timedelta) or not timedelta(seconds=1) <= value <= MAX_TTL:
        raise LedgerInputError(f"ttl must be a timedelta of 1 second..30 days, got {value!r}")
