"""The admin's front door: allauth's sign-in (rate-limited, two-factor), MFA required for staff."""

import uuid

import pytest
from allauth.mfa.totp.internal.auth import (
    TOTP,
    format_hotp_value,
    generate_totp_secret,
    hotp_value,
    yield_hotp_counters_from_time,
)
from django.test import Client

from tests.config.test_production_settings import manage, production_env

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_user(user_factory):
    return user_factory(
        f"admin-{uuid.uuid4().hex[:8]}@example.com", is_staff=True, is_superuser=True
    )


def current_code(secret: str) -> str:
    counters = list(yield_hotp_counters_from_time())
    return format_hotp_value(hotp_value(secret, counters[len(counters) // 2]))


def test_the_admin_sign_in_is_allauths_and_returns_to_the_admin(admin_user):
    client = Client()
    assert client.get("/admin/")["Location"] == "/admin/login/?next=/admin/"
    handed_over = client.get("/admin/login/?next=/admin/ledger/entry/")
    assert handed_over["Location"] == "/accounts/login/?next=%2Fadmin%2Fledger%2Fentry%2F"
    signed_in = client.post(
        "/accounts/login/?next=/admin/",
        {"login": admin_user.email, "password": f"pw-{admin_user.email}", "next": "/admin/"},
    )
    assert signed_in["Location"] == "/admin/"
    assert client.get("/admin/").status_code == 200
    # Signed in already: the admin's login page goes straight on; off-site targets are dropped.
    assert client.get("/admin/login/?next=https://evil.example/")["Location"] == "/admin/"


def test_the_admin_sign_in_is_rate_limited(admin_user, settings):
    settings.ACCOUNT_RATE_LIMITS = {"login": "2/m/ip"}
    client = Client()
    answers = [
        client.post("/accounts/login/?next=/admin/", {"login": admin_user.email, "password": "x"})
        for _ in range(3)
    ]
    assert [answer.status_code for answer in answers] == [200, 200, 429]


def test_a_signed_in_customer_gets_403_not_a_sign_in_loop(alice_client):
    assert alice_client.get("/admin/login/?next=/admin/").status_code == 403


def test_staff_without_mfa_are_sent_to_set_it_up_when_required(admin_user, settings):
    settings.ADMIN_REQUIRE_MFA = True
    client = Client()
    client.force_login(admin_user)
    response = client.get("/admin/ledger/entry/")
    assert response.status_code == 302
    assert response["Location"] == "/accounts/2fa/totp/activate/"
    # The rest of the site is unaffected.
    assert client.get("/dashboard/").status_code == 200


def test_staff_with_an_authenticator_sign_in_with_a_code_and_reach_the_admin(admin_user, settings):
    settings.ADMIN_REQUIRE_MFA = True
    secret = generate_totp_secret()
    TOTP.activate(admin_user, secret)
    client = Client()
    password_step = client.post(
        "/accounts/login/",
        {"login": admin_user.email, "password": f"pw-{admin_user.email}", "next": "/admin/"},
    )
    assert password_step["Location"] == "/accounts/2fa/authenticate/"
    assert client.get("/admin/")["Location"].startswith("/admin/login/")
    code_step = client.post("/accounts/2fa/authenticate/", {"code": current_code(secret)})
    assert code_step["Location"] == "/admin/"
    assert client.get("/admin/").status_code == 200


def test_production_always_requires_mfa_for_the_admin(db_urls):
    env = production_env(db_urls, ADMIN_REQUIRE_MFA="false")
    script = "from django.conf import settings; print(settings.ADMIN_REQUIRE_MFA)"
    result = manage(env, "shell", "-c", script)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "True"
