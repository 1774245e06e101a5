"""Rate limits on buy and both webhooks, from the one shared limiter (config/ratelimit.py)."""

from __future__ import annotations

import json

import pytest

from billing.models import CheckoutSession, StripeEvent
from config import ratelimit
from generation.models import ProviderCallback
from tests.billing.conftest import stripe_signature
from tests.security.conftest import csrf_client

pytestmark = pytest.mark.django_db(transaction=True)


def test_buy_past_the_limit_is_refused_with_a_message_and_creates_nothing(world, settings):
    """The third checkout in a window goes back to billing with a reason; no session is made."""
    settings.BILLING_BUY_RATE_LIMIT_COUNT = 2
    client = csrf_client(world.bob)
    client.get("/dashboard/")
    token = client.cookies["csrftoken"].value
    answers = [
        client.post("/billing/buy/", {"pack": world.pack.pk, "csrfmiddlewaretoken": token})
        for _ in range(3)
    ]
    assert [a.status_code for a in answers] == [303, 303, 303]
    assert "/billing/standin/" in answers[1]["Location"]
    assert answers[2]["Location"] == "/billing/"
    assert CheckoutSession.objects.filter(user=world.bob).count() == 2
    page = client.get("/billing/")
    assert b"Too many checkout attempts" in page.content


def test_signed_stripe_deliveries_are_never_limited_and_bad_signatures_are(world, settings):
    """Only failed signatures count: past the limit a forger gets 429, Stripe still gets 200."""
    settings.WEBHOOK_RATE_LIMIT_COUNT = 2
    client = csrf_client()
    body = json.dumps({"id": "evt_x", "type": "ping", "livemode": False, "data": {"object": {}}})

    def post(signature: str):
        return client.post(
            "/webhooks/stripe/",
            data=body,
            content_type="application/json",
            HTTP_STRIPE_SIGNATURE=signature,
        )

    signed = [post(stripe_signature(body.encode())).status_code for _ in range(4)]
    forged = [post(stripe_signature(body.encode(), secret="whsec_forged")) for _ in range(3)]
    assert signed == [200, 200, 200, 200]
    assert [f.status_code for f in forged] == [400, 400, 429]
    assert int(forged[2]["Retry-After"]) >= 1
    assert post(stripe_signature(body.encode())).status_code == 200
    assert StripeEvent.objects.get(stripe_event_id="evt_x").attempts == 5


def test_bad_signatures_are_counted_per_client_behind_a_proxy(world, settings):
    """Behind one trusted proxy, a forger's failures do not limit another sender's."""
    settings.WEBHOOK_RATE_LIMIT_COUNT = 1
    settings.TRUSTED_PROXY_COUNT = 1
    client = csrf_client()
    body = b"{}"

    def forged(address: str) -> int:
        return client.post(
            "/webhooks/stripe/",
            data=body,
            content_type="application/json",
            HTTP_STRIPE_SIGNATURE=stripe_signature(body, secret="whsec_forged"),
            HTTP_X_FORWARDED_FOR=address,
            REMOTE_ADDR="10.0.0.2",
        ).status_code

    assert [forged("203.0.113.9"), forged("203.0.113.9")] == [400, 429]
    assert forged("198.51.100.7") == 400


def test_provider_callbacks_count_only_bad_signatures(settings):
    """The provider endpoint shares the limiter, counted per provider and address."""
    settings.WEBHOOK_RATE_LIMIT_COUNT = 1
    client = csrf_client()
    first = client.post("/webhooks/providers/babysea/", data=b"{}", content_type="application/json")
    second = client.post(
        "/webhooks/providers/babysea/", data=b"{}", content_type="application/json"
    )
    other = client.post(
        "/webhooks/providers/replicate/", data=b"{}", content_type="application/json"
    )
    assert (first.status_code, second.status_code, other.status_code) == (401, 429, 401)
    assert not ProviderCallback.objects.exists()


def test_a_limit_of_zero_turns_the_limiter_off():
    """0 means off, so benches and tests can opt out per scope."""
    verdicts = [ratelimit.hit("t-off", "me", limit=0, window=60) for _ in range(50)]
    assert all(v.allowed for v in verdicts)


def test_the_limiter_counts_per_identity_and_scope():
    """Alice's submissions do not use up Bob's, nor buys her generations."""
    assert [ratelimit.hit("t-a", "alice", limit=2, window=60).allowed for _ in range(3)] == [
        True,
        True,
        False,
    ]
    assert ratelimit.hit("t-a", "bob", limit=2, window=60).allowed
    assert ratelimit.hit("t-b", "alice", limit=2, window=60).allowed


def test_the_limiter_fails_open_when_redis_is_unreachable(settings, caplog):
    """A cache outage lets requests through (logged), so payments and webhooks keep flowing."""
    from config import cache

    settings.CACHES = {
        "default": {**settings.CACHES["default"], "LOCATION": "redis://127.0.0.1:1/1"}
    }
    try:
        verdicts = [ratelimit.hit("t-down", "me", limit=1, window=60) for _ in range(3)]
    finally:
        cache.outage.answered()
    assert all(verdict.allowed for verdict in verdicts)
    assert "cache unreachable, failing open" in caplog.text


def test_the_limiter_survives_a_flushall_between_windows(settings):
    """Counters wiped by FLUSHALL restart from zero instead of raising."""
    import redis

    for _ in range(2):
        ratelimit.hit("t-flush", "me", limit=5, window=60)
    redis.Redis.from_url(settings.CACHES["default"]["LOCATION"]).flushdb()
    verdict = ratelimit.hit("t-flush", "me", limit=5, window=60)
    assert verdict.allowed and verdict.count == 1
