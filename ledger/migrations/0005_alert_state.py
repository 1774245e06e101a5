from django.db import migrations

from ledger.migrations._sql import load


class Migration(migrations.Migration):
    dependencies = [("ledger", "0004_immutable_journal")]

    operations = [
        migrations.RunSQL(
            load("0005_alert_state.sql"),
            reverse_sql="""
                DROP FUNCTION ledger_alert_claim(uuid, bigint);
                DROP TABLE ledger_alert_state;
            """,
        ),
    ]
