"""The performance migrations keep every guarantee they rewrote.

0006 replaced the 0001 CHECK constraints with one compiled function per table, and 0010 made
each take the whole row: the rules must refuse exactly what the old expressions refused, on every
row a table can hold (NOT NULL columns are never NULL when a CHECK runs; Hypothesis compares them
on random rows, NULLs included where a column allows them). 0007 made hold ids time-ordered and
dropped the per-account hold index: ids stay unique and a user's holds are still found, newest
first. 0008 rewrote ledger_check()'s journal lookup: it must still name a gap before the newest
entry. 0009 split the hold and journal rules by status and kind (0010 keeps that): on top of the
random rows, every combination of each column's boundary values is compared with the 0001 text.
"""

import math
import uuid
from datetime import timedelta

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger import api, selectors
from tests.ledger.conftest import call, check_for

# The 0001 CHECK expressions, verbatim, as a CHECK judges them (only FALSE fails).
ACCOUNT_0001 = """
    (available >= 0) IS NOT FALSE AND (held >= 0) IS NOT FALSE AND (version >= 0) IS NOT FALSE
    AND (granted >= 0) IS NOT FALSE AND (clawed_back >= 0) IS NOT FALSE
    AND (captured >= 0) IS NOT FALSE AND (late_charged >= 0) IS NOT FALSE
    AND (granted + adjusted - clawed_back = available + held + captured + late_charged) IS NOT FALSE
"""
HOLD_0001 = """
    (length(reference) BETWEEN 1 AND 200) IS NOT FALSE AND (amount > 0) IS NOT FALSE
    AND (captured >= 0) IS NOT FALSE AND (released >= 0) IS NOT FALSE
    AND (status IN ('pending', 'captured', 'released', 'expired')) IS NOT FALSE
    AND (late IN ('late_charged', 'unpaid')) IS NOT FALSE AND (late_amount >= 0) IS NOT FALSE
    AND (status <> 'pending'
        OR (captured = 0 AND released = 0 AND late IS NULL AND late_amount = 0
            AND settled_at IS NULL)) IS NOT FALSE
    AND (status <> 'captured'
        OR (captured > 0 AND captured + released = amount AND late IS NULL AND late_amount = 0
            AND settled_at IS NOT NULL)) IS NOT FALSE
    AND (status NOT IN ('released', 'expired')
        OR (captured = 0 AND released = amount AND settled_at IS NOT NULL)) IS NOT FALSE
    AND ((late IS NULL AND late_amount = 0)
        OR (late IS NOT NULL AND late_amount BETWEEN 1 AND amount)) IS NOT FALSE
"""
ENTRY_0001 = """
    (account_version > 0) IS NOT FALSE
    AND (kind IN ('grant', 'hold', 'capture', 'release', 'expire', 'late_charge', 'adjust',
                  'clawback')) IS NOT FALSE
    AND (amount > 0) IS NOT FALSE AND (available_after >= 0) IS NOT FALSE
    AND (held_after >= 0) IS NOT FALSE
    AND (length(idempotency_key) BETWEEN 1 AND 200) IS NOT FALSE
    AND (length(source) <= 200) IS NOT FALSE AND (length(memo) <= 1000) IS NOT FALSE
    AND (CASE kind
        WHEN 'grant' THEN available_delta = amount AND held_delta = 0
                          AND idempotency_key IS NOT NULL AND hold_id IS NULL
        WHEN 'adjust' THEN available_delta IN (amount, -amount) AND held_delta = 0
                          AND idempotency_key IS NOT NULL AND hold_id IS NULL
        WHEN 'clawback' THEN available_delta BETWEEN -amount AND 0 AND held_delta = 0
                          AND idempotency_key IS NOT NULL AND hold_id IS NULL
        WHEN 'hold' THEN available_delta = -amount AND held_delta = amount
                          AND hold_id IS NOT NULL AND idempotency_key IS NULL
        WHEN 'capture' THEN held_delta < 0 AND available_delta = -held_delta - amount
                          AND available_delta >= 0 AND hold_id IS NOT NULL
                          AND idempotency_key IS NULL
        WHEN 'release' THEN available_delta = amount AND held_delta = -amount
                          AND hold_id IS NOT NULL AND idempotency_key IS NULL
        WHEN 'expire' THEN available_delta = amount AND held_delta = -amount
                          AND hold_id IS NOT NULL AND idempotency_key IS NULL
        WHEN 'late_charge' THEN available_delta = -amount AND held_delta = 0
                          AND hold_id IS NOT NULL AND idempotency_key IS NULL
    END) IS NOT FALSE
"""

