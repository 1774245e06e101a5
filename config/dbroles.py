"""Create the database and its roles (docs/design.md §3), idempotently.

Only ``manage.py db_bootstrap``, the test setup, ``manage.py ledger dump_sql`` and the benchmarks
call this, with a superuser or CREATEROLE connection. Migrations never create roles: they read
the role prefix from the database setting ``app.role_prefix`` written here.
"""

import os
import secrets
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

from config.env import database_config, with_credentials


@dataclass(frozen=True)
class RolePlan:
    """The names and passwords a bootstrap creates; passwords may be empty under trust auth."""

    dbname: str
    prefix: str
    owner: str
    owner_password: str
    app: str
    app_password: str

    @classmethod
    def for_database(cls, dbname: str) -> "RolePlan":
        """Plan roles named after ``dbname`` with no passwords (trust auth: tests, benches)."""
        return cls(dbname, dbname, f"{dbname}_owner", "", f"{dbname}_app", "")

    @property
    def user_reader(self) -> str:
        return f"{self.prefix}_user_reader"

    @property
    def staff_reader(self) -> str:
        return f"{self.prefix}_staff_reader"


def bootstrap(admin_url: str, plan: RolePlan, *, for_tests: bool = False) -> list[str]:
    """Create or repair roles, database, grants and default privileges; return what was done.

    ``for_tests`` also lets the runtime role TRUNCATE non-ledger tables, which Django's
    transactional test cases use to flush between tests.
    """
    done: list[str] = []
    with psycopg.connect(admin_url, autocommit=True) as admin:
        server_version = admin.info.server_version
        _ensure_login_role(admin, plan.owner, plan.owner_password, inherit=True, done=done)
        _ensure_login_role(admin, plan.app, plan.app_password, inherit=False, done=done)
        for reader in (plan.user_reader, plan.staff_reader):
            if not _role_exists(admin, reader):
                admin.execute(
                    sql.SQL("CREATE ROLE {} NOLOGIN NOINHERIT").format(sql.Identifier(reader))
                )
                done.append(f"created role {reader}")
            # Membership lets the app SET LOCAL ROLE to a reader; it never inherits a reader's
            # rights, so RLS reader policies apply only inside such a scoped transaction.
            grant = "GRANT {} TO {}"
            if server_version >= 160000:
                grant += " WITH INHERIT FALSE, SET TRUE"
            admin.execute(sql.SQL(grant).format(sql.Identifier(reader), sql.Identifier(plan.app)))
        exists = admin.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", (plan.dbname,)
        ).fetchone()
        if not exists:
            admin.execute(
                sql.SQL("CREATE DATABASE {} OWNER {} ENCODING 'UTF8' TEMPLATE template0").format(
                    sql.Identifier(plan.dbname), sql.Identifier(plan.owner)
                )
            )
            done.append(f"created database {plan.dbname}")
        else:
            admin.execute(
                sql.SQL("ALTER DATABASE {} OWNER TO {}").format(
                    sql.Identifier(plan.dbname), sql.Identifier(plan.owner)
                )
            )
        admin.execute(
            sql.SQL("ALTER DATABASE {} SET app.role_prefix = {}").format(
                sql.Identifier(plan.dbname), sql.Literal(plan.prefix)
            )
        )
        admin.execute(
            sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(sql.Identifier(plan.dbname))
        )
        admin.execute(
            sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(
                sql.Identifier(plan.dbname), sql.Identifier(plan.app)
            )
        )

    with psycopg.connect(url_for_database(admin_url, plan.dbname), autocommit=True) as db:
        ident = sql.Identifier
        statements = [
            sql.SQL("ALTER SCHEMA public OWNER TO {}").format(ident(plan.owner)),
            sql.SQL("REVOKE CREATE ON SCHEMA public FROM PUBLIC"),
            sql.SQL("GRANT USAGE ON SCHEMA public TO {}").format(ident(plan.app)),
            sql.SQL(
                "ALTER DEFAULT PRIVILEGES FOR ROLE {} IN SCHEMA public "
                "GRANT SELECT, INSERT, UPDATE, DELETE{} ON TABLES TO {}"
            ).format(
                ident(plan.owner), sql.SQL(", TRUNCATE" if for_tests else ""), ident(plan.app)
            ),
            sql.SQL(
                "ALTER DEFAULT PRIVILEGES FOR ROLE {} IN SCHEMA public "
                "GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO {}"
            ).format(ident(plan.owner), ident(plan.app)),
            # Functions are private unless a migration grants them (the ledger grants its own).
            sql.SQL(
                "ALTER DEFAULT PRIVILEGES FOR ROLE {} REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC"
            ).format(ident(plan.owner)),
        ]
        for statement in statements:
            db.execute(statement)
        done.append(f"granted runtime privileges in {plan.dbname}")
    return done


