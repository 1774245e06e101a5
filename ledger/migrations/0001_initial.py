from django.db import migrations

from ledger.migrations._sql import load


class Migration(migrations.Migration):
    initial = True
    dependencies: list = []

    operations = [
        migrations.RunSQL(
            load("0001_tables.sql"),
            reverse_sql="DROP TABLE ledger_entry, ledger_hold, ledger_account;",
        ),
    ]
