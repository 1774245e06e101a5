"""Fixtures for the generation tests: a real local provider process, credits, settings."""

import uuid

import pytest

from tests.e2e.helpers import LocalProvider

SECRET = "whsec_test_" + uuid.uuid4().hex


@pytest.fixture(scope="session")
def local_provider():
    """A local provider whose callbacks go nowhere; tests deliver signed callbacks themselves."""
    provider = LocalProvider(callback_url="http://127.0.0.1:9/unused/", secret=SECRET)
    provider.set_faults(lose_callback=True)
    yield provider
    provider.stop()


@pytest.fixture
def generation_settings(settings, local_provider):
    """Point the BabySea adapter at the local provider and allow its loopback outputs."""
    from generation.providers import reset_providers

    settings.LOCAL_PROVIDER_ENABLED = True
    settings.LOCAL_PROVIDER_URL = local_provider.url
    settings.INGEST_ALLOW_PRIVATE_HOSTS = True
    settings.PROVIDER_WEBHOOK_SECRET = SECRET
    settings.GENERATION_RATE_LIMIT_COUNT = 100
    reset_providers()
    yield settings
    reset_providers()


@pytest.fixture
def fund():
    """Grant credits to a user through the ledger; return the new available balance."""
    from ledger import api as ledger

    def grant(user, amount: int) -> int:
        result = ledger.grant(user.pk, amount, key=f"test:{uuid.uuid4()}", source="test")
        assert result.status == "granted"
        return result.available

    return grant
