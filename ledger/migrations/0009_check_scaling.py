from django.db import migrations

from ledger.migrations._sql import load


def _ledger_check_0002() -> str:
    """Return 0002's ledger_check() definition as CREATE OR REPLACE (it keeps owner and grants)."""
    text = load("0002_functions.sql")
    start = text.index("CREATE FUNCTION ledger_check()")
    end = text.index("-- ledger_audit:", start)
    return "CREATE OR REPLACE " + text[start + len("CREATE ") : end]


class Migration(migrations.Migration):
    dependencies = [("ledger", "0008_hot_path")]

    operations = [
        migrations.RunSQL(load("0008_check_scaling.sql"), reverse_sql=_ledger_check_0002())
    ]
