from django.db import migrations

from ledger.migrations._sql import function, load


def _previous_hot_path() -> str:
    """0007's hold, capture and release (OUT parameters) and hold id default, restored."""
    text = load("0007_hot_path.sql")
    functions = [
        function("0007_hot_path.sql", name)
        for name in ("ledger_hold", "ledger_capture", "ledger_release")
    ]
    default_start = text.index("ALTER TABLE ledger_hold ALTER COLUMN hold_id")
    default = text[default_start : text.index(";", default_start) + 1]
    grants = text[text.rindex("DO $$") :]
    new = load("0011_hot_path_results.sql")
    comments = new[new.index("COMMENT ON FUNCTION") : new.index("-- Owner-owned")]
    return "\n".join(
        [
            "DROP FUNCTION ledger_hold(uuid, text, bigint, interval);",
            "DROP FUNCTION ledger_capture(text, bigint);",
            "DROP FUNCTION ledger_release(text);",
            "DROP TYPE ledger_hold_result, ledger_capture_result, ledger_release_result;",
            *functions,
            "ALTER SEQUENCE ledger_hold_id_seq NO MAXVALUE;",
            default,
            comments,
            grants,
        ]
    )


class Migration(migrations.Migration):
    dependencies = [("ledger", "0011_row_rules_whole_row")]

    operations = [
        migrations.RunSQL(load("0011_hot_path_results.sql"), reverse_sql=_previous_hot_path())
    ]
