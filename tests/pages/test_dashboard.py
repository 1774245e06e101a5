import uuid

import pytest
from django.urls import reverse

from ledger import api as ledger

pytestmark = pytest.mark.django_db(transaction=True)


def test_dashboard_shows_balances_and_an_empty_state(alice_client, alice):
    ledger.grant(alice.id, 250, key=f"test:{uuid.uuid4()}", source="test")
    response = alice_client.get(reverse("pages:dashboard"))
    text = response.content.decode()
    assert response.status_code == 200
    assert ">250<" in text
    assert "250 credits" in text  # the header balance
    assert "Nothing yet" in text


def test_dashboard_without_credits_points_to_billing(alice_client):
    text = alice_client.get(reverse("pages:dashboard")).content.decode()
    assert "You need at least" in text
    assert reverse("billing:overview") in text


def test_dashboard_needs_login(client):
    response = client.get(reverse("pages:dashboard"))
    assert response.status_code == 302
    assert response.url.startswith(reverse("account_login"))


def test_first_dashboard_names_the_free_credits_once_they_arrived(alice_client, alice, settings):
    from billing.grants import grant_signup_bonus

    page = alice_client.get("/dashboard/").content.decode()
    assert "free credits" not in page
    settings.SIGNUP_BONUS_CREDITS = 100
    assert grant_signup_bonus(alice.pk) == "granted"

    page = alice_client.get("/dashboard/").content.decode()
    assert "Welcome! You got 100 free credits for confirming your email." in page
