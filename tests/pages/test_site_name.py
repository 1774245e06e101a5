import pytest
from django.urls import reverse

pytestmark = pytest.mark.django_db


def test_pages_carry_the_site_name_setting(client, alice_client, settings):
    settings.SITE_NAME = "Studio Example"
    for response in (client.get(reverse("pages:home")), alice_client.get("/dashboard/")):
        page = response.content.decode()
        assert "· Studio Example</title>" in page
        assert '">Studio Example</a>' in page
        assert "Genmedia" not in page