# NOT NULL is enforced before any CHECK constraint runs, so a rule only ever sees rows whose NOT
# NULL columns hold values: those columns are drawn without NULL; the nullable ones with it.
value = st.one_of(st.integers(-3, 3), st.sampled_from([10, 11, -10, 2**40]))
maybe_value = st.one_of(st.none(), value)
WORDS = ["", "x", "pending", "captured", "released", "expired", "late_charged", "unpaid", "y" * 201]
word = st.sampled_from(WORDS)
maybe_word = st.one_of(st.none(), word)
kind = st.sampled_from(
    ["grant", "hold", "capture", "release", "expire", "late_charge", "adjust", "clawback", "x"]
)
maybe_uuid = st.sampled_from([None, uuid.UUID(int=1)])
maybe_time = st.sampled_from([None, "2025-01-01T00:00:00Z"])
text = st.sampled_from(["", "k", "m" * 201, "n" * 1001])
maybe_text = st.one_of(st.none(), text)


@pytest.fixture(scope="module")
def owner_conn(django_db_setup, db_urls, django_db_blocker):
    with django_db_blocker.unblock(), psycopg.connect(db_urls.owner, autocommit=True) as conn:
        yield conn


_RULE_CALLS: dict[tuple[str, tuple], str] = {}


def rule_call(conn: psycopg.Connection, table: str, tested: list) -> str:
    """Return SQL calling ``<table>_rules`` on a row built from the ``tested`` columns in scope.

    The rule takes the whole row: every other column of the table is NULL (no rule reads them).
    Built once per table (Hypothesis asks for it on every example).
    """
    key = (table, tuple(tested))
    if key not in _RULE_CALLS:
        _RULE_CALLS[key] = _build_rule_call(conn, table, tested)
    return _RULE_CALLS[key]


def _build_rule_call(conn: psycopg.Connection, table: str, tested: list) -> str:
    columns = conn.execute(
        "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
        "WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
        [table],
    ).fetchall()
    names = {n for n, _ in tested}
    fields = ", ".join(n if n in names else f"NULL::{t}" for n, t in columns)
    return f"{table}_rules(ROW({fields})::{table})"


def agree(conn: psycopg.Connection, table: str, rule_sql: str, names: list, row) -> tuple:
    """Return (the table's rule function verdict, the 0001 verdict) for one row of values."""
    columns = ", ".join(f"%s::{t} AS {n}" for n, t in names)
    return conn.execute(
        f"SELECT {rule_call(conn, table, names)}, {rule_sql} FROM (SELECT {columns}) r",  # noqa: S608 (constants)
        list(row),
    ).fetchone()


ACCOUNT_COLS = [
    (n, "bigint")
    for n in (
        "available",
        "held",
        "version",
        "granted",
        "adjusted",
        "clawed_back",
        "captured",
        "late_charged",
    )
]
HOLD_COLS = [
    ("reference", "text"),
    ("amount", "bigint"),
    ("captured", "bigint"),
    ("released", "bigint"),
    ("status", "text"),
    ("late", "text"),
    ("late_amount", "bigint"),
    ("settled_at", "timestamptz"),
]
ENTRY_COLS = [
    ("account_version", "bigint"),
    ("kind", "text"),
    ("amount", "bigint"),
    ("available_delta", "bigint"),
    ("held_delta", "bigint"),
    ("available_after", "bigint"),
    ("held_after", "bigint"),
    ("hold_id", "uuid"),
    ("idempotency_key", "text"),
    ("source", "text"),
    ("memo", "text"),
]


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(row=st.tuples(*[value] * 8))
def test_account_rule_refuses_exactly_what_0001_refused(owner_conn, row):
    """ledger_account_rules() agrees with the 0001 CHECKs on any row the table can hold."""
    new, old = agree(owner_conn, "ledger_account", ACCOUNT_0001, ACCOUNT_COLS, row)
    assert new is old


