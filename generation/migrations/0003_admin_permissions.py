"""Named permissions for the admin actions that change state."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("generation", "0002_generation_submission_key"),
    ]

    operations = [
        migrations.AlterModelOptions(
            name="generation",
            options={
                "ordering": ["-created_at"],
                "permissions": [("redrive_generation", "Can re-drive stuck generations")],
            },
        ),
    ]
