"""Subscriptions: Checkout in subscription mode, additive grants per paid invoice, a synced row."""

import secrets
import time

import pytest

from billing import subscriptions
from billing.exceptions import BillingError
from billing.models import CheckoutSession, Plan, ReviewItem, Subscription, SubscriptionInvoice
from tests.billing.conftest import (
    assert_ledger_healthy,
    available,
    charge_object,
    dispute_object,
    make_event,
    spend,
)

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def plan(db, fake_stripe) -> Plan:
    plan = Plan.objects.create(
        name="Monthly test",
        slug=f"monthly-{secrets.token_hex(4)}",
        credits_per_period=290,
        price_amount=2900,
        stripe_price_id=f"price_monthly_{secrets.token_hex(4)}",
    )
    fake_stripe.add_price(plan.stripe_price_id, unit_amount=2900, interval="month")
    return plan


def subscription_object(sub_id, customer, plan, user, *, status="active", period_end=None):
    return {
        "id": sub_id,
        "object": "subscription",
        "customer": customer,
        "status": status,
        "cancel_at_period_end": False,
        "canceled_at": int(time.time()) if status == "canceled" else None,
        "metadata": {"user_id": str(user.pk), "plan": plan.slug},
        "items": {
            "object": "list",
            "data": [
                {
                    "id": "si_" + secrets.token_hex(6),
                    "object": "subscription_item",
                    "price": {"id": plan.stripe_price_id, "object": "price"},
                    "current_period_end": period_end or int(time.time()) + 30 * 86400,
                }
            ],
        },
    }


def invoice_object(sub_id, customer, plan, user, *, reason, invoice_id=None):
    """An Invoice as the pinned API version's events carry it (parent, pricing; no payments)."""
    return {
        "id": invoice_id or "in_" + secrets.token_hex(8),
        "object": "invoice",
        "customer": customer,
        "status": "paid",
        "billing_reason": reason,
        "currency": "usd",
        "subtotal": plan.price_amount,
        "total_discount_amounts": [],
        "amount_paid": plan.price_amount,
        "parent": {
            "type": "subscription_details",
            "subscription_details": {
                "subscription": sub_id,
                "metadata": {"user_id": str(user.pk), "plan": plan.slug},
            },
        },
        "lines": {
            "object": "list",
            "data": [
                {
                    "id": "il_" + secrets.token_hex(6),
                    "quantity": 1,
                    "amount": plan.price_amount,
                    "pricing": {
                        "type": "price_details",
                        "price_details": {"price": plan.stripe_price_id},
                    },
                }
            ],
        },
    }


def send(post_event, event_type, data, **extra):
    response = post_event(make_event(event_type, data, **extra))
    assert response.status_code == 200, response.content
    return response.json()["status"]


@pytest.fixture
def subscribe(post_event, fake_stripe, plan):
    """Subscribe a user through Checkout; Stripe's events follow; return (session, sub id)."""

    def run(user, *, first_invoice=True):
        checkout = subscriptions.start_subscription(user, plan)
        session = fake_stripe.complete(checkout.stripe_session_id)
        send(post_event, "checkout.session.completed", session)
        sub_id = session["subscription"]
        customer = checkout.stripe_customer_id
        send(
            post_event,
            "customer.subscription.created",
            subscription_object(sub_id, customer, plan, user),
        )
        if first_invoice:
            invoice = invoice_object(sub_id, customer, plan, user, reason="subscription_create")
            send(post_event, "invoice.paid", invoice)
        checkout.refresh_from_db()
        return checkout, sub_id

    return run


def test_subscribing_uses_subscription_mode_and_the_first_invoice_grants(
    alice, alice_client, subscribe, fake_stripe, plan
):
    checkout, sub_id = subscribe(alice)

    (create,) = fake_stripe.calls_to("POST", "/v1/checkout/sessions")
    assert create.params["mode"] == "subscription"
    assert create.params["subscription_data"]["metadata"]["user_id"] == str(alice.pk)
    assert "payment_intent_data" not in create.params
    assert checkout.status == "paid" and checkout.stripe_subscription_id == sub_id
    assert available(alice) == 290
    row = Subscription.objects.get(stripe_subscription_id=sub_id)
    assert row.status == "active" and row.plan == plan and row.user == alice
    page = alice_client.get("/billing/").content.decode()
    assert plan.name in page
    assert f"Next renewal: {row.current_period_end:%Y-%m-%d}" in page


