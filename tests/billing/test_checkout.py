"""Buying: the customer, the Checkout Session parameters, the snapshot and the 303."""

from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connections
from django.test import Client

from billing.checkout import start_checkout
from billing.models import CheckoutSession, StripeCustomer

pytestmark = pytest.mark.django_db


def test_buy_creates_customer_and_session_and_redirects_with_303(
    alice_client, alice, pack, fake_stripe
):
    response = alice_client.post("/billing/buy/", {"pack": pack.pk})

    checkout = CheckoutSession.objects.get(user=alice)
    assert response.status_code == 303
    assert response["Location"] == f"https://checkout.stripe.com/c/pay/{checkout.stripe_session_id}"

    (customer_call,) = fake_stripe.calls_to("POST", "/v1/customers")
    assert customer_call.headers["Idempotency-Key"] == f"customer:{alice.pk}:test"
    assert customer_call.params == {"email": alice.email, "metadata": {"user_id": str(alice.pk)}}
    assert customer_call.headers["Stripe-Version"] == "2026-10-28.endive"

    (session_call,) = fake_stripe.calls_to("POST", "/v1/checkout/sessions")
    assert session_call.headers["Idempotency-Key"] == f"checkout:{checkout.pk}"
    params = session_call.params
    metadata = {"checkout_id": str(checkout.pk), "user_id": str(alice.pk), "pack": pack.slug}
    assert params["mode"] == "payment"
    assert params["line_items"] == [{"price": pack.stripe_price_id, "quantity": "1"}]
    assert params["client_reference_id"] == str(alice.pk)
    assert params["customer"] == checkout.stripe_customer_id
    assert params["metadata"] == metadata
    assert params["payment_intent_data"] == {"metadata": metadata}
    assert params["success_url"] == (
        "https://shop.example/billing/success/?session_id={CHECKOUT_SESSION_ID}"
    )
    assert params["cancel_url"] == f"https://shop.example/billing/cancel/?checkout={checkout.pk}"
    assert params["allow_promotion_codes"] == "false"
    assert int(params["expires_at"]) == int(checkout.expires_at.timestamp())

    assert (checkout.credits, checkout.amount, checkout.currency) == (100, 1000, "usd")
    assert checkout.stripe_price_id == pack.stripe_price_id
    assert checkout.status == CheckoutSession.Status.OPEN
    assert checkout.mode == "test"


def test_second_purchase_reuses_the_customer(alice_client, alice, pack, fake_stripe):
    alice_client.post("/billing/buy/", {"pack": pack.pk})
    alice_client.post(f"/billing/buy/{pack.pk}/")

    assert len(fake_stripe.calls_to("POST", "/v1/customers")) == 1
    assert len(fake_stripe.calls_to("POST", "/v1/checkout/sessions")) == 2
    assert StripeCustomer.objects.filter(user=alice).count() == 1


@pytest.mark.django_db(transaction=True)
def test_ten_concurrent_clicks_make_one_customer(alice, pack, fake_stripe):
    def click(_):
        try:
            return start_checkout(alice, pack).stripe_customer_id
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=10) as pool:
        customers = set(pool.map(click, range(10)))

    assert len(customers) == 1
    assert len(fake_stripe.customers) == 1
    assert StripeCustomer.objects.filter(user=alice).count() == 1
    assert CheckoutSession.objects.filter(user=alice).count() == 10


def test_buy_needs_csrf_and_post(alice, pack, fake_stripe):
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(alice)

    assert strict.post("/billing/buy/", {"pack": pack.pk}).status_code == 403
    assert strict.get("/billing/buy/").status_code == 405
    assert fake_stripe.calls == []


def test_buy_refuses_an_inactive_pack_without_calling_stripe(alice_client, pack, fake_stripe):
    pack.active = False
    pack.save()

    response = alice_client.post("/billing/buy/", {"pack": pack.pk}, follow=True)

    assert b"not on sale" in response.content
    assert fake_stripe.calls == []


def test_buy_refuses_a_price_that_differs_from_the_pack(
    alice_client, alice, pack, fake_stripe, caplog
):
    fake_stripe.prices[pack.stripe_price_id]["unit_amount"] = 900

    response = alice_client.post("/billing/buy/", {"pack": pack.pk}, follow=True)

    assert b"cannot be bought right now" in response.content
    assert not CheckoutSession.objects.filter(user=alice).exists()
    assert fake_stripe.calls_to("POST", "/v1/checkout/sessions") == []
    assert any("price mismatch" in r.getMessage() for r in caplog.records)


