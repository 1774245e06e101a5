"""Fixtures for leaving and exporting: real generations with stored outputs, a faked Stripe."""

import httpx
import pytest
from django.conf import settings

from generation.models import Generation, Status
from media_store.backends.s3 import S3Backend
from tests.billing.conftest import fake_stripe, post_event, stripe_settings  # noqa: F401
from tests.billing.test_subscriptions import plan, subscribe  # noqa: F401
from tests.generation.conftest import fund, generation_settings, local_provider  # noqa: F401
from tests.generation.flow import (
    callback_body,
    deliver,
    finished_job,
    settle_pending_callbacks,
    start,
    submit,
)


@pytest.fixture
def finished_generation(generation_settings, local_provider, fund):  # noqa: F811
    """Run one generation for real through the local provider; return it succeeded."""

    def run(user) -> Generation:
        fund(user, 100)
        generation = start(submit(user))
        deliver(callback_body(finished_job(local_provider, generation)))
        settle_pending_callbacks()
        generation.refresh_from_db()
        assert generation.status == Status.SUCCEEDED
        return generation

    return run


def bucket_keys(prefix: str) -> list[str]:
    """List the bucket itself (not our tables) under ``prefix``."""
    assert settings.MEDIA_BACKEND == "s3"
    backend = S3Backend.from_settings()
    listing = backend._internal().list_objects_v2(Bucket=backend.conf.bucket, Prefix=prefix)
    return [item["Key"] for item in listing.get("Contents", [])]


def fetch(url: str) -> httpx.Response:
    """Fetch a signed storage URL as a browser would."""
    return httpx.get(url, timeout=10, trust_env=False)
