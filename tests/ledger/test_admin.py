"""The ledger admin as the people who use it: view-only staff, a ledger operator, a superuser."""

import uuid
from datetime import timedelta

import pytest
from django.contrib.auth.models import Group, Permission
from django.contrib.contenttypes.models import ContentType
from django.test import Client

from ledger import api
from ledger.models import Entry

pytestmark = pytest.mark.django_db(transaction=True)


def staff_client(user_factory, *, group: str | None = None, codenames=()) -> tuple[Client, object]:
    user = user_factory(f"staff-{uuid.uuid4().hex[:8]}@example.com", is_staff=True)
    if group:
        user.groups.add(Group.objects.get(name=group))
    if codenames:
        user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    client = Client()
    client.force_login(user)
    return client, user


@pytest.fixture
def viewer(user_factory):
    """Staff who may only look at the ledger."""
    return staff_client(user_factory, codenames=["view_entry", "view_hold", "view_account"])[0]


@pytest.fixture
def operator(user_factory):
    """Staff in the "Ledger operator" group the migration creates."""
    return staff_client(user_factory, group="Ledger operator")[0]


@pytest.fixture
def funded(alice, ref):
    """Alice with 34 journal entries: 33 grants and one hold."""
    for _ in range(33):
        api.grant(alice.pk, 3, key=ref("g"), source="test")
    held = api.hold(alice.pk, ref("h"), 5, ttl=timedelta(minutes=10))
    return held


def test_lists_count_the_rows_they_have_and_show_emails(viewer, alice, funded):
    entries = viewer.get("/admin/ledger/entry/", {"q": alice.email})
    page = entries.content.decode()
    assert entries.status_code == 200
    assert "34 entries" in page and "10,000" not in page and "10000" not in page
    assert page.count(alice.email) >= 34
    accounts = viewer.get("/admin/ledger/account/", {"q": alice.email}).content.decode()
    assert alice.email in accounts and "1 balance" in accounts


def test_detail_pages_render_as_view_only_staff(viewer, alice, funded):
    """The change form needs Django's content types, which the reader role cannot read."""
    with api.reading_as_staff():
        entry = Entry.objects.filter(account_id=alice.pk).first()
    ContentType.objects.clear_cache()  # a fresh process: the first lookup hits the database
    for url in (
        f"/admin/ledger/entry/{entry.pk}/change/",
        f"/admin/ledger/hold/{funded.hold_id}/change/",
        f"/admin/ledger/account/{alice.pk}/change/",
    ):
        response = viewer.get(url)
        assert response.status_code == 200, url
        assert alice.email in response.content.decode()


def test_view_only_staff_can_neither_adjust_nor_open_health(viewer, alice, funded):
    listing = viewer.get("/admin/ledger/account/").content.decode()
    assert "adjust_balance" not in listing
    assert viewer.get(f"/admin/ledger/account/{alice.pk}/adjust/").status_code == 403
    refused = viewer.post(
        f"/admin/ledger/account/{alice.pk}/adjust/", {"delta": 500, "reason": "free"}
    )
    assert refused.status_code == 403
    action = viewer.post(
        "/admin/ledger/account/",
        {"action": "adjust_balance", "_selected_action": [str(alice.pk)]},
    )
    assert action.status_code in (200, 302)
    assert "/adjust/" not in action.get("Location", "")
    assert viewer.get("/admin/ledger/account/health/").status_code == 403
    assert api.balance(alice.pk).available == 99 - 5


def test_an_operator_adjusts_once_even_after_back_and_submit_again(operator, alice, bob, funded):
    url = f"/admin/ledger/account/{alice.pk}/adjust/"
    assert operator.get("/admin/ledger/account/health/").status_code == 200
    assert alice.email in operator.get(url).content.decode()
    form = {"delta": 7, "reason": "goodwill after outage"}
    first = operator.post(url, form)
    assert first.status_code == 302
    # Back: the form is fetched again (admin pages are never cached), then sent again.
    assert operator.get(url).status_code == 200
    second = operator.post(url, form)
    assert second.status_code == 302
    assert api.balance(alice.pk).available == 94 + 7
    assert "already applied" in operator.get("/admin/ledger/account/").content.decode()
    # A different correction is a different adjustment.
    operator.post(url, {"delta": 7, "reason": "second, separate goodwill"})
    assert api.balance(alice.pk).available == 94 + 14


def test_adjust_takes_the_account_from_the_url_and_keys_in_its_own_namespace(
    operator, alice, bob, funded, ref
):
    """A hidden account or a crafted key in the form changes nothing about what is applied."""
    purchase_key = ref("checkout")
    operator.post(
        f"/admin/ledger/account/{alice.pk}/adjust/",
        {"delta": 3, "reason": "crafted", "account_id": str(bob.pk), "key": purchase_key},
    )
    assert api.balance(bob.pk).available == 0
    assert api.balance(alice.pk).available == 94 + 3
    with api.reading_as_staff():
        keys = list(
            Entry.objects.filter(account_id=alice.pk, kind="adjust").values_list(
                "idempotency_key", flat=True
            )
        )
    assert len(keys) == 1 and keys[0].startswith("admin-adjust:") and purchase_key not in keys[0]
    # The purchase's own key stays free for the purchase.
    assert api.grant(alice.pk, 10, key=purchase_key, source="test").status == "granted"
