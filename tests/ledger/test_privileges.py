"""What each role may do: the runtime role and the owner are refused, readers see their rows."""

import uuid
from datetime import timedelta

import psycopg
import pytest
from psycopg import sql

from ledger import api

pytestmark = pytest.mark.django_db(transaction=True)
LEDGER_TABLES = ["ledger_account", "ledger_hold", "ledger_entry", "ledger_alert_state"]
FUNCTIONS = [
    "ledger_grant",
    "ledger_hold",
    "ledger_capture",
    "ledger_release",
    "ledger_extend",
    "ledger_expire_due",
    "ledger_adjust",
    "ledger_clawback",
    "ledger_check",
    "ledger_audit",
    "ledger_alert_claim",
]


@pytest.fixture
def funded(account, ref):
    api.grant(account, 10, key=ref("k"), source="test")
    api.hold(account, ref("job"), 3, ttl=timedelta(minutes=5))
    return account


@pytest.mark.parametrize("table", LEDGER_TABLES)
@pytest.mark.parametrize(
    "statement",
    [
        "INSERT INTO {} DEFAULT VALUES",
        "UPDATE {} SET account_id = account_id",
        "DELETE FROM {}",
        "TRUNCATE {}",
    ],
)
def test_runtime_role_cannot_write_ledger_tables(connect, funded, table, statement):
    conn = connect("app")
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute(sql.SQL(statement).format(sql.Identifier(table)))


@pytest.mark.parametrize(
    "statement",
    ["UPDATE ledger_entry SET memo = 'x'", "DELETE FROM ledger_entry", "TRUNCATE ledger_entry"],
)
def test_owner_cannot_change_the_journal(connect, funded, statement):
    conn = connect("owner")
    assert conn.execute(
        "SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user"
    ).fetchone() == (
        False,
        False,
    )
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute(statement)


@pytest.mark.parametrize(
    "statement",
    ["UPDATE ledger_entry SET memo = 'x'", "DELETE FROM ledger_entry", "TRUNCATE ledger_entry"],
)
def test_even_a_superuser_is_stopped_by_the_journal_triggers(connect, funded, statement):
    conn = connect("admin")
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
        conn.execute(statement)


def test_runtime_role_without_a_reader_role_sees_no_ledger_rows(connect, funded):
    conn = connect("app")
    conn.execute("SELECT set_config('app.account_id', %s, false)", [str(funded)])
    for table in LEDGER_TABLES:
        query = sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))
        assert conn.execute(query).fetchone()[0] == 0


def test_user_reader_sees_only_its_account_even_when_asking_for_all(connect, funded, db_urls, ref):
    other = uuid.uuid4()
    api.grant(other, 5, key=ref("k"), source="test")
    conn = connect("app")
    with conn.transaction():
        conn.execute(
            sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(f"{db_urls.prefix}_user_reader"))
        )
        conn.execute("SELECT set_config('app.account_id', %s, true)", [str(funded)])
        owners = {row[0] for row in conn.execute("SELECT account_id FROM ledger_entry").fetchall()}
        holds = {row[0] for row in conn.execute("SELECT account_id FROM ledger_hold").fetchall()}
    assert owners == {funded}
    assert holds == {funded}
    # The role and the setting ended with the transaction.
    assert conn.execute("SELECT current_user").fetchone()[0] == f"{db_urls.prefix}_app"
    assert conn.execute("SELECT count(*) FROM ledger_entry").fetchone()[0] == 0


def test_user_reader_without_an_account_setting_sees_nothing(connect, funded, db_urls):
    conn = connect("app")
    with conn.transaction():
        conn.execute(
            sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(f"{db_urls.prefix}_user_reader"))
        )
        assert conn.execute("SELECT count(*) FROM ledger_entry").fetchone()[0] == 0


def test_staff_reader_sees_every_row_and_cannot_write(connect, funded, db_urls):
    conn = connect("app")
    with pytest.raises(psycopg.errors.InsufficientPrivilege), conn.transaction():
        conn.execute(
            sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(f"{db_urls.prefix}_staff_reader"))
        )
        assert (
            conn.execute(
                "SELECT count(*) FROM ledger_entry WHERE account_id = %s", [funded]
            ).fetchone()[0]
            == 2
        )
        conn.execute("UPDATE ledger_account SET available = 0")


def test_functions_are_definer_owned_by_owner_with_pg_temp_last_and_private(connect, db_urls):
    conn = connect("admin")
    rows = conn.execute(
        """
        SELECT p.proname, p.prosecdef, pg_get_userbyid(p.proowner), p.proconfig,
               has_function_privilege('public', p.oid, 'EXECUTE'),
               has_function_privilege(%s, p.oid, 'EXECUTE')
        FROM pg_proc p WHERE p.pronamespace = 'public'::regnamespace AND p.proname = ANY(%s)
        """,
        [f"{db_urls.prefix}_app", FUNCTIONS],
    ).fetchall()
    assert sorted(r[0] for r in rows) == sorted(FUNCTIONS)
    for name, definer, owner, config, public_exec, app_exec in rows:
        assert definer, name
        assert owner == f"{db_urls.prefix}_owner", name
        assert "search_path=pg_catalog, public, pg_temp" in config, name
        assert not public_exec, name
        assert app_exec, name


def test_rls_is_enabled_and_forced_on_every_ledger_table(connect):
    conn = connect("admin")
    rows = conn.execute(
        "SELECT relname, relrowsecurity, relforcerowsecurity FROM pg_class WHERE relname = ANY(%s)",
        [LEDGER_TABLES],
    ).fetchall()
    assert sorted(rows) == sorted((t, True, True) for t in LEDGER_TABLES)