@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
@given(row=st.tuples(word, value, value, value, word, maybe_word, value, maybe_time))
def test_hold_rule_refuses_exactly_what_0001_refused(owner_conn, row):
    """ledger_hold_rules() agrees with the 0001 CHECKs on any row the table can hold."""
    new, old = agree(owner_conn, "ledger_hold", HOLD_0001, HOLD_COLS, row)
    assert new is old


@settings(max_examples=500, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    row=st.tuples(
        value, kind, value, value, value, value, value, maybe_uuid, maybe_text, text, text
    )
)
def test_entry_rule_refuses_exactly_what_0001_refused(owner_conn, row):
    """ledger_entry_rules() agrees with the 0001 CHECKs on any row the table can hold."""
    new, old = agree(owner_conn, "ledger_entry", ENTRY_0001, ENTRY_COLS, row)
    assert new is old


def grid_disagreements(conn: psycopg.Connection, table: str, rule_sql: str, values: dict) -> tuple:
    """Return (rows, rows where the rule function and the 0001 text differ) over a value grid."""
    columns = {"ledger_hold": HOLD_COLS, "ledger_entry": ENTRY_COLS}[table]
    sources = ", ".join(f"unnest(%s::{t}[]) AS {n}" for n, t in columns)
    return conn.execute(
        f"SELECT count(*), count(*) FILTER (WHERE {rule_call(conn, table, columns)} "  # noqa: S608
        f"IS DISTINCT FROM ({rule_sql})) FROM {sources}",
        [values[n] for n, _ in columns],
    ).fetchone()


def test_hold_rule_matches_0001_on_every_boundary_combination(owner_conn):
    """Each status branch of ledger_hold_rules() refuses exactly what 0001 refused."""
    values = {
        "reference": ["", "x", "y" * 201],
        "amount": [-1, 0, 1, 10],
        "captured": [-1, 0, 1, 10],
        "released": [-1, 0, 1, 9, 10],
        "status": ["pending", "captured", "released", "expired", "x"],
        "late": [None, "late_charged", "unpaid", "x"],
        "late_amount": [-1, 0, 1, 10, 11],
        "settled_at": [None, "2025-01-01T00:00:00Z"],
    }
    rows, wrong = grid_disagreements(owner_conn, "ledger_hold", HOLD_0001, values)
    assert (rows, wrong) == (math.prod(len(v) for v in values.values()), 0)


ENTRY_KINDS = ["grant", "hold", "capture", "release", "expire", "late_charge", "adjust", "clawback"]


def test_entry_rule_matches_0001_on_every_boundary_combination(owner_conn):
    """Each kind branch of ledger_entry_rules() refuses exactly what 0001 refused."""
    deltas = [-11, -10, -1, 0, 10]  # beyond -amount, -amount, between, 0, amount
    values = {
        "account_version": [0, 1],
        "kind": [*ENTRY_KINDS, "x"],
        "amount": [0, 10],
        "available_delta": deltas,
        "held_delta": deltas,
        "available_after": [-1, 0],
        "held_after": [-1, 0],
        "hold_id": [None, uuid.UUID(int=1)],
        "idempotency_key": [None, "", "k", "m" * 201],
        "source": ["", "s" * 201],
        "memo": ["", "n" * 1001],
    }
    rows, wrong = grid_disagreements(owner_conn, "ledger_entry", ENTRY_0001, values)
    assert (rows, wrong) == (math.prod(len(v) for v in values.values()), 0)


