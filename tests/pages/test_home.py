import uuid

import pytest
from django.urls import reverse

from generation import api as generation
from ledger import api as ledger

pytestmark = pytest.mark.django_db(transaction=True)


def test_home_lists_every_model_at_the_price_it_charges(client):
    response = client.get(reverse("pages:home"))
    text = response.content.decode()
    assert response.status_code == 200
    for spec in generation.catalogue_models():
        cost = generation.price(spec.key)
        assert spec.name in text
        assert f"from {cost} credit" in text
    assert "credits</a>" not in text  # no header balance for a visitor


def test_home_for_a_signed_in_user_shows_the_header_balance(alice_client, alice):
    ledger.grant(alice.id, 75, key=f"test:{uuid.uuid4()}", source="test")
    text = alice_client.get(reverse("pages:home")).content.decode()
    assert "75 credits</a>" in text
    assert reverse("pages:dashboard") in text


def test_old_paths_still_answer(alice_client):
    assert reverse("pages:home") == "/"
    assert reverse("pages:dashboard") == "/dashboard/"
    assert alice_client.get("/dashboard/").status_code == 200
