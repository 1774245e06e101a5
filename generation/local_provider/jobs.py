"""The local provider's jobs: rendering, idempotency records and signed callback delivery.

Faults, per request in the generate body's ``local_fault`` object or as defaults:
``delay_ms`` (time to finish), ``fail`` (report failure), ``duplicate`` (send each callback N more
times, alternating a resend of the same delivery and a new delivery id), ``fail_after_success``,
``success_after_failure``, ``reorder`` (completed before started), ``lose_callback`` (send none;
polling still works), ``crash`` (the job vanishes mid-way: 404 and no callback), ``output_404``
(output files answer 404), ``vanish_ms`` (the job answers 404 for that long, then succeeds and
calls back late), ``callback_delay_ms`` (wait before sending the final callback),
``slow_output_ms`` (output downloads stall that long first: a settle caught mid-ingest),
``corrupt_output`` (outputs are served cut off halfway: a file that is not what it claims),
``progress_ms`` (how often a long job calls back with ``generation.progress``; 0 never).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx

from generation.local_provider import render
from generation.providers.signing import babysea_signature

logger = logging.getLogger("local_provider")
FAULT_KEYS = {
    "delay_ms": int,
    "fail": bool,
    "duplicate": int,
    "fail_after_success": bool,
    "success_after_failure": bool,
    "reorder": bool,
    "lose_callback": bool,
    "crash": bool,
    "output_404": bool,
    "vanish_ms": int,
    "callback_delay_ms": int,
    "slow_output_ms": int,
    "corrupt_output": bool,
    "progress_ms": int,
}


def now_iso() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def clean_faults(raw: object) -> dict:
    """Return only known fault knobs, converted to their types."""
    if not isinstance(raw, dict):
        return {}
    return {key: kind(raw[key]) for key, kind in FAULT_KEYS.items() if key in raw}


class ApiError(Exception):
    """An error the API answers in BabySea's error envelope."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass
class Job:
    id: str
    model: str
    route: str
    body: dict
    faults: dict
    status: str = "pending"
    progress: int = 0
    created_at: str = field(default_factory=now_iso)
    completed_at: str | None = None
    outputs: list[tuple[str, bytes, str]] = field(default_factory=list)
    error: str = ""
    error_code: str = ""
    vanished_until: float = 0.0
    lost: bool = False


@dataclass
class Config:
    public_url: str
    callback_url: str
    secret: str
    api_key: str = ""
    delay_ms: int = 500
    progress_ms: int = 1000
    image_size: int = 256
    faults: dict = field(default_factory=dict)


