"""The role model, audited from the app's own connection (docs/design.md §3)."""

import psycopg
import pytest
from django.db import connection

from config.dbroles import role_report

pytestmark = pytest.mark.django_db


def test_app_connects_as_runtime_role_that_owns_nothing(db_urls):
    connection.ensure_connection()
    report = role_report(connection.connection)
    assert report["user"] == f"{db_urls.prefix}_app"
    assert report == {
        "user": report["user"],
        "superuser": False,
        "bypassrls": False,
        "createrole": False,
        "createdb": False,
        "owned_objects": 0,
        "writable_ledger_tables": [],
    }


def test_runtime_role_cannot_create_or_alter_tables():
    with pytest.raises(Exception, match="permission denied"), connection.cursor() as cursor:
        cursor.execute("CREATE TABLE intruder (id int)")


def test_owner_is_neither_superuser_nor_bypassing_rls(db_urls):
    with psycopg.connect(db_urls.owner) as owner:
        report = role_report(owner)
    assert report["superuser"] is False
    assert report["bypassrls"] is False
    assert report["createrole"] is False
    assert report["owned_objects"] > 0


def test_runtime_role_inherits_no_reader_rights(db_urls):
    with psycopg.connect(db_urls.app) as app:
        inherits = app.execute(
            "SELECT pg_has_role(current_user, %(role)s, 'USAGE'),"
            " pg_has_role(current_user, %(role)s, 'MEMBER')",
            {"role": f"{db_urls.prefix}_staff_reader"},
        ).fetchone()
    assert inherits == (False, True)


def test_bootstrap_is_idempotent(db_urls, settings):
    from config.dbroles import RolePlan, bootstrap

    plan = RolePlan.for_database(db_urls.dbname)
    done = bootstrap(settings.DATABASE_ADMIN_URL, plan, for_tests=True)
    assert not any(step.startswith("created") for step in done)