def test_invoice_paid_twice_for_one_invoice_grants_once(post_event, alice, subscribe, plan):
    checkout, sub_id = subscribe(alice, first_invoice=False)
    invoice = invoice_object(
        sub_id, checkout.stripe_customer_id, plan, alice, reason="subscription_cycle"
    )
    event = make_event("invoice.paid", invoice)

    statuses = [post_event(event).json()["status"] for _ in range(2)]
    statuses.append(send(post_event, "invoice.paid", invoice))  # a new event id, same invoice

    assert statuses == ["processed", "duplicate", "processed"]
    assert available(alice) == 290
    assert SubscriptionInvoice.objects.get().status == "granted"
    assert_ledger_healthy(alice)


def test_renewal_after_a_pack_purchase_adds_to_what_is_left(
    post_event, alice, subscribe, buy, plan
):
    checkout, sub_id = subscribe(alice)
    buy(alice)
    spend(alice, 290 + 100 - 35)
    assert available(alice) == 35

    invoice = invoice_object(
        sub_id, checkout.stripe_customer_id, plan, alice, reason="subscription_cycle"
    )
    send(post_event, "invoice.paid", invoice)

    assert available(alice) == 35 + 290 == 325
    assert_ledger_healthy(alice)


def test_other_billing_reasons_are_recorded_without_credits(post_event, alice, subscribe, plan):
    checkout, sub_id = subscribe(alice, first_invoice=False)
    invoice = invoice_object(
        sub_id, checkout.stripe_customer_id, plan, alice, reason="subscription_update"
    )

    send(post_event, "invoice.paid", invoice)

    assert available(alice) == 0
    assert SubscriptionInvoice.objects.get().status == "recorded"


def test_invoice_of_a_customer_we_do_not_know_goes_to_review(post_event, alice, plan):
    invoice = invoice_object("sub_x", "cus_stranger", plan, alice, reason="subscription_cycle")

    send(post_event, "invoice.paid", invoice)

    assert ReviewItem.objects.get().reason == ReviewItem.Reason.INVOICE_PROBLEM
    assert available(alice) == 0


def test_subscription_deleted_is_final_even_if_an_older_update_arrives_later(
    post_event, alice, alice_client, subscribe, plan
):
    checkout, sub_id = subscribe(alice)
    customer = checkout.stripe_customer_id
    now = int(time.time())
    older = make_event(
        "customer.subscription.updated",
        subscription_object(sub_id, customer, plan, alice),
        created=now - 60,
    )
    deleted = make_event(
        "customer.subscription.deleted",
        subscription_object(sub_id, customer, plan, alice, status="canceled"),
        created=now,
    )

    assert post_event(deleted).status_code == 200
    assert post_event(older).json()["status"] == "processed"

    row = Subscription.objects.get(stripe_subscription_id=sub_id)
    assert row.status == "canceled" and row.canceled_at is not None
    assert available(alice) == 290  # credits already granted stay
    assert "This subscription has ended" in alice_client.get("/billing/").content.decode()


def test_stale_pack_session_after_the_subscription_lapsed_goes_to_review(
    post_event, settings, alice, subscribe, pack, fake_stripe, plan
):
    from billing.checkout import start_checkout

    settings.BILLING_PACKS_REQUIRE_SUBSCRIPTION = True
    checkout, sub_id = subscribe(alice)
    purchase = start_checkout(alice, pack)
    send(
        post_event,
        "customer.subscription.deleted",
        subscription_object(sub_id, checkout.stripe_customer_id, plan, alice, status="canceled"),
    )

    session = fake_stripe.complete(purchase.stripe_session_id)
    send(post_event, "checkout.session.completed", session)

    purchase.refresh_from_db()
    assert purchase.status == "review"
    assert ReviewItem.objects.get(checkout_session=purchase).reason == "not_subscribed"
    assert available(alice) == 290
    with pytest.raises(BillingError, match="subscribers"):
        start_checkout(alice, pack)


