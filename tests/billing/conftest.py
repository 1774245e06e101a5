"""Billing fixtures: a faked Stripe network, packs, and webhooks signed as Stripe signs them."""

from __future__ import annotations

import uuid

import pytest
from django.db import connections

from billing.gateways import stripe as stripe_gateway
from billing.models import CreditPack
from tests.billing.fakestripe import (
    WEBHOOK_SECRET,
    FakeStripe,
    encode,
    stripe_signature,
)
from tests.billing.fakestripe import make_event as make_event  # the billing tests import it here


@pytest.fixture
def post_event(client, settings):
    """POST a signed event to the webhook with the test client; return the response."""
    settings.STRIPE_WEBHOOK_SECRET = WEBHOOK_SECRET

    def post(event: dict | bytes, *, signature: str | None = None, timestamp=None):
        payload = event if isinstance(event, bytes) else encode(event)
        signature = signature or stripe_signature(payload, timestamp=timestamp)
        return client.post(
            "/webhooks/stripe/",
            data=payload,
            content_type="application/json",
            HTTP_STRIPE_SIGNATURE=signature,
        )

    return post


@pytest.fixture
def stripe_settings(settings):
    """Run billing against (fake) Stripe test mode: a test key, the secret, no stand-in."""
    settings.STRIPE_SECRET_KEY = "sk_test_" + "a" * 24
    settings.STRIPE_WEBHOOK_SECRET = WEBHOOK_SECRET
    settings.STRIPE_LIVEMODE = False
    settings.STRIPE_MAX_NETWORK_RETRIES = 0
    settings.BILLING_STANDIN_ENABLED = False
    settings.BILLING_ALLOW_PROMOTION_CODES = False
    settings.SITE_URL = "https://shop.example"
    return settings


@pytest.fixture
def fake_stripe(stripe_settings, monkeypatch) -> FakeStripe:
    """Replace only the network under stripe-python with an in-memory Stripe."""
    fake = FakeStripe()
    monkeypatch.setattr(stripe_gateway, "build_http_client", lambda: fake)
    stripe_gateway._client.cache_clear()
    yield fake
    stripe_gateway._client.cache_clear()


@pytest.fixture
def standin_settings(settings):
    settings.BILLING_STANDIN_ENABLED = True
    settings.STRIPE_SECRET_KEY = ""
    settings.STRIPE_LIVEMODE = False
    settings.STRIPE_WEBHOOK_SECRET = WEBHOOK_SECRET
    return settings


@pytest.fixture
def pack_factory(db):
    def create(credits: int = 100, price_amount: int = 1000, **extra) -> CreditPack:
        slug = extra.pop("slug", f"pack-{uuid.uuid4().hex[:8]}")
        return CreditPack.objects.create(
            name=extra.pop("name", f"Pack {slug}"),
            slug=slug,
            credits=credits,
            price_amount=price_amount,
            currency=extra.pop("currency", "usd"),
            stripe_price_id=extra.pop("stripe_price_id", f"price_{slug.replace('-', '_')}"),
            **extra,
        )

    return create


@pytest.fixture
def pack(pack_factory, fake_stripe) -> CreditPack:
    """A 100-credit pack for $10 whose Price exists in the fake Stripe."""
    pack = pack_factory()
    fake_stripe.add_price(pack.stripe_price_id, unit_amount=pack.price_amount)
    return pack


@pytest.fixture
def close_thread_connections():
    """Close the database connection a worker thread opened (call at the end of the thread)."""
    return connections.close_all


def spend(user, credits: int) -> None:
    """Spend credits as a generation does: hold, then capture."""
    from datetime import timedelta

    from ledger import api as ledger

    reference = f"test-spend-{uuid.uuid4()}"
    assert ledger.hold(user.pk, reference, credits, ttl=timedelta(minutes=5)).status == "held"
    assert ledger.capture(reference).status == "captured"


def available(user) -> int:
    from ledger import selectors as ledger_selectors

    return ledger_selectors.balance(user.pk).available


def assert_ledger_healthy(*users) -> None:
    """Fail when ledger_check() or ledger_audit() names one of these accounts."""
    from ledger import api as ledger

    ids = [str(u.pk) for u in users]
    problems = [v for v in ledger.check() + ledger.audit() if any(i in v.detail for i in ids)]
    assert problems == []


def charge_object(payment_intent: str, *, refunded: int, amount: int = 1000, charge_id=None):
    """A Charge as ``charge.refunded`` carries it: ``amount_refunded`` is cumulative."""
    return {
        "id": charge_id or "ch_" + payment_intent.removeprefix("pi_"),
        "object": "charge",
        "payment_intent": payment_intent,
        "amount": amount,
        "amount_refunded": refunded,
        "currency": "usd",
        "refunded": refunded >= amount,
        "status": "succeeded",
    }


def dispute_object(payment_intent: str, *, status: str, amount: int = 1000, dispute_id=None):
    return {
        "id": dispute_id or "dp_" + payment_intent.removeprefix("pi_"),
        "object": "dispute",
        "charge": "ch_" + payment_intent.removeprefix("pi_"),
        "payment_intent": payment_intent,
        "amount": amount,
        "currency": "usd",
        "reason": "fraudulent",
        "status": status,
    }


@pytest.fixture
def buy(post_event, fake_stripe, pack):
    """Buy the 100-credit pack for a user through a signed webhook; return the paid purchase."""
    from billing.checkout import start_checkout

    def purchase(user):
        checkout = start_checkout(user, pack)
        session = fake_stripe.complete(checkout.stripe_session_id)
        assert post_event(make_event("checkout.session.completed", session)).status_code == 200
        checkout.refresh_from_db()
        assert checkout.status == "paid"
        return checkout

    return purchase
