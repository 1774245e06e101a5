"""Refunds claw back the refunded share of a purchase once, whatever order Stripe delivers in."""

import logging

import pytest

from billing.models import PaymentReversal, Reversal, ReversalStep, ReviewItem, StripeEvent
from tests.billing.conftest import (
    assert_ledger_healthy,
    available,
    charge_object,
    make_event,
    spend,
)

pytestmark = pytest.mark.django_db(transaction=True)


def refunded(post_event, purchase, amount: int, **extra):
    event = make_event(
        "charge.refunded", charge_object(purchase.stripe_payment_intent_id, refunded=amount)
    )
    response = post_event(event, **extra)
    assert response.status_code == 200, response.content
    return event


def clawbacks(user) -> list:
    from ledger import selectors as ledger_selectors

    entries = ledger_selectors.journal_page(user.pk, limit=200).entries
    return [e for e in entries if e.kind == "clawback"]


def test_full_refund_claws_back_the_pack_and_opens_a_review_with_an_alert(
    post_event, alice, buy, caplog
):
    purchase = buy(alice)

    with caplog.at_level(logging.ERROR, logger="ops"):
        refunded(post_event, purchase, 1000)

    assert available(alice) == 0
    item = ReviewItem.objects.get(reason=ReviewItem.Reason.REFUND)
    assert item.user == alice and item.checkout_session == purchase
    assert (item.credits, item.taken, item.shortfall) == (100, 100, 0)
    assert item.is_open
    assert any("Billing review: Refunded" in r.getMessage() for r in caplog.records)
    assert_ledger_healthy(alice)


def test_partial_refund_claws_back_proportionally_rounding_down(post_event, alice, buy):
    purchase = buy(alice)

    refunded(post_event, purchase, 333)  # 100 credits * 333/1000 = 33.3 -> 33

    assert available(alice) == 67
    assert [e.amount for e in clawbacks(alice)] == [33]


def test_growing_refund_takes_only_the_difference_and_ends_at_the_whole_pack(
    post_event, alice, buy
):
    purchase = buy(alice)

    refunded(post_event, purchase, 333)
    refunded(post_event, purchase, 500)
    refunded(post_event, purchase, 1000)

    assert available(alice) == 0
    steps = ReversalStep.objects.order_by("pk")
    assert [(s.action, s.credits) for s in steps] == [
        ("clawback", 33),
        ("clawback", 17),
        ("clawback", 50),
    ]
    assert ReviewItem.objects.filter(reason=ReviewItem.Reason.REFUND).count() == 3
    assert_ledger_healthy(alice)


def test_refund_deliveries_reordered_and_repeated_claw_back_once(post_event, alice, buy):
    purchase = buy(alice)
    small = make_event(
        "charge.refunded", charge_object(purchase.stripe_payment_intent_id, refunded=300)
    )
    whole = make_event(
        "charge.refunded", charge_object(purchase.stripe_payment_intent_id, refunded=1000)
    )

    for event in (whole, small, whole, small):
        assert post_event(event).status_code == 200
    # A second event id for the same state (Stripe resending after an update) changes nothing.
    refunded(post_event, purchase, 1000)

    assert available(alice) == 0
    assert sum(e.amount for e in clawbacks(alice)) == 100
    assert PaymentReversal.objects.get().credits_target == 100
    assert ReviewItem.objects.filter(reason=ReviewItem.Reason.REFUND).count() == 1
    assert_ledger_healthy(alice)


def test_refund_after_the_credits_were_spent_records_the_shortfall(post_event, alice, buy, caplog):
    purchase = buy(alice)
    spend(alice, 70)

    with caplog.at_level(logging.ERROR, logger="ops"):
        refunded(post_event, purchase, 1000)

    assert available(alice) == 0  # never below zero
    item = ReviewItem.objects.get(reason=ReviewItem.Reason.REFUND)
    assert (item.credits, item.taken, item.shortfall) == (100, 30, 70)
    assert any("clawback shortfall" in r.getMessage() for r in caplog.records)
    # The replay of the same event neither takes more nor forgets the shortfall.
    refunded(post_event, purchase, 1000)
    item.refresh_from_db()
    assert (item.taken, item.shortfall) == (30, 70)
    assert_ledger_healthy(alice)


