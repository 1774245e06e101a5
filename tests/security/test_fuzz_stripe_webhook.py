"""Hostile input at the Stripe webhook: never a 500, never a change without a valid signature.

Malformed, truncated, huge, wrongly signed, stale, replayed and type-confused deliveries are
thrown at the endpoint; afterwards the one validly signed event still grants, exactly once.
"""

from __future__ import annotations

import json
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing.models import StripeEvent
from ledger import api as ledger
from tests.billing.conftest import WEBHOOK_SECRET, make_event, stripe_signature
from tests.security.conftest import csrf_client
from tests.security.fuzz import FUZZ, json_values, raw_bodies, signature_headers

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("no_limits")]
URL = "/webhooks/stripe/"


def paid_event(world, **changes) -> dict:
    session = {
        "id": world.checkout.stripe_session_id,
        "object": "checkout.session",
        "status": "complete",
        "payment_status": "paid",
        "payment_intent": "pi_fuzz",
    }
    return make_event("checkout.session.completed", {**session, **changes})


def post(client, body: bytes, signature: str | None):
    extra = {} if signature is None else {"HTTP_STRIPE_SIGNATURE": signature}
    return client.post(URL, data=body, content_type="application/json", **extra)


def assert_nothing_granted(world) -> None:
    assert ledger.balance(world.alice.pk).available == 0
    assert not StripeEvent.objects.exists()


def test_garbage_with_any_signature_header_changes_nothing(world):
    """Random bodies with random or missing signatures get 400/413, never a 500 or a row."""
    client = csrf_client()

    @FUZZ
    @given(body=raw_bodies, signature=signature_headers)
    def attempt(body, signature):
        response = post(client, body, signature)
        assert response.status_code in (400, 413), response.content[:200]

    attempt()
    assert_nothing_granted(world)


def test_a_valid_event_with_a_wrong_signature_changes_nothing(world):
    """The real event, signed wrongly (secret, body, time, scheme), is refused with 400."""
    client = csrf_client()
    payload = json.dumps(paid_event(world)).encode()
    now = int(time.time())

    @FUZZ
    @given(
        # A future timestamp signed with the real secret is a valid signature (stripe-python
        # checks only age), so it is not among the forgeries.
        how=st.sampled_from(["secret", "body", "stale", "scheme", "hex"]),
        secret=st.text(min_size=1, max_size=40).filter(lambda s: s != WEBHOOK_SECRET),
        shift=st.integers(min_value=301, max_value=10**9),
        flip=st.integers(min_value=0, max_value=63),
    )
    def attempt(how, secret, shift, flip):
        body, signature = payload, stripe_signature(payload)
        if how == "secret":
            signature = stripe_signature(payload, secret=secret)
        elif how == "body":
            body = payload.replace(b'"paid"', b'"paid" ')
        elif how == "stale":
            signature = stripe_signature(payload, timestamp=now - shift)
        elif how == "scheme":
            signature = signature.replace("v1=", "v0=")
        else:
            mac = signature.split("v1=")[1]
            swapped = "0" if mac[flip] != "0" else "1"
            signature = signature.split("v1=")[0] + "v1=" + mac[:flip] + swapped + mac[flip + 1 :]
        response = post(client, body, signature)
        assert response.status_code == 400
        assert response.json() == {"status": "bad_signature"}

    attempt()
    assert_nothing_granted(world)


def test_signed_but_type_confused_events_never_answer_500(world):
    """Even with a valid signature, odd shapes get 400 or are recorded, never a crash."""
    client = csrf_client()

    @FUZZ
    @given(
        envelope=st.fixed_dictionaries(
            {},
            optional={
                "id": json_values,
                "type": st.sampled_from(
                    ["checkout.session.completed", "charge.refunded", "invoice.paid"]
                )
                | json_values,
                "livemode": json_values,
                "data": st.fixed_dictionaries({}, optional={"object": json_values}) | json_values,
                "created": json_values,
            },
        )
    )
    def attempt(envelope):
        body = json.dumps(envelope).encode()
        response = post(client, body, stripe_signature(body))
        assert response.status_code in (200, 400), response.content[:300]

    attempt()
    assert ledger.balance(world.alice.pk).available == 0


def test_replays_grant_once_and_the_valid_event_still_grants_after_the_storm(world):
    """After hostile traffic the real event grants; replays of it answer duplicate."""
    client = csrf_client()
    for body in (b"", b"{", b"[]", b"null", json.dumps({"id": 1}).encode()):
        assert post(client, body, "t=1,v1=00").status_code == 400
    event = paid_event(world)
    body = json.dumps(event).encode()
    first = post(client, body, stripe_signature(body))
    assert first.status_code == 200 and first.json() == {"status": "processed"}
    for _ in range(3):
        again = post(client, body, stripe_signature(body))
        assert again.status_code == 200 and again.json() == {"status": "duplicate"}
    replayed = {**event, "id": event["id"] + "_replayed"}
    other_id = json.dumps(replayed).encode()
    assert post(client, other_id, stripe_signature(other_id)).status_code == 200
    assert ledger.balance(world.alice.pk).available == world.pack.credits
