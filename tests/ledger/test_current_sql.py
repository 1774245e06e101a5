"""ledger/sql/current/ is what the migrated database runs (docs/ledger.md, "Today's SQL")."""

import pytest
from django.db import connection

from ledger import current_sql

pytestmark = pytest.mark.django_db


def test_current_sql_files_match_the_migrated_database():
    with connection.cursor() as cursor:
        database = current_sql.read_database(cursor)
    problems = current_sql.differences(database, current_sql.read_files())
    assert not problems, (
        "ledger/sql/current/ disagrees with the migrated database. Run "
        f"`{current_sql.REGENERATE}` and commit what it writes:\n  " + "\n  ".join(problems)
    )


def test_current_sql_covers_every_function_the_api_calls():
    names = set(current_sql.read_files())
    for function in ("grant", "hold", "capture", "release", "extend", "expire_due", "adjust"):
        assert f"ledger_{function}.sql" in names
    assert {"ledger_clawback.sql", "ledger_check.sql", "ledger_audit.sql"} <= names
    assert {current_sql.TYPES_FILE, current_sql.TRIGGERS_FILE} <= names


def test_a_changed_body_is_reported_with_its_file_name():
    files = current_sql.read_files()
    changed = {**files, "ledger_grant.sql": files["ledger_grant.sql"].replace("BEGIN", "BEGIN ")}
    del changed["ledger_check.sql"]
    changed["ledger_gone.sql"] = "-- dropped"
    assert current_sql.differences(files, changed) == [
        "ledger_check.sql: missing from ledger/sql/current/",
        "ledger_gone.sql: no such function in the database",
        "ledger_grant.sql: differs from the database",
    ]
