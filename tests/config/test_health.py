import pytest
from django.core import mail
from django.urls import reverse

from config import ops

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_alert_throttle(monkeypatch):
    monkeypatch.setattr(ops, "_last_alerted", {})


def test_healthz_reports_every_part_ok(client):
    response = client.get(reverse("healthz"))
    body = response.json()
    assert response.status_code == 200, body
    assert body == {
        "ok": True,
        "degraded": [],
        "parts": {
            name: {"ok": True, "seconds": body["parts"][name]["seconds"]}
            for name in ("database", "redis", "storage")
        },
    }


def test_a_redis_or_storage_outage_is_reported_and_alerted_but_stays_ready(
    client, settings, caplog
):
    """The load balancer keeps the instance; operators get one alert per part, not per probe."""
    settings.ADMINS = [("Ops", "ops@example.com")]
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    settings.AWS_STORAGE_BUCKET_NAME = "no-such-bucket-for-health"
    answers = [client.get(reverse("healthz")) for _ in range(3)]
    assert [answer.status_code for answer in answers] == [200, 200, 200]
    body = answers[0].json()
    assert body["ok"] is True and body["degraded"] == ["redis", "storage"]
    assert body["parts"]["redis"] == body["parts"]["storage"] == {"ok": False}
    for part in ("redis", "storage"):
        assert len([m for m in mail.outbox if m.subject.endswith(f"{part} unreachable")]) == 1
    assert "health check redis failed: ConnectionError" in caplog.text


def test_a_database_outage_fails_readiness_without_internals(client, monkeypatch):
    """503, and the body names the part but no error text, host or role."""
    from django.db import OperationalError

    from config import health

    def refuse() -> None:
        raise OperationalError(
            'connection to server at "db.internal" (10.0.0.5) failed: role "genmedia_app"'
        )

    monkeypatch.setitem(health.CHECKS, "database", refuse)
    response = client.get(reverse("healthz"))
    assert response.status_code == 503
    assert response.json()["degraded"] == ["database"]
    text = response.content.decode()
    for internal in ("db.internal", "10.0.0.5", "genmedia_app", "OperationalError"):
        assert internal not in text


def test_livez_answers_without_touching_any_dependency(client, monkeypatch):
    from config import health

    def explode() -> None:
        raise AssertionError("liveness must not run readiness checks")

    for name in list(health.CHECKS):
        monkeypatch.setitem(health.CHECKS, name, explode)
    response = client.get(reverse("livez"))
    assert response.status_code == 200 and response.json() == {"ok": True}