class LocalProvider:
    """Jobs, idempotency records and callback delivery, shared by the request threads."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.jobs: dict[str, Job] = {}
        self.keys: dict[str, tuple[str, dict]] = {}
        self.lock = threading.Lock()
        self.pool = ThreadPoolExecutor(max_workers=64, thread_name_prefix="job")
        self.http = httpx.Client(timeout=10.0)

    # Jobs

    def create(self, route: str, model: str, body: dict, key: str | None) -> tuple[dict, bool]:
        """Create a job, or replay the first answer for a repeated idempotency key."""
        digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
        with self.lock:
            if key and key in self.keys:
                first_digest, response = self.keys[key]
                if first_digest != digest:
                    raise ApiError(409, "BSE2015", "Idempotency-Key reused with another body")
                return response, True
            faults = {**self.config.faults, **clean_faults(body.get("local_fault"))}
            job = Job(id=str(uuid.uuid4()), model=model, route=route, body=body, faults=faults)
            self.jobs[job.id] = job
            response = {
                "model_identifier": model,
                "generation_provider_order": ["local"],
                "generation_prediction_id": f"pred_{job.id[:8]}",
                "generation_id": job.id,
                "generation_initialized": True,
            }
            if key:
                self.keys[key] = (digest, response)
        self.pool.submit(self._run, job)
        return response, False

    def _run(self, job: Job) -> None:
        try:
            self._advance(job)
        except Exception:
            logger.exception("job %s crashed", job.id)

    def _advance(self, job: Job) -> None:
        faults = job.faults
        total = faults.get("delay_ms", self.config.delay_ms) / 1000
        time.sleep(min(total / 4, 0.2))
        if job.status == "canceled":
            return
        job.status, job.progress = "processing", 10
        if not faults.get("reorder"):
            self.deliver(job, "generation.started")
        # A job that runs for at least two reporting intervals calls back with its progress once
        # per interval, as a long video job would; shorter ones only report started and done.
        every = faults.get("progress_ms", self.config.progress_ms) / 1000
        report = every > 0 and total >= 2 * every
        steps = max(3, int(total // every)) if report else 3
        for step in range(steps):
            time.sleep(max(total - min(total / 4, 0.2), 0) / steps)
            if job.status == "canceled":
                return
            job.progress = 10 + 80 * (step + 1) // steps
            if faults.get("crash") and step == 1:
                job.lost = True  # as if the provider died with the job in memory
                return
            if report and step < steps - 1:
                self.deliver(job, "generation.progress")
        if faults.get("vanish_ms"):
            job.vanished_until = time.monotonic() + faults["vanish_ms"] / 1000
            time.sleep(faults["vanish_ms"] / 1000)
        self._finish(job)
        if faults.get("callback_delay_ms"):
            time.sleep(faults["callback_delay_ms"] / 1000)
        if faults.get("success_after_failure") and job.status == "succeeded":
            self.deliver(job, "generation.failed", status="failed", error="transient failure")
        final = "generation.completed" if job.status == "succeeded" else "generation.failed"
        self.deliver(job, final)
        if faults.get("reorder"):
            self.deliver(job, "generation.started", status="processing")
        if faults.get("fail_after_success") and job.status == "succeeded":
            self.deliver(job, "generation.failed", status="failed", error="late failure")

    def _finish(self, job: Job) -> None:
        body = job.body
        prompt = str(body.get("generation_prompt", ""))
        ratio = str(body.get("generation_ratio", "1:1"))
        if job.faults.get("fail"):
            job.status, job.error, job.error_code = "failed", "The model failed.", "BSE3001"
        else:
            outputs = []
            fmt = str(body.get("generation_output_format", ""))
            if job.route == "video" and fmt in render.VIDEO_FORMATS:
                seconds = int(body.get("generation_duration") or 2)
                short = render.RESOLUTIONS.get(str(body.get("generation_resolution")), 480)
                wide, tall = render.RATIOS.get(ratio, (1, 1))
                data = render.render_video(
                    prompt,
                    ratio=ratio,
                    seconds=seconds,
                    fmt=fmt,
                    base=math.ceil(short * max(wide, tall) / min(wide, tall)),
                )
                outputs.append((fmt, data, render.VIDEO_FORMATS[fmt][2]))
            elif job.route == "video":
                seconds = int(body.get("generation_duration") or 2)
                data = render.render_animation(prompt, ratio=ratio, seconds=seconds)
                outputs.append(("webp", data, "image/webp"))
            else:
                fmt = fmt if fmt in render.CONTENT_TYPES else "png"
                for index in range(max(1, min(int(body.get("generation_output_number", 1)), 4))):
                    data = render.render_image(
                        prompt, ratio=ratio, fmt=fmt, index=index, base=self.config.image_size
                    )
                    outputs.append((fmt, data, render.CONTENT_TYPES[fmt]))
            job.outputs = outputs
            job.status = "succeeded"
        job.progress = 100
        job.completed_at = now_iso()

    def cancel(self, job_id: str) -> dict:
        job = self.visible(job_id)
        if job.status in ("succeeded", "failed"):
            raise ApiError(409, "BSE2020", f"generation already {job.status}")
        if job.status != "canceled":
            job.status = "canceled"
            job.completed_at = now_iso()
            self.pool.submit(self.deliver, job, "generation.canceled")
        return {
            "generation_id": job.id,
            "generation_status": "canceled",
            "provider_cancel_sent": True,
            "credits_refunded": True,
        }

    def visible(self, job_id: str) -> Job:
        job = self.jobs.get(job_id)
        if job is None or job.lost or time.monotonic() < job.vanished_until:
            raise ApiError(404, "BSE4004", "generation not found")
        return job

    def output_urls(self, job: Job) -> list[str]:
        return [
            f"{self.config.public_url}/files/{job.id}/{index}.{ext}"
            for index, (ext, _, _) in enumerate(job.outputs)
        ]

    def content(self, job: Job) -> dict:
        body = job.body
        return {
            "account_id": "acct_local",
            "generation_id": job.id,
            "model_identifier": job.model,
            "generation_provider_order": ["local"],
            "generation_provider_used": "local" if job.completed_at else None,
            "generation_prediction_id": f"pred_{job.id[:8]}",
            "generation_status": job.status,
            "generation_progress": job.progress,
            "generation_prompt": body.get("generation_prompt"),
            "generation_ratio": body.get("generation_ratio"),
            "generation_output_format": body.get("generation_output_format"),
            "generation_output_file": self.output_urls(job) if job.status == "succeeded" else [],
            "generation_created_at": job.created_at,
            "generation_completed_at": job.completed_at,
            **(
                {"generation_error": job.error, "generation_error_code": job.error_code}
                if job.error
                else {}
            ),
        }

    # Callbacks

    def deliver(self, job: Job, event: str, *, status: str | None = None, error: str = "") -> None:
        """Send one signed callback (plus the duplicates asked for), retrying failures."""
        if job.faults.get("lose_callback") or job.lost:
            return
        data = {
            "account_id": "acct_local",
            "model_identifier": job.model,
            "generation_provider_used": "local",
            "generation_status": status or job.status,
            "generation_prediction_id": f"pred_{job.id[:8]}",
            "generation_id": job.id,
            "generation_progress": job.progress,
        }
        if (status or job.status) == "succeeded":
            data["generation_output_file"] = self.output_urls(job)
        if error or job.error:
            data["generation_error"] = error or job.error
            data["generation_error_code"] = job.error_code or "BSE3001"
        if (status or job.status) in ("failed", "canceled"):
            data["credits_refunded"] = True
        delivery_id = f"whd_{uuid.uuid4().hex}"
        copies = 1 + max(0, job.faults.get("duplicate", 0))
        for copy in range(copies):
            if copy and copy % 2 == 0:
                delivery_id = f"whd_{uuid.uuid4().hex}"
            payload = {
                "webhook_event": event,
                "webhook_timestamp": now_iso(),
                "webhook_delivery_id": delivery_id,
                "webhook_data": data,
            }
            self._post(json.dumps(payload).encode())

    def _post(self, body: bytes, attempts: int = 4) -> None:
        for attempt in range(attempts):
            headers = {
                "Content-Type": "application/json",
                "User-Agent": "BabySea-Webhooks/local",
                "X-BabySea-Signature": babysea_signature(
                    body, self.config.secret, int(time.time())
                ),
            }
            try:
                response = self.http.post(self.config.callback_url, content=body, headers=headers)
                if response.status_code < 300:
                    return
                logger.warning("callback answered %s", response.status_code)
            except httpx.HTTPError as error:
                logger.warning("callback failed: %r", error)
            time.sleep(0.5 * 2**attempt)