def test_review_only_policy_takes_nothing_until_an_admin_claws_back(
    post_event, settings, alice, staff, buy
):
    from billing import reviews

    settings.BILLING_REFUND_POLICY = "review_only"
    purchase = buy(alice)

    refunded(post_event, purchase, 500)

    assert available(alice) == 100
    item = ReviewItem.objects.get(reason=ReviewItem.Reason.REFUND)
    assert item.step.status == "review" and item.credits == 50

    reviews.resolve_review(item, actor=staff, decision="clawback", reason="Refunded by support")
    # The policy switched later and the event replayed: the same step key, nothing twice.
    settings.BILLING_REFUND_POLICY = "clawback_unspent"
    refunded(post_event, purchase, 500)

    item.refresh_from_db()
    assert item.resolution == "clawed_back" and item.resolved_by == staff
    assert item.note == "Refunded by support"
    assert available(alice) == 50
    assert_ledger_healthy(alice)


def test_refund_of_a_payment_we_cannot_map_goes_to_review_and_moves_nothing(
    post_event, alice, fake_stripe
):
    event = make_event("charge.refunded", charge_object("pi_not_ours", refunded=1000))

    assert post_event(event).status_code == 200

    # Stripe was asked whether the intent paid one of our invoices; it paid none.
    assert len(fake_stripe.calls_to("GET", "/v1/invoice_payments")) == 1
    item = ReviewItem.objects.get()
    assert item.reason == ReviewItem.Reason.UNKNOWN_PAYMENT and "pi_not_ours" in item.detail
    # Recorded on the payment's account, to apply if that payment is ever granted.
    account = PaymentReversal.objects.get(stripe_payment_intent_id="pi_not_ours")
    assert (account.refunded, account.credits_granted, account.user) == (1000, 0, None)
    assert Reversal.objects.get().payment == account
    assert not ReversalStep.objects.exists()


def test_refund_of_a_purchase_still_in_review_takes_nothing(post_event, alice, pack, fake_stripe):
    from billing.checkout import start_checkout

    purchase = start_checkout(alice, pack)
    alice.deactivate()
    session = fake_stripe.complete(purchase.stripe_session_id)
    post_event(make_event("checkout.session.completed", session))
    purchase.refresh_from_db()
    assert purchase.status == "review"

    refunded(post_event, purchase, 1000)

    assert available(alice) == 0
    assert not ReversalStep.objects.exists()
    assert "granted no credits" in ReviewItem.objects.get(reason="refund").detail


def test_a_failed_clawback_is_retried_by_the_next_delivery(
    post_event, alice, buy, monkeypatch, caplog
):
    from billing import reversal_steps

    purchase = buy(alice)
    real = reversal_steps.ledger.clawback
    calls = []

    def flaky(*args, **kwargs):
        calls.append(kwargs["key"])
        if len(calls) == 1:
            raise RuntimeError("database went away")
        return real(*args, **kwargs)

    monkeypatch.setattr(reversal_steps.ledger, "clawback", flaky)
    event = make_event(
        "charge.refunded", charge_object(purchase.stripe_payment_intent_id, refunded=1000)
    )

    with caplog.at_level(logging.CRITICAL):
        assert post_event(event).status_code == 500
    assert available(alice) == 100
    assert ReversalStep.objects.get().status == "planned"
    assert post_event(event).status_code == 200

    assert available(alice) == 0
    assert calls[0] == calls[1]  # the same key both times
    assert StripeEvent.objects.get(stripe_event_id=event["id"]).processed_at is not None
