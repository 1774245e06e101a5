"""Fixtures for media_store: a loopback payload server, sample media and both backends."""

from __future__ import annotations

import contextlib
import io
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from PIL import Image

from generation.local_provider import render


@dataclass
class Route:
    """What the payload server answers on one path."""

    body: bytes = b""
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    chunked: bool = False
    delay: float = 0.0


class PayloadServer:
    """A real HTTP server on 127.0.0.1 standing in for a provider's output host."""

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.requests: list[tuple[str, str]] = []  # (path, Host header)
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                server.requests.append((self.path, self.headers.get("Host", "")))
                route = server.routes.get(self.path, Route(b"missing", status=404))
                if route.delay:
                    time.sleep(route.delay)
                self.send_response(route.status)
                for name, value in route.headers.items():
                    self.send_header(name, value)
                if route.chunked:
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    for start in range(0, len(route.body), 65536):
                        piece = route.body[start : start + 65536]
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                    self.wfile.write(b"0\r\n\r\n")
                else:
                    self.send_header("Content-Length", str(len(route.body)))
                    self.end_headers()
                    self.wfile.write(route.body)

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request, client_address) -> None:
                pass  # ingest hanging up mid-body (size cap, timeout) is expected here

        self.httpd = Server(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def serve(self, path: str, body: bytes = b"", **options) -> str:
        """Register ``path`` and return its URL on 127.0.0.1."""
        self.routes[path] = Route(body, **options)
        return self.url(path)

    def redirect(self, path: str, location: str, status: int = 302) -> str:
        return self.serve(path, status=status, headers={"Location": location})

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    def hits(self, path: str) -> int:
        return sum(1 for seen, _ in self.requests if seen == path)


@contextlib.contextmanager
def running_payload_server():
    """Serve a PayloadServer on 127.0.0.1 for the duration of the block."""
    server = PayloadServer()
    server.thread.start()
    try:
        yield server
    finally:
        server.httpd.shutdown()
        server.httpd.server_close()


@pytest.fixture
def payload_server():
    with running_payload_server() as server:
        yield server


@pytest.fixture
def private_hosts_allowed(settings):
    """The development switch on: the loopback payload server is reachable."""
    settings.INGEST_ALLOW_PRIVATE_HOSTS = True


@pytest.fixture
def private_hosts_refused(settings):
    settings.INGEST_ALLOW_PRIVATE_HOSTS = False


@pytest.fixture(params=["s3", "filesystem"])
def backend_name(request, settings, tmp_path) -> str:
    """Run the test once against the embedded SeaweedFS and once against the filesystem."""
    settings.MEDIA_BACKEND = request.param
    settings.MEDIA_ROOT = tmp_path / "media"
    return request.param


@pytest.fixture
def fetch_signed(client, settings):
    """Fetch a signed URL the way a browser would: S3 over HTTP, the filesystem through Django."""

    def fetch(url: str) -> tuple[int, bytes]:
        if settings.MEDIA_BACKEND == "filesystem":
            response = client.get(url)
            body = b"".join(response.streaming_content) if response.streaming else response.content
            return response.status_code, body
        response = httpx.get(url, timeout=5, trust_env=False)
        return response.status_code, response.content

    return fetch


def wait_for_second_start() -> None:
    """Sleep to just after a wall-clock second: signatures are dated to the whole second."""
    time.sleep(1.02 - (time.time() % 1))


def image_bytes(fmt: str, size: tuple[int, int] = (64, 48)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (200, 40, 90)).save(out, format=fmt)
    return out.getvalue()


def mp4_bytes(seconds: int = 2, width: int = 320) -> bytes:
    """A real H.264 MP4 (4:3), as the local provider renders it."""
    return render.render_video("sample clip", ratio="4:3", seconds=seconds, base=width)


def webm_bytes(seconds: int = 1, width: int = 320) -> bytes:
    """A real VP9 WebM (4:3), as the local provider renders it."""
    return render.render_video("sample clip", ratio="4:3", seconds=seconds, fmt="webm", base=width)


@pytest.fixture
def ids():
    """A fresh owner and generation for each test, so tests never share assets."""
    return uuid.uuid4(), uuid.uuid4()
