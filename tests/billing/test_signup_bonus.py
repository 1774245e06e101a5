"""The sign-up bonus: granted once per user after email verification, never before."""

import pytest
from allauth.account.models import EmailAddress, EmailConfirmationHMAC

from billing.grants import grant_signup_bonus
from ledger import selectors as ledger_selectors

pytestmark = pytest.mark.django_db(transaction=True)


def confirm(client, address: EmailAddress):
    key = EmailConfirmationHMAC(address).key
    return client.post(f"/accounts/confirm-email/{key}/")


def test_verifying_email_grants_the_bonus_once(client, user_factory, settings, eager_celery):
    settings.SIGNUP_BONUS_CREDITS = 100
    user = user_factory(verified=False)
    address = EmailAddress.objects.get(user=user)
    assert ledger_selectors.balance(user.pk).available == 0

    first = confirm(client, address)
    EmailAddress.objects.filter(pk=address.pk).update(verified=False)
    confirm(client, address)

    assert first.status_code == 302
    assert ledger_selectors.balance(user.pk).available == 100
    grants = ledger_selectors.journal_page(user.pk).entries
    assert [(e.kind, e.idempotency_key) for e in grants] == [("grant", f"signup:{user.pk}")]


def test_no_bonus_when_the_setting_is_zero(client, user_factory, settings, eager_celery):
    settings.SIGNUP_BONUS_CREDITS = 0
    user = user_factory(verified=False)

    confirm(client, EmailAddress.objects.get(user=user))

    assert ledger_selectors.balance(user.pk).available == 0


def test_bonus_skips_a_deactivated_user(user_factory, settings):
    settings.SIGNUP_BONUS_CREDITS = 100
    user = user_factory()
    user.deactivate()

    assert grant_signup_bonus(user.pk) == "skipped"
    assert ledger_selectors.balance(user.pk).available == 0


def test_a_broker_outage_grants_the_bonus_inline(
    client, user_factory, settings, broker_down, caplog
):
    """enqueue_on_commit logs the failed publish and runs the fallback: the grant itself."""
    settings.SIGNUP_BONUS_CREDITS = 100
    user = user_factory(verified=False)

    response = confirm(client, EmailAddress.objects.get(user=user))

    assert response.status_code == 302
    assert "could not queue billing.tasks.grant_signup_bonus" in caplog.text
    assert ledger_selectors.balance(user.pk).available == 100
