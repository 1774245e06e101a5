"""The local provider: BabySea's HTTP API, callbacks signed as BabySea signs them, fault knobs.

Endpoints (BabySea's envelope ``{"status": "success", "request_id", "message", "timestamp",
"data"}``; errors ``{"status": "error", "error": {"code", "type", "message", "retryable"}}``):

- ``GET /v1/library/models`` and ``GET /v1/estimate/<model>?count=&duration=``
- ``POST /v1/generate/image/<model>`` and ``/v1/generate/video/<model>`` with ``Idempotency-Key``
  (same key and body: the first response again with ``Idempotency-Replayed: true``; same key and
  another body: 409 ``BSE2015``)
- ``GET /v1/content/<id>`` and ``POST /v1/content/generation/cancel/<id>``
- ``GET /files/<id>/<index>.<ext>``: the rendered outputs
- ``GET|POST /_control/faults``: read or replace the default faults; ``GET /_control/health``

Faults, per request in the generate body's ``local_fault`` object or as defaults:
``delay_ms`` (time to finish), ``fail`` (report failure), ``duplicate`` (send each callback N more
times, alternating a resend of the same delivery and a new delivery id), ``fail_after_success``,
``success_after_failure``, ``reorder`` (completed before started), ``lose_callback`` (send none;
polling still works), ``crash`` (the job vanishes mid-way: 404 and no callback), ``output_404``
(output files answer 404), ``vanish_ms`` (the job answers 404 for that long, then succeeds and
calls back late), ``callback_delay_ms`` (wait before sending the final callback),
``slow_output_ms`` (output downloads stall that long first: a settle caught mid-ingest),
``corrupt_output`` (outputs are served cut off halfway: a file that is not what it claims).
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
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import httpx

from generation.catalogue import CATALOGUE
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
}


def _now_iso() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def clean_faults(raw: object) -> dict:
    """Return only known fault knobs, converted to their types."""
    if not isinstance(raw, dict):
        return {}
    return {key: kind(raw[key]) for key, kind in FAULT_KEYS.items() if key in raw}


@dataclass
class Job:
    id: str
    model: str
    route: str
    body: dict
    faults: dict
    status: str = "pending"
    progress: int = 0
    created_at: str = field(default_factory=_now_iso)
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
        steps = 3
        for step in range(steps):
            time.sleep(max(total - min(total / 4, 0.2), 0) / steps)
            if job.status == "canceled":
                return
            job.progress = 10 + 80 * (step + 1) // steps
            if faults.get("crash") and step == 1:
                job.lost = True  # as if the provider died with the job in memory
                return
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
        job.completed_at = _now_iso()

    def cancel(self, job_id: str) -> dict:
        job = self.visible(job_id)
        if job.status in ("succeeded", "failed"):
            raise ApiError(409, "BSE2020", f"generation already {job.status}")
        if job.status != "canceled":
            job.status = "canceled"
            job.completed_at = _now_iso()
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
                "webhook_timestamp": _now_iso(),
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


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def models_payload() -> list[dict]:
    """Describe the catalogue's BabySea models the way BabySea's library endpoint does."""
    models = []
    for spec in CATALOGUE.values():
        if spec.provider != "babysea":
            continue
        schema: dict[str, object] = {
            "generation_prompt": True,
            "generation_ratio": list(spec.parameter("ratio").choices),
            "generation_input_file": False,
        }
        names = {p.name for p in spec.parameters}
        if "duration" in names:
            schema["generation_duration"] = [int(v) for v in spec.parameter("duration").choices]
            schema["generation_output_format"] = (
                ["webp"] if spec.kind == "animation" else list(render.VIDEO_FORMATS)
            )
            schema["generation_output_number"] = 1
        else:
            schema["generation_output_format"] = list(spec.parameter("output_format").choices)
            schema["generation_output_number"] = 1
        models.append(
            {
                "model_type": "video" if "duration" in names else "image",
                "model_identifier": spec.provider_model,
                "model_pricing": 0.005,
                "model_supported_provider": ["local"],
                "schema": schema,
                "specific_schema": [],
            }
        )
    return models


class Handler(BaseHTTPRequestHandler):
    server_version = "BabySeaLocal/1.0"
    provider: LocalProvider

    def log_message(self, format: str, *args: object) -> None:
        logger.debug(format, *args)

    def _send(self, status: int, payload: object, headers: dict | None = None) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def _ok(self, data: object, headers: dict | None = None) -> None:
        self._send(
            200,
            {
                "status": "success",
                "request_id": f"req_{uuid.uuid4().hex[:12]}",
                "message": "ok",
                "timestamp": _now_iso(),
                "data": data,
            },
            headers,
        )

    def _error(self, error: ApiError) -> None:
        self._send(
            error.status,
            {
                "status": "error",
                "request_id": f"req_{uuid.uuid4().hex[:12]}",
                "error": {
                    "code": error.code,
                    "type": "invalid_request" if error.status < 500 else "server_error",
                    "message": error.message,
                    "retryable": error.status >= 500,
                },
            },
        )

    def _json_body(self) -> dict:
        length = int(self.headers.get("Content-Length") or 0)
        if length > 1_000_000:
            raise ApiError(413, "BSE1013", "body too large")
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
        except ValueError:
            raise ApiError(400, "BSE1001", "body is not JSON") from None
        if not isinstance(body, dict):
            raise ApiError(400, "BSE1001", "body must be an object")
        return body

    def _authorize(self) -> None:
        key = self.provider.config.api_key
        if key and self.headers.get("Authorization") != f"Bearer {key}":
            raise ApiError(401, "BSE1401", "invalid API key")

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def _dispatch(self, method: str) -> None:
        parts = urlsplit(self.path)
        path = parts.path
        try:
            if path.startswith("/files/"):
                return self._file(path)
            if path.startswith("/_control/"):
                return self._control(method, path)
            self._authorize()
            if method == "GET" and path == "/v1/library/models":
                models = models_payload()
                return self._ok({"models": models, "models_total": len(models)})
            if method == "GET" and path.startswith("/v1/estimate/"):
                return self._estimate(path.removeprefix("/v1/estimate/"), parts.query)
            if method == "POST" and path.startswith("/v1/generate/"):
                route, _, model = path.removeprefix("/v1/generate/").partition("/")
                return self._generate(route, model)
            if method == "GET" and path.startswith("/v1/content/"):
                job = self.provider.visible(path.removeprefix("/v1/content/"))
                return self._ok(self.provider.content(job))
            if method == "POST" and path.startswith("/v1/content/generation/cancel/"):
                job_id = path.removeprefix("/v1/content/generation/cancel/")
                return self._ok(self.provider.cancel(job_id))
            raise ApiError(404, "BSE4040", f"no route {method} {path}")
        except ApiError as error:
            self._error(error)

    def _estimate(self, model: str, query: str) -> None:
        args = parse_qs(query)
        count = int(args.get("count", ["1"])[0])
        duration = int(args.get("duration", ["0"])[0])
        per = 0.005 if not duration else 0.01 * duration
        self._ok(
            {
                "model_identifier": model,
                "model_type": "video" if duration else "image",
                "assets_count": count,
                "cost_per_generation": per,
                "cost_total_consumed": per * count,
                "credit_balance": None,
                "credit_balance_can_afford": None,
                "credit_balance_max_affordable": None,
            }
        )

    def _generate(self, route: str, model: str) -> None:
        if route not in ("image", "video"):
            raise ApiError(404, "BSE4040", "unknown route")
        known = {m["model_identifier"] for m in models_payload()}
        if model not in known:
            raise ApiError(400, "BSE2001", f"unknown model {model}")
        body = self._json_body()
        if not str(body.get("generation_prompt", "")).strip():
            raise ApiError(400, "BSE1001", "generation_prompt is required")
        key = self.headers.get("Idempotency-Key")
        if key is not None and not (1 <= len(key) <= 255):
            raise ApiError(400, "BSE1002", "bad Idempotency-Key")
        data, replayed = self.provider.create(route, model, body, key)
        self._ok(data, {"Idempotency-Replayed": "true"} if replayed else None)

    def _file(self, path: str) -> None:
        try:
            job_id, name = path.removeprefix("/files/").split("/", 1)
            index = int(name.split(".", 1)[0])
            job = self.provider.visible(job_id)
            if job.faults.get("output_404"):
                raise ApiError(404, "BSE4004", "output removed")
            _ext, data, content_type = job.outputs[index]
        except (ValueError, IndexError):
            raise ApiError(404, "BSE4004", "no such file") from None
        if job.faults.get("slow_output_ms"):
            time.sleep(job.faults["slow_output_ms"] / 1000)
        if job.faults.get("corrupt_output"):
            data = data[: len(data) // 2]
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _control(self, method: str, path: str) -> None:
        config = self.provider.config
        if path == "/_control/health":
            return self._send(200, {"ok": True, "jobs": len(self.provider.jobs)})
        if path == "/_control/faults":
            if method == "POST":
                config.faults = clean_faults(self._json_body())
            return self._send(200, {"faults": config.faults, "delay_ms": config.delay_ms})
        raise ApiError(404, "BSE4040", "no such control")


class ProviderServer(ThreadingHTTPServer):
    """A threading server with a real listen backlog.

    socketserver's default of 5 makes the kernel reset connections when a pool of worker
    threads submits and polls at once, which would look like a provider outage.
    """

    daemon_threads = True
    request_queue_size = 128


def serve(config: Config, host: str, port: int) -> ThreadingHTTPServer:
    """Return a server bound to ``host:port`` (call ``serve_forever`` on it)."""
    provider = LocalProvider(config)
    handler = type("BoundHandler", (Handler,), {"provider": provider})
    return ProviderServer((host, port), handler)
