from django.db import migrations

from ledger.migrations._sql import load


class Migration(migrations.Migration):
    dependencies = [("ledger", "0001_initial")]

    operations = [
        migrations.RunSQL(
            load("0002_functions.sql"),
            reverse_sql="""
                DROP FUNCTION ledger_grant(uuid, bigint, text, text, text);
                DROP FUNCTION ledger_hold(uuid, text, bigint, interval);
                DROP FUNCTION ledger_capture(text, bigint);
                DROP FUNCTION ledger_release(text);
                DROP FUNCTION ledger_extend(text, interval);
                DROP FUNCTION ledger_expire_due(integer);
                DROP FUNCTION ledger_adjust(uuid, bigint, text, text, text);
                DROP FUNCTION ledger_clawback(uuid, bigint, text, text, text);
                DROP FUNCTION ledger_check();
                DROP FUNCTION ledger_audit();
            """,
        ),
    ]
