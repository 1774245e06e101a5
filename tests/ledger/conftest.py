"""Ledger fixtures: fresh account ids and raw connections as each database role.

Ledger rows are never truncated, so every test uses new account ids and new references and
asserts per account. Raw psycopg connections are real, separate server sessions (visible in
pg_stat_activity), which is what the race tests need.
"""

import uuid
from collections.abc import Callable, Iterator

import psycopg
import pytest


@pytest.fixture
def account() -> uuid.UUID:
    """Return a fresh account id nobody has used."""
    return uuid.uuid4()


@pytest.fixture
def ref() -> Callable[[str], str]:
    """Return a maker of unique hold references / keys."""
    tag = uuid.uuid4().hex[:12]
    return lambda name="r": f"{name}-{tag}-{uuid.uuid4().hex[:6]}"


@pytest.fixture
def connect(db_urls, transactional_db) -> Iterator[Callable[..., psycopg.Connection]]:
    """Open autocommit psycopg connections as ``app`` (default), ``owner`` or ``admin``."""
    opened: list[psycopg.Connection] = []

    def open_as(role: str = "app", **kwargs) -> psycopg.Connection:
        conn = psycopg.connect(getattr(db_urls, role), autocommit=True, **kwargs)
        opened.append(conn)
        return conn

    yield open_as
    for conn in opened:
        conn.close()


def call(conn: psycopg.Connection, sql: str, *params) -> tuple:
    """Run one ledger function and return its single row."""
    return conn.execute(sql, params).fetchone()


def check_for(conn: psycopg.Connection, *accounts: uuid.UUID) -> list[tuple[str, str]]:
    """Return ledger_check() violations that mention any of ``accounts`` or are global."""
    rows = conn.execute("SELECT invariant, detail FROM ledger_check()").fetchall()
    names = [str(a) for a in accounts]
    return [r for r in rows if r[0] == "global_conservation" or any(n in r[1] for n in names)]


def audit_for(conn: psycopg.Connection, *accounts: uuid.UUID) -> list[tuple[str, str]]:
    """Return ledger_audit() violations that mention any of ``accounts`` or are global."""
    rows = conn.execute("SELECT invariant, detail FROM ledger_audit()").fetchall()
    names = [str(a) for a in accounts]
    return [
        r
        for r in rows
        if r[0] in ("global_conservation", "key_once") or any(n in r[1] for n in names)
    ]
