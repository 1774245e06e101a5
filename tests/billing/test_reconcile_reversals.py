"""Reconciliation finds refunds and disputes whose events never arrived and applies them once."""

from datetime import timedelta

import pytest

from billing import reversals, tasks
from billing.models import PaymentReversal, StripeEvent
from tests.billing.conftest import (
    assert_ledger_healthy,
    available,
    charge_object,
    dispute_object,
    make_event,
)

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_refund_whose_event_never_came_is_clawed_back_once(alice, buy, fake_stripe):
    purchase = buy(alice)
    charge = charge_object(purchase.stripe_payment_intent_id, refunded=0)
    fake_stripe.refund(charge, 400)

    assert tasks.reconcile_reversals() == {"planned": 1}
    assert available(alice) == 60

    fake_stripe.refund(charge, 600)  # the refund grew; its event was blocked too
    assert tasks.reconcile_reversals() == {"planned": 1}
    assert tasks.reconcile_reversals() == {"known": 1}
    assert available(alice) == 0
    assert PaymentReversal.objects.get().credits_taken == 100
    (retrieved, *_) = fake_stripe.calls_to("GET", f"/v1/charges/{charge['id']}")
    assert retrieved.method == "GET"
    assert_ledger_healthy(alice)


def test_a_lost_dispute_found_by_reconciliation_then_delivered_moves_credits_once(
    alice, buy, fake_stripe, post_event
):
    purchase = buy(alice)
    dispute = dispute_object(purchase.stripe_payment_intent_id, status="lost")
    fake_stripe.add_dispute(dispute)

    assert tasks.reconcile_reversals() == {"planned": 1}
    late = post_event(make_event("charge.dispute.closed", dispute))

    assert late.status_code == 200 and late.json()["status"] == "processed"
    assert tasks.reconcile_reversals() == {"known": 1}
    assert available(alice) == 0
    assert_ledger_healthy(alice)


def test_what_the_webhook_already_applied_is_known(alice, buy, fake_stripe, post_event):
    purchase = buy(alice)
    charge = fake_stripe.refund(charge_object(purchase.stripe_payment_intent_id, refunded=0), 500)
    post_event(make_event("charge.refunded", charge))

    assert reversals.reconcile_reversals(lookback=timedelta(hours=1)) == {"known": 1}
    assert available(alice) == 50


def test_the_stand_in_lists_the_events_it_sent(alice, buy, settings):
    purchase = buy(alice)
    charge = charge_object(purchase.stripe_payment_intent_id, refunded=1000)
    event = make_event("charge.refunded", charge)
    # Stored, but its processing never finished (the worker died mid-request).
    StripeEvent.objects.create(
        stripe_event_id=event["id"],
        type=event["type"],
        livemode=False,
        object_id=charge["id"],
        payload=event,
    )
    settings.BILLING_STANDIN_ENABLED = True
    settings.STRIPE_SECRET_KEY = ""

    assert tasks.reconcile_reversals() == {"planned": 1}
    assert available(alice) == 0
