"""The billing page, success and cancel pages, and the CSV export."""

import csv
import io
import uuid

import pytest

from billing.checkout import start_checkout
from ledger import api as ledger
from ledger import selectors as ledger_selectors

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def purchase(alice, pack):
    return start_checkout(alice, pack)


def test_success_page_fulfils_a_paid_session_for_its_owner(
    alice_client, alice, purchase, fake_stripe
):
    fake_stripe.complete(purchase.stripe_session_id)

    response = alice_client.get("/billing/success/", {"session_id": purchase.stripe_session_id})

    assert response.status_code == 200
    assert b"Payment received. 100 credits were added" in response.content
    assert ledger_selectors.balance(alice.pk).available == 100


def test_success_page_with_another_users_session_shows_nothing_and_grants_nothing(
    client, bob, alice, purchase, fake_stripe
):
    fake_stripe.complete(purchase.stripe_session_id)
    client.force_login(bob)
    calls_before = len(fake_stripe.calls)

    response = client.get("/billing/success/", {"session_id": purchase.stripe_session_id})

    assert response.status_code == 404
    assert len(fake_stripe.calls) == calls_before
    assert ledger_selectors.balance(alice.pk).available == 0
    assert ledger_selectors.balance(bob.pk).available == 0


def test_success_page_needs_sign_in(client, purchase):
    response = client.get("/billing/success/", {"session_id": purchase.stripe_session_id})

    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_processing_payment_polls_until_paid(alice_client, alice, purchase, fake_stripe):
    fake_stripe.complete(purchase.stripe_session_id, payment_status="unpaid")

    page = alice_client.get("/billing/success/", {"session_id": purchase.stripe_session_id})

    assert b"Your payment is processing" in page.content
    assert b'hx-trigger="every 2s"' in page.content

    fake_stripe.complete(purchase.stripe_session_id)
    from django.core.cache import cache

    cache.clear()
    fragment = alice_client.get(
        "/billing/success/",
        {"session_id": purchase.stripe_session_id},
        HTTP_HX_REQUEST="true",
    )

    assert b"<html" not in fragment.content
    assert b"Payment received" in fragment.content
    assert b"hx-trigger" not in fragment.content


def test_cancel_page_says_nothing_was_charged(alice_client, purchase):
    response = alice_client.get("/billing/cancel/", {"checkout": str(purchase.pk)})

    assert response.status_code == 200
    assert b"Nothing was charged" in response.content


def test_billing_page_shows_balances_packs_chart_and_own_activity(
    alice_client, alice, bob, pack, fake_stripe
):
    ledger.grant(alice.pk, 40, key=f"test:{uuid.uuid4()}", source="test", memo="alice's memo")
    ledger.grant(bob.pk, 7, key=f"test:{uuid.uuid4()}", source="test", memo="bob's memo")

    response = alice_client.get("/billing/")

    body = response.content.decode()
    assert response.status_code == 200
    assert pack.name in body and "$10.00" in body
    assert "<svg" in body and "<polyline" in body
    assert "Credits added" in body and "+40" in body
    assert "memo" not in body and "+7" not in body


def test_activity_pages_older_entries(alice_client, alice, fake_stripe):
    for n in range(30):
        ledger.grant(alice.pk, n + 100, key=f"test:{uuid.uuid4()}", source="test")

    first = alice_client.get("/billing/").content.decode()
    older_link = first.split('href="/billing/?before=')[1].split("#")[0]
    second = alice_client.get("/billing/", {"before": older_link}).content.decode()

    assert "+129" in first and "+100" not in first
    assert "+100" in second and "+129" not in second


def test_csv_export_holds_only_the_users_entries(alice_client, alice, bob, fake_stripe):
    ledger.grant(alice.pk, 5, key=f"test:{uuid.uuid4()}", source="test", memo="=HYPERLINK()")
    ledger.grant(bob.pk, 9, key=f"test:{uuid.uuid4()}", source="test", memo="bob")

    response = alice_client.get("/billing/export.csv")

    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows[0][:5] == ["entry_id", "time", "description", "what_happened", "credits"]
    assert rows[0][-1] == "generation_id"
    assert len(rows) == 2
    assert rows[1][2:5] == ["Credits added", "Credits added", "5"]
    assert "HYPERLINK" not in "".join(rows[1])


def test_empty_billing_page_explains_itself(alice_client, fake_stripe):
    body = alice_client.get("/billing/").content.decode()

    assert "No credits yet" in body and "Nothing yet." in body
