"""Signed but malformed JSON gets 400 at both webhooks and stores nothing; it is never a 500.

A 500 makes the sender retry forever. Each body is signed exactly as its sender signs (Stripe's
``t=,v1=`` HMAC, BabySea's header, Standard Webhooks for Replicate), so only the JSON is wrong.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import pytest
from django.test import Client

from billing.models import StripeEvent
from generation.models import ProviderCallback
from tests.billing.conftest import WEBHOOK_SECRET, make_event, stripe_signature
from tests.e2e.helpers import babysea_header
from tests.generation.conftest import SECRET
from tests.generation.flow import CALLBACK_URL

pytestmark = pytest.mark.django_db(transaction=True)
REPLICATE_SECRET = "whsec_" + base64.b64encode(b"replicate-test-secret-0123456789").decode()
DEPTH = 100_000


def spoil(valid: dict, how: str) -> bytes:
    """Return ``valid`` as JSON bytes made malformed in one way (a marker value is replaced)."""
    text = json.dumps({**valid, "extra": "MARK"})
    replacements = {
        "lone surrogate": '"\\ud800"',
        "NaN": "NaN",
        "Infinity": "-Infinity",
        "deep nesting": "[" * DEPTH + "]" * DEPTH,
        "NUL": '"a\\u0000b"',
    }
    if how == "byte-order mark":
        return b"\xef\xbb\xbf" + text.replace('"MARK"', "1").encode()
    return text.replace('"MARK"', replacements[how]).encode()


KINDS = ["lone surrogate", "NaN", "Infinity", "byte-order mark", "deep nesting", "NUL"]


@pytest.mark.parametrize("how", KINDS)
def test_stripe_webhook_answers_400_to_signed_malformed_json(settings, how):
    settings.STRIPE_WEBHOOK_SECRET = WEBHOOK_SECRET
    body = spoil(make_event("checkout.session.completed", {"id": "cs_test_x"}), how)

    response = Client().post(
        "/webhooks/stripe/",
        data=body,
        content_type="application/json",
        HTTP_STRIPE_SIGNATURE=stripe_signature(body),
    )

    assert (response.status_code, response.json()) == (400, {"status": "malformed"})
    assert not StripeEvent.objects.exists()


@pytest.mark.usefixtures("generation_settings")
@pytest.mark.parametrize("how", KINDS)
def test_babysea_callback_answers_400_to_signed_malformed_json(how):
    callback = {
        "webhook_event": "generation.completed",
        "webhook_delivery_id": "whd_malformed",
        "webhook_data": {"generation_id": "job-1", "generation_status": "succeeded"},
    }
    body = spoil(callback, how)

    response = Client().post(
        CALLBACK_URL,
        data=body,
        content_type="application/json",
        HTTP_X_BABYSEA_SIGNATURE=babysea_header(body, SECRET),
    )

    assert (response.status_code, response.json()) == (400, {"status": "malformed"})
    assert not ProviderCallback.objects.exists()


@pytest.mark.parametrize("how", KINDS)
def test_replicate_callback_answers_400_to_signed_malformed_json(settings, how):
    settings.REPLICATE_WEBHOOK_SECRET = REPLICATE_SECRET
    body = spoil({"id": "pred-a", "status": "succeeded"}, how)
    stamp = str(int(time.time()))
    key = base64.b64decode(REPLICATE_SECRET.removeprefix("whsec_"))
    digest = hmac.new(key, f"msg_1.{stamp}.".encode() + body, hashlib.sha256).digest()

    response = Client().post(
        "/webhooks/providers/replicate/",
        data=body,
        content_type="application/json",
        HTTP_WEBHOOK_ID="msg_1",
        HTTP_WEBHOOK_TIMESTAMP=stamp,
        HTTP_WEBHOOK_SIGNATURE="v1," + base64.b64encode(digest).decode(),
    )

    assert (response.status_code, response.json()) == (400, {"status": "malformed"})
    assert not ProviderCallback.objects.exists()


@pytest.mark.parametrize(
    ("offset", "status"),
    [(3600, 400), (86_400, 400), (301, 400), (60, 200), (-60, 200), (-301, 400)],
)
def test_stripe_signatures_outside_the_tolerance_either_way_are_refused(settings, offset, status):
    """Dated a day, an hour or just past the 300 s tolerance ahead (or behind): refused."""
    settings.STRIPE_WEBHOOK_SECRET = WEBHOOK_SECRET
    body = json.dumps(make_event("customer.created", {"id": "cus_x"})).encode()

    response = Client().post(
        "/webhooks/stripe/",
        data=body,
        content_type="application/json",
        HTTP_STRIPE_SIGNATURE=stripe_signature(body, timestamp=int(time.time()) + offset),
    )

    assert response.status_code == status
    assert StripeEvent.objects.exists() is (status == 200)
