"""Named permissions for the ledger admin: adjust a balance, view ledger health.

The "Ledger operator" group that holds them is kept by ledger.groups after every migrate.
"""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("ledger", "0012_hot_path_results"),
    ]

    operations = [
        migrations.AlterModelOptions(
            name="account",
            options={
                "managed": False,
                "ordering": ["-updated_at"],
                "permissions": [
                    ("adjust_account", "Can adjust a balance (admin correction with a reason)"),
                    ("view_ledger_health", "Can view ledger health (invariants and totals)"),
                ],
                "verbose_name": "balance",
            },
        ),
    ]