def test_buy_resolves_a_lookup_key_to_the_active_price(
    alice_client, alice, pack_factory, fake_stripe
):
    pack = pack_factory(stripe_price_id="", stripe_lookup_key="genmedia_x_usd_1000")
    fake_stripe.add_price("price_from_key", unit_amount=1000, lookup_key="genmedia_x_usd_1000")

    alice_client.post("/billing/buy/", {"pack": pack.pk})

    checkout = CheckoutSession.objects.get(user=alice)
    assert checkout.stripe_price_id == "price_from_key"
    (lookup,) = fake_stripe.calls_to("GET", "/v1/prices")
    assert lookup.params["lookup_keys"] == ["genmedia_x_usd_1000"]


def test_stripe_failure_leaves_a_failed_row_and_a_clear_message(
    alice_client, alice, pack, fake_stripe
):
    fake_stripe.fail_with = 500

    response = alice_client.post("/billing/buy/", {"pack": pack.pk}, follow=True)

    assert b"Stripe could not be reached. Nothing was charged" in response.content
    assert not CheckoutSession.objects.filter(user=alice, status="open").exists()


def test_without_stripe_keys_buying_is_off_and_says_so(alice_client, pack_factory, settings):
    settings.STRIPE_SECRET_KEY = ""
    settings.STRIPE_WEBHOOK_SECRET = ""
    settings.BILLING_STANDIN_ENABLED = False
    pack_factory()

    page = alice_client.get("/billing/")
    response = alice_client.post("/billing/buy/", {"pack": pack_factory().pk}, follow=True)

    assert b"payments are not configured" in page.content
    assert b"disabled" in page.content
    assert b"Payments are not configured" in response.content


KEY = "buy-form-" + "x" * 24


def test_the_buy_form_posted_twice_opens_one_checkout(alice_client, alice, pack, fake_stripe):
    page = alice_client.get("/billing/").content.decode()
    assert 'name="submission_key"' in page and "data-submit-once" in page

    first = alice_client.post("/billing/buy/", {"pack": pack.pk, "submission_key": KEY})
    second = alice_client.post("/billing/buy/", {"pack": pack.pk, "submission_key": KEY})

    checkout = CheckoutSession.objects.get(user=alice)
    assert checkout.submission_key == KEY
    assert first.status_code == second.status_code == 303
    assert first["Location"] == second["Location"] == checkout.url
    assert len(fake_stripe.calls_to("POST", "/v1/checkout/sessions")) == 1


def test_a_repeat_after_the_first_request_died_before_stripe_answered_gets_the_same_session(
    alice, pack, fake_stripe
):
    first = start_checkout(alice, pack, submission_key=KEY)
    # As if that request had crashed right after storing its row.
    CheckoutSession.objects.filter(pk=first.pk).update(stripe_session_id=None, url="")

    again = start_checkout(alice, pack, submission_key=KEY)

    assert again.pk == first.pk and again.stripe_session_id == first.stripe_session_id
    calls = fake_stripe.calls_to("POST", "/v1/checkout/sessions")
    assert [c.headers["Idempotency-Key"] for c in calls] == [f"checkout:{first.pk}"] * 2
    assert len(fake_stripe.sessions) == 1


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_posts_of_one_buy_form_make_one_checkout(alice, pack, fake_stripe):
    def buy(_):
        client = Client()
        client.force_login(alice)
        try:
            response = client.post("/billing/buy/", {"pack": pack.pk, "submission_key": KEY})
            return response.status_code, response["Location"]
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=2) as pool:
        answers = list(pool.map(buy, range(2)))

    checkout = CheckoutSession.objects.get(user=alice)
    assert answers == [(303, checkout.url)] * 2


def test_a_malformed_key_is_refused_and_nothing_is_created(alice_client, alice, pack):
    response = alice_client.post("/billing/buy/", {"pack": pack.pk, "submission_key": "x'"})

    assert response.status_code == 303
    assert not CheckoutSession.objects.filter(user=alice).exists()
