import pytest
from django.contrib.admin.sites import site
from django.urls import reverse

from accounts.models import User

pytestmark = pytest.mark.django_db


def test_user_has_uuid_primary_key_and_no_username(user_factory):
    user = user_factory("Someone@Example.com")
    assert user.pk.version == 4
    assert user.email == "someone@example.com"
    assert not hasattr(user, "username")


def test_emails_are_unique_ignoring_case(user_factory):
    user_factory("dup@example.com")
    with pytest.raises(Exception, match="unique"):
        User.objects.create(email="DUP@example.com")


def test_admin_cannot_delete_users(staff_client, alice):
    admin = site._registry[User]
    assert admin.has_delete_permission(None, alice) is False
    response = staff_client.get(reverse("admin:accounts_user_delete", args=[alice.pk]))
    assert response.status_code == 403
    assert User.objects.filter(pk=alice.pk).exists()


def test_deactivate_action_keeps_the_user(staff_client, alice):
    response = staff_client.post(
        reverse("admin:accounts_user_changelist"),
        {"action": "deactivate_users", "_selected_action": [alice.pk]},
    )
    assert response.status_code == 302
    alice.refresh_from_db()
    assert alice.is_active is False
    assert alice.deactivated_at is not None
