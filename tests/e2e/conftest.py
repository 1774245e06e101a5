"""End-to-end fixtures: real Celery workers, the local provider and the app over HTTP.

``e2e`` gives a running stack: a live server (the callback endpoint), the local provider calling
it back, and a factory for worker processes connected to the test database as the runtime role
and to the test Redis and S3. Re-drive deadlines are shortened to seconds both here and in the
workers, so recovery is observable without waiting for the production intervals.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis

from tests.e2e.helpers import LocalProvider, Worker, wait_until

SECRET = "whsec_e2e_" + uuid.uuid4().hex
FAST = {
    "GENERATION_START_GRACE_SECONDS": "1",
    "GENERATION_DISPATCH_GRACE_SECONDS": "2",
    "GENERATION_SETTLE_GRACE_SECONDS": "1",
    "GENERATION_RECONCILE_GRACE_SECONDS": "1",
    "GENERATION_RECONCILE_INTERVAL_SECONDS": "2",
    "GENERATION_COLLECT_INTERVAL_SECONDS": "1",
    "GENERATION_REDRIVE_BACKOFF_SECONDS": "1",
    "GENERATION_REDRIVE_MAX_ATTEMPTS": "30",
    "GENERATION_RATE_LIMIT_COUNT": "0",
}


def worker_env(db_urls, provider: LocalProvider) -> dict[str, str]:
    """Return the environment for worker processes: the test database's roles, the provider."""
    from django.conf import settings as django_settings

    return {
        **os.environ,
        "DATABASE_URL": db_urls.app,
        "DATABASE_OWNER_URL": db_urls.owner,
        "DATABASE_ADMIN_URL": django_settings.DATABASE_ADMIN_URL,
        "DATABASE_ROLE_PREFIX": db_urls.prefix,
        "DJANGO_ENV": "test",
        "LOCAL_PROVIDER_ENABLED": "true",
        "LOCAL_PROVIDER_URL": provider.url,
        "PROVIDER_WEBHOOK_SECRET": SECRET,
        "INGEST_ALLOW_PRIVATE_HOSTS": "true",
        "PYTHONUNBUFFERED": "1",
        **FAST,
    }


@dataclass
class Stack:
    provider: LocalProvider
    env: dict[str, str]
    logs: Path
    workers: list[Worker] = field(default_factory=list)

    def worker(self, **options) -> Worker:
        """Start a worker and wait until it consumes."""
        log = self.logs / f"worker-{len(self.workers)}.log"
        worker = Worker(self.env, log=log, **options)
        self.workers.append(worker)
        wait_until(
            lambda: log.exists() and b" ready." in log.read_bytes(),
            timeout=60,
            what=f"worker to be ready (log {log})",
        )
        return worker

    def stop_workers(self) -> None:
        for worker in self.workers:
            worker.stop()


@pytest.fixture
def e2e(db_urls, live_server, settings, tmp_path, transactional_db):
    """The running stack; tests start the workers they need with ``e2e.worker()``."""
    from django.conf import settings as django_settings

    from generation.providers import reset_providers

    callback_url = f"{live_server.url}/webhooks/providers/babysea/"
    provider = LocalProvider(callback_url=callback_url, secret=SECRET, delay_ms=300)
    env = worker_env(db_urls, provider)
    settings.LOCAL_PROVIDER_ENABLED = True
    settings.LOCAL_PROVIDER_URL = provider.url
    settings.PROVIDER_WEBHOOK_SECRET = SECRET
    settings.INGEST_ALLOW_PRIVATE_HOSTS = True
    for name, value in FAST.items():
        setattr(settings, name, int(value))
    reset_providers()
    # Messages left by earlier tests name rows that no longer exist: start from an empty broker.
    redis.Redis.from_url(django_settings.CELERY_BROKER_URL).flushdb()
    stack = Stack(provider=provider, env=env, logs=tmp_path)
    yield stack
    stack.stop_workers()
    provider.stop()
    reset_providers()
