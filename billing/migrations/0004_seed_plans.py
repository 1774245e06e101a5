from django.db import migrations

# A lookup key, as for the packs: create a recurring Price with this key (docs/stripe.md).
PLANS = [("Monthly", "monthly", 290, 2900, "month", "genmedia_monthly_usd_2900", 10)]


def seed(apps, schema_editor):
    Plan = apps.get_model("billing", "Plan")
    for name, slug, credits, amount, interval, lookup_key, order in PLANS:
        Plan.objects.get_or_create(
            slug=slug,
            defaults={
                "name": name,
                "credits_per_period": credits,
                "price_amount": amount,
                "currency": "usd",
                "interval": interval,
                "stripe_lookup_key": lookup_key,
                "order": order,
            },
        )


class Migration(migrations.Migration):
    dependencies = [("billing", "0003_refunds_disputes_subscriptions")]

    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
