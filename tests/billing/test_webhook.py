"""The webhook endpoint: verification, storage, exactly-once grants, failures and replays."""

import json
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from billing import webhooks
from billing.checkout import start_checkout
from billing.models import CheckoutSession, StripeEvent
from ledger import selectors as ledger_selectors
from tests.billing.conftest import encode, make_event, stripe_signature

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def purchase(alice, pack):
    """Alice's open purchase of the 100-credit pack."""
    return start_checkout(alice, pack)


def grants_for(user, key: str) -> int:
    entries = ledger_selectors.journal_page(user.pk, limit=200).entries
    return sum(1 for e in entries if e.kind == "grant" and e.idempotency_key == key)


def completed(fake, purchase, **changes) -> dict:
    return make_event(
        "checkout.session.completed", fake.complete(purchase.stripe_session_id, **changes)
    )


def test_valid_completed_event_grants_once(post_event, alice, purchase, fake_stripe):
    event = completed(fake_stripe, purchase)

    response = post_event(event)

    assert response.status_code == 200
    assert response.json() == {"status": "processed"}
    purchase.refresh_from_db()
    assert purchase.status == CheckoutSession.Status.PAID
    assert purchase.stripe_payment_intent_id.startswith("pi_")
    assert ledger_selectors.balance(alice.pk).available == 100
    assert grants_for(alice, f"checkout:{purchase.stripe_session_id}") == 1
    stored = StripeEvent.objects.get(stripe_event_id=event["id"])
    assert stored.processed_at is not None and stored.type == "checkout.session.completed"
    (retrieve,) = fake_stripe.calls_to("GET", f"/v1/checkout/sessions/{purchase.stripe_session_id}")
    assert retrieve.params == {"expand": ["line_items"]}


def test_redelivery_of_a_processed_event_answers_duplicate(
    post_event, alice, purchase, fake_stripe
):
    event = completed(fake_stripe, purchase)

    first, second = post_event(event), post_event(event)

    assert (first.status_code, second.status_code) == (200, 200)
    assert second.json() == {"status": "duplicate"}
    assert StripeEvent.objects.get(stripe_event_id=event["id"]).attempts == 2
    assert ledger_selectors.balance(alice.pk).available == 100


@pytest.mark.parametrize(
    ("tamper", "word"),
    [
        (lambda p: {"signature": stripe_signature(p, secret="whsec_wrong")}, "bad_signature"),
        (lambda p: {"signature": stripe_signature(p + b" ")}, "bad_signature"),
        (lambda p: {"timestamp": int(time.time()) - 301}, "bad_signature"),
        (lambda p: {"signature": "t=abc,v1=zz"}, "bad_signature"),
        (lambda p: {"signature": stripe_signature(p).replace("v1=", "v0=")}, "bad_signature"),
    ],
    ids=["wrong-secret", "body-changed", "stale-timestamp", "garbage-header", "no-v1"],
)
def test_webhook_with_bad_signature_changes_nothing(
    post_event, alice, purchase, fake_stripe, tamper, word
):
    event = completed(fake_stripe, purchase)
    payload = encode(event)

    response = post_event(payload, **tamper(payload))

    assert response.status_code == 400
    assert response.json() == {"status": word}
    assert not StripeEvent.objects.exists()
    assert ledger_selectors.balance(alice.pk).available == 0


def test_webhook_without_signature_header_is_rejected(client, purchase, fake_stripe):
    payload = encode(completed(fake_stripe, purchase))

    response = client.post("/webhooks/stripe/", data=payload, content_type="application/json")

    assert response.status_code == 400
    assert not StripeEvent.objects.exists()


def test_signature_within_tolerance_is_accepted(post_event, alice, purchase, fake_stripe):
    response = post_event(completed(fake_stripe, purchase), timestamp=int(time.time()) - 250)

    assert response.status_code == 200
    assert ledger_selectors.balance(alice.pk).available == 100


def test_oversized_body_is_refused_with_413(post_event, alice, purchase, fake_stripe):
    event = completed(fake_stripe, purchase)
    event["padding"] = "x" * (1024 * 1024)

    response = post_event(event)

    assert response.status_code == 413
    assert not StripeEvent.objects.exists()
    assert ledger_selectors.balance(alice.pk).available == 0


