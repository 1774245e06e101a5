"""No secret reaches the logs: a forged webhook, a real one and a whole generation, captured.

Every record is rendered with the production JSON formatter (message, extras, tracebacks) at
DEBUG, then searched for each secret the app holds.
"""

from __future__ import annotations

import json
import logging

import pytest

from config.logging import JsonFormatter
from generation.models import Status
from ledger import api as ledger
from tests.billing.conftest import WEBHOOK_SECRET, make_event, stripe_signature
from tests.generation.conftest import SECRET as PROVIDER_SECRET
from tests.generation.flow import (
    callback_body,
    deliver,
    finished_job,
    settle_pending_callbacks,
    start,
    submit,
)

pytestmark = pytest.mark.django_db(transaction=True)


def test_webhooks_and_a_full_generation_log_no_secret(
    world,
    generation_settings,
    local_provider,
    fund,
    caplog,
    client,
    settings,
):
    """Bad and good signatures, dispatch, callback, ingest and capture: no secret in any line."""
    settings.BABYSEA_API_KEY = "bsk_live_" + "9" * 32
    secrets = {
        "stripe webhook secret": WEBHOOK_SECRET,
        "provider webhook secret": PROVIDER_SECRET,
        "django secret key": settings.SECRET_KEY,
        "s3 secret": settings.AWS_SECRET_ACCESS_KEY,
        "babysea api key": settings.BABYSEA_API_KEY,
    }
    secrets = {name: value for name, value in secrets.items() if value}
    caplog.set_level(logging.DEBUG)

    payload = json.dumps(
        make_event(
            "checkout.session.completed",
            {
                "id": world.checkout.stripe_session_id,
                "object": "checkout.session",
                "status": "complete",
                "payment_status": "paid",
            },
        )
    ).encode()
    forged = client.post(
        "/webhooks/stripe/",
        data=payload,
        content_type="application/json",
        HTTP_STRIPE_SIGNATURE=stripe_signature(payload, secret="whsec_attacker"),
    )
    assert forged.status_code == 400
    good = client.post(
        "/webhooks/stripe/",
        data=payload,
        content_type="application/json",
        HTTP_STRIPE_SIGNATURE=stripe_signature(payload),
    )
    assert good.status_code == 200
    assert deliver(b'{"webhook_event": "x"}', secret="whsec_attacker").status_code == 401

    fund(world.bob, 20)
    generation = start(submit(world.bob))
    data = finished_job(local_provider, generation)
    assert deliver(callback_body(data)).status_code == 200
    settle_pending_callbacks()
    generation.refresh_from_db()
    assert generation.status == Status.SUCCEEDED
    assert ledger.balance(world.bob.pk).available == 15

    formatter = JsonFormatter()
    lines = [formatter.format(record) for record in caplog.records]
    assert len(lines) > 5, "nothing was logged: the capture is not working"
    leaks = [
        (name, line[:200]) for line in lines for name, value in secrets.items() if value in line
    ]
    assert not leaks, leaks
