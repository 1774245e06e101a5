"""The fulfilment policy: what each paid-session variant grants, and what goes to review."""

import logging

import pytest

from billing.checkout import start_checkout
from billing.fulfilment import fulfil_checkout
from billing.models import CheckoutSession, ReviewItem, StripeCustomer
from ledger import selectors as ledger_selectors
from tests.billing.conftest import make_event

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def purchase(alice, pack):
    return start_checkout(alice, pack)


def available(user) -> int:
    return ledger_selectors.balance(user.pk).available


def deliver(post_event, fake, purchase, **changes):
    session = fake.complete(purchase.stripe_session_id, **changes)
    response = post_event(make_event("checkout.session.completed", session))
    assert response.status_code == 200, "a paid session is never answered with an error"
    purchase.refresh_from_db()
    return purchase


def test_tax_raises_the_total_and_still_grants_the_pack(post_event, alice, purchase, fake_stripe):
    deliver(
        post_event,
        fake_stripe,
        purchase,
        amount_total=1200,
        total_details={"amount_discount": 0, "amount_shipping": 0, "amount_tax": 200},
    )

    assert purchase.status == "paid" and purchase.amount_total == 1200
    assert available(alice) == 100


def test_discount_while_promotion_codes_are_off_goes_to_review(
    post_event, alice, purchase, fake_stripe, caplog
):
    with caplog.at_level(logging.ERROR, logger="ops"):
        deliver(
            post_event,
            fake_stripe,
            purchase,
            amount_total=500,
            total_details={"amount_discount": 500, "amount_shipping": 0, "amount_tax": 0},
        )

    assert purchase.status == "review"
    assert available(alice) == 0
    item = ReviewItem.objects.get(checkout_session=purchase)
    assert item.reason == ReviewItem.Reason.DISCOUNT_NOT_ALLOWED
    assert [r for r in caplog.records if r.name == "ops" and "Billing review" in r.getMessage()]


def test_promotion_code_when_allowed_grants_the_packs_credits(
    post_event, settings, alice, purchase, fake_stripe
):
    settings.BILLING_ALLOW_PROMOTION_CODES = True

    deliver(
        post_event,
        fake_stripe,
        purchase,
        amount_total=250,
        total_details={"amount_discount": 750, "amount_shipping": 0, "amount_tax": 0},
    )

    assert purchase.status == "paid"
    assert available(alice) == 100


def test_no_payment_required_counts_as_paid_when_promotions_are_on(
    post_event, settings, alice, purchase, fake_stripe
):
    settings.BILLING_ALLOW_PROMOTION_CODES = True

    deliver(
        post_event,
        fake_stripe,
        purchase,
        payment_status="no_payment_required",
        amount_total=0,
        total_details={"amount_discount": 1000, "amount_shipping": 0, "amount_tax": 0},
    )

    assert purchase.status == "paid"
    assert available(alice) == 100


def test_no_payment_required_with_promotions_off_goes_to_review(
    post_event, alice, purchase, fake_stripe
):
    deliver(post_event, fake_stripe, purchase, payment_status="no_payment_required", amount_total=0)

    assert purchase.status == "review"
    assert available(alice) == 0


def test_pack_edited_after_checkout_grants_the_snapshot(
    post_event, alice, pack, purchase, fake_stripe
):
    pack.credits = 999
    pack.price_amount = 100
    pack.stripe_price_id = "price_other"
    pack.save()

    deliver(post_event, fake_stripe, purchase)

    assert purchase.status == "paid"
    assert available(alice) == 100


def test_line_item_that_differs_from_the_snapshot_goes_to_review(
    post_event, alice, purchase, fake_stripe
):
    fake_stripe.line_items[purchase.stripe_session_id][0]["price"] = {"id": "price_cheap"}

    deliver(post_event, fake_stripe, purchase)

    assert purchase.status == "review"
    item = ReviewItem.objects.get()
    assert item.reason == ReviewItem.Reason.SNAPSHOT_MISMATCH and "price_cheap" in item.detail
    assert available(alice) == 0


def test_currency_or_subtotal_mismatch_goes_to_review(post_event, alice, purchase, fake_stripe):
    deliver(post_event, fake_stripe, purchase, currency="eur", amount_subtotal=1)

    assert purchase.status == "review"
    assert available(alice) == 0


def test_deactivated_user_goes_to_review_then_admin_grants_once(
    post_event, staff_client, staff, alice, purchase, fake_stripe
):
    alice.deactivate()

    deliver(post_event, fake_stripe, purchase)

    assert purchase.status == "review" and available(alice) == 0
    item = ReviewItem.objects.get()
    assert item.reason == ReviewItem.Reason.USER_INELIGIBLE

    for _ in range(2):
        staff_client.post(
            "/admin/billing/reviewitem/",
            {
                "action": "resolve_by_grant",
                "_selected_action": [item.pk],
                "apply": "1",
                "reason": "Reactivated after ID check",
            },
        )

    item.refresh_from_db()
    purchase.refresh_from_db()
    assert item.resolution == "granted" and item.resolved_by == staff
    assert item.note == "Reactivated after ID check"
    assert purchase.status == "paid"
    assert available(alice) == 100


