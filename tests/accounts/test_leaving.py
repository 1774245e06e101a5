"""Leaving: delete one generation, delete the account; the ledger stays whole throughout."""

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from billing.models import Subscription
from generation.models import Generation, Status
from ledger import api as ledger
from ledger import selectors as ledger_selectors
from tests.accounts.conftest import bucket_keys
from tests.billing.test_subscriptions import subscription_object
from tests.generation.flow import start, submit

pytestmark = pytest.mark.django_db(transaction=True)


def journal_keys(user) -> list[str]:
    return [entry.kind for entry in ledger_selectors.journal_page(user.pk, limit=200).entries]


def test_deleting_a_generation_removes_its_objects_and_prompt_and_keeps_its_ledger(
    alice, alice_client, finished_generation
):
    generation = finished_generation(alice)
    prefix = f"{alice.pk}/{generation.pk}/"
    assert len(bucket_keys(prefix)) >= 2  # the output and its thumbnail
    entries_before = journal_keys(alice)

    response = alice_client.post(f"/generations/{generation.pk}/delete/")

    assert response.status_code == 302
    assert bucket_keys(prefix) == []
    generation.refresh_from_db()
    assert generation.prompt == "" and generation.params == {}
    assert generation.deleted_at is not None and generation.status == Status.SUCCEEDED
    assert journal_keys(alice) == entries_before
    assert ledger.hold_status(generation.hold_reference) == "captured"
    assert ledger.audit() == []
    assert alice_client.get(f"/generations/{generation.pk}/").status_code == 404
    assert str(generation.pk) not in alice_client.get("/generations/").content.decode()
    # A second click, or someone else's id, finds nothing to delete.
    assert alice_client.post(f"/generations/{generation.pk}/delete/").status_code == 404


def test_another_users_generation_cannot_be_deleted(alice, bob, finished_generation):
    generation = finished_generation(alice)
    prefix = f"{alice.pk}/{generation.pk}/"
    before = bucket_keys(prefix)
    intruder = Client()
    intruder.force_login(bob)

    assert intruder.post(f"/generations/{generation.pk}/delete/").status_code == 404
    assert bucket_keys(prefix) == before
    generation.refresh_from_db()
    assert generation.prompt and generation.deleted_at is None


def test_a_running_generation_is_not_deleted(alice, alice_client, generation_settings, fund):
    fund(alice, 100)
    generation = start(submit(alice, faults={"delay_ms": 5000}))
    assert generation.is_active

    response = alice_client.post(f"/generations/{generation.pk}/delete/", follow=True)

    assert "still in progress" in response.content.decode()
    generation.refresh_from_db()
    assert generation.deleted_at is None and generation.prompt


def test_deleting_the_account_cancels_at_stripe_removes_media_and_keeps_the_ledger(
    alice, client, subscribe, plan, fake_stripe, finished_generation, staff
):
    checkout, sub_id = subscribe(alice)
    fake_stripe.add_subscription(
        subscription_object(sub_id, checkout.stripe_customer_id, plan, alice)
    )
    generation = finished_generation(alice)
    assert bucket_keys(f"{alice.pk}/")
    entries_before = journal_keys(alice)
    email = alice.email
    client.force_login(alice)

    wrong = client.post("/account/delete/", {"password": "not it", "confirm": "on"})
    assert wrong.status_code == 400
    assert get_user_model().objects.get(pk=alice.pk).deleted_at is None
    assert fake_stripe.calls_to("DELETE", f"/v1/subscriptions/{sub_id}") == []

    response = client.post("/account/delete/", {"password": f"pw-{email}", "confirm": "on"})

    assert response.status_code == 302
    assert len(fake_stripe.calls_to("DELETE", f"/v1/subscriptions/{sub_id}")) == 1
    assert Subscription.objects.get(stripe_subscription_id=sub_id).status == "canceled"
    assert bucket_keys(f"{alice.pk}/") == []
    gone = get_user_model().objects.get(pk=alice.pk)
    assert gone.email == f"deleted-{alice.pk}@invalid" and gone.name == ""
    assert gone.deleted_at is not None and not gone.is_active and not gone.has_usable_password()
    assert Generation.objects.get(pk=generation.pk).prompt == ""
    assert journal_keys(alice) == entries_before
    assert ledger.audit() == []
    assert client.get("/dashboard/").status_code == 302  # signed out
    assert not Client().login(email=email, password=f"pw-{email}")
    admin = Client()
    admin.force_login(staff)
    admin_page = admin.get("/admin/accounts/user/?deleted_at__isnull=False")
    assert f"deleted-{alice.pk}@invalid" in admin_page.content.decode()


def test_stripe_unreachable_stops_the_deletion_before_anything_is_deleted(
    alice, client, subscribe, plan, fake_stripe, finished_generation
):
    checkout, sub_id = subscribe(alice)
    fake_stripe.add_subscription(
        subscription_object(sub_id, checkout.stripe_customer_id, plan, alice)
    )
    generation = finished_generation(alice)
    keys = bucket_keys(f"{alice.pk}/")
    client.force_login(alice)
    fake_stripe.fail_with = 500

    response = client.post("/account/delete/", {"password": f"pw-{alice.email}", "confirm": "on"})

    assert response.status_code == 400
    assert "nothing was deleted" in response.content.decode()
    assert bucket_keys(f"{alice.pk}/") == keys
    alice.refresh_from_db()
    assert alice.deleted_at is None and alice.is_active
    assert Generation.objects.get(pk=generation.pk).prompt


def test_deleting_an_account_mid_generation_returns_held_credits_and_stops_queued_work(
    alice, client, generation_settings, fund
):
    from generation.services.dispatch import start_generation

    fund(alice, 100)
    running = start(submit(alice, faults={"delay_ms": 5000}))
    queued = submit(alice)
    assert running.is_active and queued.status == Status.QUEUED
    client.force_login(alice)

    response = client.post("/account/delete/", {"password": f"pw-{alice.email}", "confirm": "on"})

    assert response.status_code == 302
    running.refresh_from_db()
    queued.refresh_from_db()
    assert running.status == Status.CANCELED and running.prompt == ""
    assert ledger.hold_status(running.hold_reference) == "released"
    assert queued.status == Status.CANCELED and queued.prompt == ""
    assert start_generation(queued.pk).startswith("nothing to start")
    assert ledger.balance(alice.pk).available == 100
    assert ledger.audit() == []
