"""The performance migrations keep every guarantee they rewrote.

0006 replaced the 0001 CHECK constraints with one compiled function per table: the rules must
refuse exactly what the old expressions refused (Hypothesis compares them on random rows, NULLs
included). 0007 made hold ids time-ordered and dropped the per-account hold index: ids stay
unique and a user's holds are still found, newest first. 0008 rewrote ledger_check()'s journal
lookup: it must still name a gap before the newest entry. 0009 split the hold and journal rules
by status and kind (each branch leaves out what the known word makes TRUE): on top of the random
rows, every combination of each column's boundary values is compared with the 0001 text.
"""

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

small = st.one_of(st.none(), st.integers(-3, 3), st.sampled_from([10, 11, -10, 2**40]))
word = st.one_of(
    st.none(),
    st.sampled_from(
        ["", "x", "pending", "captured", "released", "expired", "late_charged", "unpaid", "y" * 201]
    ),
)
kind = st.one_of(
    st.none(),
    st.sampled_from(
        ["grant", "hold", "capture", "release", "expire", "late_charge", "adjust", "clawback", "x"]
    ),
)
maybe_uuid = st.sampled_from([None, uuid.UUID(int=1)])
maybe_time = st.sampled_from([None, "2025-01-01T00:00:00Z"])
long_text = st.one_of(st.none(), st.sampled_from(["", "k", "m" * 201, "n" * 1001]))


@pytest.fixture(scope="module")
def owner_conn(django_db_setup, db_urls, django_db_blocker):
    with django_db_blocker.unblock(), psycopg.connect(db_urls.owner, autocommit=True) as conn:
        yield conn


def agree(conn: psycopg.Connection, function_sql: str, rule_sql: str, names: list, row) -> tuple:
    """Return (function verdict, 0001 verdict) for one row of values."""
    columns = ", ".join(f"%s::{t} AS {n}" for n, t in names)
    got = conn.execute(
        f"SELECT {function_sql}, {rule_sql} FROM (SELECT {columns}) r",  # noqa: S608 (constants)
        list(row),
    ).fetchone()
    return got


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
@given(row=st.tuples(*[small] * 8))
def test_account_rule_refuses_exactly_what_0001_refused(owner_conn, row):
    """ledger_account_row_ok() agrees with the 0001 CHECKs on any row, NULLs included."""
    fn = "ledger_account_row_ok(" + ", ".join(n for n, _ in ACCOUNT_COLS) + ")"
    new, old = agree(owner_conn, fn, ACCOUNT_0001, ACCOUNT_COLS, row)
    assert new is old


@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
@given(row=st.tuples(word, small, small, small, word, word, small, maybe_time))
def test_hold_rule_refuses_exactly_what_0001_refused(owner_conn, row):
    """ledger_hold_row_ok() agrees with the 0001 CHECKs on any row, NULLs included."""
    fn = "ledger_hold_row_ok(" + ", ".join(n for n, _ in HOLD_COLS) + ")"
    new, old = agree(owner_conn, fn, HOLD_0001, HOLD_COLS, row)
    assert new is old


@settings(max_examples=500, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    row=st.tuples(
        small, kind, small, small, small, small, small, maybe_uuid, long_text, long_text, long_text
    )
)
def test_entry_rule_refuses_exactly_what_0001_refused(owner_conn, row):
    """ledger_entry_row_ok() agrees with the 0001 CHECKs on any row, NULLs included."""
    fn = "ledger_entry_row_ok(" + ", ".join(n for n, _ in ENTRY_COLS) + ")"
    new, old = agree(owner_conn, fn, ENTRY_0001, ENTRY_COLS, row)
    assert new is old


def grid_disagreements(conn: psycopg.Connection, function_sql: str, rule_sql: str, axes) -> tuple:
    """Return (rows, rows where the function and the 0001 text differ) over a grid of values."""
    sources = ", ".join(f"unnest(%s::{t}[]) AS {n}" for n, t, _ in axes)
    return conn.execute(
        f"SELECT count(*), count(*) FILTER (WHERE {function_sql} IS DISTINCT FROM ({rule_sql})) "  # noqa: S608
        f"FROM {sources}",
        [values for _, _, values in axes],
    ).fetchone()


def test_hold_rule_matches_0001_on_every_boundary_combination(owner_conn):
    """Each status branch of ledger_hold_row_ok() refuses exactly what 0001 refused."""
    fn = "ledger_hold_row_ok(" + ", ".join(n for n, _ in HOLD_COLS) + ")"
    values = {
        "reference": [None, "", "x", "y" * 201],
        "amount": [None, -1, 0, 1, 10],
        "captured": [None, -1, 0, 1, 10],
        "released": [None, -1, 0, 1, 9, 10],
        "status": [None, "pending", "captured", "released", "expired", "x"],
        "late": [None, "late_charged", "unpaid", "x"],
        "late_amount": [None, -1, 0, 1, 10, 11],
        "settled_at": [None, "2025-01-01T00:00:00Z"],
    }
    rows, wrong = grid_disagreements(
        owner_conn, fn, HOLD_0001, [(n, t, values[n]) for n, t in HOLD_COLS]
    )
    assert (rows, wrong) == (172_800, 0)


ENTRY_KINDS = ["grant", "hold", "capture", "release", "expire", "late_charge", "adjust", "clawback"]


def test_entry_rule_matches_0001_on_every_boundary_combination(owner_conn):
    """Each kind branch of ledger_entry_row_ok() refuses exactly what 0001 refused."""
    fn = "ledger_entry_row_ok(" + ", ".join(n for n, _ in ENTRY_COLS) + ")"
    deltas = [None, -11, -10, 0, 10]  # NULL, beyond -amount, -amount, 0, amount
    values = {
        "account_version": [None, 0, 1],
        "kind": [None, *ENTRY_KINDS, "x"],
        "amount": [None, 0, 10],
        "available_delta": deltas,
        "held_delta": deltas,
        "available_after": [None, -1, 0],
        "held_after": [-1, 0],
        "hold_id": [None, uuid.UUID(int=1)],
        "idempotency_key": [None, "k", "m" * 201],
        "source": ["", "s" * 201],
        "memo": ["", "n" * 1001],
    }
    rows, wrong = grid_disagreements(
        owner_conn, fn, ENTRY_0001, [(n, t, values[n]) for n, t in ENTRY_COLS]
    )
    assert (rows, wrong) == (324_000, 0)


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
def test_hold_ids_are_unique_and_time_ordered(connect, account, ref):
    """Hold ids come from a sequence behind a millisecond prefix: distinct, increasing."""
    app = connect()
    call(app, "SELECT * FROM ledger_grant(%s, 100, %s, 'test', '')", account, ref("g"))
    ids = [
        call(app, "SELECT hold_id FROM ledger_hold(%s, %s, 1, '1 hour')", account, ref())[0]
        for _ in range(20)
    ]
    assert len(set(ids)) == 20
    assert ids == sorted(ids, key=lambda u: u.bytes)
    assert all(u.version == 7 for u in ids)


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
