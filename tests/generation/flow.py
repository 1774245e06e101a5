"""Steps the generation tests share: submit, start, wait for the provider, deliver callbacks."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid

from django.test import Client

from generation.models import Generation, ProviderCallback
from generation.services.callbacks import settle_callback
from generation.services.dispatch import start_generation
from generation.services.submission import submit_generation
from tests.e2e.helpers import babysea_header, wait_until
from tests.generation.conftest import SECRET

CALLBACK_URL = "/webhooks/providers/babysea/"


def submit(user, *, model_key="flux-schnell", params=None, faults=None, **extra) -> Generation:
    options = {"local_fault": faults} if faults else None
    if extra.get("provider_options"):
        options = {**(options or {}), **extra["provider_options"]}
    return submit_generation(
        user,
        model_key=model_key,
        prompt="a quiet harbour at dawn",
        params=params or {},
        provider_options=options,
    )


def start(generation: Generation) -> Generation:
    start_generation(generation.pk)
    generation.refresh_from_db()
    return generation


def finished_job(provider, generation: Generation) -> dict:
    """Wait until the provider reports the job terminal; return its content record."""

    def done():
        response = provider.content(generation.provider_job_id)
        if response.status_code != 200:
            return None
        data = response.json()["data"]
        return data if data["generation_status"] in ("succeeded", "failed", "canceled") else None

    return wait_until(done, timeout=20, what=f"job of {generation.pk} to finish")


def callback_body(data: dict, *, status: str | None = None, delivery_id: str | None = None):
    """Build the BabySea webhook payload for a job record."""
    status = status or data["generation_status"]
    event = {
        "succeeded": "generation.completed",
        "failed": "generation.failed",
        "canceled": "generation.canceled",
        "processing": "generation.started",
    }[status]
    webhook_data = {
        "account_id": "acct_local",
        "model_identifier": data.get("model_identifier", "bfl/flux-schnell"),
        "generation_status": status,
        "generation_id": data["generation_id"],
    }
    if status == "succeeded":
        webhook_data["generation_output_file"] = data.get("generation_output_file", [])
    if status == "failed":
        webhook_data["generation_error"] = "model failed"
        webhook_data["generation_error_code"] = "BSE3001"
    return json.dumps(
        {
            "webhook_event": event,
            "webhook_timestamp": "2026-01-01T00:00:00Z",
            "webhook_delivery_id": delivery_id or f"whd_{uuid.uuid4().hex}",
            "webhook_data": webhook_data,
        }
    ).encode()


def deliver(body: bytes, *, secret: str = SECRET, timestamp: int | None = None, client=None):
    """POST a callback signed as BabySea signs it."""
    return (client or Client()).post(
        CALLBACK_URL,
        data=body,
        content_type="application/json",
        HTTP_X_BABYSEA_SIGNATURE=babysea_header(body, secret, timestamp),
    )


def settle_pending_callbacks() -> list[str]:
    """Run the settle step for every stored, unprocessed callback (what the worker does)."""
    outcomes = []
    for callback_id in (
        ProviderCallback.objects.filter(processed_at__isnull=True)
        .order_by("received_at", "pk")
        .values_list("pk", flat=True)
    ):
        outcomes.append(settle_callback(callback_id))
    return outcomes


def replicate_headers(body: bytes, msg_id: str, secret: str) -> dict:
    """Sign as Standard Webhooks (Replicate) specifies, independently of the app's verifier."""
    stamp = str(int(time.time()))
    key = base64.b64decode(secret.removeprefix("whsec_"))
    digest = hmac.new(key, f"{msg_id}.{stamp}.".encode() + body, hashlib.sha256).digest()
    return {
        "HTTP_WEBHOOK_ID": msg_id,
        "HTTP_WEBHOOK_TIMESTAMP": stamp,
        "HTTP_WEBHOOK_SIGNATURE": "v1,bad v1," + base64.b64encode(digest).decode(),
    }
