"""Sign up -> verify -> log in -> log out -> reset, through allauth's real views."""

import re

import pytest
from django.core import mail
from django.urls import reverse

from accounts.models import User

pytestmark = pytest.mark.django_db


def link_in(message) -> str:
    match = re.search(r"https?://[^/\s]+(/\S+)", message.body)
    assert match, message.body
    return match.group(1)


def test_signup_verify_login_logout_reset(client):
    email = "newcomer@example.com"
    response = client.post(
        reverse("account_signup"),
        {
            "email": email,
            "password1": "a-Strong-passphrase-42",
            "password2": "a-Strong-passphrase-42",
        },
    )
    assert response.status_code == 302
    assert response.url == reverse("account_email_verification_sent")
    user = User.objects.get(email=email)
    assert not user.emailaddress_set.get().verified

    # Unverified: signing in is refused until the address is confirmed.
    client.logout()
    response = client.post(
        reverse("account_login"), {"login": email, "password": "a-Strong-passphrase-42"}
    )
    assert response.url == reverse("account_email_verification_sent")
    confirm_path = link_in(mail.outbox[-1])
    response = client.post(confirm_path)
    assert response.status_code == 302
    assert user.emailaddress_set.get().verified

    client.logout()
    response = client.post(
        reverse("account_login"), {"login": email, "password": "a-Strong-passphrase-42"}
    )
    assert response.status_code == 302
    assert response.url == reverse("pages:dashboard")
    assert client.get(reverse("pages:dashboard")).status_code == 200

    client.post(reverse("account_logout"))
    assert client.get(reverse("pages:dashboard")).status_code == 302

    client.post(reverse("account_reset_password"), {"email": email})
    reset_path = link_in(mail.outbox[-1])
    response = client.get(reset_path, follow=True)
    form_path = response.redirect_chain[-1][0] if response.redirect_chain else reset_path
    response = client.post(
        form_path, {"password1": "another-Strong-pass-77", "password2": "another-Strong-pass-77"}
    )
    assert response.status_code == 302
    assert client.login(email=email, password="another-Strong-pass-77")


def test_weak_password_gets_a_clear_message(client):
    response = client.post(
        reverse("account_signup"),
        {"email": "weak@example.com", "password1": "123", "password2": "123"},
    )
    assert response.status_code == 200
    assert "too short" in response.content.decode()
    assert not User.objects.filter(email="weak@example.com").exists()


def test_taken_email_is_not_revealed_but_its_owner_is_told(client, alice):
    """allauth's enumeration protection: the page looks the same, the owner gets an email."""
    response = client.post(
        reverse("account_signup"),
        {"email": alice.email, "password1": "a-Strong-pass-99", "password2": "a-Strong-pass-99"},
    )
    assert response.status_code == 302
    assert response.url == reverse("account_email_verification_sent")
    assert User.objects.filter(email=alice.email).count() == 1
    assert mail.outbox[-1].to == [alice.email]
    assert "already" in mail.outbox[-1].body


def test_repeated_failed_logins_are_rate_limited(client, alice):
    for _ in range(12):
        response = client.post(
            reverse("account_login"), {"login": alice.email, "password": "wrong"}
        )
    assert response.status_code in (200, 429)
    assert "Too many failed login attempts" in response.content.decode()


def test_deactivated_user_cannot_sign_in(client, alice):
    alice.deactivate()
    response = client.post(
        reverse("account_login"), {"login": alice.email, "password": f"pw-{alice.email}"}
    )
    assert response.status_code == 302
    assert response.url == reverse("account_inactive")
