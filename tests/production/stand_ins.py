"""What stands between the production processes and the outside world during the walk.

- ``TlsProxy``: the TLS-terminating load balancer; it forwards to gunicorn adding
  ``X-Forwarded-Proto: https`` and ``X-Forwarded-For`` and records every status it relays.
- ``StripeApi``: api.stripe.com at its HTTP boundary, serving the suite's ``FakeStripe`` to the
  app's real stripe-python client (``STRIPE_API_BASE_URL`` points here).
- ``SmtpSink``: a real SMTP server receiving what the production email settings send.
"""

from __future__ import annotations

import email
import email.policy
import http.client
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from aiosmtpd.controller import Controller

from config.devstack.processes import free_ports
from tests.billing.fakestripe import FakeStripe

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade"}


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 64

    def handle_error(self, request, client_address) -> None:
        """Stay quiet when a client gave up waiting (a readiness poll's timeout)."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


def _serve(handler: type[BaseHTTPRequestHandler], **attributes) -> _Server:
    server = _Server(("127.0.0.1", 0), handler)
    for name, value in attributes.items():
        setattr(server, name, value)
    threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True
    ).start()
    return server


class _ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _relay(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
        headers["X-Forwarded-Proto"] = "https"
        headers["X-Forwarded-For"] = self.client_address[0]
        upstream = http.client.HTTPConnection("127.0.0.1", self.server.upstream_port, timeout=60)
        try:
            upstream.request(self.command, self.path, body=body, headers=headers)
            response = upstream.getresponse()
            payload = response.read()
        finally:
            upstream.close()
        self.server.statuses.append((self.command, self.path, response.status))
        self.send_response(response.status, response.reason)
        for name, value in response.getheaders():
            if name.lower() not in HOP_BY_HOP | {"content-length"}:
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_HEAD = do_PUT = do_DELETE = _relay

    def log_message(self, *args) -> None:
        pass


class TlsProxy:
    """Forward to ``upstream_port`` as a TLS-terminating proxy would."""

    def __init__(self, upstream_port: int) -> None:
        self.statuses: list[tuple[str, str, int]] = []
        self.server = _serve(_ProxyHandler, upstream_port=upstream_port, statuses=self.statuses)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"

    def server_errors(self) -> list[tuple[str, str, int]]:
        return [entry for entry in self.statuses if entry[2] >= 500]

    def stop(self) -> None:
        self.server.shutdown()


class _StripeHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode() if length else None
        url = f"http://127.0.0.1{self.path}"
        text, status, headers = self.server.fake.request(
            self.command, url, dict(self.headers), body
        )
        payload = text.encode()
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_DELETE = _answer

    def log_message(self, *args) -> None:
        pass


class StripeApi:
    """The suite's in-memory Stripe, served over HTTP for processes outside this one."""

    def __init__(self) -> None:
        self.fake = FakeStripe()
        self.server = _serve(_StripeHandler, fake=self.fake)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        self.server.shutdown()


@dataclass
class _Inbox:
    messages: list[email.message.EmailMessage] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server, session, envelope) -> str:
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self.lock:
            self.messages.append(message)
        return "250 Message accepted for delivery"


class SmtpSink:
    """An SMTP server on 127.0.0.1 that keeps every message it receives."""

    def __init__(self) -> None:
        self.inbox = _Inbox()
        self.port = free_ports(1)[0]
        self.controller = Controller(self.inbox, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def wait_for(self, recipient: str, timeout: float = 30.0) -> email.message.EmailMessage:
        """Return the first message to ``recipient``, waiting for it to arrive."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.inbox.lock:
                for message in self.inbox.messages:
                    if recipient in str(message.get("To", "")):
                        return message
            time.sleep(0.1)
        raise TimeoutError(f"no mail to {recipient} within {timeout:.0f}s")

    def stop(self) -> None:
        self.controller.stop()
