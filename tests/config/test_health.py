import pytest
from django.urls import reverse

pytestmark = pytest.mark.django_db


def test_healthz_reports_every_part_ok(client):
    response = client.get(reverse("healthz"))
    body = response.json()
    assert response.status_code == 200, body
    assert body["ok"] is True
    assert set(body["parts"]) == {"database", "redis", "storage"}


def test_healthz_names_the_failing_part_with_503(client, settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    response = client.get(reverse("healthz"))
    body = response.json()
    assert response.status_code == 503
    assert body["failing"] == ["redis"]
    assert "Error" in body["parts"]["redis"]["error"]
