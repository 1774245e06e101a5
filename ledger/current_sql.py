"""Today's SQL of the ledger, one file per function, as a migrated database reports it.

A released migration file is never edited, so a function redefined by later migrations has
several bodies under ``ledger/migrations/sql/`` and only the database knows which one is live.
``ledger/sql/current/`` holds what ``pg_get_functiondef()`` returns for each ``ledger_*``
function (the functions the app calls, the row rules and the trigger functions), with its
comment, the composite result types and the triggers on ledger tables, so a reader finds
today's definition in one place.
``make ledger-sql`` (``manage.py ledger dump_sql`` on a scratch database) writes the files; a
test compares them with the database the suite migrated.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

CURRENT_DIR = Path(__file__).resolve().parent / "sql" / "current"
REGENERATE = "make ledger-sql"
HEADER = (
    "-- Written by `make ledger-sql` from a freshly migrated database: today's definition, not a\n"
    "-- migration. Change it with a new migration in ledger/migrations/sql/, then regenerate.\n\n"
)
TYPES_FILE = "result_types.sql"
TRIGGERS_FILE = "triggers.sql"

_FUNCTIONS = r"""
    SELECT p.proname,
           pg_get_functiondef(p.oid),
           format('%I(%s)', p.proname, pg_get_function_identity_arguments(p.oid)),
           obj_description(p.oid, 'pg_proc')
    FROM pg_proc p
    JOIN pg_namespace n ON n.oid = p.pronamespace
    WHERE n.nspname = 'public' AND p.proname LIKE 'ledger\_%'
    ORDER BY p.proname, pg_get_function_identity_arguments(p.oid)
"""
_TYPES = r"""
    SELECT t.typname,
           string_agg(format('    %I %s', a.attname, format_type(a.atttypid, a.atttypmod)),
                      E',\n' ORDER BY a.attnum),
           obj_description(t.oid, 'pg_type')
    FROM pg_type t
    JOIN pg_namespace n ON n.oid = t.typnamespace
    JOIN pg_class c ON c.oid = t.typrelid AND c.relkind = 'c'
    JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
    WHERE n.nspname = 'public' AND t.typname LIKE 'ledger\_%'
    GROUP BY t.oid, t.typname
    ORDER BY t.typname
"""
_TRIGGERS = r"""
    SELECT pg_get_triggerdef(t.oid)
    FROM pg_trigger t
    JOIN pg_class c ON c.oid = t.tgrelid
    JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = 'public' AND c.relname LIKE 'ledger\_%' AND NOT t.tgisinternal
    ORDER BY c.relname, t.tgname
"""


def read_database(cursor: Any) -> dict[str, str]:
    """Return ``{file name: text}`` for every ledger function and result type in the database."""
    files: dict[str, str] = {}
    cursor.execute(_FUNCTIONS)
    for name, definition, signature, comment in cursor.fetchall():
        file = f"{name}.sql"
        overload = 2
        while file in files:
            file = f"{name}.{overload}.sql"
            overload += 1
        text = definition.rstrip() + ";\n"
        if comment:
            text += f"\nCOMMENT ON FUNCTION {signature} IS {_literal(comment)};\n"
        files[file] = HEADER + text
    cursor.execute(_TYPES)
    types = [
        f"CREATE TYPE {name} AS (\n{columns}\n);\n"
        + (f"COMMENT ON TYPE {name} IS {_literal(comment)};\n" if comment else "")
        for name, columns, comment in cursor.fetchall()
    ]
    if types:
        files[TYPES_FILE] = HEADER + "\n".join(types)
    cursor.execute(_TRIGGERS)
    triggers = [f"{definition};\n" for (definition,) in cursor.fetchall()]
    if triggers:
        files[TRIGGERS_FILE] = HEADER + "".join(triggers)
    return files


def read_files(directory: Path = CURRENT_DIR) -> dict[str, str]:
    """Return ``{file name: text}`` of the checked-in files."""
    return {path.name: path.read_text(encoding="utf-8") for path in sorted(directory.glob("*.sql"))}


def write_files(files: dict[str, str], directory: Path = CURRENT_DIR) -> None:
    """Replace the checked-in files with ``files`` (a function dropped loses its file)."""
    directory.mkdir(parents=True, exist_ok=True)
    for path in directory.glob("*.sql"):
        if path.name not in files:
            path.unlink()
    for name, text in files.items():
        (directory / name).write_text(text, encoding="utf-8")


def differences(database: dict[str, str], checked_in: dict[str, str]) -> list[str]:
    """Name each file that is missing, left over or different; empty when they agree."""
    return [
        f"{name}: "
        + (
            "missing from ledger/sql/current/"
            if name not in checked_in
            else "no such function in the database"
            if name not in database
            else "differs from the database"
        )
        for name in sorted(database.keys() | checked_in.keys())
        if database.get(name) != checked_in.get(name)
    ]


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
