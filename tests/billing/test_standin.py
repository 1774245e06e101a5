"""The Checkout stand-in: a buyer's journey over real HTTP, the command, and the off switch."""

from urllib.parse import urlsplit

import pytest
from django.core.management import CommandError, call_command
from django.test import Client

from billing.models import CheckoutSession, ReviewItem, StripeEvent
from ledger import selectors as ledger_selectors
from tests.billing.conftest import encode, make_event, stripe_signature

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def standin_pack(pack_factory, standin_settings):
    return pack_factory(credits=250, price_amount=2500, slug="standin-builder")


@pytest.fixture
def buyer(live_server, alice):
    """Alice's browser, talking to the live server's host so the stand-in posts back to it."""
    client = Client(HTTP_HOST=urlsplit(live_server.url).netloc)
    client.force_login(alice)
    return client


def test_buyer_pays_on_the_standin_and_the_webhook_grants(buyer, alice, standin_pack):
    bought = buyer.post("/billing/buy/", {"pack": standin_pack.pk})
    assert bought.status_code == 303 and bought["Location"].startswith("/billing/standin/cs_test_")

    page = buyer.get(bought["Location"])
    assert b"Test mode." in page.content and b"Pay $25.00" in page.content

    paid = buyer.post(bought["Location"], {"action": "pay"})
    assert paid.status_code == 303
    success = buyer.get(paid["Location"])

    assert b"Payment received. 250 credits were added" in success.content
    assert ledger_selectors.balance(alice.pk).available == 250
    checkout = CheckoutSession.objects.get(user=alice)
    assert checkout.status == "paid" and checkout.stripe_payment_intent_id.startswith("pi_standin_")
    event = StripeEvent.objects.get(type="checkout.session.completed")
    assert event.processed_at is not None and event.livemode is False


def test_delayed_payment_on_the_standin_processes_then_settles(buyer, alice, standin_pack):
    location = buyer.post("/billing/buy/", {"pack": standin_pack.pk})["Location"]

    session_id = location.rstrip("/").rsplit("/", 1)[1]

    buyer.post(location, {"action": "pay_delayed"})
    processing = buyer.get("/billing/success/", {"session_id": session_id})
    assert b"Your payment is processing" in processing.content
    assert ledger_selectors.balance(alice.pk).available == 0

    buyer.post(location, {"action": "settle"})

    assert ledger_selectors.balance(alice.pk).available == 250
    assert CheckoutSession.objects.get(user=alice).status == "paid"


def test_command_sends_a_signed_event_that_grants_once(live_server, alice, standin_pack, capsys):
    url = live_server.url + "/webhooks/stripe/"

    call_command(
        "stripe_send_event",
        "checkout.session.completed",
        email=alice.email,
        pack="standin-builder",
        url=url,
    )
    checkout = CheckoutSession.objects.get(user=alice)
    call_command(
        "stripe_send_event",
        "checkout.session.async_payment_succeeded",
        session=checkout.stripe_session_id,
        url=url,
    )

    assert "webhook answered 200" in capsys.readouterr().out
    assert ledger_selectors.balance(alice.pk).available == 250


def test_independently_signed_variant_is_checked_like_stripes(post_event, alice, standin_pack):
    from billing.checkout import start_checkout

    checkout = start_checkout(alice, standin_pack)
    session = {
        "id": checkout.stripe_session_id,
        "status": "complete",
        "payment_status": "paid",
        "line_items": {"data": [{"price": {"id": "price_cheap"}, "quantity": 1}]},
    }

    assert (
        post_event(make_event("checkout.session.completed", session, expanded=True)).status_code
        == 200
    )

    assert ReviewItem.objects.get().reason == ReviewItem.Reason.SNAPSHOT_MISMATCH
    assert ledger_selectors.balance(alice.pk).available == 0


def test_standin_page_and_command_are_refused_when_the_switch_is_off(
    alice_client, alice, standin_pack, settings
):
    from billing.checkout import start_checkout

    checkout = start_checkout(alice, standin_pack)
    settings.BILLING_STANDIN_ENABLED = False

    page = alice_client.get(f"/billing/standin/{checkout.stripe_session_id}/")
    pay = alice_client.post(f"/billing/standin/{checkout.stripe_session_id}/", {"action": "pay"})
    with pytest.raises(CommandError, match="stand-in is off"):
        call_command(
            "stripe_send_event",
            "checkout.session.completed",
            email=alice.email,
            pack="standin-builder",
        )

    assert (page.status_code, pay.status_code) == (404, 404)
    assert not StripeEvent.objects.exists()


def test_standin_page_of_another_user_is_not_found(client, bob, alice, standin_pack):
    from billing.checkout import start_checkout

    checkout = start_checkout(alice, standin_pack)
    client.force_login(bob)

    assert client.get(f"/billing/standin/{checkout.stripe_session_id}/").status_code == 404


def test_standin_events_verify_with_the_independent_signer(standin_pack, alice, settings):
    from billing import standin_events

    payload = encode(make_event("customer.created", {"id": "cus_x"}))
    header = standin_events.signature_header(
        payload, settings.STRIPE_WEBHOOK_SECRET, timestamp=1700000000
    )

    assert header == stripe_signature(payload, timestamp=1700000000)


def test_standin_subscription_journey_with_the_command(
    buyer, live_server, alice, standin_settings, capsys
):
    from billing.gateways.standin import invoice_payment_intent
    from billing.models import Plan, Subscription, SubscriptionInvoice
    from billing.tasks import reconcile_invoices

    plan = Plan.objects.create(
        name="Stand-in monthly",
        slug="standin-monthly",
        credits_per_period=290,
        price_amount=2900,
        stripe_lookup_key="standin_monthly",
    )
    url = live_server.url + "/webhooks/stripe/"
    location = buyer.post("/billing/subscribe/", {"plan": plan.pk})["Location"]
    assert b"Pay $29.00" in buyer.get(location).content

    buyer.post(location, {"action": "pay"})
    assert ledger_selectors.balance(alice.pk).available == 290
    subscription = Subscription.objects.get(user=alice)
    assert subscription.status == "active" and subscription.plan == plan
    assert b"Next renewal" in buyer.get("/billing/").content

    sub_id = subscription.stripe_subscription_id
    call_command("stripe_send_event", "invoice.paid", subscription=sub_id, url=url)
    assert ledger_selectors.balance(alice.pk).available == 580

    # As with Stripe, the invoice event does not name its intent; the command prints it.
    renewal = SubscriptionInvoice.objects.filter(user=alice).first()
    assert renewal.stripe_payment_intent_id == ""
    intent = invoice_payment_intent(renewal.stripe_invoice_id)
    assert f"paid by payment intent {intent}" in capsys.readouterr().out
    call_command(
        "stripe_send_event", "charge.refunded", payment_intent=intent, amount=1450, url=url
    )
    assert ledger_selectors.balance(alice.pk).available == 580 - 145
    renewal.refresh_from_db()
    assert renewal.stripe_payment_intent_id == intent
    # Reconciliation in stand-in mode lists the invoices the stand-in sent: nothing missed.
    assert reconcile_invoices() == {"known": 2}
    call_command("stripe_send_event", "customer.subscription.deleted", subscription=sub_id, url=url)

    subscription.refresh_from_db()
    assert subscription.status == "canceled"
    assert "webhook answered 200" in capsys.readouterr().out
    portal = buyer.post("/billing/portal/", follow=True)
    assert b"does not exist in stand-in mode" in portal.content
