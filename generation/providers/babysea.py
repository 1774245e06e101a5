"""BabySea adapter: the local provider in development and tests, BabySea itself in production.

BabySea replays a keyed generate request for 24 hours, so the generation id is the idempotency key
and a retried dispatch is safe. Its callbacks are account-wide (no per-request URL): they map to a
generation by BabySea's ``generation_id``, stored at dispatch.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

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
    clean_progress,
    load_json,
)
from generation.providers.signing import SignatureError, verify_babysea

if TYPE_CHECKING:
    from generation.models import Generation

_STATES = {
    "pending": JobState.RUNNING,
    "processing": JobState.RUNNING,
    "succeeded": JobState.SUCCEEDED,
    "failed": JobState.FAILED,
    "canceled": JobState.CANCELED,
}


def _report(data: Mapping) -> JobReport:
    state = _STATES.get(str(data.get("generation_status")), "")
    if not state:
        raise InvalidCallback(f"unknown generation_status {data.get('generation_status')!r}")
    files = data.get("generation_output_file") or ()
    if not isinstance(files, list | tuple) or not all(isinstance(url, str) for url in files):
        raise InvalidCallback(f"generation_output_file is not a list of URLs: {files!r:.200}")
    outputs = tuple(files)
    if state == JobState.SUCCEEDED and data.get("generation_removed"):
        state = JobState.GONE
    return JobReport(
        state=state,
        progress=clean_progress(data.get("generation_progress")),
        output_urls=outputs,
        error=str(data.get("generation_error") or ""),
        error_code=str(data.get("generation_error_code") or ""),
    )


class BabySeaProvider(Provider):
    slug = "babysea"
    idempotent_submit = True

    def base_url(self) -> str:
        if settings.LOCAL_PROVIDER_ENABLED:
            return settings.LOCAL_PROVIDER_URL.rstrip("/")
        return settings.BABYSEA_API_BASE_URL.rstrip("/")

    def auth_headers(self) -> dict[str, str]:
        key = settings.BABYSEA_API_KEY
        return {"Authorization": f"Bearer {key}"} if key else {}

    def configured(self) -> tuple[bool, str]:
        if not settings.LOCAL_PROVIDER_ENABLED and not settings.BABYSEA_API_KEY:
            return False, "BabySea is not configured (BABYSEA_API_KEY is empty)."
        if not settings.PROVIDER_WEBHOOK_SECRET:
            return False, "BabySea callbacks cannot be verified (PROVIDER_WEBHOOK_SECRET)."
        return True, ""

    def submit(self, generation: Generation) -> str:
        spec = catalogue.get_model(generation.model_key)
        params = generation.params
        body: dict[str, object] = {
            "generation_prompt": generation.prompt,
            "generation_ratio": params.get("ratio", "1:1"),
            "generation_provider_order": "fastest",
        }
        if "duration" in params:
            route = "video"
            body["generation_duration"] = int(params["duration"])
            body["generation_output_format"] = "webp" if spec.kind == "animation" else "mp4"
            if "resolution" in params:
                body["generation_resolution"] = params["resolution"]
        else:
            route = "image"
            body["generation_output_format"] = params.get("output_format", "png")
            body["generation_output_number"] = int(params.get("outputs", 1))
        body.update(generation.provider_options or {})
        response = self.request(
            "POST",
            f"/v1/generate/{route}/{spec.provider_model}",
            json=body,
            headers={"Idempotency-Key": str(generation.id)},
        )
        if response.status_code >= 400:
            raise DispatchRefused(f"HTTP {response.status_code}: {response.text[:500]}")
        data = response.json().get("data") or {}
        if data.get("generation_status") == "canceled":
            raise DispatchRefused("BabySea replayed a canceled generation for this key")
        job_id = data.get("generation_id")
        if not job_id:
            raise DispatchRefused(f"no generation_id in {response.text[:300]}")
        return str(job_id)

    def status(self, job_id: str) -> JobReport:
        response = self.request("GET", f"/v1/content/{job_id}")
        if response.status_code in (404, 410):
            return JobReport(state=JobState.MISSING, error="The provider has no such job.")
        if response.status_code >= 400:
            raise InvalidCallback(f"HTTP {response.status_code}: {response.text[:300]}")
        return _report(load_json(response.content).get("data") or {})

    def cancel(self, job_id: str) -> None:
        response = self.request("POST", f"/v1/content/generation/cancel/{job_id}")
        # 404/409: unknown or already finished; either way nothing is left to stop.
        if response.status_code >= 400 and response.status_code not in (404, 409):
            raise DispatchRefused(f"cancel: HTTP {response.status_code}")

    def verify_callback(self, body: bytes, headers: Mapping[str, str]) -> None:
        try:
            verify_babysea(
                body, headers.get("x-babysea-signature"), settings.PROVIDER_WEBHOOK_SECRET
            )
        except SignatureError as error:
            raise InvalidSignature(str(error)) from error

    def read_callback(
        self, payload: object, headers: Mapping[str, str], query: Mapping[str, str]
    ) -> CallbackEvent | None:
        try:
            event = str(payload["webhook_event"])
            delivery_id = str(payload["webhook_delivery_id"])
            data = payload["webhook_data"]
        except (KeyError, TypeError) as error:
            raise InvalidCallback(f"malformed payload: {error!r}") from error
        if not event.startswith("generation.") or not isinstance(data, dict):
            return None  # webhook.test, credits.low_balance: acknowledged, nothing to settle
        job_id = data.get("generation_id")
        if not job_id:
            raise InvalidCallback("no webhook_data.generation_id")
        return CallbackEvent(
            delivery_id=delivery_id,
            job_id=str(job_id),
            event=event,
            report=_report(data),
            payload=payload,
        )

    def allowed_hosts(self) -> list[str]:
        if settings.LOCAL_PROVIDER_ENABLED:
            return [urlsplit(settings.LOCAL_PROVIDER_URL).hostname or "127.0.0.1"]
        return list(settings.BABYSEA_OUTPUT_HOSTS)
