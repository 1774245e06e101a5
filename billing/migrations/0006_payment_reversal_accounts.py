"""One reversal account per payment: refunds and disputes of all its charges add up on one row.

Existing refunds and disputes are grouped by payment intent into accounts whose counters are
rebuilt from the steps already run, and every step moves from its subject to the account.
"""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

DISPUTE_AT_RISK = ("", "lost")


def build_accounts(apps, schema_editor):
    payments = apps.get_model("billing", "PaymentReversal")
    reversals = apps.get_model("billing", "Reversal")
    steps = apps.get_model("billing", "ReversalStep")
    for intent in reversals.objects.values_list("stripe_payment_intent_id", flat=True).distinct():
        subjects = list(reversals.objects.filter(stripe_payment_intent_id=intent))
        first = subjects[0]
        payment = payments.objects.create(
            stripe_payment_intent_id=intent,
            user_id=first.user_id,
            checkout_session_id=first.checkout_session_id,
            invoice_id=first.invoice_id,
            credits_granted=max(s.credits_granted for s in subjects),
            amount_paid=max(s.amount_paid for s in subjects),
            currency=first.currency,
            refunded=sum(s.stripe_amount for s in subjects if s.kind == "refund"),
            disputed=sum(
                s.stripe_amount
                for s in subjects
                if s.kind == "dispute" and s.outcome in DISPUTE_AT_RISK
            ),
        )
        reversals.objects.filter(pk__in=[s.pk for s in subjects]).update(payment=payment)
        taken = short = 0
        for step in steps.objects.filter(reversal__in=subjects).order_by("pk"):
            if step.credits is None:
                # A grant-back that never ran returns what its clawback took.
                returned = sum(
                    s.taken
                    for s in steps.objects.filter(reversal_id=step.reversal_id, action="clawback")
                )
                step.credits = returned or 1
                if not returned:
                    step.status = "canceled"
            step.payment = payment
            step.save()
            if step.status == "done" and step.action == "clawback":
                taken += step.taken
                short += step.shortfall
            elif step.status == "done":
                taken -= step.credits
        payments.objects.filter(pk=payment.pk).update(
            credits_taken=max(taken, 0),
            credits_short=short,
            credits_target=max(taken, 0) + short,
        )


class Migration(migrations.Migration):
    # The data step commits before the columns it filled become NOT NULL: PostgreSQL refuses to
    # alter a table with pending deferred-constraint events in the same transaction.
    atomic = False

    dependencies = [
        ("billing", "0005_admin_permissions"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="PaymentReversal",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("stripe_payment_intent_id", models.CharField(max_length=255, unique=True)),
                (
                    "stripe_invoice_id",
                    models.CharField(blank=True, db_index=True, max_length=255),
                ),
                (
                    "credits_granted",
                    models.PositiveIntegerField(default=0, help_text="0 until the grant lands."),
                ),
                (
                    "amount_paid",
                    models.PositiveIntegerField(default=0, help_text="Minor units actually paid."),
                ),
                ("currency", models.CharField(blank=True, max_length=3)),
                (
                    "refunded",
                    models.PositiveIntegerField(default=0, help_text="Summed over the charges."),
                ),
                (
                    "disputed",
                    models.PositiveIntegerField(default=0, help_text="Disputes open or lost."),
                ),
                ("credits_target", models.PositiveIntegerField(default=0)),
                (
                    "credits_taken",
                    models.PositiveIntegerField(default=0, help_text="Taken back, net."),
                ),
                (
                    "credits_short",
                    models.PositiveIntegerField(
                        default=0, help_text="Owed back but already spent or held when asked."
                    ),
                ),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                ("updated_at", models.DateTimeField(auto_now=True)),
                (
                    "checkout_session",
                    models.OneToOneField(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="reversal_account",
                        to="billing.checkoutsession",
                    ),
                ),
                (
                    "invoice",
                    models.OneToOneField(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="reversal_account",
                        to="billing.subscriptioninvoice",
                    ),
                ),
                (
                    "user",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
            options={
                "ordering": ["-created_at"],
                "constraints": [
                    models.CheckConstraint(
                        condition=models.Q(credits_taken__lte=models.F("credits_granted")),
                        name="billing_payrev_taken_le_granted",
                    )
                ],
            },
        ),
        migrations.AddField(
            model_name="reversal",
            name="payment",
            field=models.ForeignKey(
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="subjects",
                to="billing.paymentreversal",
            ),
        ),
        migrations.AddField(
            model_name="reversalstep",
            name="payment",
            field=models.ForeignKey(
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="steps",
                to="billing.paymentreversal",
            ),
        ),
        migrations.RunPython(build_accounts, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="reversal",
            name="payment",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.PROTECT,
                related_name="subjects",
                to="billing.paymentreversal",
            ),
        ),
        migrations.AlterField(
            model_name="reversalstep",
            name="payment",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.PROTECT,
                related_name="steps",
                to="billing.paymentreversal",
            ),
        ),
        migrations.AlterField(
            model_name="reversalstep",
            name="credits",
            field=models.PositiveIntegerField(),
        ),
        migrations.AddConstraint(
            model_name="reversalstep",
            constraint=models.CheckConstraint(
                condition=models.Q(credits__gt=0), name="billing_step_credits_pos"
            ),
        ),
        migrations.RemoveField(model_name="reversalstep", name="reversal"),
        migrations.RemoveField(model_name="reversal", name="user"),
        migrations.RemoveField(model_name="reversal", name="checkout_session"),
        migrations.RemoveField(model_name="reversal", name="invoice"),
        migrations.RemoveField(model_name="reversal", name="stripe_payment_intent_id"),
        migrations.RemoveField(model_name="reversal", name="credits_granted"),
        migrations.RemoveField(model_name="reversal", name="amount_paid"),
        migrations.RemoveField(model_name="reversal", name="currency"),
        migrations.RemoveField(model_name="reversal", name="credits_target"),
        migrations.AlterModelOptions(name="reversal", options={"ordering": ["-created_at"]}),
    ]
