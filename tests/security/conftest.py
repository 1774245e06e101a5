"""Security fixtures: Alice's things for Bob to reach for, CSRF-enforcing clients, limits off."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import pytest
from django.test import Client

# Billing in stand-in mode: no Stripe keys, the webhook secret set.
from tests.billing.conftest import WEBHOOK_SECRET, standin_settings  # noqa: F401

# The generation fixtures (a local provider process, settings pointing at it, credits).
from tests.generation.conftest import fund, generation_settings, local_provider  # noqa: F401


@dataclass
class World:
    """Alice owns a generation, an asset and a purchase; Bob owns nothing; staff runs the admin."""

    alice: object
    bob: object
    staff: object
    generation: object
    asset: object
    checkout: object
    pack: object


@pytest.fixture
def no_limits(settings):
    """Turn the rate limits off so many examples fit in one test's window."""
    settings.WEBHOOK_RATE_LIMIT_COUNT = 0
    settings.BILLING_BUY_RATE_LIMIT_COUNT = 0
    settings.GENERATION_RATE_LIMIT_COUNT = 0
    return settings


@pytest.fixture
def world(user_factory, standin_settings, db) -> World:  # noqa: F811 (the imported fixture)
    from billing import checkout as billing
    from billing.models import CreditPack
    from generation.models import Generation
    from media_store.models import Asset

    alice = user_factory(f"alice-{uuid.uuid4().hex[:8]}@example.com")
    bob = user_factory(f"bob-{uuid.uuid4().hex[:8]}@example.com")
    staff = user_factory(
        f"staff-{uuid.uuid4().hex[:8]}@example.com", is_staff=True, is_superuser=True
    )
    pack = CreditPack.objects.create(
        name="Matrix pack",
        slug=f"matrix-{uuid.uuid4().hex[:6]}",
        credits=50,
        price_amount=500,
        currency="usd",
        stripe_price_id="price_matrix",
    )
    generation = Generation.objects.create(
        user=alice,
        model_key="flux-schnell",
        kind="image",
        prompt="a private lighthouse",
        params={"ratio": "1:1", "output_format": "png", "outputs": "1"},
        cost=5,
        provider="babysea",
        hold_ttl_seconds=300,
    )
    asset = Asset.objects.create(
        owner_id=alice.pk,
        generation_id=generation.pk,
        key=f"{alice.pk}/{generation.pk}/0.png",
        thumbnail_key=f"{alice.pk}/{generation.pk}/0.thumb.webp",
        content_type="image/png",
        size=10,
        sha256="0" * 64,
    )
    checkout = billing.start_checkout(alice, pack)
    return World(alice, bob, staff, generation, asset, checkout, pack)


def csrf_client(user=None) -> Client:
    """Return a client that enforces CSRF like a browser, signed in as ``user`` if given."""
    client = Client(enforce_csrf_checks=True)
    if user is not None:
        client.force_login(user)
    return client


def post_babysea_completed(delivery_id: str, job_id: str, secret: str):
    """POST a BabySea "generation.completed" callback signed with ``secret``; return the answer."""
    import json

    from tests.e2e.helpers import babysea_header

    body = json.dumps(
        {
            "webhook_event": "generation.completed",
            "webhook_delivery_id": delivery_id,
            "webhook_data": {"generation_id": job_id, "generation_status": "succeeded"},
        }
    ).encode()
    return csrf_client().post(
        "/webhooks/providers/babysea/",
        data=body,
        content_type="application/json",
        HTTP_X_BABYSEA_SIGNATURE=babysea_header(body, secret),
    )