@pytest.mark.django_db(transaction=True)
def test_not_null_is_enforced_before_the_row_rules(connect, account):
    """The rules may assume NOT NULL columns hold values: PostgreSQL refuses a NULL there first."""
    admin = connect("admin")
    with pytest.raises(psycopg.errors.NotNullViolation):
        admin.execute(
            "INSERT INTO ledger_hold (reference, account_id, amount, status, expires_at) "
            "VALUES ('null-' || %s::text, %s, NULL, 'pending', now())",
            [account, account],
        )


@pytest.mark.django_db(transaction=True)
def test_row_rules_refuse_bad_rows_even_for_the_superuser(connect, account):
    """Each rule is a real CHECK: a superuser with triggers off still cannot store a bad row."""
    admin = connect("admin")
    bad = [
        "INSERT INTO ledger_account (account_id, available, granted) VALUES (%s, 5, 4)",
        "INSERT INTO ledger_hold (reference, account_id, amount, status, expires_at) "
        "VALUES ('bad-' || %s::text, %s, 5, 'captured', now())",
        "INSERT INTO ledger_entry (account_id, account_version, kind, amount, available_delta, "
        "held_delta, available_after, held_after, hold_id) "
        "VALUES (%s, 1, 'hold', 5, 5, 5, 5, 5, gen_random_uuid())",
    ]
    for sql in bad:
        params = [account, account] if sql.count("%s") == 2 else [account]
        with pytest.raises(psycopg.errors.CheckViolation):
            admin.execute(sql, params)


@pytest.mark.django_db(transaction=True)
def test_hold_ids_are_unique_and_ordered(connect, account, ref):
    """Hold ids come from a sequence (version 8 UUIDs since 0011): distinct, increasing."""
    app = connect()
    call(app, "SELECT * FROM ledger_grant(%s, 100, %s, 'test', '')", account, ref("g"))
    ids = [
        call(app, "SELECT hold_id FROM ledger_hold(%s, %s, 1, '1 hour')", account, ref())[0]
        for _ in range(20)
    ]
    assert len(set(ids)) == 20
    assert ids == sorted(ids, key=lambda u: u.bytes)
    assert all(u.version == 8 for u in ids)


@pytest.mark.django_db(transaction=True)
def test_holds_for_account_finds_holds_through_the_journal(alice, bob, ref):
    """Without a per-account hold index a user still sees only their holds, newest first."""
    api.grant(alice.pk, 100, key=ref("ga"), source="test")
    api.grant(bob.pk, 100, key=ref("gb"), source="test")
    refs = [ref("a") for _ in range(5)]
    for r in refs:
        assert api.hold(alice.pk, r, 1, ttl=timedelta(hours=1)).status == "held"
    api.capture(refs[1])
    api.release(refs[2])
    api.hold(bob.pk, ref("b"), 1, ttl=timedelta(hours=1))
    assert [h.reference for h in selectors.holds_for_account(alice.pk)] == refs[::-1]
    assert [h.reference for h in selectors.holds_for_account(alice.pk, limit=2)] == refs[:2:-1]


@pytest.mark.django_db(transaction=True)
def test_check_names_a_gap_before_the_newest_entry(connect, account, ref):
    """ledger_check() still sees a missing previous version (an entry deleted from the chain)."""
    app, admin = connect(), connect("admin")
    for n in range(3):
        call(app, "SELECT * FROM ledger_grant(%s, 10, %s, 'test', '')", account, ref(f"g{n}"))
    assert check_for(app, account) == []
    # Planted inside a transaction that is rolled back: later tests audit the whole journal.
    with admin.transaction(force_rollback=True):
        admin.execute("SET LOCAL session_replication_role = replica")
        admin.execute(
            "DELETE FROM ledger_entry WHERE account_id = %s AND account_version = 2", [account]
        )
        rows = admin.execute("SELECT invariant, detail FROM ledger_check()").fetchall()
        found = {inv for inv, detail in rows if str(account) in detail}
    assert check_for(app, account) == []
    assert "latest_entry_chains" in found
