"""Named permissions for the admin actions that change state."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("billing", "0004_seed_plans"),
    ]

    operations = [
        migrations.AlterModelOptions(
            name="reviewitem",
            options={
                "ordering": ["-created_at"],
                "permissions": [("resolve_review", "Can resolve review items (moves credits)")],
            },
        ),
        migrations.AlterModelOptions(
            name="stripeevent",
            options={
                "ordering": ["-received_at"],
                "permissions": [("reprocess_event", "Can process stored Stripe events again")],
            },
        ),
    ]
