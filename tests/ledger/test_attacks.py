"""Attacks: temp-table shadowing by a role with EXECUTE only, and planted corruption."""

import uuid
from datetime import timedelta

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo

from ledger import api

from .conftest import audit_for, check_for

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def attacker(connect, db_urls):
    """A login role holding EXECUTE on the settlement functions and TEMP, nothing else."""
    name = f"{db_urls.prefix}_attacker_{uuid.uuid4().hex[:6]}"
    admin = connect("admin")
    admin.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(name)))
    admin.execute(
        sql.SQL("GRANT CONNECT, TEMPORARY ON DATABASE {} TO {}").format(
            sql.Identifier(db_urls.dbname), sql.Identifier(name)
        )
    )
    admin.execute(sql.SQL("GRANT USAGE ON SCHEMA public TO {}").format(sql.Identifier(name)))
    for fn in (
        "ledger_release(text)",
        "ledger_capture(text, bigint)",
        "ledger_expire_due(integer)",
    ):
        admin.execute(
            sql.SQL("GRANT EXECUTE ON FUNCTION {} TO {}").format(sql.SQL(fn), sql.Identifier(name))
        )
    conn = psycopg.connect(make_conninfo(db_urls.app, user=name), autocommit=True)
    yield conn
    conn.close()
    admin.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(name)))
    admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(name)))


def test_temp_table_shadowing_cannot_move_a_real_balance(attacker, account, ref):
    api.grant(account, 1, key=ref("k"), source="test")
    real = ref("real")
    api.hold(account, real, 1, ttl=timedelta(minutes=5))
    forged = ref("forged")
    attacker.execute(
        """
        CREATE TEMP TABLE ledger_hold (hold_id uuid, reference text, account_id uuid, amount bigint,
            captured bigint, released bigint, status text, late text, late_amount bigint,
            expires_at timestamptz, created_at timestamptz, settled_at timestamptz,
            updated_at timestamptz);
        CREATE TEMP TABLE ledger_account (LIKE ledger_hold);
        CREATE TEMP TABLE ledger_entry (LIKE ledger_hold);
        """
    )
    attacker.execute(
        "INSERT INTO ledger_hold VALUES (gen_random_uuid(), %s, %s, 5000, 0, 0, 'pending', NULL, 0,"
        " now() - interval '1 hour', now(), NULL, now())",
        [forged, account],
    )
    assert (
        attacker.execute("SELECT status FROM ledger_release(%s)", [forged]).fetchone()[0]
        == "not_found"
    )
    assert (
        attacker.execute("SELECT status FROM ledger_capture(%s, NULL)", [forged]).fetchone()[0]
        == "not_found"
    )
    attacker.execute("SELECT ledger_expire_due(100)")
    assert api.balance(account) == api.Balance(0, 1)
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        attacker.execute("SELECT * FROM public.ledger_account")


class _Rollback(Exception):
    pass


def _violations_with(connect, statement: str, account, detector: str) -> list[tuple[str, str]]:
    """Plant ``statement`` as superuser with triggers off, run the detector in the same
    transaction, then roll it all back so the shared test database stays clean."""
    admin = connect("admin")
    found: list[tuple[str, str]] = []
    with pytest.raises(_Rollback), admin.transaction():
        admin.execute("SET LOCAL session_replication_role = replica")
        admin.execute(statement, [account])
        found = (check_for if detector == "check" else audit_for)(admin, account)
        found_by_audit = audit_for(admin, account)
        assert found_by_audit, "the full audit must name whatever check names"
        raise _Rollback
    return found


@pytest.fixture
def busy(account, ref):
    """An account with grants, a capture, a release and a pending hold."""
    api.grant(account, 100, key=ref("k"), source="test")
    captured, released, pending = ref("c"), ref("r"), ref("p")
    api.hold(account, captured, 10, ttl=timedelta(minutes=5))
    api.capture(captured, 6)
    api.hold(account, released, 5, ttl=timedelta(minutes=5))
    api.release(released)
    api.hold(account, pending, 7, ttl=timedelta(minutes=5))
    return account, captured, released, pending


CORRUPTIONS = {
    "cached balance raised": (
        "UPDATE ledger_account SET available = available + 50, granted = granted + 50"
        " WHERE account_id = %s",
        "account_matches_latest_entry",
        "check",
    ),
    "latest entry deleted": (
        "DELETE FROM ledger_entry WHERE entry_id ="
        " (SELECT max(entry_id) FROM ledger_entry WHERE account_id = %s)",
        "account_matches_latest_entry",
        "check",
    ),
    "latest entry's after-value edited": (
        "UPDATE ledger_entry SET available_after = available_after + 1"
        " WHERE entry_id = (SELECT max(entry_id) FROM ledger_entry WHERE account_id = %s)",
        "account_matches_latest_entry",
        "check",
    ),
    "pending hold flipped to released behind the ledger's back": (
        "UPDATE ledger_hold SET status = 'released', released = amount, settled_at = now()"
        " WHERE account_id = %s AND status = 'pending'",
        "held_matches_pending_holds",
        "check",
    ),
    "forged entry appended": (
        "INSERT INTO ledger_entry (account_id, account_version, kind, amount, available_delta,"
        " held_delta, available_after, held_after, idempotency_key, source)"
        " SELECT account_id, version + 1, 'grant', 1000, 1000, 0, available + 1000, held,"
        " gen_random_uuid()::text, 'x'"
        " FROM ledger_account WHERE account_id = %s",
        "account_matches_latest_entry",
        "check",
    ),
    "middle entry deleted": (
        "DELETE FROM ledger_entry WHERE account_id = %s AND account_version = 2",
        "entry_chain",
        "audit",
    ),
    "captured hold rewritten as released": (
        "UPDATE ledger_hold SET status = 'released', captured = 0, released = amount"
        " WHERE account_id = %s AND status = 'captured'",
        "hold_entries",
        "audit",
    ),
    "grant amount edited in the past": (
        "UPDATE ledger_entry SET amount = amount + 5, available_delta = available_delta + 5"
        " WHERE account_id = %s AND kind = 'grant'",
        "entry_chain",
        "audit",
    ),
}


@pytest.mark.parametrize("name", list(CORRUPTIONS))
def test_planted_corruption_is_named(connect, busy, name):
    account = busy[0]
    statement, invariant, detector = CORRUPTIONS[name]
    app = connect("app")
    assert check_for(app, account) == []
    assert audit_for(app, account) == []
    found = _violations_with(connect, statement, account, detector)
    assert invariant in {row[0] for row in found}, found
    assert any(str(account) in row[1] for row in found if row[0] == invariant)
    assert check_for(app, account) == []
