"""Replicate adapter: predictions with a webhook, Standard Webhooks verification, cancel.

Replicate has no idempotency key, so dispatch is at most once: the attempt is recorded before the
POST and an uncertain attempt is never repeated (services resolve it). Outputs are deleted an hour
after completion, so a success whose files are gone is reported as ``gone``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from django.conf import settings

from generation import catalogue
from generation.providers.base import (
    CallbackEvent,
    DispatchRefused,
    InvalidCallback,
    InvalidSignature,
    JobReport,
    JobState,
    Provider,
)
from generation.providers.signing import SignatureError, verify_standard

if TYPE_CHECKING:
    from generation.models import Generation

_STATES = {
    "starting": JobState.RUNNING,
    "processing": JobState.RUNNING,
    "succeeded": JobState.SUCCEEDED,
    "failed": JobState.FAILED,
    "canceled": JobState.CANCELED,
    "aborted": JobState.CANCELED,
}
RATIO_SIZES = {"1:1": (1024, 1024), "16:9": (1344, 768), "9:16": (768, 1344), "4:3": (1152, 896)}


def _report(prediction: Mapping) -> JobReport:
    state = _STATES.get(str(prediction.get("status")), "")
    if not state:
        raise InvalidCallback(f"unknown prediction status {prediction.get('status')!r}")
    output = prediction.get("output")
    if isinstance(output, str):
        urls: tuple[str, ...] = (output,)
    elif isinstance(output, list):
        urls = tuple(str(item) for item in output if isinstance(item, str))
    else:
        urls = ()
    if state == JobState.SUCCEEDED and (prediction.get("data_removed") or not urls):
        state = JobState.GONE
    error = prediction.get("error")
    return JobReport(state=state, output_urls=urls, error=str(error) if error else "")


class ReplicateProvider(Provider):
    slug = "replicate"
    idempotent_submit = False

    def base_url(self) -> str:
        return settings.REPLICATE_API_BASE_URL.rstrip("/")

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {settings.REPLICATE_API_TOKEN}"}

    def configured(self) -> tuple[bool, str]:
        if not settings.REPLICATE_API_TOKEN:
            return False, "Replicate is not configured (REPLICATE_API_TOKEN is empty)."
        if not settings.REPLICATE_WEBHOOK_SECRET:
            return False, "Replicate callbacks cannot be verified (REPLICATE_WEBHOOK_SECRET)."
        return True, ""

    def webhook_url(self, generation: Generation) -> str:
        return f"{settings.SITE_URL}/webhooks/providers/replicate/?generation={generation.id}"

    def submit(self, generation: Generation) -> str:
        spec = catalogue.get_model(generation.model_key)
        width, height = RATIO_SIZES.get(generation.params.get("ratio", "1:1"), (1024, 1024))
        body: dict[str, object] = {
            "input": {"prompt": generation.prompt, "width": width, "height": height},
            "webhook": self.webhook_url(generation),
            "webhook_events_filter": ["start", "completed"],
        }
        model, _, version = spec.provider_model.partition(":")
        if version:
            body["version"] = version
            url = "/predictions"
        else:
            url = f"/models/{model}/predictions"
        response = self.request("POST", url, json=body)
        if response.status_code >= 400:
            raise DispatchRefused(f"HTTP {response.status_code}: {response.text[:500]}")
        prediction_id = response.json().get("id")
        if not prediction_id:
            raise DispatchRefused(f"no prediction id in {response.text[:300]}")
        return str(prediction_id)

    def status(self, job_id: str) -> JobReport:
        response = self.request("GET", f"/predictions/{job_id}")
        if response.status_code in (404, 410):
            return JobReport(state=JobState.MISSING, error="Replicate has no such prediction.")
        if response.status_code >= 400:
            raise InvalidCallback(f"HTTP {response.status_code}: {response.text[:300]}")
        return _report(response.json())

    def cancel(self, job_id: str) -> None:
        response = self.request("POST", f"/predictions/{job_id}/cancel")
        if response.status_code >= 400 and response.status_code not in (404, 409, 422):
            raise DispatchRefused(f"cancel: HTTP {response.status_code}")

    def verify_callback(self, body: bytes, headers: Mapping[str, str]) -> None:
        lowered = {key.lower(): value for key, value in headers.items()}
        try:
            verify_standard(body, lowered, settings.REPLICATE_WEBHOOK_SECRET)
        except SignatureError as error:
            raise InvalidSignature(str(error)) from error

    def read_callback(
        self, payload: object, headers: Mapping[str, str], query: Mapping[str, str]
    ) -> CallbackEvent | None:
        prediction = payload
        try:
            job_id = str(prediction["id"])
        except (KeyError, TypeError) as error:
            raise InvalidCallback(f"malformed payload: {error!r}") from error
        # The signature covered this header's value (verify_callback ran first).
        delivery_id = {key.lower(): value for key, value in headers.items()}["webhook-id"]
        return CallbackEvent(
            delivery_id=delivery_id,
            job_id=job_id,
            event=str(prediction.get("status", "")),
            report=_report(prediction),
            payload=prediction,
        )

    def allowed_hosts(self) -> list[str]:
        return list(settings.REPLICATE_OUTPUT_HOSTS)