@pytest.mark.parametrize(
    "payload",
    [b"{not json", b"[]", b'{"id": "evt_1", "type": "x"}', "\u00e9".encode("latin-1")],
    ids=["not-json", "not-object", "no-data", "not-utf8"],
)
def test_signed_but_malformed_payload_is_rejected(post_event, payload):
    response = post_event(payload)

    assert response.status_code == 400
    assert not StripeEvent.objects.exists()


def test_signed_event_holding_a_nul_character_is_refused_and_grants_nothing(
    post_event, alice, purchase, fake_stripe
):
    # JSON may escape U+0000 as \u0000; PostgreSQL text and jsonb cannot store it.
    event = completed(fake_stripe, purchase)
    event["data"]["object"]["metadata"] = {"note": "a\x00b"}
    payload = encode(event)
    assert b"\\u0000" in payload

    response = post_event(payload)

    assert response.status_code == 400
    assert response.json() == {"status": "malformed"}
    assert not StripeEvent.objects.exists()
    assert ledger_selectors.balance(alice.pk).available == 0


def test_event_from_the_other_mode_is_rejected(post_event, alice, purchase, fake_stripe):
    event = completed(fake_stripe, purchase)
    event["livemode"] = True

    response = post_event(event)

    assert response.status_code == 400
    assert response.json() == {"status": "wrong_mode"}
    assert not StripeEvent.objects.exists()
    assert ledger_selectors.balance(alice.pk).available == 0


def test_unhandled_event_types_are_recorded_and_answered_200(post_event):
    event = make_event("customer.created", {"id": "cus_123", "object": "customer"})

    response = post_event(event)

    assert response.status_code == 200
    stored = StripeEvent.objects.get(stripe_event_id=event["id"])
    assert stored.processed_at is not None and stored.object_id == "cus_123"


def test_delayed_payment_waits_then_async_success_grants_once(
    post_event, alice, purchase, fake_stripe
):
    unpaid = completed(fake_stripe, purchase, payment_status="unpaid")
    assert post_event(unpaid).status_code == 200
    purchase.refresh_from_db()
    assert purchase.status == "open" and ledger_selectors.balance(alice.pk).available == 0

    session = fake_stripe.complete(purchase.stripe_session_id)
    post_event(make_event("checkout.session.async_payment_succeeded", session))

    purchase.refresh_from_db()
    assert purchase.status == "paid"
    assert ledger_selectors.balance(alice.pk).available == 100


def test_completed_and_async_succeeded_for_one_session_grant_once(
    post_event, alice, purchase, fake_stripe
):
    session = fake_stripe.complete(purchase.stripe_session_id)

    post_event(make_event("checkout.session.async_payment_succeeded", session))
    post_event(make_event("checkout.session.completed", session))

    assert ledger_selectors.balance(alice.pk).available == 100
    assert grants_for(alice, f"checkout:{purchase.stripe_session_id}") == 1


def test_async_failure_and_expiry_are_recorded(post_event, alice, pack, fake_stripe):
    failing = start_checkout(alice, pack)
    expiring = start_checkout(alice, pack)
    failed = fake_stripe.complete(failing.stripe_session_id, payment_status="unpaid")
    fake_stripe.sessions[expiring.stripe_session_id]["status"] = "expired"

    post_event(make_event("checkout.session.async_payment_failed", failed))
    post_event(
        make_event("checkout.session.expired", fake_stripe.sessions[expiring.stripe_session_id])
    )

    failing.refresh_from_db()
    expiring.refresh_from_db()
    assert (failing.status, expiring.status) == ("failed", "expired")
    assert ledger_selectors.balance(alice.pk).available == 0


def test_processing_error_is_saved_and_answered_500_then_retry_grants(
    post_event, alice, purchase, fake_stripe
):
    event = completed(fake_stripe, purchase)
    fake_stripe.fail_with = 500

    failed = post_event(event)

    assert failed.status_code == 500
    stored = StripeEvent.objects.get(stripe_event_id=event["id"])
    assert stored.processed_at is None and "GatewayError" in stored.error
    assert ledger_selectors.balance(alice.pk).available == 0

    fake_stripe.fail_with = None
    retried = post_event(event)

    assert retried.status_code == 200
    stored.refresh_from_db()
    assert stored.processed_at is not None and stored.error == "" and stored.attempts == 2
    assert ledger_selectors.balance(alice.pk).available == 100


