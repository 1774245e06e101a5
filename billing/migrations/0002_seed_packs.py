from django.db import migrations

# Lookup keys, not price ids: create Prices with these keys in Stripe (docs/stripe.md) and the
# packs find them in either mode; or paste a price_... id into the pack in the admin.
PACKS = [
    ("Starter Pack", "starter", 100, 1000, "genmedia_starter_usd_1000", 10),
    ("Builder Pack", "builder", 250, 2500, "genmedia_builder_usd_2500", 20),
    ("Production Pack", "production", 500, 5000, "genmedia_production_usd_5000", 30),
]


def seed(apps, schema_editor):
    CreditPack = apps.get_model("billing", "CreditPack")
    for name, slug, credits, amount, lookup_key, order in PACKS:
        CreditPack.objects.get_or_create(
            slug=slug,
            defaults={
                "name": name,
                "credits": credits,
                "price_amount": amount,
                "currency": "usd",
                "stripe_lookup_key": lookup_key,
                "order": order,
            },
        )


class Migration(migrations.Migration):
    dependencies = [("billing", "0001_initial")]

    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
