"""Process helpers shared by the generation tests, the end-to-end tests and the chaos work.

Everything here starts real processes (the local provider, Celery workers) on loopback and waits
for them by polling with a deadline; nothing sleeps a fixed time to decide an outcome.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """Return a loopback port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(
    predicate: Callable[[], object], *, timeout: float = 20.0, interval: float = 0.1, what: str = ""
) -> object:
    """Poll ``predicate`` until it returns something truthy; fail with ``what`` at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
        time.sleep(interval)


def babysea_header(body: bytes, secret: str, timestamp: int | None = None) -> str:
    """Sign a callback body the way BabySea documents it (independent of the app's signer)."""
    stamp = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={stamp},v1={digest}"


class LocalProvider:
    """A running ``python -m generation.local_provider`` process."""

    def __init__(self, *, callback_url: str, secret: str, delay_ms: int = 300) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "generation.local_provider",
                "--port",
                str(self.port),
                "--callback-url",
                callback_url,
                "--secret",
                secret,
                "--delay-ms",
                str(delay_ms),
                "--image-size",
                "64",
            ],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until(self._healthy, timeout=15, what="the local provider to answer")

    def _healthy(self) -> bool:
        try:
            return httpx.get(f"{self.url}/_control/health", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def set_faults(self, **faults: object) -> None:
        httpx.post(f"{self.url}/_control/faults", json=faults, timeout=5).raise_for_status()

    def content(self, job_id: str) -> httpx.Response:
        return httpx.get(f"{self.url}/v1/content/{job_id}", timeout=5)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


class Worker:
    """A real ``celery -A config worker`` in its own process group."""

    def __init__(
        self,
        env: dict[str, str],
        *,
        queues: str = "start,settle,default",
        concurrency: int = 2,
        name: str = "w",
        log: Path | None = None,
    ) -> None:
        self.log = log
        output = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "config",
                "worker",
                "-Q",
                queues,
                "-c",
                str(concurrency),
                "--prefetch-multiplier",
                "1",
                "-n",
                f"{name}-{os.getpid()}-{time.monotonic_ns()}@%h",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
                "-l",
                "info",
            ],
            cwd=ROOT,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def kill_main(self) -> None:
        """SIGKILL the worker's main process, then its orphaned children (a crashed host)."""
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)

    def stop(self) -> None:
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
            except ProcessLookupError:
                pass
