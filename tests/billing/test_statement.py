"""The billing page and CSV as a customer reads them: their words, true statuses, no staff text."""

import csv
import io
import uuid
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from billing import reviews, selectors, statement
from billing.models import CheckoutSession, ReviewItem
from generation.models import Generation
from ledger import api as ledger
from tests.billing.conftest import charge_object, dispute_object, make_event, spend

pytestmark = pytest.mark.django_db(transaction=True)

# Words of the journal and of Stripe that a customer never reads.
INTERNAL = ["hold", "capture", "Change 0", "cs_", "pi_", "ch_", "checkout.session", "stripe"]


def page_of(client) -> str:
    return client.get("/billing/").content.decode()


def csv_of(client) -> list[list[str]]:
    response = client.get("/billing/export.csv")
    return list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))


def activity(html: str) -> str:
    """The page from the activity heading on (the packs above name their own prices)."""
    return html.split('id="activity"')[1]


def _generation(user, *, cost: int = 20) -> Generation:
    return Generation.objects.create(
        user=user,
        model_key="loop-animation",
        kind="video",
        prompt="a paper boat",
        params={},
        cost=cost,
        provider="babysea",
        hold_ttl_seconds=60,
    )


def _hold(generation: Generation) -> None:
    result = ledger.hold(
        generation.user_id, generation.hold_reference, generation.cost, ttl=timedelta(minutes=5)
    )
    assert result.status == "held"


def test_a_generation_is_one_row_in_progress_then_charged_linked_with_its_id_in_the_csv(
    alice_client, alice, fake_stripe
):
    ledger.grant(alice.pk, 100, key=f"test:{uuid.uuid4()}", source="test")
    generation = _generation(alice)
    _hold(generation)

    pending = activity(page_of(alice_client))
    assert "Loop animation · 20 credits" in pending and "In progress" in pending
    assert reverse("generation:detail", args=[generation.pk]) in pending

    assert ledger.capture(generation.hold_reference).status == "captured"
    html = activity(page_of(alice_client))
    assert html.count("Loop animation · 20 credits") == 1
    assert "Charged" in html and "-20" in html and "In progress" not in html
    for word in INTERNAL:
        assert word not in html, word

    rows = csv_of(alice_client)
    header = rows[0]
    ids = {row[header.index("generation_id")] for row in rows[1:]}
    assert str(generation.pk) in ids
    assert [r[header.index("description")] for r in rows[1:3]] == [
        "Loop animation · 20 credits"
    ] * 2


def test_a_released_generation_says_not_charged(alice_client, alice, fake_stripe):
    ledger.grant(alice.pk, 30, key=f"test:{uuid.uuid4()}", source="test")
    generation = _generation(alice)
    _hold(generation)
    assert ledger.release(generation.hold_reference).status == "released"

    html = activity(page_of(alice_client))

    assert "Not charged" in html and "Loop animation · 20 credits" in html


def test_staff_emails_and_notes_never_reach_the_page_or_the_csv(
    alice_client, alice, staff, post_event, buy
):
    purchase = buy(alice)
    spend(alice, 70)
    refund = charge_object(purchase.stripe_payment_intent_id, refunded=1000)
    assert post_event(make_event("charge.refunded", refund)).status_code == 200
    item = ReviewItem.objects.get(reason="refund")
    reviews.resolve_review(item, actor=staff, decision="grant", reason="Secret internal call")
    ledger.adjust(
        alice.pk, 5, key=f"admin-adjust:{uuid.uuid4()}", actor=staff.email, reason="Goodwill memo"
    )

    html = page_of(alice_client)
    text = "\n".join(",".join(row) for row in csv_of(alice_client))

    for shown in (html, text):
        assert staff.email not in shown
        assert "Secret internal call" not in shown and "Goodwill memo" not in shown
        assert purchase.stripe_session_id not in shown
        assert purchase.stripe_payment_intent_id not in shown
        assert "Balance correction by support" in shown
        assert f"Refund · {purchase.product_name}" in shown
        assert f"Purchase · {purchase.product_name}" in shown
    assert "Refunded" in html


@pytest.mark.parametrize(
    ("refunded", "disputed", "status"),
    [
        (0, False, "Paid"),
        (400, False, "Partially refunded"),
        (1000, False, "Refunded"),
        (0, True, "Disputed"),
    ],
)
def test_purchases_show_their_true_status(alice, post_event, buy, refunded, disputed, status):
    purchase = buy(alice)
    if refunded:
        event = charge_object(purchase.stripe_payment_intent_id, refunded=refunded)
        assert post_event(make_event("charge.refunded", event)).status_code == 200
    if disputed:
        event = dispute_object(purchase.stripe_payment_intent_id, status="needs_response")
        assert post_event(make_event("charge.dispute.created", event)).status_code == 200

    assert [shown for _, shown in statement.recent_purchases(alice)] == [status]


def test_an_abandoned_checkout_reads_expired_not_open(alice_client, alice, pack):
    from billing.checkout import start_checkout

    checkout = start_checkout(alice, pack)
    CheckoutSession.objects.filter(pk=checkout.pk).update(
        created_at=timezone.now() - timedelta(days=2), expires_at=timezone.now() - timedelta(days=1)
    )

    html = page_of(alice_client)

    assert "Expired" in html and ">Open<" not in html


def test_the_chart_peak_is_the_highest_balance_even_within_a_day(alice, fake_stripe):
    ledger.grant(alice.pk, 200, key=f"test:{uuid.uuid4()}", source="test")
    spend(alice, 168)

    chart = selectors.balance_chart(alice)

    assert (chart.peak, chart.latest) == (200, 32)


def test_a_generations_lines_are_read_through_its_hold_at_any_age(alice_client, alice):
    ledger.grant(alice.pk, 1000, key=f"test:{uuid.uuid4()}", source="test")
    generation = _generation(alice, cost=5)
    _hold(generation)
    assert ledger.capture(generation.hold_reference).status == "captured"
    for _ in range(210):  # more than the newest 200 entries the page used to read
        ledger.grant(alice.pk, 1, key=f"test:{uuid.uuid4()}", source="test")

    html = alice_client.get(reverse("generation:detail", args=[generation.pk])).content.decode()

    assert "No credits have moved" not in html
    assert "Reserved while it runs" in html and "Charged" in html