def drop_database(admin_url: str, dbname: str) -> None:
    """Drop a database, disconnecting its sessions (test teardown)."""
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(dbname))
        )


def prepare_database(admin_url: str, dbname: str, **settings: str) -> tuple[dict, RolePlan]:
    """Bootstrap and migrate a fresh database as production does; return the app's environment.

    ``migrate`` runs as the owner in a child process, configured by the returned environment;
    ``settings`` are extra environment variables for it (they win over the defaults here).
    """
    plan = RolePlan.for_database(dbname)
    drop_database(admin_url, dbname)
    bootstrap(admin_url, plan)
    env = {
        "DATABASE_URL": with_credentials(admin_url, user=plan.app, password="", dbname=dbname),
        "DATABASE_OWNER_URL": with_credentials(
            admin_url, user=plan.owner, password="", dbname=dbname
        ),
        "DATABASE_ROLE_PREFIX": plan.prefix,
        "DATABASE_NAME": dbname,
        "DJANGO_ENV": "test",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(40),
        **settings,
    }
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--database", "owner", "-v", "0"],
        cwd=Path(__file__).resolve().parent.parent,
        env={**os.environ, **env},
        check=True,
    )
    return env, plan


def role_report(conn: psycopg.Connection) -> dict:
    """Describe the connected role: who it is, what it owns, what it bypasses or may write.

    ``writable_ledger_tables`` lists ledger tables it could change directly; the runtime role
    must reach them only through the ledger's SQL functions, so it should be empty.
    """
    row = conn.execute(
        """
        SELECT current_user, r.rolsuper, r.rolbypassrls, r.rolcreaterole, r.rolcreatedb,
               (SELECT count(*) FROM pg_class c WHERE c.relowner = r.oid)
             + (SELECT count(*) FROM pg_proc p WHERE p.proowner = r.oid)
             + (SELECT count(*) FROM pg_namespace n WHERE n.nspowner = r.oid)
             + (SELECT count(*) FROM pg_database d WHERE d.datdba = r.oid) AS owned,
               ARRAY(
                   SELECT c.relname::text FROM pg_class c
                   WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p')
                     AND c.relname LIKE 'ledger!_%' ESCAPE '!'
                     AND has_table_privilege(c.oid, 'INSERT, UPDATE, DELETE, TRUNCATE')
                   ORDER BY 1
               ) AS writable_ledger_tables
        FROM pg_roles r WHERE r.rolname = current_user
        """
    ).fetchone()
    keys = ("user", "superuser", "bypassrls", "createrole", "createdb", "owned_objects")
    keys += ("writable_ledger_tables",)
    return dict(zip(keys, row, strict=True))


def _role_exists(conn: psycopg.Connection, name: str) -> bool:
    return conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,)).fetchone() is not None


def _ensure_login_role(
    conn: psycopg.Connection, name: str, password: str, *, inherit: bool, done: list[str]
) -> None:
    attributes = sql.SQL(
        "LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEROLE NOCREATEDB NOREPLICATION "
        + ("INHERIT" if inherit else "NOINHERIT")
    )
    verb = "ALTER" if _role_exists(conn, name) else "CREATE"
    statement = sql.SQL("{} ROLE {} ").format(sql.SQL(verb), sql.Identifier(name)) + attributes
    statement += sql.SQL(" PASSWORD {}").format(sql.Literal(password) if password else sql.NULL)
    conn.execute(statement)
    if verb == "CREATE":
        done.append(f"created role {name}")


def url_for_database(url: str, dbname: str) -> str:
    """Return ``url`` with the same credentials, pointed at another database."""
    parsed = database_config(url, variable="DATABASE_ADMIN_URL")
    return with_credentials(url, user=parsed["USER"], password=parsed["PASSWORD"], dbname=dbname)