def test_crash_after_grant_before_marking_processed_then_replay_grants_once(
    post_event, alice, purchase, fake_stripe, monkeypatch
):
    event = completed(fake_stripe, purchase)
    real_process = webhooks.process

    def process_then_crash(event):
        real_process(event)
        raise RuntimeError("worker killed after the grant")

    monkeypatch.setattr(webhooks, "process", process_then_crash)
    assert post_event(event).status_code == 500
    assert StripeEvent.objects.get(stripe_event_id=event["id"]).processed_at is None
    assert ledger_selectors.balance(alice.pk).available == 100

    monkeypatch.setattr(webhooks, "process", real_process)
    assert post_event(event).status_code == 200

    assert StripeEvent.objects.get(stripe_event_id=event["id"]).processed_at is not None
    assert ledger_selectors.balance(alice.pk).available == 100
    assert grants_for(alice, f"checkout:{purchase.stripe_session_id}") == 1


def test_admin_reprocess_runs_a_failed_event_again(
    post_event, staff_client, alice, purchase, fake_stripe
):
    event = completed(fake_stripe, purchase)
    fake_stripe.fail_with = 500
    post_event(event)
    fake_stripe.fail_with = None
    stored = StripeEvent.objects.get(stripe_event_id=event["id"])

    staff_client.post(
        "/admin/billing/stripeevent/",
        {"action": "reprocess", "_selected_action": [stored.pk]},
    )

    stored.refresh_from_db()
    assert stored.processed_at is not None
    assert ledger_selectors.balance(alice.pk).available == 100


def test_fifty_concurrent_deliveries_through_a_real_server_grant_once(
    live_server, alice, purchase, fake_stripe
):
    payload = encode(completed(fake_stripe, purchase))
    url = live_server.url + "/webhooks/stripe/"

    def deliver(_):
        headers = {
            "Stripe-Signature": stripe_signature(payload),
            "Content-Type": "application/json",
        }
        return httpx.post(url, content=payload, headers=headers, timeout=30).status_code

    with ThreadPoolExecutor(max_workers=50) as pool:
        statuses = list(pool.map(deliver, range(50)))

    assert set(statuses) == {200}
    assert ledger_selectors.balance(alice.pk).available == 100
    assert grants_for(alice, f"checkout:{purchase.stripe_session_id}") == 1
    assert StripeEvent.objects.get().attempts == 50


def test_webhook_and_success_page_racing_grant_once(live_server, alice, purchase, fake_stripe):
    session = fake_stripe.complete(purchase.stripe_session_id)
    payload = encode(make_event("checkout.session.completed", session))
    browser = httpx.Client(base_url=live_server.url)
    from django.test import Client

    django_client = Client()
    django_client.force_login(alice)
    browser.cookies.set("sessionid", django_client.cookies["sessionid"].value)

    def webhook():
        headers = {
            "Stripe-Signature": stripe_signature(payload),
            "Content-Type": "application/json",
        }
        return httpx.post(
            live_server.url + "/webhooks/stripe/", content=payload, headers=headers
        ).status_code

    def success_page():
        return browser.get("/billing/success/", params={"session_id": session["id"]}).status_code

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = [
            pool.submit(webhook),
            pool.submit(success_page),
            pool.submit(webhook),
            pool.submit(success_page),
        ]
        statuses = [r.result() for r in results]

    assert statuses == [200, 200, 200, 200]
    assert ledger_selectors.balance(alice.pk).available == 100
    assert grants_for(alice, f"checkout:{session['id']}") == 1


def test_stored_payload_is_the_signed_event(post_event, purchase, fake_stripe):
    event = completed(fake_stripe, purchase)

    post_event(event)

    assert StripeEvent.objects.get().payload == json.loads(encode(event))


def test_webhook_without_a_configured_secret_answers_503_and_stores_nothing(
    client, settings, purchase, fake_stripe
):
    settings.STRIPE_WEBHOOK_SECRET = ""
    event = completed(fake_stripe, purchase)
    payload = encode(event)

    response = client.post(
        "/webhooks/stripe/",
        data=payload,
        content_type="application/json",
        HTTP_STRIPE_SIGNATURE=stripe_signature(payload),
    )

    assert response.status_code == 503
    assert response.json() == {"status": "not_configured"}
    assert not StripeEvent.objects.exists()
