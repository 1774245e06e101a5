"""Notification fixtures: Celery run inline so a test reads the mail the real task sent."""

import pytest

from tests.billing.conftest import (  # noqa: F401 - fixtures used by the receipt tests
    buy,
    fake_stripe,
    pack,
    pack_factory,
    post_event,
    stripe_settings,
)
from tests.generation.conftest import fund, generation_settings, local_provider  # noqa: F401


@pytest.fixture
def site(settings):
    """A public site address unlike any request host, so a leaked host shows."""
    settings.SITE_URL = "https://studio.example"
    settings.SITE_NAME = "Studio Example"
    settings.ACCOUNT_EMAIL_SUBJECT_PREFIX = "[Studio] "
    return settings
