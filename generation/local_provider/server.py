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

The jobs behind it and their fault knobs live in ``generation.local_provider.jobs``.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from generation.catalogue import CATALOGUE
from generation.local_provider import render
from generation.local_provider.jobs import ApiError, Config, LocalProvider, clean_faults, now_iso

__all__ = ["ApiError", "Config", "Handler", "LocalProvider", "ProviderServer", "serve"]

logger = logging.getLogger("local_provider")


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
                "timestamp": now_iso(),
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
