import pytest
from allauth.account.models import EmailAddress
from django.core.management import CommandError, call_command

pytestmark = pytest.mark.django_db(transaction=True, databases=["default", "owner"])


def test_prepare_development_leaves_a_verified_demo_user_and_can_run_again(settings, capsys):
    call_command("prepare_development")
    call_command("prepare_development")
    out = capsys.readouterr().out
    assert "Reset demo user: demo@example.com / " in out
    assert EmailAddress.objects.get(email=settings.DEMO_USER_EMAIL).verified


def test_prepare_development_is_refused_in_production(settings):
    settings.PRODUCTION = True
    with pytest.raises(CommandError, match="development only"):
        call_command("prepare_development")
