"""Disputes claw back while open and give back once when won, in any delivery order."""

import pytest

from billing.models import PaymentReversal, Reversal, ReversalStep, ReviewItem
from tests.billing.conftest import (
    assert_ledger_healthy,
    available,
    charge_object,
    dispute_object,
    make_event,
    spend,
)

pytestmark = pytest.mark.django_db(transaction=True)


def dispute_events(purchase, *, outcome: str = "won"):
    intent = purchase.stripe_payment_intent_id
    created = make_event("charge.dispute.created", dispute_object(intent, status="needs_response"))
    closed = make_event("charge.dispute.closed", dispute_object(intent, status=outcome))
    return created, closed


def send(post_event, *events):
    for event in events:
        response = post_event(event)
        assert response.status_code == 200, response.content


def test_dispute_opened_claws_back_then_won_grants_back_once(post_event, alice, buy):
    purchase = buy(alice)
    created, closed = dispute_events(purchase)

    send(post_event, created)
    assert available(alice) == 0
    send(post_event, closed, closed, created)

    assert available(alice) == 100
    steps = {s.action: s for s in ReversalStep.objects.all()}
    assert steps["clawback"].taken == 100 and steps["grant"].credits == 100
    assert set(ReviewItem.objects.values_list("reason", flat=True)) == {
        "dispute",
        "dispute_closed",
    }
    assert_ledger_healthy(alice)


def test_won_dispute_returns_only_what_was_taken(post_event, alice, buy):
    purchase = buy(alice)
    spend(alice, 60)
    created, closed = dispute_events(purchase)

    send(post_event, created)
    assert available(alice) == 0
    item = ReviewItem.objects.get(reason="dispute")
    assert (item.taken, item.shortfall) == (40, 60)

    send(post_event, closed)

    assert available(alice) == 40
    assert_ledger_healthy(alice)


def test_dispute_closed_as_won_before_created_moves_nothing(post_event, alice, buy):
    purchase = buy(alice)
    created, closed = dispute_events(purchase)

    send(post_event, closed, created, closed, created)

    assert available(alice) == 100
    assert not ReversalStep.objects.exists()
    assert Reversal.objects.get().outcome == "won"


def test_lost_dispute_keeps_the_clawback(post_event, alice, buy):
    purchase = buy(alice)
    created, closed = dispute_events(purchase, outcome="lost")

    send(post_event, created, closed, created, closed)

    assert available(alice) == 0
    assert list(ReversalStep.objects.values_list("action", flat=True)) == ["clawback"]


def test_lost_dispute_seen_before_created_claws_back_once(post_event, alice, buy):
    purchase = buy(alice)
    created, closed = dispute_events(purchase, outcome="lost")

    send(post_event, closed, created)

    assert available(alice) == 0
    assert ReversalStep.objects.get().credits == 100
    assert_ledger_healthy(alice)


def test_review_only_dispute_won_before_any_clawback_cancels_it(
    post_event, settings, alice, staff, buy
):
    from billing import reviews
    from billing.exceptions import BillingError

    settings.BILLING_REFUND_POLICY = "review_only"
    purchase = buy(alice)
    created, closed = dispute_events(purchase)

    send(post_event, created, closed)

    assert available(alice) == 100
    assert ReversalStep.objects.get().status == "canceled"
    item = ReviewItem.objects.get(reason="dispute")
    with pytest.raises(BillingError, match="came back"):
        reviews.resolve_review(item, actor=staff, decision="clawback", reason="chargeback")
    item.refresh_from_db()
    assert item.is_open
    assert available(alice) == 100


def test_review_only_admin_clawback_then_won_dispute_returns_it(
    post_event, settings, alice, staff, buy
):
    from billing import reviews

    settings.BILLING_REFUND_POLICY = "review_only"
    purchase = buy(alice)
    created, closed = dispute_events(purchase)
    send(post_event, created)
    item = ReviewItem.objects.get(reason="dispute")

    reviews.resolve_review(item, actor=staff, decision="clawback", reason="Card fraud likely")
    assert available(alice) == 0
    send(post_event, closed, closed)

    assert available(alice) == 100
    assert_ledger_healthy(alice)


def refund(post_event, purchase, amount: int, *, charge_id=None):
    data = charge_object(purchase.stripe_payment_intent_id, refunded=amount, charge_id=charge_id)
    send(post_event, make_event("charge.refunded", data))


def test_refund_and_dispute_of_one_payment_take_the_pack_once(post_event, alice, buy):
    purchase = buy(alice)
    buy(alice)
    created, closed = dispute_events(purchase, outcome="lost")

    refund(post_event, purchase, 1000)
    send(post_event, created, closed)
    refund(post_event, purchase, 1000, charge_id="ch_second_charge_of_the_same_payment")

    assert available(alice) == 100
    assert PaymentReversal.objects.get().credits_taken == 100
    assert_ledger_healthy(alice)


def test_inquiry_closed_after_a_full_refund_gives_nothing_back(post_event, alice, buy):
    purchase = buy(alice)
    intent = purchase.stripe_payment_intent_id
    inquiry = make_event(
        "charge.dispute.created", dispute_object(intent, status="warning_needs_response")
    )
    closed = make_event("charge.dispute.closed", dispute_object(intent, status="warning_closed"))

    send(post_event, inquiry)
    refund(post_event, purchase, 1000)
    send(post_event, closed)

    assert available(alice) == 0
    assert PaymentReversal.objects.get().credits_taken == 100
    assert_ledger_healthy(alice)


def test_won_dispute_after_a_partial_refund_returns_only_the_unrefunded_share(
    post_event, alice, buy
):
    purchase = buy(alice)
    created, closed = dispute_events(purchase)

    send(post_event, created)
    refund(post_event, purchase, 300)
    send(post_event, closed)

    assert available(alice) == 70
    assert_ledger_healthy(alice)


def test_refund_and_dispute_before_the_grant_apply_when_it_lands(
    post_event, alice, pack, fake_stripe
):
    from billing.checkout import start_checkout

    purchase = start_checkout(alice, pack)
    session = fake_stripe.complete(purchase.stripe_session_id)
    purchase.stripe_payment_intent_id = session["payment_intent"]
    created, _ = dispute_events(purchase)

    refund(post_event, purchase, 400)
    send(post_event, created)
    assert available(alice) == 0

    send(post_event, make_event("checkout.session.completed", session))

    assert available(alice) == 0  # granted 100, all of it disputed or refunded
    account = PaymentReversal.objects.get()
    assert (account.credits_granted, account.credits_taken) == (100, 100)
    assert_ledger_healthy(alice)
