"""A withheld asset (unpaid generation) is never signed: the owner is told why, others get 404."""

import uuid

import pytest
from django.test import Client
from django.urls import reverse

from media_store import api
from tests.media_store.conftest import image_bytes

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("private_hosts_allowed")]


@pytest.fixture
def alices_image(alice, payload_server):
    url = payload_server.serve("/withheld.png", image_bytes("PNG", (90, 60)))
    return api.ingest(
        owner_id=alice.pk, generation_id=uuid.uuid4(), source_url=url, allowed_hosts=["127.0.0.1"]
    )


@pytest.mark.parametrize("route", ["media_store:asset", "media_store:thumbnail"])
def test_owner_of_a_withheld_asset_gets_a_payment_page_and_no_signed_url(
    alice_client, alices_image, route
):
    """402 with the next step (buy credits); no redirect, so no signed URL ever leaves."""
    assert api.set_withheld(alices_image.generation_id, True) == 1
    response = alice_client.get(reverse(route, kwargs={"asset_id": alices_image.id}))
    assert response.status_code == 402
    assert "Location" not in response
    assert "no-store" in response["Cache-Control"]
    body = response.content.decode()
    assert "withheld until it is paid" in body
    assert reverse("billing:overview") in body
    assert api.assets_for_generation(alices_image.generation_id)[0].withheld is True


def test_another_user_cannot_tell_a_withheld_asset_from_a_missing_one(bob, alices_image):
    """Withholding must not leak existence: Bob's answer is the same 404 as a random id."""
    api.set_withheld(alices_image.generation_id, True)
    client = Client()
    client.force_login(bob)
    theirs = client.get(alices_image.url)
    missing = client.get(reverse("media_store:asset", kwargs={"asset_id": uuid.uuid4()}))
    assert theirs.status_code == missing.status_code == 404
    assert theirs.content == missing.content


def test_releasing_the_hold_serves_the_asset_again(alice_client, alices_image):
    """Once paid, the same app URL redirects to a fresh signed URL."""
    api.set_withheld(alices_image.generation_id, True)
    assert api.set_withheld(alices_image.generation_id, False) == 1
    response = alice_client.get(alices_image.url)
    assert response.status_code == 302
    assert api.assets_for_generation(alices_image.generation_id)[0].withheld is False


def test_withholding_an_unknown_generation_changes_nothing(alices_image):
    """A generation without outputs has nothing to withhold."""
    assert api.set_withheld(uuid.uuid4(), True) == 0
    assert api.assets_for_generation(alices_image.generation_id)[0].withheld is False
