from django.db import migrations

from ledger.migrations._sql import load


def _row_rules_0006() -> str:
    """Return 0006's hold and journal rule functions as CREATE OR REPLACE (owner, grants kept)."""
    text = load("0006_row_rules.sql")
    parts = []
    for name, end_marker in (
        ("ledger_hold_row_ok", "-- ledger_entry_row_ok:"),
        ("ledger_entry_row_ok", "REVOKE ALL ON FUNCTION"),
    ):
        start = text.index(f"CREATE FUNCTION {name}(")
        end = text.index(end_marker, start)
        parts.append("CREATE OR REPLACE " + text[start + len("CREATE ") : end])
    return "\n".join(parts)


class Migration(migrations.Migration):
    dependencies = [("ledger", "0009_check_scaling")]

    operations = [
        migrations.RunSQL(load("0009_row_rules_by_kind.sql"), reverse_sql=_row_rules_0006())
    ]