@pytest.fixture
def first_invoice_paid_by(post_event, alice, subscribe, plan, fake_stripe):
    """Subscribe alice; her first invoice.paid is delivered, paid by an intent it does not name."""

    def run(intent: str) -> dict:
        checkout, sub_id = subscribe(alice, first_invoice=False)
        invoice = invoice_object(
            sub_id, checkout.stripe_customer_id, plan, alice, reason="subscription_create"
        )
        send(post_event, "invoice.paid", invoice)
        fake_stripe.pay_invoice(invoice["id"], intent)
        return invoice

    return run


def test_refund_of_a_subscription_invoice_claws_back_its_credits(
    post_event, alice, first_invoice_paid_by, fake_stripe
):
    invoice = first_invoice_paid_by("pi_invoice_1")

    send(post_event, "charge.refunded", charge_object("pi_invoice_1", refunded=1450, amount=2900))

    # The event names only the intent: Stripe is asked once which invoice it paid.
    (lookup,) = fake_stripe.calls_to("GET", "/v1/invoice_payments")
    assert lookup.params["payment"] == {"type": "payment_intent", "payment_intent": "pi_invoice_1"}
    assert available(alice) == 290 - 145
    row = SubscriptionInvoice.objects.get(stripe_invoice_id=invoice["id"])
    assert row.stripe_payment_intent_id == "pi_invoice_1"

    # The growing refund matches the stored intent without asking again.
    send(post_event, "charge.refunded", charge_object("pi_invoice_1", refunded=2900, amount=2900))

    assert len(fake_stripe.calls_to("GET", "/v1/invoice_payments")) == 1
    assert available(alice) == 0
    assert ReviewItem.objects.filter(reason="refund", user=alice).exists()
    assert_ledger_healthy(alice)


def test_redelivered_invoice_keeps_the_intent_a_refund_learned(
    post_event, alice, first_invoice_paid_by, fake_stripe
):
    invoice = first_invoice_paid_by("pi_invoice_2")
    send(post_event, "charge.refunded", charge_object("pi_invoice_2", refunded=290, amount=2900))

    send(post_event, "invoice.paid", invoice)
    send(post_event, "charge.refunded", charge_object("pi_invoice_2", refunded=580, amount=2900))

    row = SubscriptionInvoice.objects.get(stripe_invoice_id=invoice["id"])
    assert row.stripe_payment_intent_id == "pi_invoice_2"
    assert len(fake_stripe.calls_to("GET", "/v1/invoice_payments")) == 1
    assert available(alice) == 290 - 58


def test_dispute_of_a_subscription_payment_finds_its_invoice(
    post_event, alice, first_invoice_paid_by, fake_stripe
):
    first_invoice_paid_by("pi_invoice_3")

    send(
        post_event,
        "charge.dispute.created",
        dispute_object("pi_invoice_3", status="needs_response", amount=2900),
    )

    assert available(alice) == 0
    assert ReviewItem.objects.filter(reason="dispute", user=alice).exists()


def test_stripe_down_while_matching_a_refund_answers_500_and_the_retry_claws_back_once(
    post_event, alice, first_invoice_paid_by, fake_stripe
):
    first_invoice_paid_by("pi_invoice_4")
    refund = make_event(
        "charge.refunded", charge_object("pi_invoice_4", refunded=2900, amount=2900)
    )

    fake_stripe.fail_with = 500
    assert post_event(refund).status_code == 500
    assert available(alice) == 290
    assert not ReviewItem.objects.filter(user=alice).exists()

    fake_stripe.fail_with = None
    assert post_event(refund).status_code == 200
    assert post_event(refund).status_code == 200
    assert available(alice) == 0
    assert ReviewItem.objects.filter(reason="refund", user=alice).count() == 1


def test_reconciliation_grants_a_renewal_whose_webhook_never_came_once(
    post_event, alice, subscribe, plan, fake_stripe
):
    from billing.tasks import reconcile_invoices

    checkout, sub_id = subscribe(alice)
    first = invoice_object(
        sub_id, checkout.stripe_customer_id, plan, alice, reason="subscription_create"
    )
    fake_stripe.add_invoice(first)
    send(post_event, "invoice.paid", first)
    renewal = invoice_object(
        sub_id, checkout.stripe_customer_id, plan, alice, reason="subscription_cycle"
    )
    fake_stripe.add_invoice(renewal)
    fake_stripe.add_invoice(
        invoice_object(
            sub_id, checkout.stripe_customer_id, plan, alice, reason="subscription_cycle"
        ),
        created=int(time.time()) - 4 * 86400,
    )

    assert reconcile_invoices() == {"known": 1, "granted": 1}
    assert reconcile_invoices() == {"known": 2}
    # The webhook that finally arrives finds the grant already made (the balance below).
    send(post_event, "invoice.paid", renewal)

    (listing, *_) = fake_stripe.calls_to("GET", "/v1/invoices")
    assert listing.params["status"] == "paid"
    assert int(listing.params["created"]["gte"]) <= time.time() - 71 * 3600
    assert available(alice) == 290 + 290 + 290
    row = SubscriptionInvoice.objects.get(stripe_invoice_id=renewal["id"])
    assert row.status == "granted" and row.user == alice
    assert_ledger_healthy(alice)