def test_customer_of_another_user_goes_to_review(post_event, alice, bob, purchase, fake_stripe):
    StripeCustomer.objects.create(user=bob, mode="test", stripe_customer_id="cus_bob")

    deliver(post_event, fake_stripe, purchase, customer="cus_bob")

    assert purchase.status == "review"
    item = ReviewItem.objects.get()
    assert item.reason == ReviewItem.Reason.OWNER_MISMATCH
    assert available(alice) == 0 and available(bob) == 0


def test_client_reference_naming_someone_else_goes_to_review(
    post_event, alice, bob, purchase, fake_stripe
):
    deliver(post_event, fake_stripe, purchase, client_reference_id=str(bob.pk))

    assert purchase.status == "review"
    assert available(alice) == 0 and available(bob) == 0


def test_repeated_deliveries_of_a_bad_session_make_one_review_and_one_alert(
    post_event, alice, bob, purchase, fake_stripe, caplog
):
    session = fake_stripe.complete(purchase.stripe_session_id, client_reference_id=str(bob.pk))

    with caplog.at_level(logging.ERROR, logger="ops"):
        for event_type in (
            "checkout.session.completed",
            "checkout.session.async_payment_succeeded",
        ):
            assert post_event(make_event(event_type, session)).status_code == 200
        fulfil_checkout(session["id"], source="reconcile")

    assert ReviewItem.objects.count() == 1
    assert len([r for r in caplog.records if r.name == "ops"]) == 1


def test_paid_session_naming_a_purchase_we_do_not_have_goes_to_review(
    post_event, alice, purchase, fake_stripe
):
    session = fake_stripe.complete(purchase.stripe_session_id)
    CheckoutSession.objects.filter(pk=purchase.pk).update(stripe_session_id="cs_elsewhere")
    fake_stripe.sessions[session["id"]]["metadata"]["checkout_id"] = (
        "00000000-0000-0000-0000-000000000000"
    )

    assert post_event(make_event("checkout.session.completed", session)).status_code == 200

    assert ReviewItem.objects.get().reason == ReviewItem.Reason.UNKNOWN_SESSION
    assert available(alice) == 0


def test_session_without_our_metadata_is_ignored(post_event, fake_stripe, alice, purchase):
    session = fake_stripe.complete(purchase.stripe_session_id)
    CheckoutSession.objects.filter(pk=purchase.pk).update(stripe_session_id="cs_elsewhere")
    fake_stripe.sessions[session["id"]]["metadata"] = {}

    assert fulfil_checkout(session["id"], source="test").outcome == "ignored"
    assert not ReviewItem.objects.exists()


def test_purchase_whose_session_id_was_never_stored_is_found_by_metadata(
    alice, purchase, fake_stripe
):
    session_id = purchase.stripe_session_id
    CheckoutSession.objects.filter(pk=purchase.pk).update(stripe_session_id=None)
    fake_stripe.complete(session_id)

    outcome = fulfil_checkout(session_id, source="reconcile")

    assert outcome.outcome == "granted"
    purchase.refresh_from_db()
    assert purchase.stripe_session_id == session_id and purchase.status == "paid"
    assert available(alice) == 100


def test_reconciliation_grants_missed_webhooks_once(alice, pack, fake_stripe):
    missed = start_checkout(alice, pack)
    unpaid = start_checkout(alice, pack)
    fake_stripe.complete(missed.stripe_session_id)
    fake_stripe.complete(unpaid.stripe_session_id, payment_status="unpaid")

    from billing.tasks import reconcile_checkouts

    first = reconcile_checkouts()
    second = reconcile_checkouts()

    assert first == {"granted": 1}
    assert second == {"known": 1}
    assert available(alice) == 100
    (listing, *_) = fake_stripe.calls_to("GET", "/v1/checkout/sessions")
    assert listing.params["status"] == "complete" and "gte" in listing.params["created"]


def test_a_total_below_the_price_with_no_discount_goes_to_review_not_a_grant(
    post_event, alice, purchase, fake_stripe
):
    deliver(post_event, fake_stripe, purchase, amount_total=1)

    assert purchase.status == "review" and available(alice) == 0
    item = ReviewItem.objects.get(checkout_session=purchase)
    assert item.reason == ReviewItem.Reason.SNAPSHOT_MISMATCH
    assert "amount_total 1 is below the price 1000" in item.detail


def test_payment_failed_after_paid_changes_nothing(post_event, alice, purchase, fake_stripe):
    session = fake_stripe.complete(purchase.stripe_session_id)
    post_event(make_event("checkout.session.completed", session))
    failed = {**session, "payment_status": "unpaid", "amount_total": 1}

    response = post_event(make_event("checkout.session.async_payment_failed", failed))

    purchase.refresh_from_db()
    assert response.status_code == 200
    assert (purchase.status, purchase.payment_status, purchase.amount_total) == (
        "paid",
        "paid",
        1000,
    )
    assert available(alice) == 100
