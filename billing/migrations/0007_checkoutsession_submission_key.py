from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("billing", "0006_payment_reversal_accounts"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name="checkoutsession",
            name="submission_key",
            field=models.CharField(blank=True, max_length=64, null=True),
        ),
        migrations.AddConstraint(
            model_name="checkoutsession",
            constraint=models.UniqueConstraint(
                fields=("user", "submission_key"), name="billing_session_unique_submission"
            ),
        ),
    ]
