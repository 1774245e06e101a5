"""The events that send mail: receipts, generations nobody watched, withheld output, sign-up."""

import re

import pytest
from django.core import mail
from django.test import Client

from generation.models import Generation, Status
from notifications.models import Kind, Notification, Preferences
from tests.billing.conftest import make_event
from tests.generation.flow import (
    callback_body,
    deliver,
    finished_job,
    settle_pending_callbacks,
    start,
    submit,
)

pytestmark = pytest.mark.django_db(transaction=True)


def mails_to(user) -> list:
    return [message for message in mail.outbox if message.to == [user.email]]


def test_a_purchase_fulfilled_by_webhook_and_success_page_mails_one_receipt(
    alice, buy, post_event, fake_stripe, site, eager_celery
):
    from billing.fulfilment import fulfil_checkout

    mail.outbox.clear()
    checkout = buy(alice)
    session = fake_stripe.sessions[checkout.stripe_session_id]
    post_event(make_event("checkout.session.completed", session))  # Stripe redelivers
    fulfil_checkout(checkout.stripe_session_id, source="success_page")

    [receipt] = mails_to(alice)
    assert receipt.subject == f"[Studio] Your receipt for {checkout.product_name}"
    assert "Credits added: 100" in receipt.body and "Paid: $10.00" in receipt.body
    assert "https://studio.example/billing/" in receipt.body
    html = receipt.alternatives[0][0]
    assert "$10.00" in html and "Studio Example" in html
    assert "cs_" not in receipt.body + html  # no Stripe ids reach the customer
    assert Notification.objects.filter(user=alice, kind=Kind.RECEIPT).count() == 1


def run_to_success(user, provider, *, watch: Client | None = None) -> Generation:
    generation = start(submit(user))
    if watch is not None:
        assert watch.get(f"/generations/{generation.pk}/progress/").status_code == 200
    deliver(callback_body(finished_job(provider, generation)))
    settle_pending_callbacks()
    generation.refresh_from_db()
    assert generation.status == Status.SUCCEEDED
    return generation


@pytest.mark.usefixtures("generation_settings")
def test_a_generation_finishing_with_its_page_closed_mails_once(
    alice, fund, local_provider, site, eager_celery
):
    fund(alice, 1000)  # stays above the low-balance threshold
    mail.outbox.clear()
    generation = run_to_success(alice, local_provider)
    settle_pending_callbacks()  # a redelivered callback settles nothing new

    [ready] = mails_to(alice)
    assert ready.subject == "[Studio] Your Flux Schnell generation is ready"
    assert f"https://studio.example/generations/{generation.pk}/" in ready.body
    assert "Choose which emails you get: https://studio.example/account/emails/" in ready.body


@pytest.mark.usefixtures("generation_settings")
def test_a_watched_generation_sends_nothing_unless_it_ran_long(
    alice, fund, local_provider, site, eager_celery, settings
):
    fund(alice, 1000)  # stays above the low-balance threshold
    watcher = Client()
    watcher.force_login(alice)
    mail.outbox.clear()
    run_to_success(alice, local_provider, watch=watcher)
    assert mails_to(alice) == []

    settings.NOTIFY_LONG_JOB_SECONDS = 0
    run_to_success(alice, local_provider, watch=watcher)
    assert len(mails_to(alice)) == 1


@pytest.mark.usefixtures("generation_settings")
def test_a_failed_generation_mails_that_nothing_was_charged(
    alice, fund, local_provider, site, eager_celery
):
    fund(alice, 1000)  # stays above the low-balance threshold
    mail.outbox.clear()
    generation = start(submit(alice, faults={"fail": True}))
    deliver(callback_body(finished_job(local_provider, generation)))
    settle_pending_callbacks()
    generation.refresh_from_db()
    assert generation.status == Status.FAILED

    [failed] = mails_to(alice)
    assert "did not finish" in failed.subject
    assert "You were not charged" in failed.body


@pytest.mark.usefixtures("generation_settings")
def test_opting_out_of_generation_updates_stops_them(
    alice, fund, local_provider, site, eager_celery
):
    Preferences.objects.create(user=alice, generation_updates=False)
    fund(alice, 1000)  # stays above the low-balance threshold
    mail.outbox.clear()
    run_to_success(alice, local_provider)
    assert mails_to(alice) == []
    assert Notification.objects.get(user=alice).status == "skipped"


def test_the_verification_email_names_the_site_from_settings_not_the_request_host(
    client, site, settings
):
    settings.ACCOUNT_ALLOW_REGISTRATION = True
    mail.outbox.clear()
    response = client.post(
        "/accounts/signup/",
        {
            "email": "new@example.com",
            "password1": "a-long-pass-phrase",
            "password2": "a-long-pass-phrase",
        },
        HTTP_HOST="127.0.0.1",
    )
    assert response.status_code == 302
    [message] = mail.outbox
    html = message.alternatives[0][0]
    for body in (message.body, html):
        assert "127.0.0.1" not in body and "testserver" not in body
        assert "Studio Example" in body
        assert re.search(r"https://studio\.example/accounts/confirm-email/[^/\s\"]+/", body)
    assert message.subject == "[Studio] Confirm your email address for Studio Example"
