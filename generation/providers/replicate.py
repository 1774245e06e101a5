"""Replicate adapter: predictions with a webhook, Standard Webhooks verification, cancel.

Replicate has no idempotency key, so dispatch is at most once: the attempt is recorded before the
POST and an uncertain attempt is never repeated; a re-driven start looks its prediction up in the
account's recent predictions instead (``find_job``). Outputs are deleted an hour
after completion, so a success whose files are gone is reported as ``gone``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from django.conf import settings
from django.utils.dateparse import parse_datetime

from generation import catalogue
from generation.providers.base import (
    CallbackEvent,
    DispatchRefused,
    InvalidCallback,
    InvalidSignature,
    JobReport,
    JobState,
    Provider,
    load_json,
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
# How many pages of recent predictions a re-driven start reads looking for its own.
FIND_PAGES = 5
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


def _is_ours(prediction: Mapping, body: Mapping, spec: catalogue.ModelSpec) -> bool:
    """Whether a listed prediction is the one ``body`` started (webhook first, else input)."""
    if not prediction.get("id"):
        return False
    if prediction.get("webhook"):
        return prediction["webhook"] == body["webhook"]
    same_model = (
        prediction.get("version") == spec.provider_version
        if spec.provider_version
        else prediction.get("model") == spec.provider_model
    )
    return same_model and prediction.get("input") == body["input"]


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

    def prediction(self, generation: Generation) -> tuple[str, dict[str, object]]:
        """Return the endpoint and body that start this generation's prediction.

        An official model (no pinned version in the catalogue) runs through
        ``models/{owner}/{name}/predictions``; a community model through ``/predictions`` with
        its pinned ``version``.
        """
        spec = catalogue.get_model(generation.model_key)
        width, height = RATIO_SIZES.get(generation.params.get("ratio", "1:1"), (1024, 1024))
        body: dict[str, object] = {
            "input": {"prompt": generation.prompt, "width": width, "height": height},
            "webhook": self.webhook_url(generation),
            "webhook_events_filter": ["start", "completed"],
        }
        if spec.provider_version:
            return "/predictions", {"version": spec.provider_version, **body}
        return f"/models/{spec.provider_model}/predictions", body

    def submit(self, generation: Generation) -> str:
        url, body = self.prediction(generation)
        response = self.request("POST", url, json=body)
        if response.status_code >= 400:
            raise DispatchRefused(f"HTTP {response.status_code}: {response.text[:500]}")
        prediction_id = response.json().get("id")
        if not prediction_id:
            raise DispatchRefused(f"no prediction id in {response.text[:300]}")
        return str(prediction_id)

    def find_job(self, generation: Generation, since: datetime) -> str | None:
        """Find the prediction an uncertain start created, in the account's recent predictions.

        Replicate lists predictions newest first; one created since the attempt (less a minute
        for clock skew) that carries this generation's webhook URL, or failing that its exact
        input on the same model, is ours. Pages stop once they are older than the attempt.
        """
        _, body = self.prediction(generation)
        spec = catalogue.get_model(generation.model_key)
        oldest = since - timedelta(minutes=1)
        url: str | None = "/predictions"
        for _ in range(FIND_PAGES):
            if url is None:
                break
            response = self.request("GET", url)
            if response.status_code >= 400:
                return None  # cannot look: the grace period decides, as with no answer
            page = load_json(response.content)
            for prediction in page.get("results") or ():
                created = parse_datetime(str(prediction.get("created_at") or ""))
                if created is None or created < oldest:
                    return None
                if _is_ours(prediction, body, spec):
                    return str(prediction["id"])
            url = page.get("next")
        return None

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
