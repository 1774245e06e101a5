# Model state only: the tables exist already (0001, 0005) and the models are unmanaged.

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("ledger", "0005_alert_state"),
    ]

    operations = [
        migrations.CreateModel(
            name="Account",
            fields=[
                ("account_id", models.UUIDField(primary_key=True, serialize=False)),
                ("available", models.BigIntegerField()),
                ("held", models.BigIntegerField()),
                ("version", models.BigIntegerField()),
                ("granted", models.BigIntegerField()),
                ("adjusted", models.BigIntegerField()),
                ("clawed_back", models.BigIntegerField()),
                ("captured", models.BigIntegerField()),
                ("late_charged", models.BigIntegerField()),
                ("created_at", models.DateTimeField()),
                ("updated_at", models.DateTimeField()),
            ],
            options={
                "verbose_name": "balance",
                "db_table": "ledger_account",
                "ordering": ["-updated_at"],
                "managed": False,
            },
        ),
        migrations.CreateModel(
            name="AlertState",
            fields=[
                (
                    "pk",
                    models.CompositePrimaryKey(
                        "account_id",
                        "threshold",
                        blank=True,
                        editable=False,
                        primary_key=True,
                        serialize=False,
                    ),
                ),
                ("account_id", models.UUIDField()),
                ("threshold", models.BigIntegerField()),
                ("state", models.TextField(choices=[("armed", "Armed"), ("fired", "Fired")])),
                ("fired_at", models.DateTimeField(null=True)),
                ("rearmed_at", models.DateTimeField(null=True)),
                ("updated_at", models.DateTimeField()),
            ],
            options={
                "db_table": "ledger_alert_state",
                "managed": False,
            },
        ),
        migrations.CreateModel(
            name="Entry",
            fields=[
                ("entry_id", models.BigAutoField(primary_key=True, serialize=False)),
                ("account_id", models.UUIDField()),
                ("account_version", models.BigIntegerField()),
                (
                    "kind",
                    models.TextField(
                        choices=[
                            ("grant", "Grant"),
                            ("hold", "Hold"),
                            ("capture", "Capture"),
                            ("release", "Release"),
                            ("expire", "Expire"),
                            ("late_charge", "Late Charge"),
                            ("adjust", "Adjust"),
                            ("clawback", "Clawback"),
                        ]
                    ),
                ),
                ("amount", models.BigIntegerField()),
                ("available_delta", models.BigIntegerField()),
                ("held_delta", models.BigIntegerField()),
                ("available_after", models.BigIntegerField()),
                ("held_after", models.BigIntegerField()),
                ("hold_id", models.UUIDField(null=True)),
                ("idempotency_key", models.TextField(null=True, unique=True)),
                ("source", models.TextField()),
                ("memo", models.TextField()),
                ("created_at", models.DateTimeField()),
            ],
            options={
                "verbose_name_plural": "entries",
                "db_table": "ledger_entry",
                "ordering": ["-entry_id"],
                "managed": False,
            },
        ),
        migrations.CreateModel(
            name="Hold",
            fields=[
                ("hold_id", models.UUIDField(primary_key=True, serialize=False)),
                ("reference", models.TextField(unique=True)),
                ("account_id", models.UUIDField()),
                ("amount", models.BigIntegerField()),
                ("captured", models.BigIntegerField()),
                ("released", models.BigIntegerField()),
                (
                    "status",
                    models.TextField(
                        choices=[
                            ("pending", "Pending"),
                            ("captured", "Captured"),
                            ("released", "Released"),
                            ("expired", "Expired"),
                        ]
                    ),
                ),
                (
                    "late",
                    models.TextField(
                        choices=[("late_charged", "Late Charged"), ("unpaid", "Unpaid")], null=True
                    ),
                ),
                ("late_amount", models.BigIntegerField()),
                ("expires_at", models.DateTimeField()),
                ("created_at", models.DateTimeField()),
                ("settled_at", models.DateTimeField(null=True)),
                ("updated_at", models.DateTimeField()),
            ],
            options={
                "db_table": "ledger_hold",
                "ordering": ["-created_at"],
                "managed": False,
            },
        ),
    ]