def test_portal_button_opens_stripe_and_the_stand_in_explains(
    alice, alice_client, subscribe, fake_stripe, settings
):
    subscribe(alice)

    response = alice_client.post("/billing/portal/")

    assert response.status_code == 303
    assert response["Location"].startswith("https://billing.stripe.com/p/session/")
    (call,) = fake_stripe.calls_to("POST", "/v1/billing_portal/sessions")
    assert call.params["return_url"] == "https://shop.example/billing/"

    settings.BILLING_STANDIN_ENABLED = True
    response = alice_client.post("/billing/portal/", follow=True)
    assert "does not exist in stand-in mode" in response.content.decode()


def test_a_second_subscription_is_refused_while_one_is_active(alice, subscribe, plan):
    subscribe(alice)

    with pytest.raises(BillingError, match="already have a subscription"):
        subscriptions.start_subscription(alice, plan)


@pytest.mark.parametrize(
    ("change", "why"),
    [
        (
            {"amount_paid": 0, "total_discount_amounts": [{"amount": 2900, "discount": "di_1"}]},
            "a discount of 2900 while promotion codes are off",
        ),
        ({"amount_paid": 100}, "paid 100, below the price 2900"),
        ({"currency": "eur"}, "currency 'eur' (sold 'usd')"),
        ({"subtotal": 9900}, "subtotal 9900 (sold 2900)"),
        ({"price": "price_we_never_sold"}, "price_we_never_sold matches none of our plans"),
    ],
    ids=["100-percent-coupon", "underpaid", "currency", "subtotal", "unmapped-price"],
)
def test_an_invoice_unlike_the_plan_sold_goes_to_review_not_a_grant(
    post_event, alice, subscribe, plan, change, why
):
    checkout, sub_id = subscribe(alice)
    invoice = invoice_object(
        sub_id, checkout.stripe_customer_id, plan, alice, reason="subscription_cycle"
    )
    price = change.pop("price", None)
    if price:
        invoice["lines"]["data"][0]["pricing"]["price_details"]["price"] = price
    invoice.update(change)

    assert send(post_event, "invoice.paid", invoice) == "processed"

    assert available(alice) == 290  # the first invoice only
    row = SubscriptionInvoice.objects.get(stripe_invoice_id=invoice["id"])
    assert row.status == "review"
    item = ReviewItem.objects.get(stripe_object_id=invoice["id"])
    assert item.reason == ReviewItem.Reason.INVOICE_PROBLEM and why in item.detail


def test_a_coupon_on_an_invoice_grants_when_promotion_codes_are_on(
    post_event, settings, alice, subscribe, plan
):
    settings.BILLING_ALLOW_PROMOTION_CODES = True
    checkout, sub_id = subscribe(alice)
    invoice = invoice_object(
        sub_id, checkout.stripe_customer_id, plan, alice, reason="subscription_cycle"
    )
    invoice.update(
        amount_paid=1450, total_discount_amounts=[{"amount": 1450, "discount": "di_half"}]
    )

    send(post_event, "invoice.paid", invoice)

    assert available(alice) == 580


def test_the_subscribe_form_posted_twice_opens_one_checkout(alice_client, alice, plan, fake_stripe):
    form = {"plan": plan.pk, "submission_key": "subscribe-" + "y" * 20}

    first = alice_client.post("/billing/subscribe/", form)
    second = alice_client.post("/billing/subscribe/", form)

    checkout = CheckoutSession.objects.get(user=alice)
    assert first["Location"] == second["Location"] == checkout.url
    assert len(fake_stripe.calls_to("POST", "/v1/checkout/sessions")) == 1
